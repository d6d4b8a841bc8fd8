"""
The user agent core (RFC 3261 sections 8, 12 to 15): the transaction user of
the appliance's own SIP user agents (echo, conference, and later voicemail
and the PSAP controller).

L{UserAgent} owns the dialogs of one SIP stack.  A new INVITE becomes a
L{Call} handed to the application (C{onIncoming(call)}), which rings,
answers or rejects it; the core does the rest: the dialog, 2xx
retransmission until the ACK arrives and the BYE when it never does
(section 13.3.1.4), CANCEL (section 9.2), BYE in both directions (section
15), and re-INVITEs (section 14) with their offer / answer, refused with 491
while another is pending (glare, section 14.1).  Calls we place, re-INVITEs
we send and digest answers live in L{appliance.sip.uac}; what both ends of
a call share in L{appliance.sip.session}; REFER in L{appliance.sip.refer}.
"""

from twisted.internet.defer import maybeDeferred, succeed
from twisted.logger import Logger
from zope.interface import implementer

from appliance import logs
from appliance.interfaces import ITransactionUser
from appliance.sip.dialog import CONFIRMED, EARLY, TERMINATED, Dialog
from appliance.sip.dispatcher import newTag, unsupportedExtensions
from appliance.sip.message import ParseError, Response, makeResponse
from appliance.sip.sdp import SDPError
from appliance.sip.session import (
    ACTIVE, CALLING, ENDED, INCOMING, RINGING, CallError, Session, _sdpOf,
)

_log = Logger(observer=logs.observer)

#: Methods the user agents accept (RFC 3261 section 20.5).
ALLOWED = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "REFER", "NOTIFY", "MESSAGE")



class Call(Session):
    """
    A call we answer, as the UAS (RFC 3261 sections 13.3 and 14.2); see
    L{Session} for the callbacks.

    @ivar offer: the INVITE's session description, or C{None} (late offer:
        the answer to our offer comes in the ACK, as C{ackBody}).
    """

    def __init__(self, agent, request, serverTransaction, offer):
        self._agent = agent
        self.request = request
        self._transaction = serverTransaction
        self.offer = offer
        self.answerBody = None
        self.ackBody = None
        self.state = INCOMING
        self.dialog = Dialog.forServer(request, newTag(), agent.contact)
        self.source = serverTransaction.source
        self.uri = request.uri
        self.remoteBody = request.body or None

    def _respond(self, code, reason=None, body=b"", headers=()):
        response = makeResponse(self.request, code, reason, toTag=self.dialog.localTag)
        if 100 < code < 300:
            # RFC 3261 section 12.1.1: the route set goes back to the caller.
            for value in self.request.headers.getAll("Record-Route"):
                response.headers.add("Record-Route", value)
            response.headers.add("Contact", self._agent.contact)
        for name, value in headers:
            response.headers.add(name, value)
        if body:
            response.headers.add("Content-Type", "application/sdp")
            response.body = body
        self._agent.stats.increment("responses.out.%dxx" % (code // 100,))
        self._transaction.respond(response)
        return response

    def ring(self):
        """
        Send 180 (Ringing), creating the early dialog (RFC 3261 section 13.3.1.1).
        """
        if self.state not in (INCOMING, RINGING):
            raise CallError("cannot ring a call that is %s" % (self.state,))
        self.state = RINGING
        self._respond(180)

    def answer(self, body):
        """
        Answer with 200 and the session description C{body}; it is sent
        again on timer T1, doubling up to T2, until the ACK arrives, and the
        call ends with a BYE if none arrives within 64*T1 (RFC 3261 section
        13.3.1.4).
        """
        if self.state not in (INCOMING, RINGING):
            raise CallError("cannot answer a call that is %s" % (self.state,))
        self.state = ACTIVE
        self.answerBody = body
        self.dialog.confirm()
        response = self._respond(200, body=body)
        timers = self._agent.timers
        if not self._transaction.transport.reliable:
            self._scheduleRetransmit(response, timers.T1)
        self._ackTimer = self._agent.clock.callLater(64 * timers.T1, self._noAck)

    def reject(self, code=486, reason=None, headers=()):
        """
        Refuse the call with a final response of 300 or more.
        """
        if self.state not in (INCOMING, RINGING):
            raise CallError("cannot reject a call that is %s" % (self.state,))
        self._respond(code, reason, headers=headers)
        self._end("rejected")

    def hangup(self):
        """
        End the call: BYE once answered, 480 before (RFC 3261 section 15).
        """
        if self.state in (INCOMING, RINGING):
            self._respond(480)
            self._end("hangup")
            return succeed(None)
        return Session.hangup(self)

    def _byeReceived(self):
        if self.state in (INCOMING, RINGING):
            # RFC 3261 section 15.1.2: the INVITE ends with 487.
            self._respond(487)

    def _cancelled(self):
        """
        RFC 3261 section 9.2: a CANCEL before the final response ends the
        call with 487.
        """
        if self.state in (INCOMING, RINGING):
            self._respond(487)
            self._end("cancelled")

def _setViaTransport(request, transportName):
    via = request.headers.get("Via")
    protocol, _, rest = via.partition(" ")
    request.headers.replaceFirst("Via", "SIP/2.0/%s %s" % (transportName, rest))


@implementer(ITransactionUser)
class UserAgent:
    """
    The core of one SIP user agent stack.

    @param clock: an L{IReactorTime}.
    @param transactions: the stack's L{appliance.sip.transaction.TransactionLayer}
        (set after construction, as the layer needs its user first).
    @param transports: C{{name: ISIPTransport}} of the stack.
    @param resolve: C{resolve(uri)} giving a L{Deferred} list of C{(transport, host, port)}.
    @param contact: the Contact header value of this agent (C{<sip:...>}).
    @param onIncoming: C{onIncoming(call)} for each new INVITE; it must
        ring, answer or reject the L{Call} (raising refuses it with 500).
    @param stats: an L{appliance.stats.Statistics}.
    @param accepts: C{accepts(uri)}: whether this agent serves the
        Request-URI of a new INVITE (404 otherwise).
    """

    def __init__(self, clock, transports, resolve, contact, onIncoming, stats,
                 timers, accepts=lambda uri: True):
        self.clock = clock
        self.transactions = None
        self.transports = transports
        self._resolve = resolve
        self.contact = contact
        self._onIncoming = onIncoming
        self._accepts = accepts
        self.stats = stats
        self.timers = timers
        self._calls = {}
        self._byInvite = {}
        self._clients = {}
        #: The L{appliance.sip.refer.Transfers} answering REFER and its
        #: NOTIFYs inside dialogs, or C{None} (501).
        self.transfers = None
        #: The L{appliance.sip.events.EventServer} answering SUBSCRIBE, or
        #: C{None} (501).
        self.events = None
        #: C{onMessage(request)} for a MESSAGE outside dialogs (RFC 3428):
        #: return its status (200), or leave C{None} to refuse them (405).
        self.onMessage = None
        stats.gauge("calls.active", lambda: len(self.calls))

    @property
    def calls(self):
        """
        The calls in progress (not the subscriptions, which share the
        dialog table).
        """
        return [call for call in self._calls.values() if isinstance(call, Session)]

    def capabilities(self):
        allowed = ALLOWED + ("SUBSCRIBE",) if self.events is not None else ALLOWED
        return (("Allow", ", ".join(allowed)), ("Accept", "application/sdp"))

    def respond(self, transaction, request, code, reason=None, headers=()):
        response = makeResponse(request, code, reason, toTag=newTag() if code >= 200 else None)
        for name, value in headers:
            response.headers.add(name, value)
        self.stats.increment("responses.out.%dxx" % (code // 100,))
        transaction.respond(response)
        return response

    # ITransactionUser --------------------------------------------------------

    def requestReceived(self, request, serverTransaction):
        if serverTransaction is None:
            self._ackReceived(request)
            return
        method = request.method
        try:
            if method == "CANCEL":
                self._cancel(request, serverTransaction)
            elif request.toAddress().tag is not None:
                self._inDialog(request, serverTransaction)
            elif method == "INVITE":
                self._invite(request, serverTransaction)
            elif method == "OPTIONS":
                self.respond(serverTransaction, request, 200, headers=self.capabilities())
            elif method == "MESSAGE" and self.onMessage is not None:
                self._message(request, serverTransaction)
            elif method == "SUBSCRIBE" and self.events is not None:
                self.events.subscribeReceived(request, serverTransaction)
            elif method in ALLOWED:
                self.respond(serverTransaction, request, 481 if method == "BYE" else 405,
                             headers=self.capabilities())
            else:
                self.respond(serverTransaction, request, 501, headers=self.capabilities())
        except ParseError as e:
            self.respond(serverTransaction, request, e.status, e.reason)

    def responseReceived(self, response, clientTransaction):
        self.stats.increment("responses.in.%dxx" % (response.code // 100,))
        handler = self._clients.get(clientTransaction)
        if handler is None:
            if 200 <= response.code < 300:
                self._strayOK(response)
            return
        if handler.responseReceived(response):
            self._clients.pop(clientTransaction, None)

    def _strayOK(self, response):
        """
        A 2xx to an INVITE of ours whose transaction is gone: the ACK was
        lost, send it again (RFC 3261 section 13.2.2.4).
        """
        try:
            _, method = response.cseq()
            key = (response.callId, response.fromAddress().tag, response.toAddress().tag)
        except ParseError:
            return
        if method != "INVITE":
            return
        call = self._calls.get(key)
        if isinstance(call, Session):
            call.okReceivedAgain(response)
            return
        # A 2xx of another fork of a call we placed: that call acknowledges
        # it and hangs it up.
        placed = next((c for c in self._calls.values() if hasattr(c, "_ackAndBye")
                       and c.dialog.id[:2] == key[:2]), None)
        if placed is not None:
            placed._ok(response)

    def transactionTimedOut(self, transaction):
        self._clientFailed(transaction, 408)

    def transportFailed(self, transaction):
        self._clientFailed(transaction, 503)

    def _clientFailed(self, transaction, code):
        handler = self._clients.pop(transaction, None)
        if handler is not None:
            handler.responseReceived(Response(code, "Local " + str(code)))

    # Incoming ------------------------------------------------------------------

    def _invite(self, request, transaction):
        unsupported = unsupportedExtensions(request)
        if unsupported:
            self.respond(transaction, request, 420, headers=(("Unsupported", ", ".join(unsupported)),))
            return
        if not self._accepts(request.uri):
            self.respond(transaction, request, 404)
            return
        contentType = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if request.body and contentType != "application/sdp":
            # RFC 3261 section 8.2.3.
            self.respond(transaction, request, 415, headers=(("Accept", "application/sdp"),))
            return
        try:
            offer = _sdpOf(request)
        except SDPError as e:
            self.respond(transaction, request, 488, e.reason)
            return
        call = Call(self, request, transaction, offer)
        self._calls[call.dialog.id] = call
        self._byInvite[transaction] = call
        self.stats.increment("calls.incoming")
        try:
            self._onIncoming(call)
        except Exception:
            _log.failure("handling a new call")
            if call.state in (INCOMING, RINGING):
                call.reject(500)

    def _message(self, request, transaction):
        try:
            status = self.onMessage(request) or 200
        except Exception:
            _log.failure("handling MESSAGE")
            status = 500
        self.stats.increment("messages.in")
        self.respond(transaction, request, status)

    def _inDialog(self, request, transaction):
        call = self._find(request)
        if call is None:
            self.respond(transaction, request, 481)
            return
        call._requestReceived(request, transaction)

    def _find(self, request):
        try:
            key = (request.callId, request.toAddress().tag, request.fromAddress().tag)
        except ParseError:
            return None
        found = self._calls.get(key)
        if found is None and request.method == "NOTIFY":
            # A NOTIFY that overtook the 2xx to our SUBSCRIBE (RFC 6665
            # section 4.1.2.4) finds the subscription by its local tag alone.
            found = self._calls.get(key[:2] + (None,))
        return found

    def _ackReceived(self, ack):
        call = self._find(ack)
        if call is None:
            return
        call._reinviteAcked()
        call._ackReceived(ack)

    def _cancel(self, request, transaction):
        invite = transaction.cancelledInvite()
        if invite is None:
            self.respond(transaction, request, 481)
            return
        # RFC 3261 section 9.2: 200 whenever a transaction matches; only an
        # unanswered call is ended.
        self.respond(transaction, request, 200)
        call = self._byInvite.get(invite)
        if call is not None:
            call._cancelled()

    def _forget(self, call):
        self._calls.pop(call.dialog.id, None)
        for transaction, value in list(self._byInvite.items()):
            if value is call:
                del self._byInvite[transaction]

    # Outgoing ------------------------------------------------------------------

    def send(self, request, call=None, credentials=None, handler=None):
        """
        Send a request in a new client transaction to its next hop (the
        dialog's when C{call} is given, else its Request-URI's).

        Without a C{handler}, the L{Deferred} fires with the final response
        (a local 408 or 503 on failure), after one retry with digest
        C{credentials} C{(username, password)} when challenged.  With one,
        every response goes to C{handler.responseReceived(response)}, which
        returns whether the transaction is done for it.
        """
        if handler is None:
            from appliance.sip.uac import FinalResponse

            handler = FinalResponse(self, request, call, credentials)
        if call is not None and call.dialog is not None:
            hop = call.dialog.nextHop()
        else:
            routes = request.routes()
            hop = routes[0].uri if routes else request.uri
        self._sendTo(hop, request, handler)
        return getattr(handler, "result", None)

    def _sendTo(self, hop, request, handler):
        def resolved(destinations):
            for transportName, host, port in destinations:
                transport = self.transports.get(transportName)
                if transport is None:
                    continue
                _setViaTransport(request, transportName)
                transaction = self.transactions.sendRequest(request, transport, (host, port))
                self._clients[transaction] = handler
                handler.transaction = transaction
                self.stats.increment("requests.out.%s" % (request.method,))
                return
            handler.responseReceived(Response(503, "No route"))

        def failed(failure):
            _log.info("cannot send {method}: {error}", method=request.method, error=failure.value)
            handler.responseReceived(Response(503, "No route"))

        maybeDeferred(self._resolve, hop).addCallback(resolved).addErrback(failed)

    def sendDirect(self, hop, request):
        """
        Send a request outside any transaction (the ACK for a 2xx, RFC 3261
        section 13.2.2.4) to C{hop}.
        """
        def resolved(destinations):
            for transportName, host, port in destinations:
                transport = self.transports.get(transportName)
                if transport is not None:
                    _setViaTransport(request, transportName)
                    try:
                        transport.sendRequest(request, (host, port))
                    except OSError as e:
                        _log.info("cannot send {method}: {error}", method=request.method, error=e)
                    return

        return maybeDeferred(self._resolve, hop).addCallback(resolved).addErrback(
            lambda failure: _log.info("cannot send {method}: {error}", method=request.method,
                                      error=failure.value))

    def message(self, target, fromURI, body, contentType="text/plain;charset=utf-8", credentials=None,
                route=None):
        """
        Send a MESSAGE (RFC 3428) to C{target}; the L{Deferred} fires with
        its final response.
        """
        from appliance.sip.uac import newRequest

        request = newRequest("MESSAGE", target, fromURI, target, None, route, body=body,
                             contentType=contentType)
        self.stats.increment("messages.out")
        return self.send(request, credentials=credentials)

    def invite(self, target, fromURI, body=b"", credentials=None, route=None, headers=()):
        """
        Place a call to C{target} (a SIP URI) from C{fromURI}, offering
        C{body}; return the L{appliance.sip.uac.OutgoingCall}, whose
        C{result} fires with it once answered (see there).
        """
        from appliance.sip.uac import OutgoingCall

        call = OutgoingCall(self, target, fromURI, body, credentials, route, headers)
        call.start()
        return call

    def stop(self):
        """
        End every subscription and call (BYE for answered ones) and forget
        them.
        """
        if self.events is not None:
            self.events.stop()
        for call in list(self._calls.values()):
            if not isinstance(call, Session):
                call._end("shutdown")
                continue
            if call.state == ACTIVE:
                call._stopTimers()
                call._sendBye()
                call._end("shutdown")
            elif call.state in (INCOMING, RINGING):
                call._respond(503)
                call._end("shutdown")
            else:
                call._end("shutdown")
        handlers = list(self._clients.values())
        self._clients.clear()
        for handler in handlers:
            handler.responseReceived(Response(503, "Shutting down"))


__all__ = ["UserAgent", "Call", "Session", "CallError", "ALLOWED", "INCOMING", "RINGING", "CALLING",
           "ACTIVE", "ENDED", "EARLY", "CONFIRMED", "TERMINATED"]

"""
What both ends of a call share once a dialog exists (RFC 3261 sections 12
to 15): requests inside the dialog, re-INVITEs either way, the ACK of our
2xx, BYE.  L{appliance.sip.useragent.Call} (calls we answer) and
L{appliance.sip.uac.OutgoingCall} (calls we place) build on L{Session}.
"""

import random

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from appliance import logs
from appliance.sip.dialog import DialogError
from appliance.sip.message import makeResponse
from appliance.sip.sdp import SDPError, parseSDP

_log = Logger(observer=logs.observer)

# Call states, seen from the application.
INCOMING, RINGING, CALLING, ACTIVE, ENDED = "incoming", "ringing", "calling", "active", "ended"


class CallError(Exception):
    """
    An operation the call's state does not allow.
    """


def _sdpOf(message):
    """
    The session description of a message body, C{None} without one.

    @raise SDPError: a body that is not a valid application/sdp.
    """
    if not message.body:
        return None
    contentType = (message.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if contentType != "application/sdp":
        raise SDPError("unsupported body type %r" % (contentType[:40],))
    return parseSDP(message.body)


class Session:
    """
    What both ends of a call share once a dialog exists (RFC 3261 sections
    12 to 15): requests inside the dialog, re-INVITEs either way, BYE.

    The application sets the callbacks it wants:
      - C{onAnswered()}: the call is established (for a call we answered,
        once its ACK arrived), media may flow;
      - C{onReinvite(offer)}: a re-INVITE's L{appliance.sip.sdp.SessionDescription}
        (or C{None}); return the answer's bytes, or raise L{SDPError} for 488;
      - C{onInfo(request)}: an INFO inside the dialog; return a status (200);
      - C{onEnded(reason)}: the call is over (C{"bye"}, C{"cancelled"},
        C{"no ack"}, C{"hangup"}, C{"rejected"}, C{"shutdown"}).

    @ivar state: C{incoming} or C{ringing} (answering), C{calling} (placing
        it), C{active} or C{ended}.
    @ivar answerBody: the session description we sent last.
    @ivar remoteBody: the session description the peer sent last.
    """

    onAnswered = onReinvite = onInfo = onEnded = None
    _answered = False
    _byeWhenAcked = None
    _outgoingReinvite = None
    _reinviting = False
    _retransmit = _ackTimer = _glareRetry = None
    _ack = _ackHop = None
    answerBody = remoteBody = None
    dialog = None

    @property
    def callId(self):
        return self.dialog.callId

    def _byeReceived(self):
        pass

    def okReceivedAgain(self, response):
        """
        A 2xx to an INVITE or re-INVITE we sent, again: our ACK was lost
        (RFC 3261 section 13.2.2.4); send the same ACK.
        """
        if self._ack is not None and response.toAddress().tag == self.dialog.remoteTag \
                and response.cseq()[0] == self._ack.cseq()[0]:
            self._agent.sendDirect(self._ackHop, self._ack)

    def _scheduleRetransmit(self, response, interval):
        def again():
            self._transaction.respond(response)
            self._scheduleRetransmit(response, min(2 * interval, self._agent.timers.T2))

        self._retransmit = self._agent.clock.callLater(interval, again)

    def _stopTimers(self):
        glare = self._glareRetry is not None and self._glareRetry.active()
        for name in ("_retransmit", "_ackTimer", "_glareRetry"):
            call = getattr(self, name)
            if call is not None and call.active():
                call.cancel()
            setattr(self, name, None)
        if glare and self._outgoingReinvite is not None:
            # The re-INVITE waiting out a glare will not be sent again.
            pending, self._outgoingReinvite = self._outgoingReinvite, None
            pending.result.errback(CallError("the call ended"))

    def _noAck(self):
        self._ackTimer = None
        _log.info("no ACK for the 200 of call {callId}: hanging up", callId=self.callId)
        self._stopTimers()
        d = self._sendBye()
        if self._byeWhenAcked is not None:
            d.chainDeferred(self._byeWhenAcked)
        self._end("no ack")

    def hangup(self):
        """
        End the call with a BYE (RFC 3261 section 15); the L{Deferred}
        fires with the BYE's final response.
        """
        if self.state == ENDED:
            return succeed(None)
        if self._ackTimer is not None:
            # RFC 3261 section 15: no BYE before the ACK (or its timeout).
            if self._byeWhenAcked is None:
                self._byeWhenAcked = Deferred()
            return self._byeWhenAcked
        self._stopTimers()
        d = self._sendBye()
        self._end("hangup")
        return d

    def _sendBye(self):
        bye = self.dialog.createRequest("BYE")
        return self._agent.send(bye, self)

    def _ackReceived(self, ack):
        if self._ackTimer is None and self._retransmit is None:
            return  # a retransmitted ACK
        self._stopTimers()
        if self._byeWhenAcked is not None:
            # hangup() before the ACK: the BYE waits for it (RFC 3261 section 15).
            self._sendBye().chainDeferred(self._byeWhenAcked)
            self._end("hangup")
            return
        if ack.body:
            self.ackBody = ack.body
        if self.onAnswered is not None and not self._answered:
            self._answered = True
            self.onAnswered()

    def reinvite(self, body):
        """
        Send a re-INVITE with the offer C{body} (hold, resume, a new
        address; RFC 3261 section 14.1).  The L{Deferred} fires with the
        final response; after a 491 (glare) it is tried again once after
        2.1 to 4 s if we placed the call, 0 to 2 s otherwise.
        """
        from appliance.sip.uac import reinvite

        return reinvite(self, body)

    def refer(self, target, onProgress=None, referredBy=None):
        """
        Ask the other end to call C{target} (RFC 3515); see
        L{appliance.sip.refer.refer}.
        """
        from appliance.sip.refer import refer

        return refer(self, target, onProgress, referredBy)

    def _requestReceived(self, request, transaction):
        """
        A request inside the dialog (RFC 3261 section 12.2.2).
        """
        method = request.method
        try:
            self.dialog.receiveRequest(request)
        except DialogError as e:
            self._agent.respond(transaction, request, e.status, e.reason)
            return
        if method == "BYE":
            self._agent.respond(transaction, request, 200)
            self._byeReceived()
            self._stopTimers()
            self._end("bye")
        elif method == "INVITE":
            self._reinvite(request, transaction)
        elif method in ("REFER", "NOTIFY") and self._agent.transfers is not None:
            self._agent.transfers.requestReceived(self, request, transaction)
        elif method == "INFO":
            status = 200
            if self.onInfo is not None:
                status = self.onInfo(request) or 200
            self._agent.respond(transaction, request, status)
        elif method == "OPTIONS":
            self._agent.respond(transaction, request, 200, headers=self._agent.capabilities())
        else:
            self._agent.respond(transaction, request, 501, headers=self._agent.capabilities())

    def _reinvite(self, request, transaction):
        """
        RFC 3261 section 14.2: a second re-INVITE while one is pending gets
        491; an unacceptable offer 488 and the session stays as it was.
        """
        if self.state != ACTIVE:
            # RFC 3261 section 14.2: not before the INVITE's final response.
            self._agent.respond(transaction, request, 500,
                                headers=(("Retry-After", str(random.randint(0, 10))),))
            return
        if self._reinviting or self._ackTimer is not None or self._outgoingReinvite is not None:
            self._agent.respond(transaction, request, 491, headers=(("Retry-After", str(random.randint(1, 2))),))
            return
        try:
            offer = _sdpOf(request)
            body = self.onReinvite(offer) if self.onReinvite is not None else self.answerBody
        except SDPError as e:
            self._agent.respond(transaction, request, 488, e.reason)
            return
        self._reinviting = True
        response = makeResponse(request, 200, toTag=self.dialog.localTag)
        for value in request.headers.getAll("Record-Route"):
            response.headers.add("Record-Route", value)
        response.headers.add("Contact", self._agent.contact)
        if body:
            response.headers.add("Content-Type", "application/sdp")
            response.body = body
            self.answerBody = body
        transaction.respond(response)
        self._agent.stats.increment("responses.out.2xx")
        self._transaction = transaction
        if not transaction.transport.reliable:
            self._scheduleRetransmit(response, self._agent.timers.T1)
        self._ackTimer = self._agent.clock.callLater(64 * self._agent.timers.T1, self._noAck)

    def _reinviteAcked(self):
        self._reinviting = False

    def _end(self, reason):
        if self.state == ENDED:
            return
        self.state = ENDED
        self.dialog.terminate()
        self._stopTimers()
        self._agent._forget(self)
        _log.info("call {callId} ended: {reason}", callId=self.callId, reason=reason)
        if self.onEnded is not None:
            self.onEnded(reason)

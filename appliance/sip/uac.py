"""
The client side of the user-agent core: calls we place (RFC 3261 section
13.2), re-INVITEs we send (section 14.1), digest answers to challenges
(section 22.2, RFC 7616 / RFC 8760) and registrations kept fresh (section
10.2, used by the voicemail service for its mailbox contacts).
"""

import hashlib
import random

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger

from appliance import logs
from appliance.randomness import tokenHex
from appliance.sip.auth import digestResponse, parseCredentials
from appliance.sip.clienttransaction import makeCancel
from appliance.sip.dialog import CONFIRMED, Dialog, DialogError, newCallId
from appliance.sip.dispatcher import newTag
from appliance.sip.message import URI, Headers, ParseError, Request
from appliance.sip.transaction import newBranch
from appliance.sip.session import ACTIVE, CALLING, ENDED, CallError, Session

_log = Logger(observer=logs.observer)

_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


class CallFailed(Exception):
    """
    The call was not answered: C{code} and C{reason} of the final response
    (a local 408 or 503 when nothing came back).
    """

    def __init__(self, code, reason=""):
        Exception.__init__(self, "%d %s" % (code, reason))
        self.code = code
        self.reason = reason


# Digest --------------------------------------------------------------------


def digestAuthorization(challenge, method, uri, username, password, cnonce=None, nc=1):
    """
    The credentials answering one C{Digest} challenge (RFC 7616 section
    3.4, qop=auth when offered), or C{None} for a challenge we cannot meet
    (another scheme, an unknown algorithm, auth-int only).
    """
    parsed = parseCredentials(challenge)
    if parsed is None or parsed[0] != "digest":
        return None
    params = parsed[1]
    algorithm = params.get("algorithm", "MD5").upper()
    if algorithm not in _HASHES or "realm" not in params or "nonce" not in params:
        return None
    h = _HASHES[algorithm]
    realm, nonce = params["realm"], params["nonce"]
    ha1 = h(("%s:%s:%s" % (username, realm, password)).encode("utf-8")).hexdigest()
    fields = [("username", _quote(username)), ("realm", _quote(realm)), ("nonce", _quote(nonce)),
              ("uri", _quote(uri))]
    qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
    if qops and "auth" not in qops:
        return None
    if qops:
        cnonce = cnonce or tokenHex(8)
        count = "%08x" % (nc,)
        response = digestResponse(algorithm, ha1, nonce, count, cnonce, "auth", method, uri)
        fields += [("response", _quote(response)), ("algorithm", algorithm), ("cnonce", _quote(cnonce)),
                   ("qop", "auth"), ("nc", count)]
    else:
        ha2 = h(("%s:%s" % (method, uri)).encode("utf-8")).hexdigest()
        response = h(("%s:%s:%s" % (ha1, nonce, ha2)).encode("utf-8")).hexdigest()
        fields += [("response", _quote(response)), ("algorithm", algorithm)]
    if "opaque" in params:
        fields.append(("opaque", _quote(params["opaque"])))
    return "Digest " + ", ".join("%s=%s" % field for field in fields)


def _quote(text):
    return '"%s"' % (text.replace("\\", "\\\\").replace('"', '\\"'),)


def authorize(request, response, credentials, call=None):
    """
    The request again with credentials for the challenges of C{response}
    (401: Authorization, 407: Proxy-Authorization), a new branch and the
    next CSeq (RFC 3261 section 22.2); C{None} when no challenge can be met.
    """
    username, password = credentials
    challengeName, answerName = (
        ("WWW-Authenticate", "Authorization") if response.code == 401
        else ("Proxy-Authenticate", "Proxy-Authorization"))
    answers = {}
    for challenge in response.headers.getAll(challengeName):
        parsed = parseCredentials(challenge)
        realm = parsed[1].get("realm") if parsed else None
        if realm in answers:
            continue  # the server's preferred algorithm comes first (RFC 8760 section 2.4)
        answer = digestAuthorization(challenge, request.method, str(request.uri), username, password)
        if answer is not None:
            answers[realm] = answer
    if not answers:
        return None
    retry = request.copy()
    retry.headers.remove(answerName)
    for answer in answers.values():
        retry.headers.add(answerName, answer)
    number, method = request.cseq()
    if call is not None and call.dialog is not None:
        call.dialog.localSeq += 1
        number = call.dialog.localSeq
    else:
        number += 1
    retry.headers.set("CSeq", "%d %s" % (number, method))
    retry.headers.replaceFirst("Via", "SIP/2.0/UDP 0.0.0.0;branch=%s" % (newBranch(),))
    return retry


class FinalResponse:
    """
    Waits for the final response of a non-INVITE request, answering one
    digest challenge with C{credentials} (RFC 3261 section 22.2).
    """

    transaction = None

    def __init__(self, agent, request, call, credentials):
        self._agent = agent
        self._request = request
        self._call = call
        self._credentials = credentials
        self._challenged = False
        self.result = Deferred()

    def responseReceived(self, response):
        if response.code < 200:
            return False
        if response.code in (401, 407) and self._credentials and not self._challenged:
            retry = authorize(self._request, response, self._credentials, self._call)
            if retry is not None:
                self._challenged = True
                self._request = retry
                self._agent.send(retry, self._call, handler=self)
                return True
        self.result.callback(response)
        return True


# Calls we place --------------------------------------------------------------


def newRequest(method, target, fromURI, toURI, contact, route=None, callId=None, cseq=1,
               fromTag=None, body=b"", contentType="application/sdp", headers=()):
    """
    A request outside any dialog (RFC 3261 section 8.1.1), with a
    placeholder Via the transport completes.
    """
    uri = target if isinstance(target, URI) else URI.parse(target)
    request = Request(method, uri, Headers())
    add = request.headers.add
    add("Via", "SIP/2.0/UDP 0.0.0.0;branch=%s" % (newBranch(),))
    add("Max-Forwards", "70")
    if route is not None:
        add("Route", "<%s>" % (route,))
    add("From", "<%s>;tag=%s" % (fromURI, fromTag or newTag()))
    add("To", "<%s>" % (toURI,))
    add("Call-ID", callId or newCallId(uri.host or "appliance"))
    add("CSeq", "%d %s" % (cseq, method))
    if contact:
        add("Contact", contact)
    for name, value in headers:
        add(name, value)
    if body:
        add("Content-Type", contentType)
        request.body = body
    return request


class OutgoingCall(Session):
    """
    A call we place, as the UAC (RFC 3261 section 13.2), with an offer, or
    without (then the 2xx has the offer, and L{acknowledge} the answer).

    C{result} fires with the call once a 2xx arrived (and was
    acknowledged), or fails with L{CallFailed}.  C{onProgress(response)} hears
    the provisional responses.  Challenges are answered once with
    C{credentials}; a 2xx from a second fork, or after L{cancel}, is
    acknowledged and ended with a BYE (section 13.2.2.4).
    """

    onProgress = None
    transaction = None

    def __init__(self, agent, target, fromURI, body, credentials=None, route=None, headers=()):
        self._agent = agent
        self.state = CALLING
        self.answerBody = body or None
        self._credentials = credentials
        self._challenged = False
        self._provisional = False
        self._cancelWanted = False
        self.result = Deferred()
        self.uri = target if isinstance(target, URI) else URI.parse(target)
        self._request = newRequest("INVITE", self.uri, fromURI, target, agent.contact, route,
                                   body=body, headers=headers)

    @property
    def callId(self):
        return self._request.callId

    @property
    def request(self):
        return self._request

    def start(self):
        self._agent.stats.increment("calls.outgoing")
        self._agent.send(self._request, handler=self)

    def responseReceived(self, response):
        code = response.code
        try:
            if code < 200:
                self._progress(response)
                return False
            if code < 300:
                self._ok(response)
                return True
        except (ParseError, DialogError) as e:
            _log.info("unusable {code} for call {callId}: {reason}", code=code, callId=self.callId,
                      reason=e.reason)
            if code >= 200:
                self._failed(502, "Bad Gateway")
            return code >= 200
        if code in (401, 407) and self._credentials and not self._challenged and self.state == CALLING:
            retry = authorize(self._request, response, self._credentials)
            if retry is not None:
                self._challenged = True
                # The CANCEL waits for a provisional response to the retry.
                self._provisional = False
                self._request = retry
                self._agent.send(retry, handler=self)
                return True
        self._failed(code, response.reason)
        return True

    def _progress(self, response):
        self._provisional = True
        if self._cancelWanted:
            self._sendCancel()
        tag = response.toAddress().tag
        if tag is not None and self.dialog is None and response.headers.get("Contact") is not None \
                and self.state == CALLING:
            self.dialog = Dialog.forClient(self._request, response)
            self._agent._calls[self.dialog.id] = self
        if self.onProgress is not None:
            self.onProgress(response)

    def _ok(self, response):
        tag = response.toAddress().tag
        if self.state != CALLING or (self.dialog is not None and self.dialog.state == CONFIRMED
                                      and tag != self.dialog.remoteTag):
            if self.dialog is not None and tag == self.dialog.remoteTag:
                self.okReceivedAgain(response)
            else:
                self._ackAndBye(response)
            return
        if self.dialog is not None and self.dialog.remoteTag == tag:
            self.dialog.confirm(response)
        else:
            if self.dialog is not None:
                self._agent._forget(self)
            self.dialog = Dialog.forClient(self._request, response)
            self._agent._calls[self.dialog.id] = self
        self.dialog.confirm()
        if self.answerBody:
            self.acknowledge()
        self.state = ACTIVE
        self.remoteBody = response.body or None
        self._answered = True
        if self._cancelWanted:
            # The 2xx crossed our CANCEL (RFC 3261 section 9.1): hang up.
            self.hangup()
            self.result.errback(CallFailed(487, "Request Terminated"))
            return
        self.result.callback(self)
        if self.onAnswered is not None:
            self.onAnswered()

    def acknowledge(self, body=b""):
        """
        Send the ACK for the 2xx (RFC 3261 section 13.2.2.4).  Done at once
        for a call placed with an offer; a call placed without one (a late
        offer, as third-party call control places them) got the offer in
        the 2xx and must be acknowledged by its owner with the answer.
        """
        if self._ack is not None or self.dialog is None:
            return
        number, _ = self._request.cseq()
        self._ack = self.dialog.createRequest("ACK", body=body, cseq=number)
        self._ackHop = self.dialog.nextHop()
        self._agent.sendDirect(self._ackHop, self._ack)
        if body:
            self.answerBody = body

    def _ackAndBye(self, response):
        other = Dialog.forClient(self._request, response)
        number, _ = self._request.cseq()
        self._agent.sendDirect(other.nextHop(), other.createRequest("ACK", cseq=number))
        self._agent.send(other.createRequest("BYE"))

    def _failed(self, code, reason):
        if self.state != ENDED:
            self._end("rejected" if code < 500 or code >= 600 else "failed")
        if not self.result.called:
            self.result.errback(CallFailed(code, reason))

    def cancel(self):
        """
        Give up before the answer (RFC 3261 section 9.1): CANCEL once a
        provisional response has arrived; a 2xx that crosses it is hung up.
        """
        if self.state != CALLING or self._cancelWanted:
            return
        self._cancelWanted = True
        if self._provisional:
            self._sendCancel()

    def _sendCancel(self):
        transaction = self.transaction
        if transaction is None:
            return
        try:
            self._agent.transactions.sendRequest(
                makeCancel(self._request), transaction.transport, transaction.destination)
        except ValueError as e:
            _log.info("cannot CANCEL {callId}: {error}", callId=self.callId, error=e)

    def hangup(self):
        if self.state == CALLING:
            self.cancel()
            return self.result
        return Session.hangup(self)

    def _end(self, reason):
        if self.dialog is None:
            self.state = ENDED
            _log.info("call {callId} ended: {reason}", callId=self.callId, reason=reason)
            if self.onEnded is not None:
                self.onEnded(reason)
            return
        Session._end(self, reason)


# re-INVITE ---------------------------------------------------------------------


class _Reinvite:
    """
    One re-INVITE we send (RFC 3261 section 14.1).
    """

    transaction = None

    def __init__(self, session, body):
        self._session = session
        self._body = body
        self._retried = False
        self.result = Deferred()

    def send(self):
        session = self._session
        self._request = session.dialog.createRequest("INVITE", body=self._body)
        session._agent.send(self._request, session, handler=self)

    def responseReceived(self, response):
        code = response.code
        if code < 200:
            return False
        session = self._session
        if 200 <= code < 300:
            # The ACK goes to the target the 2xx names (section 12.2.1.2),
            # and again for each retransmitted 2xx.
            session.dialog.refreshTarget(response)
            number, _ = self._request.cseq()
            session._ack = session.dialog.createRequest("ACK", cseq=number)
            session._ackHop = session.dialog.nextHop()
            session._agent.sendDirect(session._ackHop, session._ack)
            session.answerBody = self._body
            session.remoteBody = response.body or None
        elif code == 491 and not self._retried and session.state == ACTIVE:
            # Glare: the owner of the Call-ID waits longer (section 14.1).
            self._retried = True
            delay = random.uniform(2.1, 4.0) if session.dialog.isCaller else random.uniform(0, 2.0)
            session._glareRetry = session._agent.clock.callLater(delay, self._retry)
            return True
        elif code in (408, 481) and session.state == ACTIVE:
            session._outgoingReinvite = None
            session.hangup() if code == 408 else session._end("gone")
            self.result.callback(response)
            return True
        session._outgoingReinvite = None
        self.result.callback(response)
        return True

    def _retry(self):
        self._session._glareRetry = None
        if self._session.state == ACTIVE:
            self.send()
        else:
            self._session._outgoingReinvite = None
            self.result.errback(CallError("the call ended"))


def reinvite(session, body):
    """
    See L{appliance.sip.useragent.Session.reinvite}.
    """
    if session.state != ACTIVE:
        return fail(CallError("cannot re-INVITE a call that is %s" % (session.state,)))
    if session._outgoingReinvite is not None or session._reinviting or session._ackTimer is not None:
        return fail(CallError("an offer / answer exchange is in progress"))
    handler = session._outgoingReinvite = _Reinvite(session, body)
    handler.send()
    return handler.result


__all__ = [
    "CallFailed", "FinalResponse", "OutgoingCall", "authorize", "digestAuthorization", "newRequest",
    "reinvite",
]

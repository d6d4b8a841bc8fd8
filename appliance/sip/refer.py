"""
REFER (RFC 3515): asking the other end of a call to call a third party, and
being asked, with the implicit subscription that reports how that call goes
in NOTIFYs carrying C{message/sipfrag} status lines.

L{Transfers} is the user agent's handler for REFER and C{Event: refer}
NOTIFY inside dialogs; L{refer} sends one.  What a REFER means is the
application's choice (C{onRefer}): a conference room invites the referred
party into the room (RFC 4579 section 5.5), the PSAP transfers a caller.
"""

import re

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from appliance import logs
from appliance.sip.message import REASONS, URI, Address, ParseError

_log = Logger(observer=logs.observer)

SIPFRAG = "message/sipfrag;version=2.0"
_STATUS_LINE = re.compile(r"SIP/2\.0 ([1-6][0-9][0-9])(?: ([^\r\n]*))?")
#: How long the implicit subscription lasts without news (RFC 3515 section 2.4.6).
SUBSCRIPTION_EXPIRES = 60


def sipfrag(code, reason=None):
    """
    The C{message/sipfrag} body of a NOTIFY: one status line (RFC 3515
    section 2.4.5).
    """
    reason = reason or REASONS.get(code, "")
    return ("SIP/2.0 %d %s\r\n" % (code, reason)).encode("utf-8")


def parseSipfrag(body):
    """
    The status code of a sipfrag body.

    @raise ParseError: not a status line.
    """
    match = _STATUS_LINE.match(body.decode("utf-8", "replace").strip())
    if match is None:
        raise ParseError("the NOTIFY body is not a SIP status line")
    return int(match.group(1))


def _subscriptionState(request):
    value = (request.headers.get("Subscription-State") or "").split(";")[0].strip().lower()
    return value or None


class Transfers:
    """
    REFER and its NOTIFYs for one user agent (C{agent.transfers}).

    @param onRefer: C{onRefer(session, target, request)} for an accepted
        REFER: return the L{appliance.sip.uac.OutgoingCall} placed to
        C{target} (an L{Address}), whose progress is reported to the
        referrer; return C{None} or raise to decline (603).
    """

    def __init__(self, agent, onRefer):
        self._agent = agent
        self._onRefer = onRefer

    def requestReceived(self, session, request, transaction):
        if request.method == "REFER":
            self._referReceived(session, request, transaction)
        else:
            self._notifyReceived(session, request, transaction)

    # Being asked -----------------------------------------------------------------

    def _referReceived(self, session, request, transaction):
        values = request.headers.getAll("Refer-To")
        if len(values) != 1:
            self._agent.respond(transaction, request, 400, "Exactly one Refer-To")
            return
        try:
            target = Address.parse(values[0])
        except ParseError as e:
            self._agent.respond(transaction, request, 400, "Bad Refer-To: " + e.reason)
            return
        if not isinstance(target.uri, URI) or target.uri.scheme not in ("sip", "sips"):
            self._agent.respond(transaction, request, 416 if not isinstance(target.uri, URI) else 403)
            return
        try:
            call = self._onRefer(session, target, request)
        except Exception:
            _log.failure("handling REFER")
            call = None
        if call is None:
            self._agent.respond(transaction, request, 603)
            return
        self._agent.stats.increment("refer.accepted")
        self._agent.respond(transaction, request, 202, headers=(("Contact", self._agent.contact),))
        _log.info("call {callId} referred to {target}", callId=session.callId, target=str(target.uri))
        self._notify(session, 100)
        call.onProgress = lambda response: self._progress(session, response)
        call.result.addCallbacks(
            lambda _: self._notify(session, 200, final=True),
            lambda failure: self._failed(session, failure),
        )

    def _progress(self, session, response):
        if response.code > 100:
            self._notify(session, response.code, response.reason)

    def _failed(self, session, failure):
        code = getattr(failure.value, "code", 503)
        self._notify(session, code, getattr(failure.value, "reason", None), final=True)

    def _notify(self, session, code, reason=None, final=False):
        if session.state == "ended":
            return
        state = "terminated;reason=noresource" if final else "active;expires=%d" % (SUBSCRIPTION_EXPIRES,)
        notify = session.dialog.createRequest(
            "NOTIFY", body=sipfrag(code, reason), contentType=SIPFRAG,
            headers=(("Event", "refer"), ("Subscription-State", state)),
        )
        self._agent.send(notify, session)

    # Asking ------------------------------------------------------------------------

    def _notifyReceived(self, session, request, transaction):
        event = (request.headers.get("Event") or "").split(";")[0].strip().lower()
        watch = getattr(session, "_referWatch", None)
        if event != "refer" or watch is None:
            self._agent.respond(transaction, request, 481 if event == "refer" else 489)
            return
        state = _subscriptionState(request)
        try:
            code = parseSipfrag(request.body)
        except ParseError as e:
            self._agent.respond(transaction, request, 400, e.reason)
            return
        self._agent.respond(transaction, request, 200)
        watch.progress(code)
        if state == "terminated" or code >= 200:
            session._referWatch = None
            watch.finished(code)


class _ReferWatch:
    """
    What a REFER we sent has led to: the last status line reported, and
    the final one.
    """

    def __init__(self, onProgress):
        self.result = Deferred()
        self.codes = []
        self._onProgress = onProgress
        self._done = False

    def progress(self, code):
        self.codes.append(code)
        if self._onProgress is not None:
            self._onProgress(code)

    def finished(self, code):
        if not self._done:
            self._done = True
            self.result.callback(code)


def refer(session, target, onProgress=None, referredBy=None):
    """
    Ask the other end of C{session} to call C{target} (a SIP URI or
    address text; RFC 3515 section 2.4.1).  The L{Deferred} fires with the
    status code the referred call ended with, as the NOTIFYs report it, or
    with the REFER's own final status when it was refused.
    """
    watch = _ReferWatch(onProgress)
    headers = [("Refer-To", "<%s>" % (target,) if "<" not in str(target) else str(target))]
    if referredBy is not None:
        headers.append(("Referred-By", "<%s>" % (referredBy,)))
    request = session.dialog.createRequest("REFER", headers=headers)
    session._referWatch = watch

    def answered(response):
        if response.code >= 300:
            session._referWatch = None
            watch.finished(response.code)

    session._agent.send(request, session).addCallback(answered)
    return watch.result


__all__ = ["Transfers", "refer", "sipfrag", "parseSipfrag", "SIPFRAG"]

"""
The subscriber side of SIP-specific event notification (RFC 6665 section
4.1): L{subscribe} sends SUBSCRIBE, answers challenges, takes the dialog
from the 2xx or from a NOTIFY that overtakes it, answers every NOTIFY,
refreshes before expiry and unsubscribes.
"""

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from appliance import logs
from appliance.sip.dialog import Dialog
from appliance.sip.events import (
    ACTIVE, NOTIFY_WAIT, PENDING, TERMINATED, Event, SubscriptionState, _deltaSeconds, _eventOf, _Usage,
)
from appliance.sip.message import ParseError
from appliance.sip.uac import newRequest

_log = Logger(observer=logs.observer)

class SubscriptionFailed(Exception):
    """
    No subscription: the C{code} and C{reason} of the final response to the
    SUBSCRIBE (a local 408 or 503 when none came), or C{None} and why it
    ended before any answer.
    """

    def __init__(self, code, reason=""):
        Exception.__init__(self, "%s %s" % (code, reason))
        self.code = code
        self.reason = reason


def subscribe(agent, clock, target, fromURI, event, expires=3600, credentials=None, route=None,
              onNotify=None):
    """
    Subscribe to C{event} (a package name or an L{Event}) of C{target} from
    C{fromURI} (RFC 6665 section 4.1.2.1) and return the L{Subscription}.
    """
    subscription = Subscription(agent, clock, target, fromURI, event, expires, credentials, route,
                                onNotify)
    subscription.start()
    return subscription


class Subscription(_Usage):
    """
    A subscription we hold (RFC 6665 section 4.1).  C{result} fires with it
    at the first 2xx or NOTIFY (which may overtake the 2xx, section
    4.1.2.4), or fails with L{SubscriptionFailed}.  Each NOTIFY is answered
    200 and given to C{onNotify(state, reason, expires, body, contentType)}.
    A refresh goes out 30 s before expiry, or halfway through a shorter one
    (section 4.1.2.2).  A terminated NOTIFY, a 481 to a refresh, or no
    NOTIFY within 64*T1 of a 2xx (Timer N) ends it.

    @ivar state: C{notify_wait}, C{pending}, C{active} or C{terminated}.
    @ivar expires: the duration granted last.
    @ivar reason: the terminated NOTIFY's reason, or C{failed}, C{gone},
        C{no notify}, C{expired}, C{unsubscribed}; C{retryAfter} its retry-after.
    @ivar onEnded: C{onEnded(reason)} once it has ended; subscribing again
        is up to the application (section 4.1.3).
    """

    retryAfter = expires = None

    def __init__(self, agent, clock, target, fromURI, event, expires=3600, credentials=None,
                 route=None, onNotify=None):
        self._agent = agent
        self._clock = clock
        self.event = event if isinstance(event, Event) else Event.parse(event)
        self._asked = expires
        self._credentials = credentials
        self.onNotify = onNotify
        self.state = NOTIFY_WAIT
        self.result = Deferred()
        self._refreshTimer = self._timerN = None
        self._refreshing = self._unsubscribing = False
        self._expiresAt = clock.seconds()
        request = self._request = newRequest(
            "SUBSCRIBE", target, fromURI, target, agent.contact, route,
            headers=(("Event", str(self.event)), ("Expires", str(expires))))
        self.dialog = Dialog(
            request.callId, request.fromAddress().tag, None, "<%s>" % (fromURI,),
            request.headers.get("To"), request.cseq()[0], None, request.uri,
            request.headers.getAll("Route"), agent.contact, isCaller=True)

    def start(self):
        self._agent._calls[self.dialog.id] = self
        self._send(self._request, self._subscribeAnswered)

    def unsubscribe(self):
        """
        Send a SUBSCRIBE with Expires 0 (RFC 6665 section 4.1.2.3); the
        terminated NOTIFY it brings ends the subscription.  Before there is
        a dialog it ends at once: a later NOTIFY gets 481, which ends it at
        the notifier (section 4.2.2).

        @return: a L{Deferred} firing with the final response, or C{None}.
        """
        if self.state == TERMINATED or self._unsubscribing:
            return succeed(None)
        if self.dialog.remoteTag is None:
            self._end("unsubscribed")
            return succeed(None)
        self._unsubscribing = True
        self._cancel("_refreshTimer")

        def answered(response):
            if response.code >= 300:
                self._end("unsubscribed")
            return response

        return self._send(self._inDialogSubscribe(0), answered)

    def _send(self, request, answered):
        self._cancel("_timerN")
        self._timerN = self._clock.callLater(64 * self._agent.timers.T1, self._noNotify)
        d = self._agent.send(request, self, self._credentials)
        return d.addCallback(answered).addErrback(self._logFailure)

    def _inDialogSubscribe(self, expires):
        return self.dialog.createRequest(
            "SUBSCRIBE", headers=(("Event", str(self.event)), ("Expires", str(expires))))

    def _subscribeAnswered(self, response):
        code = response.code
        if self.state == TERMINATED:
            return
        if not 200 <= code < 300:
            self._fail(code, response.reason)
            return
        try:
            if self.dialog.remoteTag is None:
                dialog = Dialog.forClient(self._request, response)
                dialog.localSeq = self.dialog.localSeq  # that of a retry with credentials
                self._establish(dialog)
            elif response.toAddress().tag != self.dialog.remoteTag:
                return  # another fork, whose NOTIFY gets 481 (RFC 6665 section 4.1.4)
            self._setExpiry(self._granted(response))
        except ParseError as e:
            _log.info("unusable 2xx to SUBSCRIBE {callId}: {reason}", callId=self.dialog.callId,
                      reason=e.reason)
            self._fail(code, e.reason)
            return
        self._fire()

    def _granted(self, response):
        value = response.headers.get("Expires")
        return self._asked if value is None else _deltaSeconds(value, "Expires")

    def _establish(self, dialog):
        self._agent._calls.pop(self.dialog.id, None)
        self.dialog = dialog
        self._agent._calls[dialog.id] = self

    def _fire(self):
        if not self.result.called:
            self.result.callback(self)

    def _setExpiry(self, seconds):
        self.expires = seconds
        self._expiresAt = self._clock.seconds() + seconds
        if not (self._refreshing or self._unsubscribing):
            self._cancel("_refreshTimer")
            if seconds > 0:
                delay = max(seconds - 30, seconds / 2)
                self._refreshTimer = self._clock.callLater(delay, self._refresh)

    def _refresh(self):
        # RFC 6665 section 4.1.2.2: the same Event, in the dialog, before it expires.
        self._refreshTimer = None
        self._refreshing = True
        self._send(self._inDialogSubscribe(self._asked), self._refreshAnswered)

    def _refreshAnswered(self, response):
        self._refreshing = False
        code = response.code
        if self.state == TERMINATED or self._unsubscribing:
            return
        if 200 <= code < 300:
            try:
                self.dialog.refreshTarget(response)
                self._setExpiry(self._granted(response))
            except ParseError:
                self._setExpiry(self._asked)
        elif code == 481:
            self._end("gone")
        else:
            # Still in force until it expires (RFC 6665 section 4.1.2.2).
            self._cancel("_timerN")
            self._refreshTimer = self._clock.callLater(
                max(0, self._expiresAt - self._clock.seconds()), self._end, "expired")

    def _noNotify(self):
        self._timerN = None
        if self.result.called:  # else the SUBSCRIBE is unanswered, and times out now too
            self._end("no notify")

    def _requestReceived(self, request, transaction):
        """
        A NOTIFY (RFC 6665 section 4.1.3): 489 unless its Event is ours, 400
        without a valid Subscription-State, else 200; the first one may
        create the dialog (section 4.1.2.4).  Other methods get 405.
        """
        try:
            substate = self._checkNotify(request, transaction)
        except ParseError as e:
            self._agent.respond(transaction, request, e.status, e.reason)
            return
        if substate is None:
            return
        self._agent.respond(transaction, request, 200)
        self._cancel("_timerN")
        if substate.state in (ACTIVE, PENDING) and not self._unsubscribing:
            self.state = substate.state
            if substate.expires is not None:
                self._setExpiry(substate.expires)
        self._fire()
        if self.onNotify is not None:
            try:
                self.onNotify(substate.state, substate.reason, substate.expires, request.body,
                              request.headers.get("Content-Type"))
            except Exception:
                _log.failure("handling a NOTIFY in {callId}", callId=self.dialog.callId)
        if substate.state == TERMINATED:
            self.retryAfter = substate.retryAfter
            self._end(substate.reason or TERMINATED)

    def _checkNotify(self, request, transaction):
        # The SubscriptionState of an acceptable NOTIFY; None once answered otherwise.
        if request.method != "NOTIFY":
            self._agent.respond(transaction, request, 405, headers=(("Allow", "NOTIFY"),))
            return None
        if not _eventOf(request).matches(self.event):
            self._agent.respond(transaction, request, 489)
            return None
        values = request.headers.getAll("Subscription-State")
        if len(values) != 1:
            raise ParseError("exactly one Subscription-State header needed")
        substate = SubscriptionState.parse(values[0])
        if self.dialog.remoteTag is None:
            if request.fromAddress().tag is None:
                raise ParseError("NOTIFY without a From tag")
            dialog = Dialog.forServer(request, self.dialog.localTag, self._agent.contact)
            dialog.localURI, dialog.remoteURI = self.dialog.localURI, self.dialog.remoteURI
            dialog.localSeq, dialog.isCaller = self.dialog.localSeq, True
            dialog.confirm()
            self._establish(dialog)
        self.dialog.receiveRequest(request)
        return substate

    def _fail(self, code, reason):
        if not self.result.called:
            self.result.errback(SubscriptionFailed(code, reason))
        self._end("failed")

    def _end(self, reason):
        if self.state == TERMINATED:
            return
        self.state = TERMINATED
        self.reason = reason
        self._cancel("_refreshTimer")
        self._cancel("_timerN")
        self._agent._forget(self)
        _log.info("subscription {callId} to {event} ended: {reason}", callId=self.dialog.callId,
                  event=self.event.package, reason=reason)
        if not self.result.called:
            self.result.errback(SubscriptionFailed(None, reason))
        if self.onEnded is not None:
            self.onEnded(reason)


__all__ = ["Subscription", "SubscriptionFailed", "subscribe"]

"""
SIP-specific event notification (RFC 6665) for the appliance's own user
agents, ready for message-waiting indication (RFC 3842) and dialog events
(RFC 4235): the header grammar (L{Event}, L{SubscriptionState}) and the
notifier (L{EventServer}); the subscriber is L{appliance.sip.subscriber}.  Subscriptions
live in the user agent's C{_calls} under their dialog ID; a SUBSCRIBE not
yet answered under C{(Call-ID, local tag, None)}, where a NOTIFY that
overtakes its 2xx finds it (RFC 6665 section 4.1.2.4).
"""

import re

import attrs
from twisted.logger import Logger
from zope.interface import Attribute, Interface

from appliance import logs
from appliance.sip.dialog import Dialog
from appliance.sip.dispatcher import newTag, unsupportedExtensions
from appliance.sip.message import ParseError, makeResponse
from appliance.sip.uri import formatParams, parseParams

_log = Logger(observer=logs.observer)

# The subscriber's states (RFC 6665 section 4.1.2); the last three are
# also the Subscription-State values (section 8.4).
NOTIFY_WAIT, PENDING, ACTIVE, TERMINATED = "notify_wait", "pending", "active", "terminated"

# Why a subscription was terminated (RFC 6665 section 4.2.2).
DEACTIVATED, PROBATION, REJECTED, TIMEOUT, GIVEUP, NORESOURCE, INVARIANT = (
    "deactivated", "probation", "rejected", "timeout", "giveup", "noresource", "invariant")

_MAX_DELTA = 2 ** 32 - 1
_NODOT = r"[A-Za-z0-9\-!%*_+`'~]+"
_EVENT_TYPE = re.compile(r"%s(?:\.%s)*" % (_NODOT, _NODOT))
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")


def _deltaSeconds(text, what):
    """
    A delta-seconds value (RFC 3261 section 25.1), at most 2**32-1.
    """
    text = (text or "").strip(" \t")
    if not (text.isascii() and text.isdigit()):
        raise ParseError("bad %s value" % (what,))
    significant = text.lstrip("0")
    return _MAX_DELTA if len(significant) > 10 else min(int(significant or "0"), _MAX_DELTA)


def _split(text, what):
    head, semicolon, rest = text.strip(" \t").partition(";")
    return head.strip(" \t"), parseParams(semicolon + rest, what)


@attrs.frozen
class Event:
    """
    An Event header value (RFC 6665 section 8.4): the event type (a package,
    maybe with templates: C{presence.winfo}), its C{id}, and the other
    C{params} as C{(name, value or None)}.  L{parse} raises L{ParseError}.
    """

    package: str
    id: str | None = None
    params: tuple = ()

    @classmethod
    def parse(cls, text):
        package, params = _split(text, "Event")
        if not _EVENT_TYPE.fullmatch(package):
            raise ParseError("bad Event header")
        ids = [value for name, value in params if name == "id"]
        if len(ids) > 1 or (ids and (ids[0] is None or not _TOKEN.fullmatch(ids[0]))):
            raise ParseError("bad id in Event header")
        return cls(package, ids[0] if ids else None, tuple(p for p in params if p[0] != "id"))

    def __str__(self):
        params = self.params if self.id is None else (("id", self.id),) + self.params
        return self.package + formatParams(params)

    def matches(self, other):
        """
        Whether C{other} names the same subscription: event type and C{id}
        equal byte by byte (RFC 6665 section 8.2.1).
        """
        return self.package == other.package and self.id == other.id


@attrs.frozen
class SubscriptionState:
    """
    A Subscription-State header value (RFC 6665 section 8.4): C{active},
    C{pending}, C{terminated} or an extension, its C{expires}, C{reason}
    and C{retry-after}, and the other C{params}.  L{parse} raises
    L{ParseError}.
    """

    state: str
    expires: int | None = None
    reason: str | None = None
    retryAfter: int | None = None
    params: tuple = ()

    @classmethod
    def parse(cls, text):
        state, params = _split(text, "Subscription-State")
        if not _TOKEN.fullmatch(state):
            raise ParseError("bad Subscription-State header")
        known, others = {}, []
        for name, value in params:
            if name not in ("expires", "reason", "retry-after"):
                others.append((name, value))
            elif value is None or name in known:
                raise ParseError("bad %s in Subscription-State header" % (name,))
            known[name] = value
        reason = known.get("reason")
        if reason is not None and not _TOKEN.fullmatch(reason):
            raise ParseError("bad reason in Subscription-State header")
        seconds = {name: _deltaSeconds(known[name], name)
                   for name in ("expires", "retry-after") if name in known}
        return cls(state.lower(), seconds.get("expires"), reason and reason.lower(),
                   seconds.get("retry-after"), tuple(others))

    def __str__(self):
        params = [(name, str(value)) for name, value in (
            ("reason", self.reason), ("expires", self.expires), ("retry-after", self.retryAfter))
            if value is not None]
        return self.state + formatParams(params + list(self.params))


def _eventOf(message):
    """
    The one Event header of a SUBSCRIBE or NOTIFY (RFC 6665 section 8.2.1).
    """
    values = message.headers.getAll("Event")
    if len(values) != 1:
        raise ParseError("exactly one Event header needed")
    return Event.parse(values[0])


class IEventPackage(Interface):
    """
    An event package (RFC 6665 section 5) served by an L{EventServer}.  It
    may have C{defaultExpires}, the duration when a SUBSCRIBE has no
    Expires (section 4.2.1.1); an hour otherwise.
    """

    contentType = Attribute("The Content-Type of the NOTIFY bodies.")

    def accepts(request):
        """
        C{None} to accept a new SUBSCRIBE, or the status refusing it (404:
        no such resource, 403: not allowed; RFC 6665 section 4.2.1.3).
        """

    def state(subscription):
        """
        The current state of C{subscription.uri}, the NOTIFY body (bytes).
        """


class _Usage:
    """
    A subscription: a usage of a dialog filed in the user agent's C{_calls}.
    """

    reason = onEnded = None

    def _cancel(self, name):
        call = getattr(self, name)
        if call is not None and call.active():
            call.cancel()
        setattr(self, name, None)

    def _ackReceived(self, ack=None):
        pass  # an ACK strayed into the dialog

    _reinviteAcked = _ackReceived

    def _logFailure(self, failure):
        _log.failure("in {event} subscription {callId}", failure, event=self.event.package,
                     callId=self.dialog.callId)


class EventServer:
    """
    The notifier of one user agent (RFC 6665 section 4.2).

    @param agent: the L{appliance.sip.useragent.UserAgent}, which hands
        each out-of-dialog SUBSCRIBE to L{subscribeReceived}.
    @param packages: C{{event package name: IEventPackage}}.
    @param minExpires: shorter subscriptions are refused with 423.
    @param maxExpires: longer ones are granted this long.
    """

    def __init__(self, agent, clock, packages, minExpires=60, maxExpires=3600):
        self._agent = agent
        self._clock = clock
        self._packages = dict(packages)
        self.minExpires = minExpires
        self.maxExpires = maxExpires
        self._subscriptions = []

    @property
    def subscriptions(self):
        """
        The L{ServerSubscription}s in force.
        """
        return list(self._subscriptions)

    def subscribeReceived(self, request, transaction):
        """
        A SUBSCRIBE outside any dialog (RFC 6665 section 4.2.1.1): 489 with
        Allow-Events for a package we do not serve, 423 with Min-Expires for
        too short a duration, the package's refusal, or 200 with the Expires
        granted, a To tag and our Contact, followed at once by a NOTIFY of
        the state (section 4.2.1.2).  Expires 0 fetches the state: one
        terminated NOTIFY (section 4.4.3).
        """
        respond = self._agent.respond
        try:
            event = _eventOf(request)
            package = self._packages.get(event.package)
            if package is None:
                allowEvents = ", ".join(sorted(self._packages))
                respond(transaction, request, 489, headers=(("Allow-Events", allowEvents),))
                return
            expires = self._grant(request, package, transaction)
            if expires is None:
                return
            unsupported = unsupportedExtensions(request)
            if unsupported:
                respond(transaction, request, 420, headers=(("Unsupported", ", ".join(unsupported)),))
                return
            dialog = Dialog.forServer(request, newTag(), self._agent.contact)
        except ParseError as e:
            respond(transaction, request, e.status, e.reason)
            return
        try:
            status = package.accepts(request)
        except Exception:
            _log.failure("accepting a {event} subscription", event=event.package)
            status = 500
        if status is not None:
            respond(transaction, request, status)
            return
        dialog.confirm()
        subscription = ServerSubscription(self, request, event, package, dialog)
        self._accept(transaction, request, dialog, expires)
        if expires == 0:
            subscription.terminate(TIMEOUT)
            return
        self._agent._calls[dialog.id] = subscription
        self._subscriptions.append(subscription)
        subscription._extend(expires)
        subscription._queueNotify()
        _log.info("{event} subscription {callId} to {uri} for {expires} s", event=event.package,
                  callId=dialog.callId, uri=request.uri, expires=expires)

    def _grant(self, request, package, transaction):
        """
        The duration to grant (RFC 6665 section 4.2.1.1): the one asked, or
        the package's default, at most L{maxExpires}; C{None} after
        refusing one below L{minExpires} (but not 0) with 423.
        """
        values = request.headers.getAll("Expires")
        if values:
            asked = _deltaSeconds(values[0], "Expires")
        else:
            asked = getattr(package, "defaultExpires", 3600)
        if 0 < asked < self.minExpires:
            headers = (("Min-Expires", str(self.minExpires)),)
            self._agent.respond(transaction, request, 423, headers=headers)
            return None
        return min(asked, self.maxExpires)

    def _accept(self, transaction, request, dialog, expires):
        response = makeResponse(request, 200, toTag=dialog.localTag)
        for value in request.headers.getAll("Record-Route"):
            response.headers.add("Record-Route", value)
        response.headers.add("Contact", self._agent.contact)
        response.headers.add("Expires", str(expires))
        self._agent.stats.increment("responses.out.2xx")
        transaction.respond(response)

    def notifyAll(self, package, match=None):
        """
        Send the state to each subscription to C{package} that
        C{match(subscription)} selects (all without C{match}), as when a
        voicemail message arrives; return how many.
        """
        chosen = [s for s in self._subscriptions
                  if s.package == package and (match is None or match(s))]
        for subscription in chosen:
            subscription.notify()
        return len(chosen)

    def stop(self):
        """
        Terminate every subscription with C{reason=deactivated}, which asks
        the subscribers to subscribe again (RFC 6665 section 4.2.2).
        """
        for subscription in self.subscriptions:
            subscription.terminate(DEACTIVATED)


class ServerSubscription(_Usage):
    """
    A subscription we accepted (RFC 6665 section 4.2).

    @ivar request: the SUBSCRIBE that created it; C{uri}, its Request-URI,
        names the resource.
    @ivar event: its L{Event}; C{package}, the event package name.
    @ivar state: C{active} or C{terminated}, with the C{reason}.
    @ivar onEnded: C{onEnded(reason)} once it has ended.
    """

    def __init__(self, server, request, event, package, dialog):
        self._server = server
        self._agent = server._agent
        self._clock = server._clock
        self._package = package
        self.request = request
        self.uri = request.uri
        self.event = event
        self.package = event.package
        self.dialog = dialog
        self.state = ACTIVE
        self._expiresAt = self._clock.seconds()
        self._expiry = self._retryAfter = None
        self._inFlight = self._again = False

    @property
    def expires(self):
        """
        The seconds left before it expires.
        """
        return max(0, int(self._expiresAt - self._clock.seconds()))

    def notify(self):
        """
        Send the current state (RFC 6665 section 4.2.2).  One NOTIFY at a
        time is outstanding, so they arrive in order; changes meanwhile go
        out together once it is answered.
        """
        if self.state != TERMINATED:
            self._queueNotify()

    def terminate(self, reason=NORESOURCE, retryAfter=None):
        """
        End the subscription with a NOTIFY C{terminated;reason=...} (RFC
        6665 section 4.2.2).
        """
        if self.state != TERMINATED:
            self._retryAfter = retryAfter
            self._end(reason)
            self._queueNotify()

    def _extend(self, seconds):
        self._cancel("_expiry")
        self._expiresAt = self._clock.seconds() + seconds
        self._expiry = self._clock.callLater(seconds, self.terminate, TIMEOUT)

    def _requestReceived(self, request, transaction):
        """
        A request in the dialog: a SUBSCRIBE for our event refreshes the
        subscription, or with Expires 0 ends it (RFC 6665 section 4.2.1.4),
        answered 200 and followed by a NOTIFY; another one gets 481, other
        methods 405.
        """
        respond = self._agent.respond
        try:
            self.dialog.receiveRequest(request)
            if request.method != "SUBSCRIBE":
                respond(transaction, request, 405, headers=(("Allow", "SUBSCRIBE"),))
                return
            if self.state == TERMINATED or not _eventOf(request).matches(self.event):
                respond(transaction, request, 481)
                return
            expires = self._server._grant(request, self._package, transaction)
        except ParseError as e:
            respond(transaction, request, e.status, e.reason)
            return
        if expires is None:
            return
        self._server._accept(transaction, request, self.dialog, expires)
        if expires == 0:
            self.terminate(TIMEOUT)
        else:
            self._extend(expires)
            self._queueNotify()

    def _queueNotify(self):
        if self._inFlight:
            self._again = True
        else:
            self._sendNotify()

    def _sendNotify(self):
        self._again = False
        if self.state == TERMINATED:
            substate = SubscriptionState(TERMINATED, reason=self.reason, retryAfter=self._retryAfter)
        else:
            substate = SubscriptionState(ACTIVE, expires=self.expires)
        try:
            body = self._package.state(self) or b""
        except Exception:
            _log.failure("state of {event} subscription {callId}", event=self.package,
                         callId=self.dialog.callId)
            body = b""
        notify = self.dialog.createRequest(
            "NOTIFY", body=body, contentType=self._package.contentType,
            headers=(("Event", str(self.event)), ("Subscription-State", str(substate))))
        self._inFlight = True
        self._agent.send(notify, self).addCallback(self._notifyAnswered).addErrback(self._logFailure)

    def _notifyAnswered(self, response):
        self._inFlight = False
        code = response.code
        # RFC 6665 section 4.2.2: a timeout, 481 or error without Retry-After ends it.
        if code >= 300 and (code in (408, 481) or response.headers.get("Retry-After") is None):
            _log.info("NOTIFY in {callId} failed: {code}", callId=self.dialog.callId, code=code)
            self._again = False
            self._end("failed")
            return
        if code < 300:
            try:
                self.dialog.refreshTarget(response)
            except ParseError:
                pass
        if self._again:
            self._sendNotify()

    def _end(self, reason):
        if self.state == TERMINATED:
            return
        self.state = TERMINATED
        self.reason = reason
        self._cancel("_expiry")
        self._agent._forget(self)
        if self in self._server._subscriptions:
            self._server._subscriptions.remove(self)
        _log.info("{event} subscription {callId} ended: {reason}", event=self.package,
                  callId=self.dialog.callId, reason=reason)
        if self.onEnded is not None:
            self.onEnded(reason)


__all__ = [
    "ACTIVE", "DEACTIVATED", "GIVEUP", "INVARIANT", "NORESOURCE", "NOTIFY_WAIT", "PENDING",
    "PROBATION", "REJECTED", "TERMINATED", "TIMEOUT", "Event", "EventServer", "IEventPackage",
    "ServerSubscription", "SubscriptionState",
]

"""
The location service (RFC 3261 section 10): bindings from an address of
record to the contact addresses registered for it.

Lookups are pure memory: every binding lives in an index (address of record
-> bindings) that L{LocationService.load} fills from the database at start,
so the proxy's L{LocationService.lookup} never waits on the disk. Writes go
to the database first, one small transaction per REGISTER, and reach the
index only once that transaction has committed: a failed write never leaves
memory ahead of disk, and a restart finds every binding that was answered
with a 200.

Changes to one address of record are applied one after the other, in the
order they were asked for (RFC 3261 section 10.3: "REGISTER requests MUST be
processed by a registrar in the order that they are received"), and each is
checked against the state its predecessor left, so two REGISTERs racing
through the database thread cannot both pass the Call-ID / CSeq check.

A binding is identified within its address of record by its contact URI
(compared as RFC 3261 section 19.1.4 says), or, when the contact carries a
C{+sip.instance} (RFC 5626 section 6, RFC 5627), by the instance and its
C{reg-id}: a UA that registers again over a new flow, or from a new
address, replaces its old binding instead of adding a stale one.
"""

import json
import math
from collections import deque

import attrs
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from appliance import logs
from appliance.interfaces import ILocationService
from appliance.sip.message import URI, ParseError

_log = Logger(observer=logs.observer)

#: Seconds between two purges of expired bindings.
PURGE_INTERVAL = 60.0


class OutOfOrder(Exception):
    """
    A REGISTER carried the Call-ID of an existing binding with a CSeq not
    higher than the one stored: RFC 3261 section 10.3 step 6 says the update
    "MUST be aborted and the request fails".

    @ivar binding: the L{Binding} whose CSeq the request did not exceed.
    """

    def __init__(self, binding):
        Exception.__init__(
            self,
            "CSeq %d of Call-ID %s already seen for %s"
            % (binding.cseq, binding.callId, binding.contact),
        )
        self.binding = binding


class StorageError(Exception):
    """
    The database could not store a change: nothing changed, in memory or
    on disk. The message is the database's error.
    """


def _storageError(failure):
    raise StorageError(failure.getErrorMessage())


def bindingKey(contact, instance=None, regId=None):
    """
    The key identifying a binding within its address of record: the
    instance and reg-id when there is an instance (RFC 5626 section 6),
    otherwise the contact URI as registered.
    """
    if instance is not None:
        return "instance:%s;reg-id=%s" % (instance, "" if regId is None else regId)
    return "contact:" + contact


@attrs.frozen
class Binding:
    """
    One binding of an address of record to a contact (RFC 3261 section 10).

    @ivar aor: the address of record, C{user@domain}.
    @ivar contact: the Contact URI as registered.
    @ivar q: the preference, 0 to 1 (RFC 3261 section 20.10).
    @ivar expires: when the binding lapses, in seconds since the epoch of
        the location service's clock.
    @ivar callId: the Call-ID of the REGISTER that last wrote it.
    @ivar cseq: the CSeq number of that REGISTER.
    @ivar path: the Path header values of that REGISTER, in order
        (RFC 3327 section 5.3): the route to preload towards the contact.
    @ivar instance: the C{+sip.instance} URN without quotes and brackets
        (RFC 5626 section 4.1), or C{None}.
    @ivar regId: the C{reg-id} (RFC 5626 section 6), or C{None}.
    @ivar source: C{(transport, host, port)} the REGISTER came from, the
        transport being C{'udp'}, C{'tcp'} or C{'tls'}: the flow to reuse
        towards a UA behind a NAT (RFC 5626 section 7).
    @ivar userAgent: the User-Agent header of that REGISTER, or C{None}.
    @ivar updated: when the binding was last written.
    @ivar params: the other Contact header parameters (feature tags such
        as C{+sip.instance}, C{reg-id}, C{methods}), C{(name, value)} pairs
        as received, without C{expires} and C{q}.
    """

    aor: str
    contact: str
    q: float = 1.0
    expires: float = 0.0
    callId: str = ""
    cseq: int = 0
    path: tuple = attrs.field(default=(), converter=tuple)
    instance: str | None = None
    regId: int | None = None
    source: tuple | None = None
    userAgent: str | None = None
    updated: float = 0.0
    params: tuple = attrs.field(default=(), converter=tuple)

    @property
    def key(self):
        """
        See L{bindingKey}.
        """
        return bindingKey(self.contact, self.instance, self.regId)

    def remaining(self, now):
        """
        Whole seconds left at C{now}, rounded up so that a live binding
        never shows 0 (which would read as a removal).
        """
        return max(0, math.ceil(self.expires - now))


@attrs.frozen
class ContactChange:
    """
    What one Contact of a REGISTER asks for (RFC 3261 section 10.3 step 7):
    add or refresh a binding for C{expires} seconds, or remove it when
    C{expires} is 0. The registrar has already applied its expiry policy;
    the other fields are as in L{Binding}.
    """

    contact: str
    expires: int
    q: float = 1.0
    path: tuple = attrs.field(default=(), converter=tuple)
    instance: str | None = None
    regId: int | None = None
    source: tuple | None = None
    userAgent: str | None = None
    params: tuple = attrs.field(default=(), converter=tuple)


def _sameContact(left, right):
    """
    RFC 3261 section 10.3 step 7: contact URIs are compared with the rules
    of section 19.1.4.
    """
    if left == right:
        return True
    try:
        return URI.parse(left).equivalent(URI.parse(right))
    except ParseError:
        return False


def _match(bindings, change):
    """
    The binding of C{bindings} (a C{dict} key -> L{Binding}) that C{change}
    refers to, or C{None}: by instance and reg-id when the change has an
    instance, falling back to (and otherwise always) an equivalent contact
    URI of a binding without one.
    """
    if change.instance is not None:
        binding = bindings.get(bindingKey(change.contact, change.instance, change.regId))
        if binding is not None:
            return binding
    for binding in bindings.values():
        if (change.instance is None or binding.instance is None) and _sameContact(
            binding.contact, change.contact
        ):
            return binding
    return None


def _ordered(bindings):
    """
    Bindings by q, highest first, then most recently updated first
    (RFC 3261 section 16.6: targets in q order).
    """
    return tuple(sorted(bindings, key=lambda b: (-b.q, -b.updated, b.contact)))


_COLUMNS = (
    "aor", "binding_key", "contact", "params", "q", "expires", "call_id",
    "cseq", "path", "instance", "reg_id", "source_transport", "source_host",
    "source_port", "user_agent", "updated",
)
_INSERT = "INSERT OR REPLACE INTO bindings (%s) VALUES (%s)" % (
    ", ".join(_COLUMNS), ", ".join("?" * len(_COLUMNS)),
)
_SELECT = "SELECT %s FROM bindings" % (", ".join(_COLUMNS),)


def _toRow(binding):
    source = binding.source or (None, None, None)
    return (
        binding.aor, binding.key, binding.contact,
        json.dumps([list(param) for param in binding.params]), binding.q,
        binding.expires, binding.callId, binding.cseq,
        json.dumps(list(binding.path)), binding.instance, binding.regId,
        source[0], source[1], source[2], binding.userAgent, binding.updated,
    )


def _fromRow(row):
    (aor, key, contact, params, q, expires, callId, cseq, path, instance,
     regId, transport, host, port, userAgent, updated) = row
    return Binding(
        aor=aor, contact=contact, q=q, expires=expires, callId=callId,
        cseq=cseq, path=json.loads(path), instance=instance, regId=regId,
        source=None if transport is None else (transport, host, port),
        userAgent=userAgent, updated=updated,
        params=[tuple(param) for param in json.loads(params)],
    )


def _load(cursor, now):
    cursor.execute("DELETE FROM bindings WHERE expires <= ?", (now,))
    cursor.execute(_SELECT)
    return cursor.fetchall()


def _write(cursor, aor, removed, rows):
    if removed:
        cursor.executemany(
            "DELETE FROM bindings WHERE aor = ? AND binding_key = ?",
            [(aor, key) for key in removed],
        )
    if rows:
        cursor.executemany(_INSERT, rows)


def _purge(cursor, now):
    cursor.execute("DELETE FROM bindings WHERE expires <= ?", (now,))
    return cursor.rowcount


@implementer(ILocationService)
class LocationService:
    """
    Bindings in memory, written through to the C{bindings} table.

    @param database: a L{appliance.storage.database.Database} (or
        C{SynchronousDatabase}): C{runInteraction(function, *args)}.
    @param clock: an L{IReactorTime} for expiry and the periodic purge.
    @param purgeInterval: seconds between purges once L{start}ed.
    """

    def __init__(self, database, clock, purgeInterval=PURGE_INTERVAL):
        self._database = database
        self._clock = clock
        self._purgeInterval = purgeInterval
        self._bindings = {}
        self._ordered = {}
        self._count = 0
        self._queues = {}
        self._loop = None
        self._observers = []

    def addObserver(self, observer):
        """
        Call C{observer(aor)} after every change to the bindings of an
        address of record has reached memory (a REGISTER, a removal, a
        purge of expired bindings).
        """
        self._observers.append(observer)

    def removeObserver(self, observer):
        """
        Stop calling an observer given to L{addObserver}.
        """
        self._observers.remove(observer)

    def load(self):
        rows = self._database.runInteraction(_load, self._clock.seconds())
        return rows.addCallback(self._loaded)

    def _loaded(self, rows):
        byAOR = {}
        for row in rows:
            binding = _fromRow(row)
            byAOR.setdefault(binding.aor, {})[binding.key] = binding
        self._bindings = byAOR
        self._ordered = {aor: _ordered(b.values()) for aor, b in byAOR.items()}
        self._count = len(rows)
        _log.info(
            "location service loaded {count} bindings for {aors} addresses of record",
            count=self._count, aors=len(byAOR),
        )
        return self._count

    def start(self):
        if self._loop is None:
            self._loop = LoopingCall(self._periodicPurge)
            self._loop.clock = self._clock
            self._loop.start(self._purgeInterval, now=False)

    def stop(self):
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()

    def _periodicPurge(self):
        def failed(failure):
            _log.error(
                "could not purge expired bindings: {error}",
                error=failure.getErrorMessage(),
            )

        return self.purgeExpired().addErrback(failed)

    def lookup(self, aor):
        ordered = self._ordered.get(aor)
        if not ordered:
            return []
        now = self._clock.seconds()
        return [binding for binding in ordered if binding.expires > now]

    def bindingsFor(self, aor):
        now = self._clock.seconds()
        return [(binding, binding.remaining(now)) for binding in self.lookup(aor)]

    def count(self):
        return self._count

    def aors(self):
        now = self._clock.seconds()
        return sorted(
            aor for aor, ordered in self._ordered.items()
            if any(binding.expires > now for binding in ordered)
        )

    def update(self, aor, callId, cseq, changes):
        changes = tuple(changes)
        return self._serialize(aor, self._update, aor, callId, cseq, changes)

    def removeAll(self, aor, callId, cseq):
        return self._serialize(aor, self._removeAll, aor, callId, cseq)

    def _serialize(self, aor, function, *args):
        """
        Run C{function(*args)} (which returns a L{Deferred}) once every
        change queued earlier for C{aor} has finished.
        """
        queue = self._queues.get(aor)
        if queue is not None:
            waiting = Deferred()
            queue.append((waiting, function, args))
            return waiting
        self._queues[aor] = deque()
        result = maybeDeferred(function, *args)
        result.addBoth(self._next, aor)
        return result

    def _next(self, outcome, aor):
        queue = self._queues[aor]
        if queue:
            waiting, function, args = queue.popleft()
            d = maybeDeferred(function, *args)
            d.addBoth(self._next, aor)
            d.chainDeferred(waiting)
        else:
            del self._queues[aor]
        return outcome

    def _update(self, aor, callId, cseq, changes):
        """
        RFC 3261 section 10.3 steps 6 and 7, all or nothing: every change is
        checked against the live bindings, then all are written in one
        transaction.
        """
        now = self._clock.seconds()
        stored = self._bindings.get(aor, {})
        live = {key: b for key, b in stored.items() if b.expires > now}
        working = dict(live)
        for change in changes:
            existing = _match(live, change)
            if existing is not None and existing.callId == callId and cseq <= existing.cseq:
                return fail(OutOfOrder(existing))
            previous = _match(working, change)
            if previous is not None:
                del working[previous.key]
            if change.expires > 0:
                binding = Binding(
                    aor=aor, contact=change.contact, q=change.q,
                    expires=now + change.expires, callId=callId, cseq=cseq,
                    path=change.path, instance=change.instance,
                    regId=change.regId, source=change.source,
                    userAgent=change.userAgent, updated=now,
                    params=change.params,
                )
                working[binding.key] = binding
        return self._commit(aor, stored, working).addCallback(
            lambda ignored: self.lookup(aor)
        )

    def _removeAll(self, aor, callId, cseq):
        """
        RFC 3261 section 10.3 step 6, C{Contact: *}: every binding goes,
        unless one of them was written by the same Call-ID with a CSeq not
        lower than this one.
        """
        now = self._clock.seconds()
        stored = self._bindings.get(aor, {})
        live = [b for b in stored.values() if b.expires > now]
        for binding in live:
            if binding.callId == callId and cseq <= binding.cseq:
                return fail(OutOfOrder(binding))
        return self._commit(aor, stored, {}).addCallback(
            lambda ignored: _ordered(live)
        )

    def _commit(self, aor, stored, working):
        """
        Write the difference between C{stored} and C{working} in one
        transaction, then make C{working} the bindings of C{aor}.
        """
        removed = [key for key in stored if key not in working]
        rows = [_toRow(b) for key, b in working.items() if stored.get(key) is not b]
        if not removed and not rows:
            return succeed(None)
        d = self._database.runInteraction(_write, aor, removed, rows)
        return d.addCallbacks(lambda ignored: self._apply(aor, working), _storageError)

    def _apply(self, aor, bindings):
        self._count += len(bindings) - len(self._bindings.get(aor, ()))
        if bindings:
            self._bindings[aor] = bindings
            self._ordered[aor] = _ordered(bindings.values())
        else:
            self._bindings.pop(aor, None)
            self._ordered.pop(aor, None)
        for observer in list(self._observers):
            try:
                observer(aor)
            except Exception:
                _log.failure("binding observer {observer} failed", observer=observer)

    def purgeExpired(self):
        now = self._clock.seconds()
        d = self._database.runInteraction(_purge, now)
        return d.addCallbacks(self._purged, _storageError, callbackArgs=(now,))

    def _purged(self, deleted, now):
        purged = 0
        for aor, bindings in list(self._bindings.items()):
            if any(b.expires <= now for b in bindings.values()):
                kept = {key: b for key, b in bindings.items() if b.expires > now}
                purged += len(bindings) - len(kept)
                self._apply(aor, kept)
        if purged:
            _log.debug("purged {count} expired bindings", count=purged)
        return purged

"""
Tests for L{appliance.sip.location}: bindings in memory, written through to
a real SQLite file.
"""

import sqlite3

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from appliance.interfaces import ILocationService
from appliance.sip.location import (
    Binding,
    ContactChange,
    LocationService,
    OutOfOrder,
    StorageError,
    bindingKey,
)
from appliance.storage.database import SynchronousDatabase

AOR = "alice@example.test"
START = 1700000000.0


class SwitchableDatabase:
    """
    A L{SynchronousDatabase} whose interactions can be made to fail, or be
    held until a test releases them (as the database thread would).
    """

    def __init__(self, database):
        self._database = database
        self.failing = False
        self.holding = False
        self.held = []

    def runInteraction(self, function, *args):
        if self.failing:
            return fail(sqlite3.OperationalError("disk I/O error"))
        if self.holding:
            d = Deferred()
            self.held.append((d, function, args))
            return d
        return self._database.runInteraction(function, *args)

    def release(self):
        """
        Run the oldest held interaction and fire its L{Deferred}.
        """
        d, function, args = self.held.pop(0)
        self._database.runInteraction(function, *args).chainDeferred(d)


def change(contact="sip:alice@192.0.2.1", expires=3600, **kwargs):
    return ContactChange(contact=contact, expires=expires, **kwargs)


class LocationTestsMixin:
    """
    A location service on a fresh database file and a clock at L{START}.
    """

    def setUp(self):
        self.path = self.mktemp()
        self.clock = Clock()
        self.clock.advance(START)
        self.database = self.openDatabase()
        self.switch = SwitchableDatabase(self.database)
        self.location = LocationService(self.switch, self.clock, purgeInterval=30)
        self.successResultOf(self.location.load())
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))

    def openDatabase(self):
        database = SynchronousDatabase(self.path)
        database.open()
        self.addCleanup(database.close)
        return database

    def restart(self):
        """
        A new location service on the same file, as after a restart.
        """
        location = LocationService(self.openDatabase(), self.clock)
        self.successResultOf(location.load())
        return location

    def update(self, changes, callId="call-1", cseq=1, aor=AOR):
        return self.successResultOf(self.location.update(aor, callId, cseq, changes))

    def storedRows(self):
        return self.database._connection.execute(
            "SELECT aor, contact, expires FROM bindings ORDER BY contact"
        ).fetchall()


class LocationServiceTests(LocationTestsMixin, SynchronousTestCase):
    """
    Adding, refreshing, removing and looking up bindings.
    """

    def test_interface(self):
        """
        L{LocationService} provides L{ILocationService}.
        """
        self.assertTrue(verifyObject(ILocationService, self.location))

    def test_add(self):
        """
        A new contact becomes a binding with an absolute expiry, visible to
        L{LocationService.lookup} at once and stored in the database.
        """
        bindings = self.update([change(q=0.5, userAgent="Phone/1", source=("udp", "192.0.2.1", 5060))])
        expected = Binding(
            aor=AOR, contact="sip:alice@192.0.2.1", q=0.5, expires=START + 3600,
            callId="call-1", cseq=1, source=("udp", "192.0.2.1", 5060),
            userAgent="Phone/1", updated=START,
        )
        self.assertEqual(bindings, [expected])
        self.assertEqual(self.location.lookup(AOR), [expected])
        self.assertEqual(self.storedRows(), [(AOR, "sip:alice@192.0.2.1", START + 3600)])
        self.assertEqual(self.location.count(), 1)
        self.assertEqual(self.location.aors(), [AOR])

    def test_lookupUnknown(self):
        """
        An address of record without bindings has none.
        """
        self.assertEqual(self.location.lookup("nobody@example.test"), [])
        self.assertEqual(self.location.bindingsFor("nobody@example.test"), [])

    def test_refresh(self):
        """
        A contact registered again, written differently but equivalent
        (RFC 3261 section 19.1.4), refreshes its binding rather than adding
        one.
        """
        self.update([change("sip:alice@Host.example;transport=TCP")])
        self.clock.advance(100)
        bindings = self.update(
            [change("sip:alice@host.example;transport=tcp", expires=600)], cseq=2
        )
        self.assertEqual(len(bindings), 1)
        self.assertEqual(bindings[0].contact, "sip:alice@host.example;transport=tcp")
        self.assertEqual(bindings[0].expires, START + 700)
        self.assertEqual(bindings[0].cseq, 2)
        self.assertEqual(len(self.storedRows()), 1)
        self.assertEqual(self.location.count(), 1)

    def test_removeOneOfSeveral(self):
        """
        A contact with expiry 0 removes its binding and leaves the others.
        """
        self.update([change("sip:a@192.0.2.1"), change("sip:b@192.0.2.2")])
        bindings = self.update([change("sip:a@192.0.2.1", expires=0)], cseq=2)
        self.assertEqual([b.contact for b in bindings], ["sip:b@192.0.2.2"])
        self.assertEqual([row[1] for row in self.storedRows()], ["sip:b@192.0.2.2"])
        self.assertEqual(self.location.count(), 1)

    def test_removeUnknown(self):
        """
        Removing a contact that is not bound changes nothing and writes
        nothing.
        """
        self.switch.failing = True
        self.assertEqual(self.update([change(expires=0)]), [])

    def test_removeAll(self):
        """
        L{LocationService.removeAll} removes every binding and returns them.
        """
        self.update([change("sip:a@192.0.2.1"), change("sip:b@192.0.2.2")])
        removed = self.successResultOf(self.location.removeAll(AOR, "call-2", 1))
        self.assertEqual(len(removed), 2)
        self.assertEqual(self.location.lookup(AOR), [])
        self.assertEqual(self.storedRows(), [])
        self.assertEqual(self.location.count(), 0)
        self.assertEqual(self.location.aors(), [])

    def test_removeAllOutOfOrder(self):
        """
        C{Contact: *} with the Call-ID of a binding and a CSeq not above
        its own fails and removes nothing (RFC 3261 section 10.3 step 6).
        """
        self.update([change()], cseq=5)
        self.failureResultOf(self.location.removeAll(AOR, "call-1", 5), OutOfOrder)
        self.assertEqual(len(self.location.lookup(AOR)), 1)
        self.successResultOf(self.location.removeAll(AOR, "call-1", 6))
        self.assertEqual(self.location.lookup(AOR), [])

    def test_outOfOrder(self):
        """
        A change with the Call-ID of the binding and a CSeq not higher fails
        with L{OutOfOrder} and changes nothing, even for the other contacts
        of the same request.
        """
        self.update([change("sip:a@192.0.2.1")], cseq=5)
        before = self.location.lookup(AOR)
        for cseq in (4, 5):
            failure = self.failureResultOf(
                self.location.update(
                    AOR, "call-1", cseq, [change("sip:b@192.0.2.2"), change("sip:a@192.0.2.1")]
                ),
                OutOfOrder,
            )
            self.assertEqual(failure.value.binding, before[0])
        self.assertEqual(self.location.lookup(AOR), before)
        self.assertEqual(len(self.storedRows()), 1)

    def test_otherCallIdAnyCSeq(self):
        """
        A different Call-ID updates the binding whatever its CSeq
        (RFC 3261 section 10.3 step 6).
        """
        self.update([change()], cseq=50)
        bindings = self.update([change(expires=60)], callId="call-2", cseq=1)
        self.assertEqual((bindings[0].callId, bindings[0].cseq), ("call-2", 1))

    def test_qOrdering(self):
        """
        Bindings come highest q first, then most recently updated first.
        """
        self.update([change("sip:low@192.0.2.1", q=0.1)])
        self.clock.advance(1)
        self.update([change("sip:old@192.0.2.2", q=0.8)], cseq=2)
        self.clock.advance(1)
        self.update([change("sip:new@192.0.2.3", q=0.8)], cseq=3)
        self.update([change("sip:top@192.0.2.4")], cseq=4)
        self.assertEqual(
            [b.contact for b in self.location.lookup(AOR)],
            ["sip:top@192.0.2.4", "sip:new@192.0.2.3", "sip:old@192.0.2.2",
             "sip:low@192.0.2.1"],
        )

    def test_remainingDecreases(self):
        """
        L{LocationService.bindingsFor} gives the whole seconds left, which
        decrease as the clock advances, and an expired binding disappears
        from lookups before any purge.
        """
        self.update([change(expires=100)])
        self.assertEqual(self.location.bindingsFor(AOR)[0][1], 100)
        self.clock.advance(30.5)
        self.assertEqual(self.location.bindingsFor(AOR)[0][1], 70)
        self.clock.advance(69.5)
        self.assertEqual(self.location.lookup(AOR), [])
        self.assertEqual(self.location.aors(), [])
        self.assertEqual(self.location.count(), 1)

    def test_instanceRegIdReplaces(self):
        """
        A contact with the instance and reg-id of a binding replaces it,
        whatever its URI; another reg-id of the same instance is another
        binding (RFC 5626 section 6).
        """
        instance = "urn:uuid:00000000-0000-1000-8000-000A95A0E128"
        self.update([change("sip:alice@192.0.2.1;ob", instance=instance, regId=1)])
        self.update([change("sip:alice@192.0.2.2;ob", instance=instance, regId=2)], cseq=2)
        bindings = self.update(
            [change("sip:alice@198.51.100.7;ob", instance=instance, regId=1)], callId="boot-2"
        )
        self.assertEqual(
            sorted((b.regId, b.contact) for b in bindings),
            [(1, "sip:alice@198.51.100.7;ob"), (2, "sip:alice@192.0.2.2;ob")],
        )
        self.assertEqual(len(self.storedRows()), 2)
        self.assertEqual(bindings[0].key, bindingKey(bindings[0].contact, instance, bindings[0].regId))

    def test_instanceRemovedByURI(self):
        """
        A removal naming only the contact URI removes the binding that an
        instance registered with it.
        """
        self.update([change("sip:alice@192.0.2.1", instance="urn:uuid:1", regId=1)])
        self.assertEqual(self.update([change("sip:alice@192.0.2.1", expires=0)], cseq=2), [])

    def test_duplicateContactInOneRequest(self):
        """
        The same contact twice in one request is one binding, the last
        mention winning.
        """
        bindings = self.update([change(expires=60), change(expires=120)])
        self.assertEqual([b.expires for b in bindings], [START + 120])

    def test_purgeExpired(self):
        """
        L{LocationService.purgeExpired} removes expired bindings from the
        database and memory and keeps the others.
        """
        self.update([change("sip:short@192.0.2.1", expires=60)])
        self.update([change("sip:long@192.0.2.2", expires=3600)], cseq=2)
        self.clock.advance(60)
        self.assertEqual(self.successResultOf(self.location.purgeExpired()), 1)
        self.assertEqual([row[1] for row in self.storedRows()], ["sip:long@192.0.2.2"])
        self.assertEqual(self.location.count(), 1)
        self.assertEqual([b.contact for b in self.location.lookup(AOR)], ["sip:long@192.0.2.2"])

    def test_periodicPurge(self):
        """
        Once started, the service purges every C{purgeInterval} seconds on
        its clock; stopping it leaves no timer behind.
        """
        self.update([change(expires=20)])
        self.location.start()
        self.clock.advance(29)
        self.assertEqual(self.location.count(), 1)
        self.clock.advance(1)
        self.assertEqual(self.location.count(), 0)
        self.assertEqual(self.storedRows(), [])
        self.location.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_periodicPurgeSurvivesFailure(self):
        """
        A purge that fails is logged and the next one still happens.
        """
        self.update([change(expires=20)])
        self.location.start()
        self.switch.failing = True
        self.clock.advance(30)
        self.assertEqual(self.location.count(), 1)
        self.switch.failing = False
        self.clock.advance(30)
        self.assertEqual(self.location.count(), 0)
        self.location.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_restart(self):
        """
        A new service on the same file loads every unexpired binding with
        all its fields, and drops (and deletes) the expired ones.
        """
        path = ("<sip:edge.example.test;lr;ob>",)
        kept = self.update([change(
            "sip:alice@192.0.2.1;ob", expires=3600, q=0.7, path=path,
            instance="urn:uuid:1", regId=1, source=("tls", "192.0.2.1", 40000),
            userAgent="Phone/1", params=(("+sip.instance", '"<urn:uuid:1>"'), ("reg-id", "1")),
        )])
        self.update([change("sip:alice@192.0.2.9", expires=60)], cseq=2)
        self.clock.advance(120)
        location = self.restart()
        self.assertEqual(location.lookup(AOR), kept)
        self.assertEqual(location.count(), 1)
        self.assertEqual([row[1] for row in self.storedRows()], ["sip:alice@192.0.2.1;ob"])

    def test_failedWriteLeavesMemory(self):
        """
        When the database write fails, the change fails with
        L{StorageError} and memory is left as it was, for additions,
        refreshes, removals and purges alike.
        """
        self.update([change("sip:a@192.0.2.1")])
        before = self.location.lookup(AOR)
        self.switch.failing = True
        for changes in ([change("sip:b@192.0.2.2")], [change("sip:a@192.0.2.1", expires=60)],
                        [change("sip:a@192.0.2.1", expires=0)]):
            failure = self.failureResultOf(
                self.location.update(AOR, "call-1", 2, changes), StorageError
            )
            self.assertEqual(failure.getErrorMessage(), "disk I/O error")
            self.assertEqual(self.location.lookup(AOR), before)
        self.failureResultOf(self.location.removeAll(AOR, "call-1", 2), StorageError)
        self.failureResultOf(self.location.purgeExpired(), StorageError)
        self.assertEqual(self.location.lookup(AOR), before)
        self.assertEqual(self.location.count(), 1)

    def test_changesOfOneAORInOrder(self):
        """
        A second change of the same address of record waits for the first
        to be written and is checked against its result, so a request that
        arrives late fails even while the first is still in the database
        thread; other addresses of record do not wait.
        """
        self.switch.holding = True
        first = self.location.update(AOR, "call-1", 2, [change(expires=60)])
        late = self.location.update(AOR, "call-1", 1, [change(expires=600)])
        other = self.location.update("bob@example.test", "call-9", 1, [change("sip:bob@192.0.2.5")])
        self.assertEqual(len(self.switch.held), 2)
        self.assertNoResult(first)
        self.assertNoResult(late)
        self.switch.release()
        self.switch.release()
        self.assertEqual(self.successResultOf(first)[0].expires, START + 60)
        self.failureResultOf(late, OutOfOrder)
        self.assertEqual(len(self.successResultOf(other)), 1)
        self.assertEqual(self.location.lookup(AOR)[0].cseq, 2)
        self.assertEqual(self.location._queues, {})

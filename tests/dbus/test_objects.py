"""
Tests for L{appliance.dbus.objects}: the exported objects, driven through
txdbus's own object handler with marshalled messages, as the bus would.
"""

from twisted.internet.defer import fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from txdbus import message, objects

from appliance.dbus import APPLIANCE_INTERFACE, APPLIANCE_PATH, REGISTRAR_INTERFACE, REGISTRAR_PATH
from appliance.dbus.objects import (
    ApplianceObject,
    InvalidConfig,
    NotSupported,
    RegistrarObject,
    normalizeAOR,
    variant,
)
from appliance.sip.location import ContactChange, LocationService, StorageError
from appliance.stats import Statistics
from appliance.storage.database import SynchronousDatabase

PROPERTIES = "org.freedesktop.DBus.Properties"
START = 1700000000.0


class RecordingConnection:
    """
    Stands in for a txdbus connection: keeps what would go to the bus,
    each message parsed back from its bytes.
    """

    def __init__(self):
        self.sent = []

    def sendMessage(self, sent):
        self.sent.append(message.parseMessage(sent.rawMessage, []))


class Exported:
    """
    Objects exported on a txdbus L{objects.DBusObjectHandler} over a
    L{RecordingConnection}.
    """

    def __init__(self, *exported):
        self.connection = RecordingConnection()
        self.handler = objects.DBusObjectHandler(self.connection)
        for obj in exported:
            self.handler.exportObject(obj)
        del self.connection.sent[:]  # ObjectManager's InterfacesAdded

    def call(self, path, interface, member, signature=None, body=None):
        """
        Deliver a method call; return the reply (a parsed method return or
        error message).
        """
        request = message.MethodCallMessage(
            path, member, interface=interface, destination="org.appliance.Appliance1",
            signature=signature, body=body,
        )
        received = message.parseMessage(request.rawMessage, [])
        received.sender = ":1.42"
        before = len(self.connection.sent)
        self.handler.handleMethodCallMessage(received)
        replies = [m for m in self.connection.sent[before:] if getattr(m, "reply_serial", None)]
        assert len(replies) == 1, self.connection.sent[before:]
        return replies[0]

    def signals(self):
        return [
            (m.interface, m.member, list(m.body or []))
            for m in self.connection.sent
            if isinstance(m, message.SignalMessage)
        ]


class ApplianceObjectTests(SynchronousTestCase):
    """
    C{/org/appliance/Appliance1}.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(START)
        self.states = [("sip", "running"), ("dbus", "running")]
        self.reloads = []
        self.stats = Statistics("sip")
        self.stats.increment("requests.in.REGISTER", 3)
        self.obj = ApplianceObject(
            "9.8.7", lambda: self.clock.seconds() - START, lambda: list(self.states),
            self.reload, {"sip": self.stats},
        )
        self.bus = Exported(self.obj)

    def reload(self):
        self.reloads.append(True)
        return ["[appliance] log_level: applied"]

    def get(self, name, interface=APPLIANCE_INTERFACE):
        return self.bus.call(APPLIANCE_PATH, PROPERTIES, "Get", "ss", [interface, name])

    def test_properties(self):
        """
        Version, Services (name to state) and Uptime (whole seconds) are
        read from the running appliance when asked.
        """
        self.clock.advance(61.7)
        self.assertEqual(self.get("Version").body, ["9.8.7"])
        self.assertEqual(self.get("Services").body, [{"sip": "running", "dbus": "running"}])
        self.assertEqual(self.get("Uptime").body, [61])
        reply = self.bus.call(APPLIANCE_PATH, PROPERTIES, "GetAll", "s", [APPLIANCE_INTERFACE])
        self.assertEqual(
            reply.body,
            [{"Services": {"sip": "running", "dbus": "running"}, "Uptime": 61, "Version": "9.8.7"}],
        )

    def test_propertyTypes(self):
        """
        Each property travels with the type its introspection announces
        (Uptime a uint64, Services a{ss}), even an empty Services.
        """
        self.states = []
        self.assertIn(b"a{ss}", self.get("Services").rawBody)
        self.assertEqual(self.get("Uptime").rawBody[1:2], b"t")

    def test_getAllWithoutInterface(self):
        """
        GetAll with an empty interface name returns every property.
        """
        reply = self.bus.call(APPLIANCE_PATH, PROPERTIES, "GetAll", "s", [""])
        self.assertEqual(sorted(reply.body[0]), ["Services", "Uptime", "Version"])

    def test_propertyErrors(self):
        """
        Unknown properties and interfaces, and any Set, get the standard
        D-Bus error names, not txdbus's Python exception names.
        """
        self.assertEqual(self.get("Colour").error_name, "org.freedesktop.DBus.Error.UnknownProperty")
        self.assertEqual(
            self.get("Version", "org.example.Nope").error_name,
            "org.freedesktop.DBus.Error.UnknownInterface",
        )
        reply = self.bus.call(
            APPLIANCE_PATH, PROPERTIES, "Set", "ssv", [APPLIANCE_INTERFACE, "Version", "1"]
        )
        self.assertEqual(reply.error_name, "org.freedesktop.DBus.Error.PropertyReadOnly")

    def test_reload(self):
        """
        Reload runs the reloader and returns its report.
        """
        reply = self.bus.call(APPLIANCE_PATH, APPLIANCE_INTERFACE, "Reload")
        self.assertEqual(reply.body, [["[appliance] log_level: applied"]])
        self.assertEqual(self.reloads, [True])

    def test_reloadErrors(self):
        """
        A reloader's errors reach the caller under our error names.
        """
        for error, name in [
            (NotSupported("no file"), "org.appliance.Appliance1.Error.NotSupported"),
            (InvalidConfig("bad"), "org.appliance.Appliance1.Error.InvalidConfig"),
        ]:
            def reload(error=error):
                raise error

            self.obj._reload = reload
            reply = self.bus.call(APPLIANCE_PATH, APPLIANCE_INTERFACE, "Reload")
            self.assertEqual((reply.error_name, reply.body), (name, [str(error)]))

    def test_statistics(self):
        """
        GetStatistics returns a service's counters and gauges; an unknown
        service is an InvalidArgs error.
        """
        reply = self.bus.call(APPLIANCE_PATH, APPLIANCE_INTERFACE, "GetStatistics", "s", ["sip"])
        self.assertEqual(reply.body, [{"requests.in.REGISTER": 3}])
        reply = self.bus.call(APPLIANCE_PATH, APPLIANCE_INTERFACE, "GetStatistics", "s", ["x"])
        self.assertEqual(reply.error_name, "org.freedesktop.DBus.Error.InvalidArgs")

    def test_serviceStateChanged(self):
        """
        A state change is signalled as ServiceStateChanged(name, state),
        then as PropertiesChanged of Services.
        """
        self.states = [("sip", "stopped"), ("dbus", "running")]
        self.obj.serviceStateChanged("sip", "stopped")
        self.assertEqual(
            self.bus.signals(),
            [
                (APPLIANCE_INTERFACE, "ServiceStateChanged", ["sip", "stopped"]),
                (PROPERTIES, "PropertiesChanged",
                 [APPLIANCE_INTERFACE, {"Services": {"sip": "stopped", "dbus": "running"}}, []]),
            ],
        )

    def test_introspection(self):
        """
        Introspection announces the methods, signals and properties with
        their types, and the Registrar as a child node.
        """
        self.bus.handler.exportObject(RegistrarObject(CountingLocation()))
        reply = self.bus.call(APPLIANCE_PATH, "org.freedesktop.DBus.Introspectable", "Introspect")
        xml = reply.body[0]
        for fragment in [
            '<interface name="org.appliance.Appliance1">',
            '<method name="Reload">', '<signal name="ServiceStateChanged">',
            '<property name="Services" type="a{ss}" access="read">',
            '<property name="Uptime" type="t" access="read">',
            '<node name="Registrar"/>',
        ]:
            self.assertIn(fragment, xml)


    def test_managedObjects(self):
        """
        ObjectManager.GetManagedObjects shows the Registrar below the
        appliance with its current properties.
        """
        self.bus.handler.exportObject(RegistrarObject(CountingLocation()))
        reply = self.bus.call(APPLIANCE_PATH, "org.freedesktop.DBus.ObjectManager",
                              "GetManagedObjects")
        self.assertEqual(reply.body[0][REGISTRAR_PATH][REGISTRAR_INTERFACE], {"BindingCount": 7})


class CountingLocation:
    """
    A location service holding seven bindings, as far as counting goes.
    """

    def count(self):
        return 7


class VariantTests(SynchronousTestCase):
    """
    L{variant} fixes the type a value is marshalled with.
    """

    def test_signatures(self):
        """
        Scalars get txdbus's typed wrappers, containers the signature asked
        for, strings stay strings.
        """
        self.assertEqual(variant("t", 5).dbusSignature, "t")
        self.assertEqual(variant("a{ss}", {}).dbusSignature, "a{ss}")
        self.assertEqual(variant("a(su)", [("a", 1)]).dbusSignature, "a(su)")
        self.assertEqual(variant("s", "x"), "x")


class NormalizeAORTests(SynchronousTestCase):
    """
    L{normalizeAOR}: the registrar's key for an address of record.
    """

    def test_forms(self):
        """
        user@domain and sip: / sips: URIs give user@domain with the domain
        in lower case.
        """
        for text in ["alice@Example.TEST", "sip:alice@example.test", "SIPS:alice@example.test "]:
            self.assertEqual(normalizeAOR(text), "alice@example.test")

    def test_invalid(self):
        """
        Anything but an address of record is an InvalidArgs error.
        """
        from appliance.dbus.objects import InvalidArgs

        for text in ["alice", "@example.test", "alice@", "<sip:a@b>", "a@b;x=y", ""]:
            self.assertRaises(InvalidArgs, normalizeAOR, text)


class FailingDatabase:
    """
    A database whose writes fail; reads go to C{database}.
    """

    def __init__(self, database):
        self._database = database
        self.failing = False

    def runInteraction(self, function, *args):
        if self.failing:
            import sqlite3

            return fail(sqlite3.OperationalError("disk I/O error"))
        return self._database.runInteraction(function, *args)


class RegistrarObjectTests(SynchronousTestCase):
    """
    C{/org/appliance/Appliance1/Registrar} over a real location service
    on a SQLite file.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(START)
        database = SynchronousDatabase(self.mktemp())
        database.open()
        self.addCleanup(database.close)
        self.database = FailingDatabase(database)
        self.location = LocationService(self.database, self.clock)
        self.successResultOf(self.location.load())
        self.obj = RegistrarObject(self.location)
        self.obj.observe()
        self.bus = Exported(self.obj)

    def register(self, aor, contact, expires=600, **kwargs):
        change = ContactChange(contact=contact, expires=expires, **kwargs)
        return self.successResultOf(self.location.update(aor, "call-1", 1, [change]))

    def call(self, member, signature=None, body=None):
        return self.bus.call(REGISTRAR_PATH, REGISTRAR_INTERFACE, member, signature, body)

    def test_listBindings(self):
        """
        ListBindings gives contact, seconds left, q, instance, source and
        User-Agent of each live binding, highest q first.
        """
        self.register("alice@example.test", "sip:alice@192.0.2.1:5060", q=0.5,
                      source=("udp", "192.0.2.1", 5060), userAgent="phone/1")
        self.successResultOf(self.location.update(
            "alice@example.test", "call-2", 1,
            [ContactChange(contact="sip:alice@[2001:db8::1]", expires=60,
                           instance="urn:uuid:1", source=("tcp", "2001:db8::1", 5070))],
        ))
        self.clock.advance(10)
        reply = self.call("ListBindings", "s", ["sip:alice@EXAMPLE.test"])
        self.assertEqual(reply.body, [[
            ["sip:alice@[2001:db8::1]", 50, 1.0, "urn:uuid:1", "tcp:[2001:db8::1]:5070", ""],
            ["sip:alice@192.0.2.1:5060", 590, 0.5, "", "udp:192.0.2.1:5060", "phone/1"],
        ]])
        self.assertEqual(self.call("ListBindings", "s", ["bob@example.test"]).body, [[]])
        self.assertEqual(self.call("ListAddressesOfRecord").body, [["alice@example.test"]])

    def test_listBindingsBadAOR(self):
        """
        An argument that is no address of record is an InvalidArgs error.
        """
        reply = self.call("ListBindings", "s", ["alice"])
        self.assertEqual(reply.error_name, "org.freedesktop.DBus.Error.InvalidArgs")

    def test_unregister(self):
        """
        Unregister removes every binding of the address of record, from
        memory and disk, and returns how many there were.
        """
        self.register("alice@example.test", "sip:alice@192.0.2.1")
        self.register("alice@example.test", "sip:alice@192.0.2.2")
        self.register("bob@example.test", "sip:bob@192.0.2.3")
        self.assertEqual(self.call("Unregister", "s", ["alice@example.test"]).body, [2])
        self.assertEqual(self.location.lookup("alice@example.test"), [])
        self.assertEqual(len(self.location.lookup("bob@example.test")), 1)
        reloaded = LocationService(self.database, self.clock)
        self.successResultOf(reloaded.load())
        self.assertEqual(reloaded.aors(), ["bob@example.test"])
        self.assertEqual(self.call("Unregister", "s", ["alice@example.test"]).body, [0])

    def test_unregisterStorageError(self):
        """
        A database failure is reported as org.appliance.Appliance1.Error.Failed
        and leaves the bindings in place.
        """
        self.register("alice@example.test", "sip:alice@192.0.2.1")
        self.database.failing = True
        reply = self.call("Unregister", "s", ["alice@example.test"])
        self.assertEqual(reply.error_name, "org.appliance.Appliance1.Error.Failed")
        self.assertIn("disk I/O error", reply.body[0])
        self.assertEqual(len(self.location.lookup("alice@example.test")), 1)
        self.flushLoggedErrors(StorageError)

    def test_bindingChanged(self):
        """
        Every change of the bindings (REGISTER, Unregister, expiry purge) is
        signalled as BindingChanged(aor) and PropertiesChanged of
        BindingCount; after unobserve, none is.
        """
        self.register("alice@example.test", "sip:alice@192.0.2.1", expires=60)
        self.call("Unregister", "s", ["alice@example.test"])
        self.register("bob@example.test", "sip:bob@192.0.2.3", expires=60)
        self.clock.advance(61)
        self.successResultOf(self.location.purgeExpired())
        changed = [(m, body) for i, m, body in self.bus.signals()]
        self.assertEqual(changed, [
            ("BindingChanged", ["alice@example.test"]),
            ("PropertiesChanged", [REGISTRAR_INTERFACE, {"BindingCount": 1}, []]),
            ("BindingChanged", ["alice@example.test"]),
            ("PropertiesChanged", [REGISTRAR_INTERFACE, {"BindingCount": 0}, []]),
            ("BindingChanged", ["bob@example.test"]),
            ("PropertiesChanged", [REGISTRAR_INTERFACE, {"BindingCount": 1}, []]),
            ("BindingChanged", ["bob@example.test"]),
            ("PropertiesChanged", [REGISTRAR_INTERFACE, {"BindingCount": 0}, []]),
        ])
        self.obj.unobserve()
        self.register("carol@example.test", "sip:carol@192.0.2.4")
        self.assertEqual(len(self.bus.signals()), 8)

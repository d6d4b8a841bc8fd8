"""
Tests for L{appliance.dbus.service}: getting onto the bus, staying on it,
living without it, and leaving it.
"""

import subprocess
import sys

from twisted.application import service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectError
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from appliance.config import config_from_string
from appliance.dbus import APPLIANCE_INTERFACE, BUS_NAME
from appliance.dbus.service import DBusService, serviceState
from appliance.stats import Statistics


class FakeConnection:
    """
    The parts of a txdbus connection the service uses.
    """

    def __init__(self, nameResult=None):
        self.exported = []
        self.requested = []
        self.sent = []
        self.connected = True
        self._nameResult = nameResult
        self._disconnectCallbacks = []

    def exportObject(self, obj):
        self.exported.append(obj.getObjectPath())
        obj.setObjectHandler(self)

    @property
    def conn(self):
        return self

    def sendMessage(self, sent):
        self.sent.append((sent.member, list(sent.body or [])))

    def requestBusName(self, name):
        self.requested.append(name)
        return self._nameResult if self._nameResult is not None else succeed(1)

    def notifyOnDisconnect(self, callback):
        self._disconnectCallbacks.append(callback)

    def disconnect(self):
        self.lose()

    def lose(self):
        if self.connected:
            self.connected = False
            for callback in list(self._disconnectCallbacks):
                callback(self, None)

    def stateSignals(self):
        return [body for member, body in self.sent if member == "ServiceStateChanged"]


class Child(service.Service):
    """
    A named service of the appliance.
    """

    def __init__(self, name):
        self.name = name


class DBusServiceTests(SynchronousTestCase):
    """
    L{DBusService} with a fake bus and a L{Clock}.
    """

    def setUp(self):
        self.clock = Clock()
        self.connections = []
        self.connectResults = []
        self.sip = Child("sip")
        self.sip.startService()
        self.stats = Statistics("dbus")
        self.service = DBusService(
            config_from_string("[dbus]\nbus = unix:path=/nonexistent/bus\n"), self.clock,
            services=lambda: [self.sip, self.service], stats=self.stats, connect=self.connect,
        )
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def connect(self, reactor, bus):
        self.assertIs(reactor, self.clock)
        self.assertEqual(bus, "unix:path=/nonexistent/bus")
        result = self.connectResults.pop(0) if self.connectResults else None
        if result is None:
            connection = FakeConnection()
            self.connections.append(connection)
            return succeed(connection)
        return result

    def stop(self):
        d = self.service.stopService()
        if d is not None:
            self.successResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def warnings(self):
        return [e for e in self.events if e.get("log_level") is not None
                and e["log_level"].name == "warn"]

    def test_online(self):
        """
        Started, the service exports both objects (the Registrar only with
        a location service), owns the bus name and announces itself running.
        """
        self.service.startService()
        [connection] = self.connections
        self.assertEqual(connection.exported, ["/org/appliance/Appliance1"])
        self.assertEqual(connection.requested, [BUS_NAME])
        self.assertEqual(self.service.state, "running")
        self.assertEqual(self.stats.get("connected"), 1)
        self.assertEqual(connection.stateSignals(), [["dbus", "running"]])
        self.assertEqual(
            self.service.serviceStates(), [("sip", "running"), ("dbus", "running")]
        )
        self.stop()
        self.assertFalse(connection.connected)
        self.assertEqual(connection.stateSignals()[-1], ["dbus", "stopped"])

    def test_serviceStateChanges(self):
        """
        A service changing state is signalled within a poll interval, once.
        """
        self.service.startService()
        [connection] = self.connections
        self.sip.stopService()
        self.clock.advance(self.service.pollInterval)
        self.clock.advance(self.service.pollInterval)
        self.assertEqual(connection.stateSignals(), [["dbus", "running"], ["sip", "stopped"]])
        self.assertIn(
            ("PropertiesChanged",
             [APPLIANCE_INTERFACE, {"Services": {"sip": "stopped", "dbus": "running"}}, []]),
            connection.sent,
        )
        self.stop()

    def test_noBus(self):
        """
        Without a bus the service warns once, says so in its state, and
        tries again every reconnectInterval seconds until it gets on.
        """
        self.connectResults = [fail(ConnectError(string="No such file")), fail(ConnectError())]
        self.service.startService()
        self.assertEqual(self.service.state, "disconnected")
        self.assertIn("No such file", self.service.lastError)
        [warning] = self.warnings()
        self.assertIn("the other services keep running", warning["log_format"])
        self.clock.advance(self.service.reconnectInterval)
        self.assertEqual(len(self.warnings()), 1)
        self.assertEqual(self.connections, [])
        self.clock.advance(self.service.reconnectInterval)
        self.assertEqual(len(self.connections), 1)
        self.assertEqual(self.service.state, "running")
        self.stop()

    def test_stopWhileWaitingToRetry(self):
        """
        Stopping cancels the pending retry.
        """
        self.connectResults = [fail(ConnectError())]
        self.service.startService()
        self.stop()
        self.assertEqual(self.service.state, "stopped")

    def test_nameTaken(self):
        """
        When the name cannot be had (another appliance, or the bus policy),
        the connection is closed and the service retries later.
        """
        taken = FakeConnection(nameResult=fail(Exception("Name in use")))
        self.connectResults = [succeed(taken)]
        self.service.startService()
        self.assertFalse(taken.connected)
        self.assertEqual(self.service.lastError, "Name in use")
        self.clock.advance(self.service.reconnectInterval)
        self.assertEqual(self.service.state, "running")
        self.stop()

    def test_busLost(self):
        """
        Losing the bus is logged, and the service gets back on it later.
        """
        self.service.startService()
        self.connections[0].lose()
        self.assertEqual(self.service.state, "disconnected")
        self.assertEqual(self.stats.get("connected"), 0)
        self.assertEqual(len(self.warnings()), 1)
        self.clock.advance(self.service.reconnectInterval)
        self.assertEqual(len(self.connections), 2)
        self.assertEqual(self.service.state, "running")
        self.stop()

    def test_stopWhileConnecting(self):
        """
        Stopping while a connection attempt is under way waits for it, and
        closes the connection it brings.
        """
        pending = Deferred()
        self.connectResults = [pending]
        self.service.startService()
        self.assertEqual(self.service.state, "connecting")
        d = self.service.stopService()
        self.assertNoResult(d)
        late = FakeConnection()
        pending.callback(late)
        self.successResultOf(d)
        self.assertFalse(late.connected)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_registrarObject(self):
        """
        With a location service the Registrar object is exported, observes
        the bindings while on the bus, and stops when off it.
        """
        observers = []

        class Location:
            def addObserver(self, observer):
                observers.append(observer)

            def removeObserver(self, observer):
                observers.remove(observer)

            def count(self):
                return 0

        self.service = DBusService(
            config_from_string("[dbus]\nbus = unix:path=/nonexistent/bus\n"), self.clock,
            services=lambda: [self.service], location=Location(), connect=self.connect,
        )
        self.service.startService()
        self.assertEqual(
            self.connections[0].exported,
            ["/org/appliance/Appliance1", "/org/appliance/Appliance1/Registrar"],
        )
        [observer] = observers
        observer("alice@example.test")
        self.assertIn(("BindingChanged", ["alice@example.test"]), self.connections[0].sent)
        self.stop()
        self.assertEqual(observers, [])

    def test_serviceState(self):
        """
        A service's own C{state} string wins over its running flag.
        """
        child = Child("x")
        self.assertEqual(serviceState(child), "stopped")
        child.startService()
        self.assertEqual(serviceState(child), "running")
        child.state = "failed"
        self.assertEqual(serviceState(child), "failed")


class ImportTests(SynchronousTestCase):
    """
    The plugin's import path must not install a reactor.
    """

    def test_noGlobalReactor(self):
        """
        Importing the tap, the service and the status command imports
        neither txdbus.client nor the global reactor.
        """
        code = (
            "import sys, appliance.tap, appliance.dbus.service, appliance.dbus.status, "
            "appliance.cli\n"
            "print('txdbus.client' in sys.modules, 'twisted.internet.reactor' in sys.modules)\n"
        )
        from tests.integration.harness import childEnvironment

        output = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, timeout=30, check=True,
            env=childEnvironment(),
        ).stdout
        self.assertEqual(output.split(), [b"False", b"False"])

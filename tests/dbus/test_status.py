"""
Tests for L{appliance.dbus.status} and L{appliance.dbus.blocking}:
C{appliancectl status} and its blocking D-Bus client.
"""

import io
import os

from twisted.trial.unittest import SynchronousTestCase

from appliance.cli import main
from appliance.config import config_from_string
from appliance.dbus.blocking import BlockingConnection, BusUnreachable, RemoteError
from appliance.dbus.status import formatDuration, report, status
from tests.dbus.privatebus import PrivateBus

PROPERTIES = {
    "Version": "0.1.0",
    "Uptime": 93784,
    "Services": {"sip": "running", "rtsp": "running", "dbus": "running"},
}


class ReportTests(SynchronousTestCase):
    """
    What status prints and its exit status, from the properties read.
    """

    def run_(self, properties, expected=("sip", "rtsp", "dbus")):
        stdout, stderr = io.StringIO(), io.StringIO()
        code = report(properties, expected, stdout, stderr)
        return code, stdout.getvalue(), stderr.getvalue()

    def test_allRunning(self):
        """
        Every service running: one line each, exit status 0.
        """
        code, out, err = self.run_(PROPERTIES)
        self.assertEqual(code, 0)
        self.assertEqual(
            out,
            "appliance 0.1.0, up 1d 02:03:04\nsip      running\nrtsp     running\n"
            "dbus     running\n",
        )
        self.assertEqual(err, "")

    def test_serviceDown(self):
        """
        A service in another state: exit status 1, and stderr names it.
        """
        properties = dict(PROPERTIES, Services={"sip": "failed", "dbus": "running"})
        code, out, err = self.run_(properties, expected=("sip", "dbus"))
        self.assertEqual(code, 1)
        self.assertIn("sip      failed\n", out)
        self.assertEqual(err, "appliancectl: not running: sip (failed)\n")

    def test_configuredServiceMissing(self):
        """
        A configured service the appliance does not list counts as down.
        """
        properties = dict(PROPERTIES, Services={"sip": "running", "dbus": "running"})
        code, out, err = self.run_(properties)
        self.assertEqual(code, 1)
        self.assertIn("rtsp     not running\n", out)
        self.assertIn("rtsp (not running)", err)

    def test_formatDuration(self):
        """
        Uptime reads as [Nd ]HH:MM:SS.
        """
        self.assertEqual(formatDuration(0), "00:00:00")
        self.assertEqual(formatDuration(3661), "01:01:01")
        self.assertEqual(formatDuration(86400 * 3 + 59), "3d 00:00:59")


class UnreachableTests(SynchronousTestCase):
    """
    status when there is nothing to talk to.
    """

    def test_noBus(self):
        """
        No bus at the address: exit status 3 with the address and the
        reason.
        """
        path = os.path.join(self.mktemp(), "bus")
        stdout, stderr = io.StringIO(), io.StringIO()
        code = main(["status", "--bus", "unix:path=" + path], stdout=stdout, stderr=stderr)
        self.assertEqual(code, 3)
        self.assertIn(
            "appliancectl: cannot reach the appliance: no connection to the bus at "
            "unix:path=" + path, stderr.getvalue(),
        )
        self.assertEqual(stdout.getvalue(), "")

    def test_noSessionBus(self):
        """
        bus = session without DBUS_SESSION_BUS_ADDRESS says so.
        """
        self.patch(os, "environ", {k: v for k, v in os.environ.items()
                                   if k != "DBUS_SESSION_BUS_ADDRESS"})
        stderr = io.StringIO()
        code = status(config_from_string("[dbus]\nbus = session\n"), io.StringIO(), stderr)
        self.assertEqual(code, 3)
        self.assertIn("DBUS_SESSION_BUS_ADDRESS is not set", stderr.getvalue())

    def test_tcpNotSupported(self):
        """
        appliancectl speaks only unix addresses, and says so.
        """
        error = self.assertRaises(BusUnreachable, BlockingConnection, "tcp:host=127.0.0.1,port=1")
        self.assertIn("only unix:path= and unix:abstract=", str(error))


class BlockingConnectionTests(SynchronousTestCase):
    """
    L{BlockingConnection} against a real dbus-daemon.
    """

    def setUp(self):
        self.bus = PrivateBus().start()
        self.addCleanup(self.bus.stop)

    def test_call(self):
        """
        The connection authenticates, gets a unique name and calls methods.
        """
        connection = BlockingConnection(self.bus.address, timeout=5)
        self.addCleanup(connection.close)
        self.assertTrue(connection.uniqueName.startswith(":"))
        names = connection.call(
            "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "ListNames"
        )[0]
        self.assertIn(connection.uniqueName, names)
        owner = connection.call(
            "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
            "GetNameOwner", "s", [connection.uniqueName],
        )
        self.assertEqual(owner, [connection.uniqueName])

    def test_remoteError(self):
        """
        An error reply raises L{RemoteError} with its name and message.
        """
        connection = BlockingConnection(self.bus.address, timeout=5)
        self.addCleanup(connection.close)
        error = self.assertRaises(
            RemoteError, connection.call, "org.appliance.Appliance1",
            "/org/appliance/Appliance1", "org.freedesktop.DBus.Properties", "GetAll", "s", [""],
        )
        self.assertEqual(error.name, "org.freedesktop.DBus.Error.ServiceUnknown")

    def test_statusWithoutAppliance(self):
        """
        A bus without the appliance on it: exit status 3, and the message
        says the name is missing from that bus.
        """
        stderr = io.StringIO()
        code = main(["status", "--bus", self.bus.address], stdout=io.StringIO(), stderr=stderr)
        self.assertEqual(code, 3)
        self.assertIn("org.appliance.Appliance1 is not on the bus at " + self.bus.address,
                      stderr.getvalue())

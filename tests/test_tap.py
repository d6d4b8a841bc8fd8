"""
Tests for L{appliance.tap}: options, the reactor check and start-up.
"""

import os

from twisted.application.service import IServiceCollection
from twisted.internet import reactor
from twisted.internet.testing import MemoryReactor
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from appliance.config import config_from_string
from appliance.tap import ApplianceService, Options, StartupError, checkReactor, makeService


class OptionsTests(SynchronousTestCase):
    """
    Command-line options and configuration loading.
    """

    def test_reactorRefused(self):
        """
        Any reactor but asyncio is refused with the command that fixes it.
        """
        error = self.assertRaises(usage.UsageError, checkReactor, MemoryReactor())
        self.assertIn("twistd --reactor=asyncio -n appliance", str(error))

    def test_configErrorsTogether(self):
        """
        Every configuration error is in the one usage error.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("[sip]\ncolour = blue\nt1 = x\n")
        options = Options()
        error = self.assertRaises(usage.UsageError, options.parseOptions, ["--config", path])
        self.assertIn(path + " [sip] colour: unknown key", str(error))
        self.assertIn(path + " [sip] t1: 'x' is not a number", str(error))

    def test_dataDirOverride(self):
        """
        --data-dir overrides the configured data directory.
        """
        options = Options()
        options.parseOptions(["--data-dir", "/srv/appliance"])
        self.assertEqual(options.config.appliance.data_dir, "/srv/appliance")

    def test_makeServiceWiresSIP(self):
        """
        makeService builds the tree with a named SIP service and touches
        nothing on disk.
        """
        options = Options()
        options.parseOptions(["--data-dir", self.mktemp()])
        root = makeService(options, MemoryReactor())
        self.assertTrue(IServiceCollection.providedBy(root))
        self.assertEqual(root.getServiceNamed("sip").name, "sip")
        self.assertFalse(os.path.exists(options["data-dir"]))


def _config(dataDir, listen):
    return config_from_string(
        "[appliance]\ndata_dir = %s\nservices = sip\n[sip]\nlisten = %s\n" % (dataDir, listen)
    )


class StartupTests(TestCase):
    """
    Start-up prepares state and reports what stops it in one line.
    """

    def test_startCreatesState(self):
        """
        The first start creates the data directory, the database and a
        self-signed certificate; stopping closes everything.
        """
        dataDir = self.mktemp()
        root = ApplianceService(
            _config(dataDir, "udp:0:interface=127.0.0.1 tls:0:interface=127.0.0.1"),
            reactor,
        )
        root.privilegedStartService()
        root.startService()
        for name in ("appliance.sqlite", "tls/cert.pem", "tls/key.pem"):
            self.assertTrue(os.path.exists(os.path.join(dataDir, name)), name)
        d = root.getServiceNamed("sip").whenReady()
        d.addCallback(lambda _: root.stopService())
        return d

    def test_portInUse(self):
        """
        A port that cannot be bound stops start-up with a message naming the
        configured address, and leaves no other port open.
        """
        from socket import AF_INET, SOCK_DGRAM, socket

        busy = socket(AF_INET, SOCK_DGRAM)
        busy.bind(("127.0.0.1", 0))
        self.addCleanup(busy.close)
        port = busy.getsockname()[1]
        root = ApplianceService(
            _config(self.mktemp(), "tcp:0:interface=127.0.0.1 udp:%d:interface=127.0.0.1" % port),
            reactor,
        )
        error = self.assertRaises(StartupError, root.privilegedStartService)
        self.assertIn("[sip] listen: cannot listen on udp:%d" % (port,), str(error))
        self.assertEqual(root.getServiceNamed("sip").ports, [])

    def test_unusableCertificate(self):
        """
        A configured certificate that cannot be read stops start-up with a
        message naming it.
        """
        config = config_from_string(
            "[appliance]\ndata_dir = %s\nservices = sip\ntls_cert = /nonexistent/c.pem\n"
            "tls_key = /nonexistent/k.pem\n[sip]\nlisten = tls:0:interface=127.0.0.1\n"
            % (self.mktemp(),)
        )
        root = ApplianceService(config, reactor)
        error = self.assertRaises(StartupError, root.privilegedStartService)
        self.assertIn("/nonexistent/c.pem", str(error))

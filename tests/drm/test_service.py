"""
Tests for L{appliance.drm.service} and its wiring into the appliance.
"""

import os
import stat

from twisted.trial.unittest import SynchronousTestCase, TestCase

from appliance.config import ConfigError, config_from_string
from appliance.drm.keystore import KeyStoreError
from appliance.stats import Statistics
from appliance.drm.service import DRMService, licenseUrl
from appliance.tap import ApplianceService


class WiringTests(SynchronousTestCase):
    """
    The [drm] section and the drm child service.
    """

    def test_defaults(self):
        """
        drm runs by default, on HTTPS port 8443 of the loopback address only.
        """
        config = config_from_string("")
        self.assertIn("drm", config.appliance.services)
        self.assertEqual(str(config.drm.listen), "ssl:8443:interface=127.0.0.1")
        self.assertEqual(licenseUrl(config.drm), "https://127.0.0.1:8443/drm/license")

    def test_child(self):
        """
        With drm enabled the appliance has a DRMService child named drm, with its statistics.
        """
        from twisted.internet import reactor

        config = config_from_string("[appliance]\nservices = sip drm\ndata_dir = %s\n" % (self.mktemp(),))
        appliance = ApplianceService(config, reactor)
        self.assertIsInstance(appliance.getServiceNamed("drm"), DRMService)
        self.assertIn("drm", appliance.stats)

    def test_errorsTogether(self):
        """
        Bad [drm] values are reported together, each with its key.
        """
        e = self.assertRaises(ConfigError, config_from_string,
                              "[drm]\nlisten = tcp:80\nurl = http://x/\nrate_burst = 0\nbogus = 1\n")
        self.assertEqual(len(e.errors), 4)
        self.assertTrue(any("[drm] listen" in error for error in e.errors))
        self.assertTrue(any("[drm] bogus" in error for error in e.errors))

    def test_url(self):
        """
        [drm] url sets the license URL written into packages.
        """
        config = config_from_string("[drm]\nurl = https://drm.example.test:9443/\n")
        self.assertEqual(licenseUrl(config.drm), "https://drm.example.test:9443/drm/license")


class ServiceTests(TestCase):
    """
    DRMService on the real reactor: secrets, listening, stopping.
    """

    def makeService(self, listen="ssl:0:interface=127.0.0.1"):
        from twisted.internet import reactor

        from appliance.storage.database import SynchronousDatabase
        from appliance.tls import ensureCertificate, serverContext

        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        cert, key = os.path.join(directory, "tls", "cert.pem"), os.path.join(directory, "tls", "key.pem")
        ensureCertificate(cert, key, ["example.test"])
        database = SynchronousDatabase(os.path.join(directory, "db.sqlite"))
        database.open()
        self.addCleanup(database.close)
        config = config_from_string("[drm]\nlisten = %s\n" % (listen,)).drm
        service = DRMService(config, reactor, Statistics("drm"), database, None,
                             lambda: serverContext(cert, key),
                             lambda *segments: os.path.join(directory, *segments), ["example.test"])
        return service, directory

    def test_startMakesSecretsAndListens(self):
        """
        Starting makes the four secret files with mode 0600 and listens on loopback; stopping
        closes the port.
        """
        service, directory = self.makeService()
        service.privilegedStartService()
        service.startService()
        for name in ("master.key", "signing.key", "service.token", "nonce.secret"):
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(directory, "drm", name)).st_mode), 0o600)
        self.assertEqual(service.port.getHost().host, "127.0.0.1")
        return service.stopService()

    def test_masterKeyReadableByOthers(self):
        """
        A master key file readable by others stops the start with KeyStoreError, which the
        appliance reports as a start-up error.
        """
        service, directory = self.makeService()
        os.makedirs(os.path.join(directory, "drm"))
        path = os.path.join(directory, "drm", "master.key")
        with open(path, "wb") as f:
            f.write(os.urandom(32))
        os.chmod(path, 0o644)
        self.assertRaises(KeyStoreError, service.privilegedStartService)
        self.assertIsNone(service.port)

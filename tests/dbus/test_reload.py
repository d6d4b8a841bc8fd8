"""
Tests for L{appliance.dbus.reload}: Reload re-reads the configuration
file, applies what can change at run time and names what cannot.
"""

from twisted.trial.unittest import SynchronousTestCase

from appliance.config import load
from appliance.dbus.objects import InvalidConfig, NotSupported
from appliance.dbus.reload import ConfigReloader

BASE = "[appliance]\nlog_level = info\n[sip]\nlisten = udp:5070\n"


class ConfigReloaderTests(SynchronousTestCase):
    """
    L{ConfigReloader} against a configuration file the test rewrites.
    """

    def setUp(self):
        self.path = self.mktemp()
        self.write(BASE)
        self.applied = []
        self.reloader = ConfigReloader(
            load(self.path),
            {("appliance", "log_level"): self.applied.append},
        )

    def write(self, text):
        with open(self.path, "w") as f:
            f.write(text)

    def test_unchanged(self):
        """
        An unchanged file reports nothing and applies nothing.
        """
        self.assertEqual(self.reloader(), [])
        self.assertEqual(self.applied, [])

    def test_appliesReloadable(self):
        """
        A new log level is applied, once: a second Reload finds nothing new.
        """
        self.write(BASE.replace("info", "debug"))
        self.assertEqual(self.reloader(), ["[appliance] log_level: applied"])
        self.assertEqual(self.applied, ["debug"])
        self.assertEqual(self.reloader(), [])

    def test_restartNeeded(self):
        """
        Other changes are named (without their values) as needing a
        restart, every time until then.
        """
        self.write(BASE.replace("udp:5070", "udp:5080") + "[dbus]\nbus = session\n")
        expected = [
            "[sip] listen: changed, takes effect after a restart",
            "[dbus] bus: changed, takes effect after a restart",
        ]
        self.assertEqual(self.reloader(), expected)
        self.assertEqual(self.reloader(), expected)
        self.assertEqual(self.applied, [])

    def test_invalidFile(self):
        """
        A file with errors changes nothing; the error lists them all.
        """
        self.write(BASE.replace("info", "loud") + "colour = blue\n")
        error = self.assertRaises(InvalidConfig, self.reloader)
        self.assertIn("nothing changed", str(error))
        self.assertIn("[appliance] log_level: 'loud'", str(error))
        self.assertIn("[sip] colour: unknown key", str(error))
        self.assertEqual(self.applied, [])

    def test_unreadableFile(self):
        """
        A file that has gone is an InvalidConfig error naming it.
        """
        import os

        os.remove(self.path)
        error = self.assertRaises(InvalidConfig, self.reloader)
        self.assertIn(self.path, str(error))

    def test_embeddedDefaults(self):
        """
        On the embedded defaults there is nothing to re-read: NotSupported.
        """
        error = self.assertRaises(NotSupported, ConfigReloader(load(None)))
        self.assertIn("embedded defaults", str(error))

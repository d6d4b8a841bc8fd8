"""
Tests for the C{[dbus]} section of L{appliance.config}.
"""

from twisted.trial.unittest import SynchronousTestCase

from appliance.config import AVAILABLE_SERVICES, ConfigError, config_from_string


class DBusConfigTests(SynchronousTestCase):
    """
    C{[dbus] bus}: system, session or an address.
    """

    def test_default(self):
        """
        The system bus by default, and dbus is among the default services.
        """
        config = config_from_string("")
        self.assertEqual(config.dbus.bus, "system")
        self.assertIn("dbus", AVAILABLE_SERVICES)
        self.assertIn("dbus", config.appliance.services)

    def test_valid(self):
        """
        system, session (any case) and unix / tcp addresses are accepted.
        """
        for text, value in [
            ("Session", "session"),
            ("unix:path=/run/appliance/bus", "unix:path=/run/appliance/bus"),
            ("unix:abstract=appliance", "unix:abstract=appliance"),
            ("tcp:host=127.0.0.1,port=5555", "tcp:host=127.0.0.1,port=5555"),
            ("unix:path=/a;unix:path=/b", "unix:path=/a;unix:path=/b"),
        ]:
            self.assertEqual(config_from_string("[dbus]\nbus = %s\n" % (text,)).dbus.bus, value)

    def test_invalid(self):
        """
        Anything else is an error naming the file, section and key.
        """
        for text in ["", "user", "unix:", "unix:path=", "unix:path=/a,abstract=b",
                     "unix:tmpdir=/tmp", "tcp:host=h", "tcp:host=h,port=x", "launchd:env=X"]:
            error = self.assertRaises(
                ConfigError, config_from_string, "[dbus]\nbus = %s\n" % (text,), "f.conf"
            )
            self.assertTrue(error.errors[0].startswith("f.conf [dbus] bus: "), error.errors)

    def test_dbusService(self):
        """
        dbus is a service one can pick.
        """
        config = config_from_string("[appliance]\nservices = sip dbus\n")
        self.assertEqual(config.appliance.services, ("sip", "dbus"))

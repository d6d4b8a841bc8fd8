"""
Tests for the C{[snmp]} section of L{appliance.config}.
"""

from twisted.trial.unittest import SynchronousTestCase

from appliance.config import AVAILABLE_SERVICES, ConfigError, ListenAddress, config_from_string


class SNMPConfigTests(SynchronousTestCase):
    """
    The agent's settings: defaults, types and consistency.
    """

    def errors(self, text):
        return self.assertRaises(ConfigError, config_from_string, text).errors

    def test_defaults(self):
        """
        By default the agent listens on UDP 16161 on loopback, answers v2c
        for the community public, has no v3 user and sends nothing.
        """
        snmp = config_from_string("").snmp
        self.assertEqual(snmp.listen, ListenAddress("udp", 16161, "127.0.0.1"))
        self.assertEqual(snmp.community, "public")
        self.assertEqual((snmp.v3_user, snmp.v3_auth_key, snmp.v3_priv_key), ("", "", ""))
        self.assertEqual((snmp.trap_targets, snmp.inform_targets), ((), ()))
        self.assertIn("snmp", AVAILABLE_SERVICES)

    def test_serviceAvailable(self):
        """
        snmp can be listed in services.
        """
        config = config_from_string("[appliance]\nservices = sip snmp\n")
        self.assertEqual(config.appliance.services, ("sip", "snmp"))

    def test_fullSection(self):
        """
        Every key is read with its type; targets default to port 162.
        """
        snmp = config_from_string(
            "[snmp]\nlisten = udp:161:interface=192.0.2.1\ncommunity = n0c-ro\n"
            "v3_user = ops\nv3_auth_key = 12345678\nv3_priv_key = abcdefgh\n"
            "trap_targets = 192.0.2.9 192.0.2.10:1162\ninform_targets = 192.0.2.9:10162\n"
            "check_interval = 2\nauth_burst_threshold = 50\nauth_burst_interval = 120\n"
        ).snmp
        self.assertEqual(snmp.listen, ListenAddress("udp", 161, "192.0.2.1"))
        self.assertEqual(snmp.trap_targets, (("192.0.2.9", 162), ("192.0.2.10", 1162)))
        self.assertEqual(snmp.inform_targets, (("192.0.2.9", 10162),))
        self.assertEqual((snmp.check_interval, snmp.auth_burst_threshold,
                          snmp.auth_burst_interval), (2.0, 50, 120))

    def test_publicOnlyOnLoopback(self):
        """
        The well-known community public is refused on a non-loopback
        address; an empty community (v2c off) or another one is accepted.
        """
        errors = self.errors("[snmp]\nlisten = udp:161\n")
        self.assertEqual(len(errors), 1)
        self.assertIn("[snmp] community: the well-known community public", errors[0])
        config_from_string("[snmp]\nlisten = udp:161\ncommunity =\n")
        config_from_string("[snmp]\nlisten = udp:161\ncommunity = n0c-ro\n")

    def test_v3KeysGoTogether(self):
        """
        A v3 user needs both keys, of at least 8 characters (RFC 3414).
        """
        errors = self.errors("[snmp]\nv3_user = ops\nv3_auth_key = 12345678\n")
        self.assertIn("v3_user, v3_auth_key and v3_priv_key go together", errors[0])
        errors = self.errors("[snmp]\nv3_user = ops\nv3_auth_key = short\nv3_priv_key = x\n")
        self.assertEqual(len(errors), 2)
        self.assertIn("[snmp] v3_auth_key: an SNMPv3 pass phrase needs at least 8", errors[0])

    def test_informsNeedV3(self):
        """
        inform_targets without a v3 user is an error.
        """
        errors = self.errors("[snmp]\ninform_targets = 127.0.0.1\n")
        self.assertIn("[snmp] inform_targets: SNMPv3 informs need v3_user", errors[0])

    def test_badValues(self):
        """
        A TCP listen address, an IPv6 one and malformed targets are each
        reported.
        """
        errors = self.errors(
            "[snmp]\nlisten = tcp:161\ntrap_targets = nms.example:162\n"
            "inform_targets = 127.0.0.1:0\n"
        )
        self.assertEqual(len(errors), 3)
        self.assertIn("[snmp] listen:", errors[0])
        self.assertIn("[snmp] trap_targets: 'nms.example:162'", errors[1])
        self.assertIn("[snmp] inform_targets:", errors[2])
        errors = self.errors("[snmp]\nlisten = udp:161:interface=\\:\\:1\n")
        self.assertIn("IPv4 only", errors[0])

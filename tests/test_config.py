"""
Tests for L{appliance.config}.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from appliance.config import (
    AVAILABLE_SERVICES,
    ConfigError,
    ListenAddress,
    config_from_string,
    load,
    parseListenAddress,
)


class DefaultsTests(SynchronousTestCase):
    """
    The embedded defaults.
    """

    def test_emptyFileGivesDefaults(self):
        """
        An empty configuration runs every available service on the
        documented SIP ports with state in ./var.
        """
        config = config_from_string("")
        self.assertEqual(config.appliance.data_dir, "./var")
        self.assertEqual(config.appliance.services, AVAILABLE_SERVICES)
        self.assertEqual(
            [str(a) for a in config.sip.listen], ["udp:5060", "tcp:5060", "tls:5061"]
        )
        self.assertTrue(config.sip.record_route)

    def test_noPathLoadsDefaults(self):
        """
        L{load} with no path gives the defaults, with overrides applied.
        """
        config = load(None, {("appliance", "data_dir"): "/srv/x"})
        self.assertEqual(config.appliance.data_dir, "/srv/x")
        self.assertEqual(config.dataPath("a.sqlite"), "/srv/x/a.sqlite")

    def test_shippedConfigurationIsValid(self):
        """
        The documented etc/appliance.conf loads and states the defaults.
        """
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        config = load(os.path.join(here, "etc", "appliance.conf"))
        self.assertEqual(config.sip, config_from_string("").sip)


class ValuesTests(SynchronousTestCase):
    """
    Typed values.
    """

    def test_typedValues(self):
        """
        Values are converted to their types: lists, booleans, numbers and
        listen addresses.
        """
        config = config_from_string(
            "[appliance]\nservices = sip\nlog_level = DEBUG\n"
            "[sip]\ndomains = Example.TEST, other.test\nrecord_route = no\n"
            "t1 = 0.25\nmax_message_size = 4096\n"
            "listen = udp:0:interface=127.0.0.1 tcp:5070:interface=\\:\\:1\n"
        )
        self.assertEqual(config.appliance.log_level, "debug")
        self.assertEqual(config.sip.domains, ("example.test", "other.test"))
        self.assertFalse(config.sip.record_route)
        self.assertEqual(config.sip.t1, 0.25)
        self.assertEqual(config.sip.max_message_size, 4096)
        self.assertEqual(
            config.sip.listen,
            (ListenAddress("udp", 0, "127.0.0.1"), ListenAddress("tcp", 5070, "::1")),
        )

    def test_listenAddressRoundTrip(self):
        """
        A listen address prints back as an endpoint description, with IPv6
        colons escaped.
        """
        text = "tls:5061:interface=\\:\\:1:privateKey=/k.pem"
        self.assertEqual(str(parseListenAddress(text)), text)

    def test_listenAddressErrors(self):
        """
        Wrong transports, ports and options are refused with a reason.
        """
        for text in ["sctp:5060", "udp", "udp:x", "udp:70000", "udp:5060:foo=1",
                     "udp:5060:interface"]:
            self.assertRaises(ValueError, parseListenAddress, text)


class ErrorTests(SynchronousTestCase):
    """
    Errors name file, section and key, and all are reported together.
    """

    def test_allErrorsTogether(self):
        """
        An unknown section, an unknown key and two bad values give four
        errors in one L{ConfigError}.
        """
        error = self.assertRaises(
            ConfigError, config_from_string,
            "[nosuch]\na = 1\n[sip]\ncolour = blue\nt1 = fast\n"
            "listen = carrier-pigeon:1\n",
            "my.conf",
        )
        self.assertEqual(len(error.errors), 4, error.errors)
        text = "\n".join(error.errors)
        self.assertIn("my.conf [nosuch]: unknown section", text)
        self.assertIn("my.conf [sip] colour: unknown key", text)
        self.assertIn("my.conf [sip] t1: 'fast' is not a number", text)
        self.assertIn("my.conf [sip] listen:", text)

    def test_plannedServiceRefused(self):
        """
        A service of the design that this version does not ship is refused
        with a message saying so.
        """
        error = self.assertRaises(
            ConfigError, config_from_string, "[appliance]\nservices = sip psap\n"
        )
        self.assertIn("not available in this version", error.errors[0])

    def test_consistency(self):
        """
        Values that are valid alone but not together are refused.
        """
        error = self.assertRaises(
            ConfigError, config_from_string,
            "[appliance]\ntls_cert = /c.pem\n[sip]\nt1 = 5\nt2 = 4\n"
            "listen = udp:5060 udp:5060\n",
        )
        self.assertEqual(len(error.errors), 3, error.errors)

    def test_badDomain(self):
        """
        A domain with characters no host name has is refused.
        """
        self.assertRaises(ConfigError, config_from_string, "[sip]\ndomains = a_b..c\n")

    def test_unreadableFile(self):
        """
        A missing file is one clear error naming it.
        """
        error = self.assertRaises(ConfigError, load, "/nonexistent/appliance.conf")
        self.assertIn("/nonexistent/appliance.conf: cannot read", error.errors[0])

    def test_syntaxError(self):
        """
        Text that is not INI is one error naming the file.
        """
        error = self.assertRaises(ConfigError, config_from_string, "key = value\n", "x.conf")
        self.assertTrue(error.errors[0].startswith("x.conf:"))


class ConferenceConfigTests(SynchronousTestCase):
    """
    The C{[conference]} section.
    """

    def test_defaults(self):
        """
        By default the conference user agent listens on 127.0.0.1:5070 over
        UDP and TCP, serves echo@ and conf-* rooms, and records nothing.
        """
        conference = config_from_string("").conference
        self.assertEqual([str(a) for a in conference.listen],
                         ["udp:5070:interface=127.0.0.1", "tcp:5070:interface=127.0.0.1"])
        self.assertEqual((conference.echo, conference.prefix, conference.record), ("echo", "conf-", False))
        self.assertEqual(conference.rtp_ports, (31000, 31999))
        self.assertEqual(conference.mute_digit, "*")

    def test_typedValues(self):
        """
        Every key is parsed to its type.
        """
        conference = config_from_string(
            "[conference]\nlisten = tcp:5080\nrtp_ports = 40000-40099\nmedia_address = ::1\n"
            "echo = echotest\nprefix = room-\nmax_participants = 10\nmute_digit = #\nrecord = yes\n"
        ).conference
        self.assertEqual(str(conference.listen[0]), "tcp:5080")
        self.assertEqual(conference.rtp_ports, (40000, 40099))
        self.assertEqual((conference.media_address, conference.echo, conference.prefix),
                         ("::1", "echotest", "room-"))
        self.assertEqual((conference.max_participants, conference.mute_digit, conference.record),
                         (10, "#", True))

    def test_errorsTogether(self):
        """
        Bad values are all reported, each naming the section and key.
        """
        error = self.assertRaises(
            ConfigError, config_from_string,
            "[conference]\nmedia_address = pbx.example.test\nmute_digit = 12\nprefix = a b\n"
            "max_participants = 1\n",
        )
        text = "\n".join(error.errors)
        for key in ("media_address", "mute_digit", "prefix", "max_participants"):
            self.assertIn("[conference] %s:" % (key,), text)

    def test_nothingToServe(self):
        """
        A conference service with neither echo nor rooms is refused.
        """
        error = self.assertRaises(ConfigError, config_from_string, "[conference]\necho =\nprefix =\n")
        self.assertIn("[conference] prefix: echo and prefix cannot both be empty", error.errors[0])

    def test_proxy(self):
        """
        The rooms' outbound proxy is a sip or sips URI, or empty.
        """
        self.assertEqual(config_from_string("[conference]\nproxy = sip:pbx.example.test;lr\n")
                         .conference.proxy, "sip:pbx.example.test;lr")
        error = self.assertRaises(ConfigError, config_from_string, "[conference]\nproxy = http://pbx\n")
        self.assertIn("[conference] proxy:", error.errors[0])

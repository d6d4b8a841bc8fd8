"""
Tests for L{appliance.rtsp.service} and the C{[rtsp]} configuration.
"""

import os
import socket

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from appliance.config import ConfigError, RTSPConfig, config_from_string
from appliance.rtsp.service import RTSPService
from appliance.sip.service import ListenError
from appliance.stats import Statistics
from appliance.tap import ApplianceService


class ConfigTests(SynchronousTestCase):
    """
    The C{[rtsp]} section of the configuration contract.
    """

    def test_defaults(self):
        """
        Without an [rtsp] section the server listens on tcp:8554 with RTP
        ports 30000-30999, digest authentication and a 60 s timeout, and
        the rtsp service runs by default, right after sip.
        """
        config = config_from_string("")
        self.assertEqual(config.rtsp, RTSPConfig())
        self.assertEqual((config.rtsp.listen.kind, config.rtsp.listen.port), ("tcp", 8554))
        self.assertEqual(config.rtsp.rtp_ports, (30000, 30999))
        self.assertEqual(config.appliance.services[:2], ("sip", "rtsp"))

    def test_values(self):
        """
        Every key is read with its type.
        """
        config = config_from_string(
            "[appliance]\nservices = rtsp\n[rtsp]\nlisten = tcp:9554:interface=127.0.0.1\n"
            "rtp_ports = 40000-40099\nurl = rtsp://vm.example.test:9554/\nauth = none\n"
            "session_timeout = 30\nmax_sessions_per_client = 4\nmax_header_size = 4096\n"
            "max_headers = 32\nmax_body_size = 2048\n"
        )
        self.assertEqual(config.rtsp.listen.interface, "127.0.0.1")
        self.assertEqual(config.rtsp.rtp_ports, (40000, 40099))
        self.assertEqual(config.rtsp.url, "rtsp://vm.example.test:9554/")
        self.assertEqual((config.rtsp.auth, config.rtsp.session_timeout), ("none", 30))
        self.assertEqual(config.appliance.services, ("rtsp",))

    def test_errorsTogether(self):
        """
        Bad values are all reported, each with its key.
        """
        error = self.assertRaises(ConfigError, config_from_string,
                                  "[rtsp]\nlisten = udp:1\nrtp_ports = 9-3\nurl = http://x/\n"
                                  "auth = basic\nsession_timeout = 0\ncolour = red\n")
        text = str(error)
        for key in ("listen", "rtp_ports", "url", "auth", "session_timeout", "colour"):
            self.assertIn("[rtsp] %s:" % (key,), text)

    def test_tapWiresRTSP(self):
        """
        The appliance tree has a named rtsp service with its statistics.
        """
        config = config_from_string("[appliance]\nservices = sip rtsp\ndata_dir = %s\n" % (self.mktemp(),))
        root = ApplianceService(config, MemoryReactor())
        self.assertEqual(root.getServiceNamed("rtsp").name, "rtsp")
        self.assertIn("sessions.active", root.stats["rtsp"].snapshot())


class ServiceTests(TestCase):
    """
    Binding and stopping on the real reactor.
    """

    def makeService(self, port=0):
        config = RTSPConfig(listen=config_from_string(
            "[rtsp]\nlisten = tcp:%d:interface=127.0.0.1\n" % (port,)).rtsp.listen)
        return RTSPService(config, reactor, Statistics("rtsp"), os.path.abspath(self.mktemp()),
                           None, ("example.test",), lambda d: d)

    def test_listenAndStop(self):
        """
        The service binds in privilegedStartService, answers OPTIONS, and
        stops listening when stopped.
        """
        service = self.makeService()
        service.privilegedStartService()
        service.startService()
        port = service.port.getHost().port
        done = Deferred()

        def ask():
            client = socket.create_connection(("127.0.0.1", port), timeout=2)
            client.setblocking(False)
            client.sendall(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
            received = []

            def poll():
                try:
                    received.append(client.recv(4096))
                except BlockingIOError:
                    reactor.callLater(0.01, poll)
                    return
                client.close()
                done.callback(received[0])

            poll()

        reactor.callLater(0, ask)
        done.addCallback(lambda answer: self.assertTrue(answer.startswith(b"RTSP/1.0 200 OK\r\n")))
        done.addCallback(lambda _: service.stopService())
        return done

    def test_listenError(self):
        """
        A port that cannot be bound raises L{ListenError} naming it.
        """
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        self.addCleanup(taken.close)
        service = self.makeService(taken.getsockname()[1])
        error = self.assertRaises(ListenError, service.privilegedStartService)
        self.assertIn("[rtsp] listen", str(error))

"""
The RTSP server's protocol and error paths on raw sockets, through the real
twistd appliance on 127.0.0.1: every refusal is checked, and after each one
another client is still served.
"""

import os
import socket

from appliance.media import rtp
from appliance.rtsp import message
from tests.integration.harness import LOOPBACK, ApplianceTestCase
from tests.integration.test_rtsp_harness import RTSPClient, SharedRTSPAppliance, testSignal

_appliance = SharedRTSPAppliance()
SIGNAL = testSignal(1)


class ProtocolTests(ApplianceTestCase):
    """
    Raw RTSP exchanges with the appliance.
    """

    def setUp(self):
        self.appliance = _appliance.get()
        self.watchAppliance(self.appliance)
        self.since = self.appliance.logSize()
        self.appliance.store("/bob/inbox/1.au", SIGNAL)
        self.clients = []

    def tearDown(self):
        for client in self.clients:
            client.close()
        self.assertNoTracebacks(self.appliance, self.since)
        self.assertAlive(self.appliance)

    def client(self, user="bob"):
        client = RTSPClient(self.appliance.rtspPort, user)
        self.clients.append(client)
        return client

    def url(self, path="/bob/inbox/1.au"):
        return self.appliance.base + path

    def assertStillServes(self):
        """
        A new client still gets its DESCRIBE answered.
        """
        client = self.client()
        answer = client.request("DESCRIBE", self.url())
        self.assertEqual(answer.code, 200)

    def rawExchange(self, data):
        """
        Send raw bytes on a new connection; return the answer and whether
        the server closed the connection afterwards.
        """
        client = self.client()
        client.send(data)
        answer = client.nextResponse(5)
        closed = client.frames(1.0) == [] and client.closed
        return answer, closed

    def test_garbage(self):
        """
        Bytes that are not RTSP get 400 and the connection is closed.
        """
        answer, closed = self.rawExchange(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
        self.assertEqual(answer.code, 400)
        self.assertTrue(closed)
        self.assertStillServes()

    def test_versionNotSupported(self):
        """
        RTSP/2.0 gets 505 with the request's CSeq.
        """
        answer, _ = self.rawExchange(b"OPTIONS * RTSP/2.0\r\nCSeq: 9\r\n\r\n")
        self.assertEqual((answer.code, answer.headers.get("CSeq")), (505, "9"))
        self.assertStillServes()

    def test_oversizedHeaders(self):
        """
        A header block over the limit gets 400 before it ends.
        """
        answer, closed = self.rawExchange(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX-Big: " + b"a" * 20000)
        self.assertEqual(answer.code, 400)
        self.assertTrue(closed)
        self.assertStillServes()

    def test_tooManyHeaders(self):
        """
        More header fields than allowed get 400.
        """
        answer, _ = self.rawExchange(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n" + b"X: y\r\n" * 100 + b"\r\n")
        self.assertEqual(answer.code, 400)
        self.assertStillServes()

    def test_errorStatuses(self):
        """
        404 (unknown message, traversal), 454, 455, 459, 461, 501 and 551
        on one connection, which stays usable throughout.
        """
        client = self.client()
        cases = [
            (("FROB", self.url()), 501),
            (("DESCRIBE", self.url(), [("Require", "funky")]), 551),
            (("DESCRIBE", self.url("/bob/inbox/none.au")), 404),
            (("DESCRIBE", self.url("/bob/%2e%2e/%2e%2e/%2e%2e/etc/passwd")), 404),
            (("DESCRIBE", self.url("/bob/inbox/../../../../etc/passwd")), 404),
            (("DESCRIBE", self.url("//etc/passwd")), 404),
            (("PLAY", self.url()), 454),
            (("PLAY", self.url(), [("Session", "12345678")]), 454),
            (("SETUP", self.url(), [("Transport", "RTP/AVP;multicast")]), 461),
            (("SETUP", self.url(), [("Transport", "RTP/SAVP;unicast;client_port=5000-5001")]), 461),
        ]
        for args, status in cases:
            self.assertEqual(client.request(*args).code, status, args)
        setup = client.request("SETUP", self.url() + "/trackID=0",
                               [("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")])
        self.assertEqual(setup.code, 200)
        session = setup.headers.get("Session").split(";")[0]
        self.assertEqual(client.request("RECORD", self.url(), [("Session", session)]).code, 455)
        self.assertEqual(client.request("SETUP", self.url(), [
            ("Session", session), ("Transport", "RTP/AVP/TCP;interleaved=2-3")]).code, 459)
        self.assertEqual(client.request("OPTIONS", "*").code, 200)
        self.assertEqual(client.request("TEARDOWN", self.url(), [("Session", session)]).code, 200)
        self.assertStillServes()

    def test_authentication(self):
        """
        No credentials or a wrong password give 401 with a digest
        challenge; another user's mailbox gives 403.
        """
        anonymous = self.client(user=None)
        answer = anonymous.request("DESCRIBE", self.url())
        self.assertEqual(answer.code, 401)
        self.assertTrue(answer.headers.get("WWW-Authenticate").startswith("Digest "))
        alice = self.client("alice")
        self.assertEqual(alice.request("DESCRIBE", self.url()).code, 403)
        self.assertEqual(alice.request("DELETE", self.url()).code, 403)
        self.assertTrue(os.path.exists(self.appliance.mediaFile("/bob/inbox/1.au")))
        self.assertStillServes()

    def test_interleavedPlay(self):
        """
        A raw interleaved PLAY gets every packet, starting with the seq and
        rtptime of RTP-Info, RTCP on the odd channel ending with a BYE, and
        keep-alives are answered meanwhile.
        """
        client = self.client()
        client.request("DESCRIBE", self.url())
        setup = client.request("SETUP", self.url() + "/trackID=0",
                               [("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")])
        session = setup.headers.get("Session").split(";")[0]
        play = client.request("PLAY", self.url() + "/", [("Session", session), ("Range", "npt=0.000-")])
        self.assertEqual(play.code, 200)
        info = dict(p.split("=", 1) for p in play.headers.get("RTP-Info").split(";"))
        self.assertEqual(client.request("GET_PARAMETER", self.url(), [("Session", session)]).code, 200)
        frames = client.frames(1.6)
        packets = [rtp.parseRTP(f.data) for f in frames if f.channel == 0]
        self.assertEqual((packets[0].sequence, packets[0].timestamp), (int(info["seq"]), int(info["rtptime"])))
        self.assertEqual(b"".join(p.payload for p in packets), SIGNAL)
        self.assertIn(rtp.RTCP_BYE, rtp.rtcpTypes([f.data for f in frames if f.channel == 1][-1]))

    def test_udpPortsFromRange(self):
        """
        A UDP SETUP echoes the client ports and gives server ports from the
        configured range; PLAY sends RTP there.
        """
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.bind((LOOPBACK, 0))
        self.addCleanup(receiver.close)
        port = receiver.getsockname()[1]
        client = self.client()
        setup = client.request("SETUP", self.url(), [
            ("Transport", "RTP/AVP;unicast;client_port=%d-%d" % (port, port + 1))])
        transport = setup.headers.get("Transport")
        self.assertIn("client_port=%d-%d" % (port, port + 1), transport)
        spec = message.parseTransport(transport.replace("server_port", "client_port", 1))[0]
        low, high = self.appliance.rtpPorts
        self.assertTrue(low <= spec.clientPorts[0] <= high, transport)
        session = setup.headers.get("Session").split(";")[0]
        client.request("PLAY", self.url(), [("Session", session)])
        receiver.settimeout(3)
        packet = rtp.parseRTP(receiver.recv(2048))
        self.assertEqual(len(packet.payload), 160)
        client.request("TEARDOWN", self.url(), [("Session", session)])

    def test_delete(self):
        """
        DELETE removes a message; afterwards it is 404.
        """
        self.appliance.store("/bob/inbox/del.au", SIGNAL)
        client = self.client()
        self.assertEqual(client.request("DELETE", self.url("/bob/inbox/del.au")).code, 200)
        self.assertFalse(os.path.exists(self.appliance.mediaFile("/bob/inbox/del.au")))
        self.assertEqual(client.request("DELETE", self.url("/bob/inbox/del.au")).code, 404)
        self.assertStillServes()

    def test_setupRecordTeardownDeletes(self):
        """
        SETUP with mode=record then TEARDOWN without RECORD removes the
        message.
        """
        self.appliance.store("/bob/inbox/td.au", SIGNAL)
        client = self.client()
        setup = client.request("SETUP", self.url("/bob/inbox/td.au"), [
            ("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record")])
        self.assertEqual(setup.code, 200)
        session = setup.headers.get("Session").split(";")[0]
        self.assertEqual(client.request("TEARDOWN", self.url("/bob/inbox/td.au"), [("Session", session)]).code, 200)
        self.assertFalse(os.path.exists(self.appliance.mediaFile("/bob/inbox/td.au")))

    def test_droppedRecordingKept(self):
        """
        A recording whose connection drops without TEARDOWN keeps every
        packet received.
        """
        client = self.client()
        path = "/bob/inbox/drop.au"
        sdp = b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n"
        self.assertEqual(client.request("ANNOUNCE", self.url(path), [("Content-Type", "application/sdp")], sdp).code, 200)
        setup = client.request("SETUP", self.url(path), [
            ("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record")])
        session = setup.headers.get("Session").split(";")[0]
        self.assertEqual(client.request("RECORD", self.url(path), [("Session", session)]).code, 200)
        for index in range(50):
            packet = rtp.RTPPacket(0, index, index * 160, 42, SIGNAL[index * 160 : (index + 1) * 160])
            client.send(message.frame(0, packet.toBytes()))
        client.request("GET_PARAMETER", self.url(path), [("Session", session)])
        client.close()
        self.assertEqual(self.appliance.stored(path), SIGNAL)

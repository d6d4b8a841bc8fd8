"""
Tests for L{appliance.rtsp.server} and L{appliance.rtsp.session}, on a
fake clock and fake sockets.
"""

import os

from twisted.internet import error as netError
from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.internet.address import IPv4Address
from twisted.trial.unittest import SynchronousTestCase

from appliance.config import RTSPConfig
from appliance.media import audiofile, rtp
from appliance.rtsp import message
from appliance.rtsp.auth import DigestAuthenticator, authorizationFor
from appliance.rtsp.server import RTSPServer
from appliance.rtsp.session import PortAllocator
from appliance.rtsp.store import MediaStore
from appliance.stats import Statistics
from appliance.storage.users import digestHA1

BASE = "rtsp://127.0.0.1:8554"
MESSAGE = bytes((i * 3) & 0xFF for i in range(8000))  # one second


class FakeUDPPort:
    def __init__(self, reactor, port, protocol):
        self.reactor, self.port, self.protocol = reactor, port, protocol
        self.written = []

    def getHost(self):
        return IPv4Address("UDP", "127.0.0.1", self.port)

    def write(self, data, address):
        self.written.append((data, address))

    def stopListening(self):
        del self.reactor.udp[self.port]


class FakeReactor(Clock):
    """
    A clock that also binds fake UDP ports (port 30002 is taken).
    """

    def __init__(self):
        Clock.__init__(self)
        self.udp = {}

    def listenUDP(self, port, protocol, interface=""):
        if port in self.udp or port == 30002:
            raise netError.CannotListenError(interface, port, OSError("in use"))
        self.udp[port] = FakeUDPPort(self, port, protocol)
        return self.udp[port]


class FakeUsers:
    def digestHash(self, user, realm, algorithm):
        passwords = {"bob": "secret", "alice": "wonder"}
        name = user.partition("@")[0]
        if realm != "example.test" or name not in passwords:
            return succeed(None)
        return succeed(digestHA1(user, realm, passwords[name]))


class ServerTestCase(SynchronousTestCase):
    """
    A server with one stored message, C{/bob/inbox/1.au}.
    """

    auth = True
    config = RTSPConfig(max_sessions_per_client=3)

    def setUp(self):
        self.clock = FakeReactor()
        self.clock.advance(100000)
        self.stats = Statistics("rtsp")
        self.store = MediaStore(os.path.abspath(self.mktemp()))
        media = self.store.resolve("/bob/inbox/1.au")
        self.store.openForRecord(media, "PCMU").close()
        audiofile.writeFile(media.filename, MESSAGE)
        self.pacer = rtp.Pacer(self.clock)
        self.server = RTSPServer(
            self.config, self.clock, self.store, self.stats, self.pacer,
            PortAllocator(self.clock, 30000, 30009, "127.0.0.1"),
            authenticator=DigestAuthenticator(FakeUsers(), self.clock) if self.auth else None,
            domains=("example.test",),
        )
        self.cseq = 0
        self.connection, self.transport = self.connect()
        self.user = ("bob", "secret")

    def tearDown(self):
        self.server.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def connect(self):
        connection = self.server.buildProtocol(None)
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000),
                                    hostAddress=IPv4Address("TCP", "127.0.0.1", 8554))
        connection.makeConnection(transport)
        return connection, transport

    def raw(self, data, connection=None):
        """
        Send raw bytes and parse what comes back (responses and frames).
        """
        connection, transport = connection or (self.connection, self.transport)
        transport.clear()
        connection.dataReceived(data)
        return message.StreamParser(maxBody=10**6).feed(transport.value())

    def request(self, method, path="/bob/inbox/1.au", headers=(), body=b"", connection=None, auth=True):
        self.cseq += 1
        uri = path if path == "*" or "://" in path else BASE + path
        lines = ["%s %s RTSP/1.0" % (method, uri), "CSeq: %d" % (self.cseq,)]
        lines += ["%s: %s" % h for h in headers]
        if body:
            lines.append("Content-Length: %d" % (len(body),))
        data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        items = self.raw(data, connection)
        answer = [i for i in items if isinstance(i, message.Response)][0]
        if answer.code == 401 and auth and self.user:
            challenge = answer.headers.get("WWW-Authenticate")
            header = authorizationFor(challenge, method, uri, *self.user)
            return self.request(method, path, list(headers) + [("Authorization", header)], body,
                                connection, auth=False)
        self.assertEqual(answer.headers.get("CSeq"), str(self.cseq))
        return answer

    def setup(self, transport="RTP/AVP/TCP;unicast;interleaved=0-1", path="/bob/inbox/1.au/trackID=0"):
        answer = self.request("SETUP", path, [("Transport", transport)])
        self.assertEqual(answer.code, 200, answer)
        return answer, answer.headers.get("Session").split(";")[0]

    def frames(self, seconds):
        self.transport.clear()
        for _ in range(int(seconds / 0.02) + 1):
            self.clock.advance(0.02)
        return [i for i in message.StreamParser().feed(self.transport.value())
                if isinstance(i, message.InterleavedFrame)]


class ProtocolTests(ServerTestCase):
    """
    Methods, sessions and playing (RFC 2326 section 10).
    """

    def test_options(self):
        """
        OPTIONS lists every supported method and needs no credentials.
        """
        answer = self.request("OPTIONS", "*", auth=False)
        self.assertEqual(answer.code, 200)
        self.assertIn("DELETE", answer.headers.get("Public"))
        self.assertIn("GET_PARAMETER", answer.headers.get("Public"))

    def test_describe(self):
        """
        DESCRIBE gives an SDP with the control, the range and the rtpmap,
        and a Content-Base with a trailing slash.
        """
        answer = self.request("DESCRIBE")
        self.assertEqual(answer.code, 200)
        self.assertEqual(answer.headers.get("Content-Base"), BASE + "/bob/inbox/1.au/")
        self.assertIn(b"a=range:npt=0-1.000", answer.body)
        self.assertIn(b"a=rtpmap:0 PCMU/8000", answer.body)

    def test_authentication(self):
        """
        Without credentials the answer is 401 with a digest challenge; with
        a wrong password 401 again; another user's mailbox is 403.
        """
        answer = self.request("DESCRIBE", auth=False)
        self.assertEqual(answer.code, 401)
        self.assertIn('realm="example.test"', answer.headers.get("WWW-Authenticate"))
        self.user = ("bob", "wrong")
        self.assertEqual(self.request("DESCRIBE").code, 401)
        self.user = ("alice", "wonder")
        self.assertEqual(self.request("DESCRIBE").code, 403)
        self.user = ("bob", "secret")
        self.assertEqual(self.request("DESCRIBE").code, 200)

    def test_playInterleaved(self):
        """
        SETUP over TCP and PLAY send 20 ms packets on the interleaved
        channels whose first seq / rtptime are those of RTP-Info, then an
        RTCP BYE on the odd channel.
        """
        answer, session = self.setup()
        self.assertIn("interleaved=0-1", answer.headers.get("Transport"))
        self.assertIn(";timeout=60", answer.headers.get("Session"))
        play = self.request("PLAY", "/bob/inbox/1.au/", [("Session", session), ("Range", "npt=0-")])
        self.assertEqual(play.headers.get("Range"), "npt=0.000-1.000")
        info = dict(p.split("=", 1) for p in play.headers.get("RTP-Info").split(";"))
        self.assertEqual(info["url"], BASE + "/bob/inbox/1.au/trackID=0")
        frames = self.frames(1.2)
        packets = [rtp.parseRTP(f.data) for f in frames if f.channel == 0]
        self.assertEqual(len(packets), 50)
        self.assertEqual((packets[0].sequence, packets[0].timestamp), (int(info["seq"]), int(info["rtptime"])))
        self.assertEqual(b"".join(p.payload for p in packets), MESSAGE)
        rtcp = [f.data for f in frames if f.channel == 1]
        self.assertIn(rtp.RTCP_BYE, rtp.rtcpTypes(rtcp[-1]))
        self.assertEqual(self.request("TEARDOWN", headers=[("Session", session)]).code, 200)

    def test_playUDP(self):
        """
        SETUP over UDP echoes the client ports and gives a free server port
        pair from the range; packets go to the client's RTP port.
        """
        answer, session = self.setup("RTP/AVP;unicast;client_port=5000-5001")
        transport = answer.headers.get("Transport")
        self.assertIn("client_port=5000-5001", transport)
        self.assertIn("server_port=30000-30001", transport)
        _, second = self.setup("RTP/AVP;unicast;client_port=5002-5003")
        self.assertIn(30004, self.clock.udp)
        self.request("PLAY", headers=[("Session", session)])
        self.clock.advance(0)
        self.clock.advance(0.1)
        sent = self.clock.udp[30000].written
        self.assertEqual({address for _, address in sent}, {("127.0.0.1", 5000)})
        self.assertEqual(len(sent), 6)
        self.request("TEARDOWN", headers=[("Session", session)])
        self.assertNotIn(30000, self.clock.udp)

    def test_pauseSeek(self):
        """
        PAUSE stops the packets and reports the position; PLAY with a new
        Range seeks there, continuing the sequence numbers.
        """
        _, session = self.setup()
        self.request("PLAY", headers=[("Session", session)])
        first = self.frames(0.2)
        pause = self.request("PAUSE", headers=[("Session", session)])
        self.assertEqual(pause.code, 200)
        self.assertEqual(self.frames(0.2), [])
        play = self.request("PLAY", headers=[("Session", session), ("Range", "npt=0.5-")])
        self.assertEqual(play.headers.get("Range"), "npt=0.500-1.000")
        packets = [rtp.parseRTP(f.data) for f in self.frames(1) if f.channel == 0]
        self.assertEqual(b"".join(p.payload for p in packets), MESSAGE[4000:])
        lastBefore = [rtp.parseRTP(f.data) for f in first if f.channel == 0][-1]
        self.assertEqual(packets[0].sequence, (lastBefore.sequence + 1) & 0xFFFF)

    def test_keepAliveAndTimeout(self):
        """
        GET_PARAMETER and SET_PARAMETER keep a session alive; without them
        it ends after the timeout and its id is unknown (454).
        """
        _, session = self.setup()
        for method in ("GET_PARAMETER", "SET_PARAMETER", "GET_PARAMETER"):
            self.clock.advance(50)
            self.assertEqual(self.request(method, "*", [("Session", session)]).code, 200)
        self.clock.advance(61)
        self.assertEqual(self.request("PLAY", headers=[("Session", session)]).code, 454)
        self.assertEqual(self.stats.get("sessions.timedout"), 1)

    def test_connectionLostEndsInterleaved(self):
        """
        Closing the connection ends its interleaved sessions.
        """
        self.setup()
        self.connection.connectionLost(None)
        self.assertEqual(self.server.sessions, {})


class RecordTests(ServerTestCase):
    """
    ANNOUNCE, RECORD and the two ways of deleting (RFC 2326 section 10.11).
    """

    def sdp(self, withMap=True):
        text = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=audio 0 RTP/AVP %s\r\n"
        if withMap:
            return (text % "96" + "a=rtpmap:96 PCMA/8000\r\na=control:streamid=0\r\n").encode()
        return (text % "0").encode()

    def test_recordInterleaved(self):
        """
        ANNOUNCE (dynamic PCMA), SETUP mode=record, RECORD and interleaved
        RTP store the message as mu-law, in order, written as it arrives.
        """
        path = "/bob/inbox/2.au"
        self.assertEqual(self.request("ANNOUNCE", path, [("Content-Type", "application/sdp")],
                                      self.sdp()).code, 200)
        answer, session = self.setup("RTP/AVP/TCP;unicast;interleaved=0-1;mode=record",
                                     path + "/streamid=0")
        self.assertIn('mode="RECORD"', answer.headers.get("Transport"))
        self.assertEqual(self.request("RECORD", path, [("Session", session)]).code, 200)
        alaw = b"\xd5" * 160
        frames = [message.frame(0, rtp.RTPPacket(96, seq, seq * 160, 7, alaw).toBytes()) for seq in (1, 3, 2)]
        self.raw(b"".join(frames))
        media = self.store.resolve(path)
        data, _ = audiofile.readFile(media.filename)
        self.assertEqual(len(data), 480)
        self.assertEqual(self.request("TEARDOWN", path, [("Session", session)]).code, 200)
        self.assertEqual(audiofile.readFile(media.filename)[0], b"\xfe" * 480)
        self.assertEqual(self.stats.get("recordings"), 1)

    def test_recordUDPWithoutRtpmap(self):
        """
        An SDP with a static payload type and no rtpmap is accepted, and
        RTP over UDP from the client's host is recorded.
        """
        path = "/bob/inbox/3.au"
        self.request("ANNOUNCE", path, [("Content-Type", "application/sdp")], self.sdp(False))
        answer, session = self.setup("RTP/AVP;unicast;client_port=6000-6001;mode=record", path)
        self.request("RECORD", path, [("Session", session)])
        port = self.clock.udp[30000]
        port.protocol.datagramReceived(rtp.RTPPacket(0, 9, 0, 1, b"\x11" * 160).toBytes(), ("127.0.0.1", 6000))
        port.protocol.datagramReceived(rtp.RTPPacket(0, 10, 160, 1, b"\x22" * 160).toBytes(), ("10.0.0.1", 6000))
        self.request("TEARDOWN", path, [("Session", session)])
        self.assertEqual(audiofile.readFile(self.store.resolve(path).filename)[0], b"\x11" * 160)

    def test_setupRecordTeardownDeletes(self):
        """
        SETUP with mode=record followed by TEARDOWN without RECORD deletes
        the message.
        """
        media = self.store.resolve("/bob/inbox/1.au")
        _, session = self.setup("RTP/AVP/TCP;interleaved=0-1;mode=\"Record\"")
        self.request("TEARDOWN", headers=[("Session", session)])
        self.assertFalse(self.store.exists(media))
        self.assertEqual(self.stats.get("deletions"), 1)

    def test_delete(self):
        """
        DELETE removes the message; a second DELETE gives 404.
        """
        self.assertEqual(self.request("DELETE").code, 200)
        self.assertEqual(self.request("DELETE").code, 404)
        self.assertEqual(self.request("DESCRIBE").code, 404)


class ErrorTests(ServerTestCase):
    """
    Every error path, each leaving the server usable.
    """

    def assertStillServes(self):
        connection = self.connect()
        self.assertEqual(self.request("DESCRIBE", connection=connection).code, 200)

    def test_malformedClosesConnection(self):
        """
        A malformed request gets 400 and the connection is closed.
        """
        [answer] = self.raw(b"GARBAGE\r\nCSeq: 4\r\n\r\n")
        self.assertEqual((answer.code, answer.headers.get("CSeq")), (400, "4"))
        self.assertTrue(self.transport.disconnecting)
        self.assertStillServes()

    def test_versionNotSupported(self):
        """
        RTSP/2.0 gets 505.
        """
        [answer] = self.raw(b"OPTIONS * RTSP/2.0\r\nCSeq: 1\r\n\r\n")
        self.assertEqual(answer.code, 505)
        self.assertStillServes()

    def test_oversizedHeaders(self):
        """
        A header block over the limit gets 400.
        """
        [answer] = self.raw(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX: " + b"a" * 9000)
        self.assertEqual(answer.code, 400)
        self.assertStillServes()

    def test_statusCodes(self):
        """
        501 for unknown methods, 551 for Require, 404 for unknown files and
        traversal, 454 / 455 / 459 / 461 / 457 / 453 for session misuse.
        """
        self.assertEqual(self.request("FROB").code, 501)
        self.assertEqual(self.request("DESCRIBE", headers=[("Require", "x")]).code, 551)
        self.assertEqual(self.request("DESCRIBE", "/bob/inbox/9.au").code, 404)
        self.assertEqual(self.request("DESCRIBE", "/bob/%2e%2e/%2e%2e/etc/passwd").code, 404)
        self.assertEqual(self.request("PLAY").code, 454)
        self.assertEqual(self.request("PLAY", headers=[("Session", "nope")]).code, 454)
        self.assertEqual(self.request("SETUP", headers=[("Transport", "RTP/AVP;multicast")]).code, 461)
        self.assertEqual(self.request("SETUP", headers=[("Transport", "RAW/RAW/UDP;unicast")]).code, 461)
        self.assertEqual(self.request("SETUP").code, 461)
        _, session = self.setup()
        self.assertEqual(self.request("RECORD", headers=[("Session", session)]).code, 455)
        self.assertEqual(self.request("SETUP", headers=[
            ("Session", session), ("Transport", "RTP/AVP/TCP;interleaved=2-3")]).code, 459)
        self.assertEqual(self.request("PLAY", headers=[("Session", session), ("Range", "npt=5-")]).code, 457)
        self.assertEqual(self.request("GET_PARAMETER", "*", [("Session", session)], b"position\r\n").code, 451)
        self.setup()
        self.setup()
        self.assertEqual(self.request("SETUP", headers=[("Transport", "RTP/AVP/TCP")]).code, 453)
        self.assertStillServes()

    def test_statistics(self):
        """
        Requests, errors (not counting digest challenges) and sessions are
        counted.
        """
        self.setup()
        self.request("FROB")
        snapshot = self.stats.snapshot()
        self.assertEqual(snapshot["sessions.active"], 1)
        self.assertEqual(snapshot["requests.in.SETUP"], 2)
        self.assertEqual(snapshot["errors"], 1)
        self.assertEqual(snapshot["auth.challenges"], 1)


class NoAuthTests(ServerTestCase):
    """
    With C{auth = none} the store is served without credentials.
    """

    auth = False

    def test_describe(self):
        """
        DESCRIBE succeeds without an Authorization header.
        """
        self.user = None
        self.assertEqual(self.request("DESCRIBE").code, 200)


class OperatorTests(ServerTestCase):
    """
    Operators play everyone's messages but change only their own.
    """

    config = RTSPConfig(operators=("alice",))

    def test_operatorPlays(self):
        """
        An operator describes, sets up for playing and plays another user's
        message.
        """
        self.user = ("alice", "wonder")
        self.assertEqual(self.request("DESCRIBE").code, 200)
        _, session = self.setup()
        self.assertEqual(self.request("PLAY", headers=[("Session", session)]).code, 200)
        self.assertEqual(self.request("TEARDOWN", headers=[("Session", session)]).code, 200)
        self.assertTrue(self.store.exists(self.store.resolve("/bob/inbox/1.au")))

    def test_operatorCannotChange(self):
        """
        An operator cannot delete, announce or set up for recording in
        another user's mailbox (403).
        """
        self.user = ("alice", "wonder")
        self.assertEqual(self.request("DELETE").code, 403)
        self.assertEqual(self.request("ANNOUNCE", body=b"v=0\r\nm=audio 0 RTP/AVP 0\r\n").code, 403)
        self.assertEqual(self.request("SETUP", headers=[
            ("Transport", "RTP/AVP/TCP;interleaved=0-1;mode=record")]).code, 403)
        self.assertTrue(self.store.exists(self.store.resolve("/bob/inbox/1.au")))

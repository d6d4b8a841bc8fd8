"""
Tests for L{appliance.sip.service} and L{appliance.sip.dispatcher}: the SIP
service in this process, on real loopback sockets.
"""

from twisted.internet import reactor, ssl
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.endpoints import (
    SSL4ClientEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    connectProtocol,
)
from twisted.internet.protocol import DatagramProtocol, Protocol
from twisted.trial.unittest import TestCase

from appliance.config import config_from_string
from appliance.sip.message import StreamParser, parseMessage
from appliance.tap import ApplianceService

REQUEST = (
    "{method} {uri} SIP/2.0\r\n"
    "Via: SIP/2.0/{transport} 127.0.0.1:{port};rport;branch=z9hG4bK{branch}\r\n"
    "From: <sip:tester@client.test>;tag=t{branch}\r\n"
    "To: <{uri}>\r\n"
    "Call-ID: {branch}@test\r\n"
    "CSeq: 1 {cseqMethod}\r\n"
    "Max-Forwards: 70\r\n"
    "{extra}"
    "Content-Length: 0\r\n\r\n"
)

_counter = iter(range(10**9))


def request(method="OPTIONS", uri="sip:example.test", transport="UDP", port=9,
            extra="", cseqMethod=None):
    return REQUEST.format(
        method=method, uri=uri, transport=transport, port=port, extra=extra,
        branch=next(_counter), cseqMethod=cseqMethod or method,
    ).encode("utf-8")


class UDPClient(DatagramProtocol):
    def __init__(self):
        self.waiting = []
        self.received = []

    def datagramReceived(self, data, address):
        if self.waiting:
            self.waiting.pop(0).callback(data)
        else:
            self.received.append(data)

    def next(self, timeout=5):
        if self.received:
            return succeed(self.received.pop(0))
        d = Deferred()
        self.waiting.append(d)
        d.addTimeout(timeout, reactor)
        return d


class StreamClient(Protocol):
    def __init__(self):
        self.parser = StreamParser()
        self.messages = []
        self.waiting = []
        self.raw = b""

    def dataReceived(self, data):
        self.raw += data
        for item in self.parser.feed(data):
            if self.waiting:
                self.waiting.pop(0).callback(item)
            else:
                self.messages.append(item)

    def next(self, timeout=5):
        if self.messages:
            return succeed(self.messages.pop(0))
        d = Deferred()
        self.waiting.append(d)
        d.addTimeout(timeout, reactor)
        return d


class SIPServiceTests(TestCase):
    """
    The running SIP service answers what it should, over UDP, TCP and TLS.
    """

    @inlineCallbacks
    def setUp(self):
        self.dataDir = self.mktemp()
        config = config_from_string(
            "[appliance]\ndata_dir = %s\nservices = sip\n[sip]\ndomains = example.test\n"
            "listen = udp:0:interface=127.0.0.1 tcp:0:interface=127.0.0.1 "
            "tls:0:interface=127.0.0.1\n" % (self.dataDir,)
        )
        self.root = ApplianceService(config, reactor)
        self.root.privilegedStartService()
        self.root.startService()
        self.addCleanup(self.root.stopService)
        self.sip = self.root.getServiceNamed("sip")
        yield self.sip.whenReady()
        self.client = UDPClient()
        self.clientPort = reactor.listenUDP(0, self.client, interface="127.0.0.1")
        self.addCleanup(self.clientPort.stopListening)

    def send(self, data):
        self.client.transport.write(data, self.sip.addressOf("udp"))
        return self.client.next().addCallback(parseMessage)

    def udpRequest(self, **kwargs):
        kwargs.setdefault("port", self.clientPort.getHost().port)
        return self.send(request(**kwargs))

    @inlineCallbacks
    def test_optionsOverUDP(self):
        """
        OPTIONS gets 200 with Allow, Accept and Supported, a To tag, and the
        Via stamped with received and rport.
        """
        response = yield self.udpRequest()
        self.assertEqual(response.code, 200)
        self.assertIn("OPTIONS", response.headers.getAll("Allow"))
        self.assertEqual(response.headers.get("Accept"), "application/sdp")
        self.assertIn("Supported", response.headers)
        self.assertIsNotNone(response.toAddress().tag)
        via = response.vias()[0]
        self.assertEqual((via.received, via.rport), ("127.0.0.1", self.clientPort.getHost().port))
        self.assertEqual(self.sip.stats.get("requests.in.OPTIONS"), 1)
        self.assertEqual(self.sip.stats.get("responses.out.2xx"), 1)

    @inlineCallbacks
    def test_statusCodes(self):
        """
        Each kind of request this server cannot serve yet gets its proper
        status.
        """
        cases = [
            (dict(method="FOO"), 501),
            (dict(method="REGISTER", uri="sip:example.test"), 401),
            (dict(method="REGISTER", uri="sip:elsewhere.test"), 403),
            (dict(method="INVITE", uri="sip:alice@example.test"), 404),
            (dict(method="MESSAGE", uri="sip:bob@elsewhere.test"), 403),
            (dict(method="INVITE", uri="sip:127.0.0.1"), 405),
            (dict(method="SUBSCRIBE", uri="sip:localhost"), 405),
            (dict(method="CANCEL"), 481),
            (dict(extra="Require: teleportation\r\n"), 420),
            (dict(uri="nobodyknows:thisperson"), 416),
            (dict(cseqMethod="INVITE"), 400),
        ]
        for kwargs, status in cases:
            response = yield self.udpRequest(**kwargs)
            self.assertEqual(response.code, status, kwargs)
            if status == 420:
                self.assertEqual(response.headers.get("Unsupported"), "teleportation")
            if status == 405:
                self.assertIn("Allow", response.headers)

    @inlineCallbacks
    def test_badVersion(self):
        """
        A request of another SIP version gets 505.
        """
        data = request(port=self.clientPort.getHost().port).replace(b" SIP/2.0\r\n", b" SIP/7.0\r\n", 1)
        response = yield self.send(data)
        self.assertEqual(response.code, 505)

    @inlineCallbacks
    def test_garbageThenGood(self):
        """
        Garbage and a malformed request do not stop the server answering
        the next request; the malformed one gets 400 with a reason.
        """
        self.client.transport.write(b"\x16\x03\x01 not sip at all", self.sip.addressOf("udp"))
        bad = request(port=self.clientPort.getHost().port).replace(b"CSeq: 1 OPTIONS", b"CSeq: x OPTIONS")
        response = yield self.send(bad)
        self.assertEqual(response.code, 400)
        self.assertNotEqual(response.reason, "")
        response = yield self.udpRequest()
        self.assertEqual(response.code, 200)
        self.assertGreaterEqual(self.sip.stats.get("parse.errors"), 2)

    @inlineCallbacks
    def test_retransmissionAbsorbed(self):
        """
        A retransmitted request gets the same response again from its
        transaction, without a second dispatch.
        """
        data = request(port=self.clientPort.getHost().port)
        first = yield self.send(data)
        second = yield self.send(data)
        self.assertEqual(first.toAddress().tag, second.toAddress().tag)
        self.assertEqual(self.sip.stats.get("requests.in.OPTIONS"), 2)
        self.assertEqual(self.sip.stats.get("responses.out.2xx"), 1)

    @inlineCallbacks
    def test_optionsOverTCP(self):
        """
        OPTIONS over TCP is answered on the same connection, and a keep-alive
        ping gets its pong.
        """
        host, port = self.sip.addressOf("tcp")
        client = StreamClient()
        yield connectProtocol(TCP4ClientEndpoint(reactor, host, port), client)
        self.addCleanup(client.transport.loseConnection)
        client.transport.write(b"\r\n\r\n" + request(transport="TCP"))
        response = yield client.next()
        self.assertEqual(response.code, 200)
        self.assertTrue(client.raw.startswith(b"\r\nSIP/2.0 200"))

    @inlineCallbacks
    def test_optionsOverTLS(self):
        """
        OPTIONS over TLS is answered; the generated certificate verifies for
        the domain.
        """
        host, port = self.sip.addressOf("tls")
        with open(self.root.tlsPaths()[0], "rb") as f:
            authority = ssl.Certificate.loadPEM(f.read())
        options = ssl.optionsForClientTLS("example.test", trustRoot=authority)
        client = StreamClient()
        yield connectProtocol(SSL4ClientEndpoint(reactor, host, port, options), client)
        self.addCleanup(client.transport.loseConnection)
        client.transport.write(request(transport="TLS"))
        response = yield client.next()
        self.assertEqual(response.code, 200)

    @inlineCallbacks
    def test_tcpGarbageClosesOnlyThatConnection(self):
        """
        A framing error closes the offending TCP connection after a 400 when
        the request could be read; another connection is served.
        """
        host, port = self.sip.addressOf("tcp")
        bad = StreamClient()
        yield connectProtocol(TCP4ClientEndpoint(reactor, host, port), bad)
        lost = Deferred()
        bad.connectionLost = lambda reason: lost.callback(None)
        bad.transport.write(request(transport="TCP").replace(b"Content-Length: 0\r\n", b""))
        yield lost.addTimeout(5, reactor)
        good = StreamClient()
        yield connectProtocol(TCP4ClientEndpoint(reactor, host, port), good)
        self.addCleanup(good.transport.loseConnection)
        good.transport.write(request(transport="TCP"))
        response = yield good.next()
        self.assertEqual(response.code, 200)


class IPv6Tests(TestCase):
    """
    The SIP service over IPv6 loopback.
    """

    @inlineCallbacks
    def test_optionsOverIPv6(self):
        """
        OPTIONS over UDP and TCP on ::1 is answered, the Via carrying the
        IPv6 reference.
        """
        config = config_from_string(
            "[appliance]\ndata_dir = %s\nservices = sip\n[sip]\n"
            "listen = udp:0:interface=\\:\\:1 tcp:0:interface=\\:\\:1\n" % (self.mktemp(),)
        )
        root = ApplianceService(config, reactor)
        root.privilegedStartService()
        root.startService()
        self.addCleanup(root.stopService)
        sip = root.getServiceNamed("sip")
        yield sip.whenReady()
        client = UDPClient()
        port = reactor.listenUDP(0, client, interface="::1")
        self.addCleanup(port.stopListening)
        client.transport.write(
            request(port=port.getHost().port).replace(b"127.0.0.1", b"[::1]"),
            sip.addressOf("udp"),
        )
        response = parseMessage((yield client.next()))
        self.assertEqual(response.code, 200)
        self.assertEqual(response.vias()[0].host, "[::1]")
        stream = StreamClient()
        yield connectProtocol(TCP6ClientEndpoint(reactor, "::1", sip.addressOf("tcp")[1]), stream)
        self.addCleanup(stream.transport.loseConnection)
        stream.transport.write(request(transport="TCP").replace(b"127.0.0.1", b"[::1]"))
        response = yield stream.next()
        self.assertEqual(response.code, 200)


class ConnectionLimitServiceTests(TestCase):
    """
    The running service refuses connections beyond [sip] max_connections
    and keeps serving the others.
    """

    @inlineCallbacks
    def test_limit(self):
        """
        With max_connections = 2, a third TCP connection is closed at once,
        while the first two still get answers.
        """
        config = config_from_string(
            "[appliance]\ndata_dir = %s\nservices = sip\n[sip]\nmax_connections = 2\n"
            "listen = tcp:0:interface=127.0.0.1\n" % (self.mktemp(),)
        )
        root = ApplianceService(config, reactor)
        root.privilegedStartService()
        root.startService()
        self.addCleanup(root.stopService)
        sip = root.getServiceNamed("sip")
        yield sip.whenReady()
        host, port = sip.addressOf("tcp")
        clients = []
        for i in range(3):
            client = StreamClient()
            client.lost = Deferred()
            client.connectionLost = lambda reason, client=client: client.lost.callback(None)
            yield connectProtocol(TCP4ClientEndpoint(reactor, host, port), client)
            clients.append(client)
        yield clients[2].lost.addTimeout(5, reactor)
        for client in clients[:2]:
            client.transport.write(request(transport="TCP"))
            response = yield client.next()
            self.assertEqual(response.code, 200)
            client.transport.loseConnection()
            yield client.lost
        self.assertEqual(sip.stats.get("connections.refused"), 1)

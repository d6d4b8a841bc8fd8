"""
Tests for L{appliance.sip.transport}.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from appliance.interfaces import ISIPTransport
from appliance.sip.message import Via, parseMessage
from appliance.sip.transport import (
    StreamTransport,
    UDPTransport,
    normalizeHost,
    responseDestination,
    stampReceived,
)

OPTIONS = (
    b"OPTIONS sip:ping@example.test SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP client.example.test:5070;branch=z9hG4bK%s\r\n"
    b"From: <sip:a@example.test>;tag=1\r\n"
    b"To: <sip:ping@example.test>\r\n"
    b"Call-ID: %s\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Max-Forwards: 70\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def options(n):
    return OPTIONS % (b"%d" % n, b"call-%d" % n)


class RecordingController:
    """
    Records what a transport hands up.
    """

    def __init__(self):
        self.messages = []
        self.errors = []

    def messageReceived(self, message, transport, source):
        self.messages.append((message, transport, source))

    def parseErrorReceived(self, error, transport, source):
        self.errors.append((error, transport, source))


class ViaProcessingTests(SynchronousTestCase):
    """
    RFC 3261 section 18.2.1 and 18.2.2, RFC 3581.
    """

    def test_receivedAddedWhenHostDiffers(self):
        """
        A sent-by naming a host or another address gets received=source.
        """
        via = stampReceived(Via.parse("SIP/2.0/UDP pc33.example.test;branch=z9hG4bK1"),
                            ("192.0.2.4", 5060))
        self.assertEqual((via.received, via.rport), ("192.0.2.4", None))

    def test_nothingAddedWhenSame(self):
        """
        A sent-by that is the source address is left alone.
        """
        original = Via.parse("SIP/2.0/UDP 192.0.2.4:5062;branch=z9hG4bK1")
        self.assertIs(stampReceived(original, ("192.0.2.4", 5062)), original)
        v6 = Via.parse("SIP/2.0/UDP [2001:db8::1];branch=z9hG4bK1")
        self.assertIs(stampReceived(v6, ("2001:db8:0::1", 5062)), v6)

    def test_rportFilled(self):
        """
        An empty rport gets the source port, and received is added even when
        the address is the same (RFC 3581 section 4).
        """
        via = stampReceived(Via.parse("SIP/2.0/UDP 192.0.2.4:5060;rport;branch=z9hG4bK1"),
                            ("192.0.2.4", 40000))
        self.assertEqual((via.received, via.rport), ("192.0.2.4", 40000))

    def test_responseDestination(self):
        """
        Responses go to maddr, else received with rport or the sent-by port,
        else the sent-by.
        """
        cases = [
            ("SIP/2.0/UDP a.test;branch=z9hG4bK1;received=192.0.2.1;rport=4000",
             ("192.0.2.1", 4000)),
            ("SIP/2.0/UDP a.test:5070;branch=z9hG4bK1;received=192.0.2.1", ("192.0.2.1", 5070)),
            ("SIP/2.0/UDP a.test;branch=z9hG4bK1;received=192.0.2.1", ("192.0.2.1", 5060)),
            ("SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bK1", ("192.0.2.9", 5080)),
            ("SIP/2.0/UDP a.test;maddr=239.1.1.1;branch=z9hG4bK1", ("239.1.1.1", 5060)),
            ("SIP/2.0/UDP [2001:db8::1]:5090;branch=z9hG4bK1", ("2001:db8::1", 5090)),
        ]
        for text, expected in cases:
            self.assertEqual(responseDestination(Via.parse(text), "UDP"), expected, text)
        self.assertEqual(
            responseDestination(Via.parse("SIP/2.0/TLS a.test;received=192.0.2.1"), "TLS"),
            ("192.0.2.1", 5061),
        )

    def test_normalizeHost(self):
        """
        IPv4-mapped IPv6 addresses become plain IPv4.
        """
        self.assertEqual(normalizeHost("::ffff:127.0.0.1"), "127.0.0.1")
        self.assertEqual(normalizeHost("2001:db8:0::1"), "2001:db8::1")
        self.assertEqual(normalizeHost("host.test"), "host.test")


class FakeDatagramTransport:
    def __init__(self):
        self.written = []

    def write(self, data, address):
        self.written.append((data, address))

    def getHost(self):
        return IPv4Address("UDP", "127.0.0.1", 5060)


class UDPTransportTests(SynchronousTestCase):
    """
    Datagram framing.
    """

    def setUp(self):
        self.controller = RecordingController()
        self.udp = UDPTransport(self.controller, maxSize=2000)
        self.udp.transport = FakeDatagramTransport()
        self.udp.startProtocol()

    def test_interface(self):
        """
        The UDP transport provides L{ISIPTransport}.
        """
        self.assertTrue(verifyObject(ISIPTransport, self.udp))

    def test_messageHandedUp(self):
        """
        A datagram with a message reaches the controller with its source.
        """
        self.udp.datagramReceived(options(1), ("::ffff:192.0.2.1", 5070))
        [(message, transport, source)] = self.controller.messages
        self.assertEqual((message.method, transport, source), ("OPTIONS", self.udp, ("192.0.2.1", 5070)))

    def test_keepAliveIgnored(self):
        """
        CRLF keep-alives are not messages and not errors.
        """
        self.udp.datagramReceived(b"\r\n\r\n", ("192.0.2.1", 5070))
        self.assertEqual((self.controller.messages, self.controller.errors), ([], []))

    def test_errorsHandedUp(self):
        """
        Garbage and oversized datagrams reach the controller as parse errors,
        oversized ones with status 413.
        """
        self.udp.datagramReceived(b"\x00garbage", ("192.0.2.1", 5070))
        self.udp.datagramReceived(options(2).replace(b"Content-Length: 0\r\n\r\n",
                                                     b"Content-Length: 3000\r\n\r\n" + b"x" * 3000),
                                  ("192.0.2.1", 5070))
        self.assertEqual(len(self.controller.errors), 2)
        self.assertEqual(self.controller.errors[1][0].status, 413)

    def test_sendRequestStampsVia(self):
        """
        A request sent gets our transport and bound address as sent-by,
        keeping its branch.
        """
        request = parseMessage(options(3))
        self.udp.sendRequest(request, ("192.0.2.7", 5060))
        [(data, address)] = self.udp.transport.written
        via = parseMessage(data).vias()[0]
        self.assertEqual((via.transport, via.host, via.port, via.branch),
                         ("UDP", "127.0.0.1", 5060, "z9hG4bK3"))
        self.assertEqual(address, ("192.0.2.7", 5060))


class StreamTests(SynchronousTestCase):
    """
    TCP framing, keep-alives and idle timeout.
    """

    def setUp(self):
        self.clock = Clock()
        self.controller = RecordingController()
        self.factory = StreamTransport(self.controller, self.clock, idleTimeout=30)
        self.connection = self.factory.buildProtocol(None)
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.1", 40000))
        self.connection.makeConnection(self.transport)

    def test_interface(self):
        """
        The stream transport provides L{ISIPTransport}.
        """
        self.assertTrue(verifyObject(ISIPTransport, self.factory))

    def test_pipelinedAndSplit(self):
        """
        Messages split across reads and pipelined in one read all arrive in
        order.
        """
        data = options(1) + options(2) + options(3)
        for i in range(0, len(data), 7):
            self.connection.dataReceived(data[i:i + 7])
        self.assertEqual([m.callId for m, t, s in self.controller.messages],
                         ["call-1", "call-2", "call-3"])
        self.assertEqual(self.controller.messages[0][2], ("192.0.2.1", 40000))

    def test_keepAlivePong(self):
        """
        A CRLF CRLF ping is answered with a CRLF pong (RFC 5626 section
        3.5.1).
        """
        self.connection.dataReceived(b"\r\n\r\n")
        self.assertEqual(self.transport.value(), b"\r\n")

    def test_responseOnSameConnection(self):
        """
        A response to a request from this connection goes back on it.
        """
        self.connection.dataReceived(options(1))
        request = self.controller.messages[0][0]
        from appliance.sip.message import makeResponse

        self.factory.sendResponse(makeResponse(request, 200), ("192.0.2.1", 40000))
        self.assertTrue(self.transport.value().startswith(b"SIP/2.0 200"))

    def test_framingErrorClosesConnection(self):
        """
        A message without Content-Length is an error on a stream, and the
        connection is closed after the controller hears of it.
        """
        self.connection.dataReceived(options(1).replace(b"Content-Length: 0\r\n", b""))
        self.assertEqual(len(self.controller.errors), 1)
        self.assertTrue(self.transport.disconnecting)

    def test_idleTimeout(self):
        """
        A connection silent for the idle timeout is closed; traffic resets
        the timer.
        """
        self.clock.advance(20)
        self.connection.dataReceived(b"\r\n\r\n")
        self.clock.advance(20)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(10)
        self.assertTrue(self.transport.disconnecting)
        self.connection.connectionLost(None)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.factory.connectionCount, 0)


class ConnectionLimitTests(SynchronousTestCase):
    """
    A stream port keeps at most C{maxConnections} connections.
    """

    def test_refusedWhenFull(self):
        """
        Once the limit is reached, new connections are refused (and counted)
        until one closes.
        """
        clock = Clock()
        factory = StreamTransport(RecordingController(), clock, maxConnections=2)
        connections = []
        for port in (40000, 40001):
            connection = factory.buildProtocol(None)
            connection.makeConnection(
                StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.1", port)))
            connections.append(connection)
        self.assertIsNone(factory.buildProtocol(None))
        self.assertEqual((factory.connectionCount, factory.refused), (2, 1))
        connections[0].connectionLost(None)
        self.assertIsNotNone(factory.buildProtocol(None))
        connections[1].connectionLost(None)
        self.assertEqual(clock.getDelayedCalls(), [])

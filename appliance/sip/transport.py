"""
SIP transports (RFC 3261 section 18): UDP, TCP and TLS, over IPv4 and IPv6.

The protocol classes only frame bytes into messages and hand them on to a
controller (C{controller.messageReceived(message, transport, source)}, or
C{controller.parseErrorReceived(error, transport, source)} for bytes that are
not a message). Going out, they stamp the sent-by of requests and route
responses as section 18.2.2 says. Everything above (validation, stateless
error answers, transactions) is the controller's business.
"""

import functools
import ipaddress
import socket

from twisted.internet import error as netError
from twisted.internet.endpoints import (
    SSL4ClientEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
)
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from zope.interface import implementer

from appliance import logs
from appliance.interfaces import ISIPTransport
from appliance.sip.message import (
    DEFAULT_MAX_SIZE,
    KEEPALIVE_PING,
    ParseError,
    StreamParser,
    Via,
    parseMessage,
)

_log = Logger(observer=logs.observer)

DEFAULT_PORTS = {"UDP": 5060, "TCP": 5060, "TLS": 5061}


@functools.lru_cache(maxsize=4096)
def ipAddress(text):
    """
    C{text} as an L{ipaddress} address (brackets allowed), or C{None} when
    it is a host name; cached, as the same few addresses come again and
    again.
    """
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)
def normalizeHost(host):
    """
    Return C{host} with an IPv4-mapped IPv6 address (C{::ffff:192.0.2.1},
    as a dual-stack socket reports IPv4 peers) reduced to plain IPv4, and
    IPv6 addresses in their compressed form.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6 and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def isIPv6(host):
    return ":" in host


def formatHost(host):
    """
    Return C{host} as it goes into a Via sent-by: IPv6 references in
    brackets (RFC 3261 section 25.1).
    """
    return "[%s]" % (host,) if isIPv6(host) and not host.startswith("[") else host


def _sameAddress(viaHost, sourceHost):
    via, source = ipAddress(viaHost), ipAddress(sourceHost)
    return via is not None and via == source


def stampReceived(via, source):
    """
    Add C{received} and C{rport} to the top Via of a request that arrived
    from C{source}: RFC 3261 section 18.2.1 and RFC 3581 section 4.

    @return: the new L{Via}, or C{via} itself when nothing changes.
    """
    host, port = source
    changes = {}
    if via.rport is True:
        changes["rport"] = port
        changes["received"] = host
    elif not _sameAddress(via.host, host):
        changes["received"] = host
    if not changes:
        return via
    return via.withParams(**changes)


def responseDestination(via, transportName):
    """
    Where a response goes when there is no connection to reuse (RFC 3261
    section 18.2.2, RFC 3581 section 4): the maddr, else the received
    address with rport or the sent-by port, else the sent-by itself.

    @return: C{(host, port)}.
    """
    default = DEFAULT_PORTS.get(transportName, 5060)
    maddr = via.param("maddr") if hasattr(via, "param") else None
    if maddr:
        return maddr.strip("[]"), via.port or default
    host = via.received or via.host
    rport = via.rport
    if isinstance(rport, int) and rport is not True:
        port = rport
    else:
        port = via.port or default
    return host.strip("[]"), port


def _destinationOf(response, transportName, source):
    """
    Where C{response} goes: by its top Via, or back to the request's
    C{source} when the Via cannot be read (a 400 for that very Via).
    """
    try:
        vias = response.vias()
    except ParseError:
        vias = None
    return responseDestination(vias[0], transportName) if vias else source


def replaceTopVia(message, via):
    """
    Replace the top Via of C{message} with C{via}, keeping the others.
    """
    message.headers.replaceFirst("Via", str(via))


class _SentBy:
    """
    The sent-by a transport writes into the Via of requests it sends: the
    address it is bound to, or, for a wildcard binding, the local address
    the system routes from towards each destination (cached).
    """

    def __init__(self, host, port):
        self.host = host
        self.port = port
        self._routes = {}

    def hostFor(self, destinationHost):
        if self.host not in ("", "0.0.0.0", "::"):
            return self.host
        if destinationHost not in self._routes:
            family = socket.AF_INET6 if isIPv6(destinationHost) else socket.AF_INET
            probe = socket.socket(family, socket.SOCK_DGRAM)
            try:
                probe.connect((destinationHost, 9))
                self._routes[destinationHost] = normalizeHost(probe.getsockname()[0])
            except OSError:
                self._routes[destinationHost] = "127.0.0.1"
            finally:
                probe.close()
        return self._routes[destinationHost]

    def stamp(self, request, transportName, destinationHost):
        top = request.topVia
        via = Via(
            transport=transportName,
            host=formatHost(self.hostFor(destinationHost)),
            port=self.port,
            params=top.params if top is not None else (),
        )
        if top is not None:
            replaceTopVia(request, via)
        else:
            request.headers.add("Via", str(via))


@implementer(ISIPTransport)
class UDPTransport(DatagramProtocol):
    """
    SIP over UDP: one datagram, one message (RFC 3261 section 18.3).
    """

    name = "UDP"
    reliable = False
    secure = False

    def __init__(self, controller, maxSize=DEFAULT_MAX_SIZE):
        self._controller = controller
        self._maxSize = maxSize
        self._sentBy = None

    def startProtocol(self):
        address = self.transport.getHost()
        self._sentBy = _SentBy(normalizeHost(address.host), address.port)

    def datagramReceived(self, data, address):
        source = (normalizeHost(address[0]), address[1])
        if not data.strip(b"\r\n\0 "):
            # A keep-alive (RFC 5626 section 4.4.1 uses STUN; CRLF and NUL
            # are what deployed phones send over UDP): nothing to answer.
            return
        try:
            message = parseMessage(data, datagram=True, maxSize=self._maxSize)
        except ParseError as e:
            self._controller.parseErrorReceived(e, self, source)
            return
        self._controller.messageReceived(message, self, source)

    def localAddress(self, towards):
        """
        The C{(host, port)} this transport is reached at from C{towards},
        for Via sent-by and Record-Route.
        """
        return self._sentBy.hostFor(towards), self._sentBy.port

    def sendRequest(self, request, destination):
        self._sentBy.stamp(request, self.name, destination[0])
        self._write(request.toBytes(), destination)

    def sendResponse(self, response, source):
        self._write(response.toBytes(), _destinationOf(response, self.name, source))

    def _write(self, data, destination):
        try:
            self.transport.write(data, destination)
        except (OSError, netError.MessageLengthError) as e:
            _log.info(
                "UDP send to {host}:{port} failed: {error}",
                host=destination[0], port=destination[1], error=e,
            )
            raise


class StreamConnection(Protocol, TimeoutMixin):
    """
    One TCP or TLS connection: frames the stream into messages by
    Content-Length (RFC 3261 section 18.3), answers CRLF keep-alive pings
    with a pong (RFC 5626 section 3.5.1), and closes when idle.
    """

    def __init__(self, transport, clock):
        self._sipTransport = transport
        self.callLater = clock.callLater
        self._parser = StreamParser(transport.maxSize)
        self.peer = None

    def connectionMade(self):
        address = self.transport.getPeer()
        self.peer = (normalizeHost(address.host), address.port)
        self._sipTransport.connectionOpened(self)
        self.setTimeout(self._sipTransport.idleTimeout)

    def dataReceived(self, data):
        self.resetTimeout()
        try:
            items = self._parser.feed(data)
        except ParseError as e:
            self._sipTransport.controller.parseErrorReceived(
                e, self._sipTransport, self.peer
            )
            # The stream cannot be resynchronised after a framing error.
            self.transport.loseConnection()
            return
        for item in items:
            if item is KEEPALIVE_PING:
                self.transport.write(b"\r\n")
            else:
                self._sipTransport.controller.messageReceived(
                    item, self._sipTransport, self.peer
                )
            if not self.connected:
                break

    def timeoutConnection(self):
        _log.debug("closing idle connection from {peer}", peer=self.peer)
        self.transport.loseConnection()

    def connectionLost(self, reason):
        self.setTimeout(None)
        self._sipTransport.connectionClosed(self)

    def send(self, data):
        self.resetTimeout()
        self.transport.write(data)


@implementer(ISIPTransport)
class StreamTransport(Factory):
    """
    SIP over TCP or TLS: the listening port and every connection made to or
    from it, kept by peer address for reuse (RFC 3261 section 18.2.2,
    RFC 5923 in spirit).

    @ivar controller: where messages go.
    """

    reliable = True

    def __init__(self, controller, reactor, name="TCP", maxSize=DEFAULT_MAX_SIZE,
                 idleTimeout=300.0, clientTLS=None, maxConnections=2048):
        self.controller = controller
        self.name = name
        self.secure = name == "TLS"
        self.maxSize = maxSize
        self.idleTimeout = idleTimeout
        self._reactor = reactor
        self._clientTLS = clientTLS
        self.maxConnections = maxConnections
        self.refused = 0
        self._connections = {}
        self._pending = {}
        self._sentBy = _SentBy("", 0)

    def listening(self, port):
        """
        Record the address of the listening port, for Via sent-by.
        """
        address = port.getHost()
        self._sentBy = _SentBy(normalizeHost(address.host), address.port)

    def buildProtocol(self, addr):
        if len(self._connections) >= self.maxConnections:
            # Full: refuse rather than run out of descriptors for everyone.
            self.refused += 1
            _log.info(
                "{transport}: {count} connections open, refusing {peer}",
                transport=self.name, count=len(self._connections), peer=addr,
            )
            return None
        return StreamConnection(self, self._reactor)

    @property
    def connectionCount(self):
        return len(self._connections)

    def connectionOpened(self, connection):
        self._connections[connection.peer] = connection
        for data in self._pending.pop(connection.peer, ()):
            connection.send(data)

    def connectionClosed(self, connection):
        if self._connections.get(connection.peer) is connection:
            del self._connections[connection.peer]

    def localAddress(self, towards):
        """
        The C{(host, port)} this transport is reached at from C{towards},
        for Via sent-by and Record-Route.
        """
        return self._sentBy.hostFor(towards), self._sentBy.port

    def sendRequest(self, request, destination):
        destination = (normalizeHost(destination[0]), destination[1])
        self._sentBy.stamp(request, self.name, destination[0])
        self._send(request.toBytes(), destination)

    def sendResponse(self, response, source):
        connection = self._connections.get(source)
        if connection is not None:
            connection.send(response.toBytes())
            return
        self._send(response.toBytes(), _destinationOf(response, self.name, source))

    def _send(self, data, destination):
        connection = self._connections.get(destination)
        if connection is not None:
            connection.send(data)
            return
        if destination in self._pending:
            self._pending[destination].append(data)
            return
        self._pending[destination] = [data]
        self._connect(destination).addErrback(self._connectFailed, destination)

    def _connect(self, destination):
        host, port = destination
        if self.secure:
            endpoint = SSL4ClientEndpoint(
                self._reactor, host, port, self._clientTLS(host)
            )
        elif isIPv6(host):
            endpoint = TCP6ClientEndpoint(self._reactor, host, port)
        else:
            endpoint = TCP4ClientEndpoint(self._reactor, host, port)
        return endpoint.connect(self)

    def _connectFailed(self, failure, destination):
        lost = self._pending.pop(destination, [])
        _log.info(
            "{transport} connection to {host}:{port} failed, {count} message(s) "
            "not sent: {error}",
            transport=self.name, host=destination[0], port=destination[1],
            count=len(lost), error=failure.getErrorMessage(),
        )

    def closeAll(self):
        """
        Close every connection (for shutdown).
        """
        for connection in list(self._connections.values()):
            connection.transport.loseConnection()

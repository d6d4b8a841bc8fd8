"""
The SIP service: binds the configured transports, checks what arrives, and
feeds the transaction layer, which hands requests to the dispatcher.

Bad input is answered here, statelessly, before any transaction exists:
400 with the reason for malformed requests, 413 for oversized ones, 416 for
Request-URI schemes other than sip, sips and tel, 505 for other SIP
versions (RFC 3261 sections 8.2.2 and 16.3, RFC 4475). Malformed responses
and requests whose answer could not be routed are dropped. Nothing here
raises into the reactor.
"""

import ipaddress
import socket

from twisted.application import service
from twisted.internet import error as netError
from twisted.internet import ssl
from twisted.internet.defer import gatherResults, maybeDeferred
from twisted.logger import Logger

from appliance import logs
from appliance.sip.dispatcher import Dispatcher, newTag
from appliance.sip.message import (
    ParseError,
    Request,
    makeResponse,
    validateRequest,
    validateResponse,
)
from appliance.sip.transaction import TimerSettings, TransactionLayer
from appliance.sip.transport import (
    StreamTransport,
    UDPTransport,
    replaceTopVia,
    stampReceived,
)

_log = Logger(observer=logs.observer)


class ListenError(Exception):
    """
    A configured listen address could not be bound.
    """


def _safeReason(text):
    return " ".join(str(text).split())[:120] or "Bad Request"


class SIPController:
    """
    Receives what the transports frame and decides what reaches the
    transaction layer.
    """

    def __init__(self, transactions, stats):
        self._transactions = transactions
        self._stats = stats

    def parseErrorReceived(self, error, transport, source):
        self._stats.increment("parse.errors")
        message = error.message
        _log.debug(
            "unparsable message from {host}:{port} over {transport}: {reason}",
            host=source[0], port=source[1], transport=transport.name,
            reason=error.reason,
        )
        if isinstance(message, Request) and message.method != "ACK":
            self._answerStatelessly(message, transport, source, error.status, error.reason)

    def messageReceived(self, message, transport, source):
        if isinstance(message, Request):
            self._requestReceived(message, transport, source)
        else:
            self._responseReceived(message, transport, source)

    def _requestReceived(self, request, transport, source):
        self._stats.increment("requests.in.%s" % (request.method,))
        try:
            vias = request.vias()
            if not vias:
                raise ParseError("Missing Via header")
            replaceTopVia(request, stampReceived(vias[0], source))
        except ParseError as e:
            # RFC 4475 section 3.1.2.1 wants a 400 even for a Via that
            # cannot be read; it goes back to where the request came from.
            self._stats.increment("parse.errors")
            _log.debug(
                "{method} with a bad Via from {host}:{port}: {reason}",
                method=request.method, host=source[0], port=source[1],
                reason=e.reason,
            )
            if request.method != "ACK":
                self._answerStatelessly(request, transport, source, 400, e.reason)
            return
        try:
            validateRequest(request)
        except ParseError as e:
            self._stats.increment("parse.errors")
            _log.debug(
                "{method} from {host}:{port} refused: {status} {reason}",
                method=request.method, host=source[0], port=source[1],
                status=e.status, reason=e.reason,
            )
            if request.method != "ACK":
                self._answerStatelessly(request, transport, source, e.status, e.reason)
            return
        self._transactions.receiveRequest(request, transport, source)

    def _responseReceived(self, response, transport, source):
        self._stats.increment("responses.in.%dxx" % (response.code // 100,))
        try:
            validateResponse(response)
        except ParseError as e:
            self._stats.increment("parse.errors")
            _log.debug(
                "dropping malformed response from {host}:{port}: {reason}",
                host=source[0], port=source[1], reason=e.reason,
            )
            return
        self._transactions.receiveResponse(response, transport, source)

    def _answerStatelessly(self, request, transport, source, status, reason):
        try:
            response = makeResponse(request, status, _safeReason(reason), toTag=newTag())
            transport.sendResponse(response, source)
        except ParseError as e:
            _log.debug("cannot answer: {reason}", reason=e.reason)
            return
        except OSError:
            return
        self._stats.increment("responses.out.%dxx" % (status // 100,))


class LocalAddresses:
    """
    Tells whether a host names this server: one of the addresses it listens
    on, any address of the machine for wildcard bindings, or its host name.
    """

    def __init__(self, extraNames=()):
        self._names = {"localhost", socket.gethostname().lower()}
        self._names.update(name.lower() for name in extraNames)
        self._addresses = set()
        self._wildcard = False

    def addBinding(self, host):
        if host in ("", "0.0.0.0", "::"):
            self._wildcard = True
        else:
            self._addresses.add(ipaddress.ip_address(host))

    def __call__(self, host):
        host = host.strip("[]").lower()
        if host in self._names:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if address in self._addresses:
            return True
        return self._wildcard and (address.is_loopback or _isMine(address))


def _isMine(address):
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_DGRAM)
    try:
        probe.bind((str(address), 0))
    except OSError:
        return False
    finally:
        probe.close()
    return True


class SIPService(service.Service):
    """
    The SIP server as a Twisted service.

    @param config: the C{[sip]} section (L{appliance.config.SIPConfig}).
    @param tlsOptions: a callable returning server TLS context options, used
        only when a TLS address is configured.
    @param stats: the service's L{appliance.stats.Statistics}.
    @ivar ports: the listening ports, in configuration order, once started.
    """

    name = "sip"

    def __init__(self, config, reactor, stats, tlsOptions=None):
        self.config = config
        self._reactor = reactor
        self.stats = stats
        self._tlsOptions = tlsOptions
        self.localAddresses = LocalAddresses()
        self.dispatcher = Dispatcher(config.domains, self.localAddresses, stats)
        self.transactions = TransactionLayer(
            reactor, self.dispatcher,
            TimerSettings(T1=config.t1, T2=config.t2, T4=config.t4),
        )
        self.controller = SIPController(self.transactions, stats)
        self.ports = []
        self.transports = []
        stats.gauge("transactions.active", lambda: self.transactions.activeTransactions)
        stats.gauges(self.transactions.statistics)
        stats.gauge(
            "connections.active",
            lambda: sum(getattr(t, "connectionCount", 0) for t in self.transports),
        )

    def privilegedStartService(self):
        """
        Bind every configured address before privileges are dropped, so that
        ports below 1024 work when started as root.

        @raise ListenError: naming the address that could not be bound.
        """
        service.Service.privilegedStartService(self)
        try:
            for address in self.config.listen:
                self._listen(address)
        except BaseException:
            for port in self.ports:
                port.stopListening()
            self.ports = []
            raise

    def _listen(self, address):
        interface = address.interface
        try:
            if address.kind == "udp":
                transport = UDPTransport(self.controller, self.config.max_message_size)
                port = self._reactor.listenUDP(
                    address.port, transport, interface=interface,
                    # One byte more than allowed, so that an oversized
                    # datagram is seen as such (413), not cut short.
                    maxPacketSize=self.config.max_message_size + 1,
                )
            else:
                transport = StreamTransport(
                    self.controller, self._reactor, name=address.kind.upper(),
                    maxSize=self.config.max_message_size,
                    idleTimeout=self.config.tcp_idle_timeout,
                    clientTLS=self._clientTLS,
                )
                if address.kind == "tls":
                    port = self._reactor.listenSSL(
                        address.port, transport, self._tlsOptions(), interface=interface
                    )
                else:
                    port = self._reactor.listenTCP(address.port, transport, interface=interface)
                transport.listening(port)
        except netError.CannotListenError as e:
            reason = e.socketError.strerror if hasattr(e.socketError, "strerror") else e.socketError
            raise ListenError("[sip] listen: cannot listen on %s: %s" % (address, reason))
        self.localAddresses.addBinding(port.getHost().host)
        self.ports.append(port)
        self.transports.append(transport)
        host = port.getHost()
        _log.info(
            "SIP listening on {kind} {host}:{port}",
            kind=address.kind.upper(), host=host.host, port=host.port,
        )

    def _clientTLS(self, hostname):
        return ssl.optionsForClientTLS(hostname)

    def stopService(self):
        service.Service.stopService(self)
        self.transactions.stop()
        for transport in self.transports:
            if isinstance(transport, StreamTransport):
                transport.closeAll()
        ports, self.ports, self.transports = self.ports, [], []
        return gatherResults([maybeDeferred(port.stopListening) for port in ports])

    def addressOf(self, kind):
        """
        Return the C{(host, port)} the first listening port of C{kind}
        (C{'udp'}, C{'tcp'} or C{'tls'}) is bound to.
        """
        for address, port in zip(self.config.listen, self.ports):
            if address.kind == kind:
                host = port.getHost()
                return host.host, host.port
        raise KeyError(kind)

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
import secrets
import socket

from twisted.application import service
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred, succeed
from twisted.names import client
from twisted.logger import Logger

from appliance import logs
from appliance.sip.auth import DigestAuthenticator
from appliance.sip.dispatcher import Dispatcher, newTag
from appliance.sip.dns import SIPResolver
from appliance.sip.location import LocationService
from appliance.sip.message import (
    URI,
    ParseError,
    Request,
    makeResponse,
    validateRequest,
    validateResponse,
)
from appliance.sip.proxy import Proxy, hostTargets, isAddress, transportOf
from appliance.sip.registrar import Registrar
from appliance.sip.routing import CallRules, Router
from appliance.sip.stack import ListenError, TransportSettings, listenSIP  # noqa: F401 (ListenError: re-exported)
from appliance.sip.transaction import TimerSettings, TransactionLayer
from appliance.sip.transport import (
    ipAddress,
    StreamTransport,
    replaceTopVia,
    stampReceived,
)

_log = Logger(observer=logs.observer)


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
        self.ready = False

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
        if self.ready and self._transactions.absorb(request):
            # A retransmission: answered by its transaction, checked before.
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
        if not self.ready:
            # Starting or stopping: the location service is not loaded.
            if request.method != "ACK":
                self._answerStatelessly(
                    request, transport, source, 503, "Starting up", (("Retry-After", "1"),)
                )
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

    def _answerStatelessly(self, request, transport, source, status, reason, headers=()):
        try:
            response = makeResponse(request, status, _safeReason(reason), toTag=newTag())
            for name, value in headers:
                response.headers.add(name, value)
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
        self._probed = {}

    def addBinding(self, host):
        if host in ("", "0.0.0.0", "::"):
            self._wildcard = True
        else:
            self._addresses.add(ipaddress.ip_address(host))

    def __call__(self, host):
        host = host.strip("[]").lower()
        if host in self._names:
            return True
        address = ipAddress(host)
        if address is None:
            return False
        if address in self._addresses:
            return True
        if not self._wildcard:
            return False
        if address not in self._probed:
            if len(self._probed) > 1024:
                self._probed.clear()
            self._probed[address] = address.is_loopback or _isMine(address)
        return self._probed[address]


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


def systemNameServers(path="/etc/resolv.conf"):
    """
    The name servers of the system's resolver configuration, read once
    (default: a resolver on the loopback address).
    """
    servers = []
    try:
        with open(path) as f:
            for line in f:
                words = line.split()
                if len(words) >= 2 and words[0] == "nameserver":
                    servers.append((words[1], 53))
    except OSError:
        pass
    return servers or [("127.0.0.1", 53)]


class SIPService(service.Service):
    """
    The SIP server as a Twisted service: registrar, proxy and redirect
    server for the configured domains.

    @param config: the C{[sip]} section (L{appliance.config.SIPConfig}).
    @param stats: the service's L{appliance.stats.Statistics}.
    @param tlsOptions: a callable returning server TLS context options, used
        only when a TLS address is configured.
    @param database: the appliance's L{appliance.storage.database.Database}.
    @param users: the L{appliance.interfaces.IUserDirectory}.
    @param resolver: a twisted.names resolver for RFC 3263 (default: the
        system's, from /etc/resolv.conf).
    @ivar ports: the listening ports, in configuration order, once started.
    """

    name = "sip"

    def __init__(self, config, reactor, stats, tlsOptions=None, database=None,
                 users=None, resolver=None):
        self.config = config
        self._reactor = reactor
        self.stats = stats
        self._tlsOptions = tlsOptions
        self._transportSettings = TransportSettings(
            config.max_message_size, config.tcp_idle_timeout, config.max_connections
        )
        self.localAddresses = LocalAddresses()
        self.ports = []
        self.transports = []
        self.transportsByName = {}
        self._ourPorts = set()
        domains = config.domains
        self.location = LocationService(database, reactor)
        self.authenticator = DigestAuthenticator(
            users, reactor, secrets.token_bytes(32),
            nonceLifetime=config.nonce_lifetime, maxFailures=config.auth_max_failures,
            lockout=config.auth_lockout, algorithms=config.digest_algorithms,
        )
        self.registrar = Registrar(
            self.location, domains, reactor,
            minExpires=config.min_expires, maxExpires=config.max_expires,
            defaultExpires=config.default_expires,
            authenticate=self._authenticateRegistration,
            realm=config.realm or None, stats=stats,
        )
        self.router = Router(self.location, CallRules(database), config.redirect_domains)
        self.dispatcher = Dispatcher(
            domains, self.isOurs, stats, registrar=self.registrar, router=self.router,
            authenticate=self.authenticator.authenticate, realmFor=self.realmFor,
        )
        self.transactions = TransactionLayer(
            reactor, self.dispatcher,
            TimerSettings(T1=config.t1, T2=config.t2, T4=config.t4),
        )
        if resolver is None:
            resolver = client.Resolver(servers=systemNameServers(), reactor=reactor)
        self.resolver = SIPResolver(resolver, reactor)
        self.proxy = Proxy(
            self.transactions, self.transportsByName, reactor, stats, self.isOurs,
            self.resolve, recordRoute=config.record_route, ringTimeout=config.ring_timeout,
        )
        self.dispatcher.proxy = self.proxy
        self.controller = SIPController(self.transactions, stats)
        self._waiting = []
        stats.gauge("transactions.active", lambda: self.transactions.activeTransactions)
        stats.gauges(self.transactions.statistics)
        stats.gauges(self.authenticator.statistics)
        stats.gauge("registrar.bindings", self.location.count)
        stats.gauge("proxy.contexts", lambda: self.proxy.activeContexts)
        stats.gauge(
            "connections.active",
            lambda: sum(getattr(t, "connectionCount", 0) for t in self.transports),
        )
        stats.gauge(
            "connections.refused",
            lambda: sum(getattr(t, "refused", 0) for t in self.transports),
        )

    def realmFor(self, domain):
        """
        The digest realm users of C{domain} are challenged in.
        """
        return self.config.realm or domain

    def _authenticateRegistration(self, request, realm, source):
        return self.authenticator.authenticate(
            request, realm, source, domain=request.uri.host
        )

    def isOurs(self, uri):
        """
        Whether C{uri} addresses this server itself rather than a user: one
        of our addresses (and ports), or one of our domains without a user
        part (RFC 3261 section 16.4).
        """
        if not isinstance(uri, URI):
            return False
        if uri.user is None and uri.host in self.config.domains:
            return True
        if not self.localAddresses(uri.host):
            return False
        if uri.port is None:
            return uri.user is None or 5060 in self._ourPorts or 5061 in self._ourPorts
        return uri.port in self._ourPorts

    def resolve(self, uri):
        """
        Where to send a request for C{uri}: a L{Deferred} list of
        C{(transport, host, port)} (RFC 3263).
        """
        if isinstance(uri, URI) and uri.scheme in ("sip", "sips") and not uri.param("maddr"):
            transport = transportOf(uri)
            if isAddress(uri.host):
                return succeed(hostTargets(uri, transport))
        return self.resolver.resolve(uri)

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
        port, transport = listenSIP(
            self._reactor, address, self.controller, self._transportSettings, self._tlsOptions
        )
        self.localAddresses.addBinding(port.getHost().host)
        self.ports.append(port)
        self.transports.append(transport)
        self.transportsByName.setdefault(transport.name, transport)
        self._ourPorts.add(port.getHost().port)
        host = port.getHost()
        _log.info(
            "SIP listening on {kind} {host}:{port}",
            kind=address.kind.upper(), host=host.host, port=host.port,
        )

    def startService(self):
        service.Service.startService(self)
        d = self.location.load()
        d.addCallback(self._loaded)
        d.addErrback(self._loadFailed)

    def _loaded(self, count):
        _log.info("location service loaded {count} binding(s)", count=count)
        if self.running:
            self.location.start()
            self.controller.ready = True
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(self)

    def _loadFailed(self, failure):
        _log.failure("cannot load the location service", failure)
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.errback(failure)

    def whenReady(self):
        """
        Return a L{Deferred} that fires when the service answers requests
        (the location service is loaded).
        """
        if self.controller.ready:
            return succeed(self)
        d = Deferred()
        self._waiting.append(d)
        return d

    def stopService(self):
        service.Service.stopService(self)
        self.controller.ready = False
        self.location.stop()
        self.proxy.stop()
        self.authenticator.stop()
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

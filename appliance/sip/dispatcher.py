"""
The SIP service's transaction user: decides, per request, who answers.

Requests addressed to the server itself are answered here (OPTIONS, RFC 3261
section 11); REGISTER for our domains goes to the registrar; everything else
goes through the proxy: requests inside a dialog along their Route set,
requests for users of our domains to their targets (the location service and
call rules), and requests from our authenticated users to other domains
(RFC 3263). Nobody else may relay through us.
"""


from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger
from zope.interface import implementer

from appliance.randomness import tokenHex
from appliance import logs
from appliance.interfaces import ITransactionUser
from appliance.sip.auth import parseCredentials
from appliance.sip.message import URI, ParseError, makeResponse
from appliance.sip.proxy import Target

_log = Logger(observer=logs.observer)

#: Methods this server serves or routes (RFC 3261 section 20.5, Allow).
ALLOWED = (
    "INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE",
    "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
)

#: Option tags this server supports (RFC 3261 section 20.37): Path (RFC
#: 3327) and outbound (RFC 5626) at the registrar.
SUPPORTED = ("path", "outbound")

#: Bodies this server understands (RFC 3261 section 20.1).
ACCEPT = ("application/sdp",)


def newTag():
    """
    A fresh To / From tag with at least 32 bits of randomness
    (RFC 3261 section 19.3).
    """
    return tokenHex(6)


def _optionTags(request, name):
    tags = []
    for value in request.headers.getAll(name):
        tags.extend(tag.strip() for tag in value.split(",") if tag.strip())
    return tags


def unsupportedExtensions(request, name="Require"):
    """
    Return the option tags of the request's Require (or Proxy-Require)
    header that this server does not support (RFC 3261 sections 8.2.2.3 and
    16.3 step 5).
    """
    return [tag for tag in _optionTags(request, name) if tag.lower() not in SUPPORTED]


@implementer(ITransactionUser)
class Dispatcher:
    """
    Routes each new request to the piece of the server that owns it.

    @param domains: the domains this server is responsible for.
    @param isOurs: a callable telling whether a URI addresses this server
        itself (one of its addresses, or a domain without a user part).
    @param stats: the SIP service's L{appliance.stats.Statistics}.
    @param registrar: the L{appliance.sip.registrar.Registrar}, or C{None}.
    @param proxy: the L{appliance.sip.proxy.Proxy}, or C{None}.
    @param router: the L{appliance.sip.routing.Router} for our users.
    @param authenticate: C{authenticate(request, realm, source, proxy=True)}
        returning a L{Deferred} L{appliance.sip.auth.AuthResult}, or C{None}
        to trust everyone (tests only).
    @param realmFor: the digest realm of a domain.
    """

    def __init__(self, domains, isOurs, stats, registrar=None, proxy=None,
                 router=None, authenticate=None, realmFor=lambda domain: domain):
        self._domains = frozenset(domain.lower() for domain in domains)
        self._isOurs = isOurs
        self._stats = stats
        self.registrar = registrar
        self.proxy = proxy
        self.router = router
        self._authenticate = authenticate
        self._realmFor = realmFor
        #: Callables giving the C{(host, port)} of the appliance's own user
        #: agents, whose requests are not challenged.
        self.trusted = []

    def respond(self, serverTransaction, request, code, reason=None, headers=()):
        """
        Answer C{request} through its transaction, with a To tag on final
        responses (RFC 3261 section 8.2.6.2).
        """
        response = makeResponse(
            request, code, reason, toTag=newTag() if code >= 200 else None
        )
        for name, value in headers:
            response.headers.add(name, value)
        self._stats.increment("responses.out.%dxx" % (code // 100,))
        serverTransaction.respond(response)
        return response

    def _capabilities(self):
        return (
            ("Allow", ", ".join(ALLOWED)),
            ("Accept", ", ".join(ACCEPT)),
            ("Supported", ", ".join(SUPPORTED)),
        )

    def _isLocalDomain(self, uri):
        return isinstance(uri, URI) and uri.host in self._domains

    # ITransactionUser --------------------------------------------------------

    def requestReceived(self, request, serverTransaction):
        if serverTransaction is None:
            # The ACK for a 2xx: it follows its Route set like any request
            # inside a dialog (RFC 3261 section 16.6), when that set runs
            # through us; any other is not ours to relay.
            if self.proxy is not None and request.headers.get("Route") is not None:
                self._forwardAck(request)
            return
        if request.method == "ACK":
            return
        try:
            self._dispatch(request, serverTransaction)
        except ParseError as e:
            self.respond(serverTransaction, request, e.status, e.reason)

    def responseReceived(self, response, clientTransaction):
        if self.proxy is not None:
            self.proxy.responseReceived(response, clientTransaction)

    def transactionTimedOut(self, transaction):
        if self.proxy is not None:
            self.proxy.branchFailed(transaction, 408)

    def transportFailed(self, transaction):
        if self.proxy is not None:
            self.proxy.branchFailed(transaction, 503)

    # Dispatch ----------------------------------------------------------------

    def _dispatch(self, request, serverTransaction):
        method = request.method
        if method == "CANCEL":
            self._cancel(request, serverTransaction)
            return
        routed = viaUs = False
        if self.proxy is not None and request.headers.get("Route") is not None:
            viaUs = self.proxy.preprocessRoutes(request)
            routed = request.headers.get("Route") is not None
        uri = request.uri
        if method == "REGISTER" and not routed:
            if self.registrar is not None and self._isLocalDomain(uri):
                self._unlessRequired(request, serverTransaction, self._register)
            else:
                self.respond(serverTransaction, request, 403, "Not a domain of this registrar")
        elif self.proxy is None or (self._isOurs(uri) and not routed):
            self._unlessRequired(request, serverTransaction, self._serve)
        else:
            self._forward(
                request, serverTransaction,
                inDialog=request.toAddress().tag is not None, routed=routed, viaUs=viaUs,
            )

    def _unlessRequired(self, request, serverTransaction, then):
        unsupported = unsupportedExtensions(request)
        if unsupported:
            self.respond(
                serverTransaction, request, 420,
                headers=(("Unsupported", ", ".join(unsupported)),),
            )
        else:
            then(request, serverTransaction)

    def _register(self, request, serverTransaction):
        d = maybeDeferred(
            self.registrar.handleRegister, request, serverTransaction,
            serverTransaction.source, serverTransaction.transport.name,
        )
        d.addErrback(self._failed, request, serverTransaction)

    def _serve(self, request, serverTransaction):
        """
        A request addressed to the server itself (RFC 3261 section 8.2).
        """
        method = request.method
        if method == "OPTIONS":
            self.respond(serverTransaction, request, 200, headers=self._capabilities())
        elif method in ALLOWED:
            self.respond(serverTransaction, request, 405, headers=self._capabilities())
        else:
            self.respond(serverTransaction, request, 501, headers=self._capabilities())

    def _cancel(self, request, serverTransaction):
        """
        RFC 3261 section 16.10 (and 9.2): answer the CANCEL, cancel the
        branches of the INVITE it matches.
        """
        invite = serverTransaction.cancelledInvite()
        if invite is None:
            self.respond(serverTransaction, request, 481)
            return
        self.respond(serverTransaction, request, 200)
        if self.proxy is None or not self.proxy.cancel(invite):
            # Not (yet) proxied: end it here.
            if not _answered(invite):
                self.respond(invite, invite.request, 487)

    def _forward(self, request, serverTransaction, inDialog, routed=False, viaUs=False):
        """
        The proxy's request processing (RFC 3261 sections 16.3 to 16.5).
        """
        forwards = request.maxForwards()
        if forwards == 0:
            self.respond(serverTransaction, request, 483)
            return
        if self.proxy.isLoop(request):
            self.respond(serverTransaction, request, 482)
            return
        unsupported = unsupportedExtensions(request, "Proxy-Require")
        if unsupported:
            self.respond(
                serverTransaction, request, 420,
                headers=(("Unsupported", ", ".join(unsupported)),),
            )
            return
        if inDialog:
            if viaUs:
                # Inside a dialog we record-routed: follow the route set.
                self.proxy.proxy(request, serverTransaction, [[Target(uri=request.uri)]])
                return
            if not self._isLocalDomain(request.uri) or request.uri.user is None:
                # Not a dialog of ours, not a user of ours: no relaying.
                self.respond(serverTransaction, request, 404, "Not here")
                return
        caller = request.fromAddress().uri
        callerIsOurs = self._isLocalDomain(caller) and request.method not in ("ACK", "CANCEL")
        if callerIsOurs and self._authenticate is not None and not self._isTrusted(serverTransaction):
            d = self._authenticate(
                request, self._realmFor(caller.host), serverTransaction.source,
                proxy=True, domain=caller.host,
            )
            d.addCallback(self._authenticated, request, serverTransaction, caller, routed)
        else:
            d = maybeDeferred(self._route, request, serverTransaction, callerIsOurs, routed)
        d.addErrback(self._failed, request, serverTransaction)

    def _isTrusted(self, serverTransaction):
        if serverTransaction.transport.name != "UDP":
            return False
        source = tuple(serverTransaction.source[:2])
        for locate in self.trusted:
            try:
                if tuple(locate()) == source:
                    return True
            except KeyError:
                continue
        return False

    def _authenticated(self, result, request, serverTransaction, caller, routed):
        if result.status is not None:
            self._stats.increment("proxy.challenged")
            self.respond(serverTransaction, request, result.status, headers=result.headers)
            return
        if result.user != "%s@%s" % (caller.user, caller.host):
            self.respond(serverTransaction, request, 403, "From does not match the credentials")
            return
        _dropCredentials(request, self._realmFor(caller.host))
        return self._route(request, serverTransaction, True, routed)

    def _route(self, request, serverTransaction, callerIsOurs, routed):
        uri = request.uri
        if not routed and self._isLocalDomain(uri) and uri.user is not None:
            aor = "%s@%s" % (uri.user, uri.host)
            d = self.router.route(request, aor)
            d.addCallback(self._decided, request, serverTransaction)
            return d
        if not callerIsOurs:
            self.respond(serverTransaction, request, 403, "Relaying denied")
            return None
        self.proxy.proxy(request, serverTransaction, [[Target(uri=uri)]])
        return None

    def _decided(self, decision, request, serverTransaction):
        if _answered(serverTransaction):
            return
        if decision.status == 302:
            contacts = tuple(
                ("Contact", "<%s>;q=%s" % (binding.contact, binding.q))
                for binding in decision.contacts
            )
            self.respond(serverTransaction, request, 302, headers=contacts)
        elif decision.status is not None:
            self.respond(serverTransaction, request, decision.status, decision.reason)
        else:
            self.proxy.proxy(request, serverTransaction, decision.groups, decision.onFailure)

    def _forwardAck(self, ack):
        try:
            if ack.maxForwards() == 0 or not self.proxy.preprocessRoutes(ack):
                return
            d = self.proxy.forwardAck(ack)
        except ParseError as e:
            _log.debug("dropping ACK: {reason}", reason=e.reason)
            return
        return d

    def _failed(self, failure, request, serverTransaction):
        if failure.check(ParseError):
            error = failure.value
            if not _answered(serverTransaction):
                self.respond(serverTransaction, request, error.status, error.reason)
            return
        _log.failure("handling {method}", failure, method=request.method)
        if not _answered(serverTransaction):
            self.respond(serverTransaction, request, 500)


def _dropCredentials(request, realm):
    """
    Remove the Proxy-Authorization values for our own realm once they have
    served: nobody downstream needs them (RFC 3261 section 22.3 lets a
    proxy consume its own credentials; those of other realms stay).
    """
    values = request.headers.getAll("Proxy-Authorization")
    keep = []
    for value in values:
        parsed = parseCredentials(value)
        if parsed is None or parsed[1].get("realm") != realm:
            keep.append(value)
    if len(keep) != len(values):
        request.headers.remove("Proxy-Authorization")
        for value in keep:
            request.headers.add("Proxy-Authorization", value)


def _answered(serverTransaction):
    response = serverTransaction.lastResponse
    return response is not None and response.code >= 200

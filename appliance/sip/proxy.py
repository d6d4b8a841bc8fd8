"""
The stateful forking proxy (RFC 3261 section 16).

One L{ResponseContext} lives for each proxied request: it forwards the
request to every target of the current q group in parallel (the groups are
tried in turn, highest q first), collects the responses and sends the best
one back (section 16.7), cancelling the other branches on the first 2xx or
6xx. Requests inside a dialog follow their Route set; ACKs for 2xx and stray
responses are forwarded statelessly.

The proxy only forwards. Which targets a request has (the location service,
forwarding rules, redirection) is decided by L{appliance.sip.routing}.
"""

import hashlib
import secrets

import attrs
from twisted.logger import Logger

from appliance.randomness import tokenHex
from appliance import logs
from appliance.sip.message import URI, Address, ParseError, Via, makeResponse
from appliance.sip.responsecontext import TIMER_C, Branch, ResponseContext, bestResponse
from appliance.sip.transaction import MAGIC_COOKIE
from appliance.sip.transport import ipAddress

__all__ = [
    "DIALOG_CREATING", "TIMER_C", "Branch", "Proxy", "ResponseContext", "Target",
    "bestResponse", "groupsByQ", "hostTargets", "isAddress", "transportOf",
]

_log = Logger(observer=logs.observer)

DEFAULT_PORTS = {"UDP": 5060, "TCP": 5060, "TLS": 5061}

#: Requests that create dialogs, and so get a Record-Route (RFC 3261
#: section 16.6 step 4; RFC 6665 for SUBSCRIBE, RFC 3515 for REFER).
DIALOG_CREATING = frozenset(["INVITE", "SUBSCRIBE", "REFER", "NOTIFY"])


@attrs.frozen
class Target:
    """
    Where a branch goes.

    @ivar uri: the new Request-URI.
    @ivar path: Route values to pre-load (RFC 3327 Path of the binding).
    @ivar flow: C{(transport, host, port)} to send to directly, the source
        of the registration (the connection or NAT binding it came from),
        or C{None} to resolve the URI.
    """

    uri: object
    path: tuple = ()
    flow: tuple | None = None


def transportOf(uri):
    """
    The transport a URI asks for (RFC 3261 section 19.1.1, RFC 3263 section
    4.1 for the explicit cases): its transport parameter, TLS for sips, UDP
    otherwise.
    """
    if isinstance(uri, URI):
        transport = uri.param("transport")
        if transport:
            return transport.upper()
        if uri.scheme == "sips":
            return "TLS"
    return "UDP"


def isAddress(host):
    """
    Whether C{host} is an IP address (IPv6 with or without brackets).
    """
    return ipAddress(host) is not None


class Proxy:
    """
    The proxy core: forwards requests along targets and routes, and their
    responses back.

    @param transactions: the L{appliance.sip.transaction.TransactionLayer}.
    @param transports: C{{name: ISIPTransport}} of the listening transports.
    @param isOurs: a callable telling whether a URI addresses this proxy (for
        Route processing, section 16.4).
    @param resolve: a callable from a URI to a L{Deferred} list of
        C{(transport, host, port)} (RFC 3263).
    """

    def __init__(self, transactions, transports, clock, stats, isOurs, resolve,
                 recordRoute=True, ringTimeout=30):
        self.transactions = transactions
        self.transports = transports
        self.clock = clock
        self.stats = stats
        self.isOurs = isOurs
        self.resolve = resolve
        self.recordRoute = recordRoute
        self.ringTimeout = ringTimeout
        self._secret = secrets.token_bytes(16)
        self._contexts = {}
        self._branches = {}

    # Requests --------------------------------------------------------------

    def loopHash(self, request):
        """
        The part of our branch parameters that identifies a request for loop
        detection (RFC 3261 section 16.3 step 4 and 16.6 step 8): the same
        request coming back unchanged carries it in one of our Vias.
        """
        number, _ = request.cseq()
        data = "\0".join([
            str(request.uri), request.fromAddress().tag or "",
            request.toAddress().tag or "", request.callId or "", str(number),
            ",".join(request.headers.getAll("Proxy-Require")),
        ]).encode("utf-8", "surrogateescape")
        return hashlib.blake2s(data, key=self._secret, digest_size=8).hexdigest()

    def isLoop(self, request):
        prefix = MAGIC_COOKIE + "." + self.loopHash(request)
        for via in request.vias():
            branch = via.branch or ""
            if branch.startswith(prefix):
                return True
        return False

    def preprocessRoutes(self, request):
        """
        Route information preprocessing (RFC 3261 section 16.4): undo a
        strict router's rewriting of the Request-URI, and remove our own
        Route values from the top.

        @return: whether a Route value of ours was removed, that is whether
            the request was routed through us.
        """
        removed = False
        # Only a Request-URI naming our address (a Record-Route value we
        # inserted) comes from a strict router; sip:example.test is a
        # request for one of our domains.
        if self.isOurs(request.uri) and isAddress(request.uri.host):
            routes = request.headers.getAll("Route")
            if routes:
                # A strict router put our Record-Route in the Request-URI.
                removed = True
                last = Address.parse(routes[-1])
                request.uri = last.uri
                request.headers.remove("Route")
                for value in routes[:-1]:
                    request.headers.add("Route", value)
        while True:
            value = request.headers.get("Route")
            if value is None or not self.isOurs(Address.parse(value).uri):
                return removed
            request.headers.removeFirst("Route")
            removed = True

    def proxy(self, request, serverTransaction, groups, onFailure=None):
        """
        Forward C{request} statefully to C{groups}, a list of lists of
        L{Target}: the lists in turn, the targets of each in parallel.
        """
        self.stats.increment("proxy.requests")
        context = ResponseContext(self, request, serverTransaction, groups, onFailure)
        self._contexts[serverTransaction] = context
        context.start()
        return context

    def contextFor(self, serverTransaction):
        return self._contexts.get(serverTransaction)

    def cancel(self, inviteTransaction):
        """
        A CANCEL arrived for the INVITE of C{inviteTransaction}: cancel all
        its branches (RFC 3261 section 16.10). Return whether a context was
        found.
        """
        context = self._contexts.get(inviteTransaction)
        if context is None:
            return False
        context.cancel()
        return True

    def prepareBranch(self, original, target):
        """
        Copy C{original} for one target (RFC 3261 section 16.6 steps 1-6).
        """
        request = original.copy()
        request.uri = target.uri
        # RFC 3261 section 16.6 step 3: decrement, or add 70.
        forwards = original.maxForwards()
        request.headers.set("Max-Forwards", str(70 if forwards is None else forwards - 1))
        if target.path:
            existing = request.headers.getAll("Route")
            request.headers.remove("Route")
            for value in list(target.path) + existing:
                request.headers.add("Route", value)
        return request

    def newBranchId(self, original, index):
        """
        A branch parameter unique to one fork, starting with the request's
        loop-detection hash (RFC 3261 section 16.6 step 8).
        """
        return "%s.%s.%d%s" % (
            MAGIC_COOKIE, self.loopHash(original), index, tokenHex(3)
        )

    def nextHop(self, request):
        """
        The URI the request goes to (RFC 3261 section 16.6 steps 6-7): the
        top Route if it is a loose router, else (strict router) the top Route
        with the Request-URI moved to the end of the Route set.
        """
        value = request.headers.get("Route")
        if value is None:
            return request.uri
        route = Address.parse(value).uri
        if isinstance(route, URI) and not route.hasParam("lr"):
            request.headers.removeFirst("Route")
            request.headers.add("Route", "<%s>" % (request.uri,))
            request.uri = route
        return route

    def sendBranch(self, branch):
        request = branch.request
        if branch.target.flow is not None and not branch.target.path:
            transportName, host, port = branch.target.flow
            return self._send(branch, transportName.upper(), (host, port))
        hop = self.nextHop(request)
        d = self.resolve(hop)

        def resolved(destinations):
            for transportName, host, port in destinations:
                if transportName in self.transports:
                    return self._send(branch, transportName, (host, port))
            raise ParseError("no usable destination for %s" % (hop,), 503)

        return d.addCallback(resolved)

    def _send(self, branch, transportName, destination):
        if branch.done or branch.cancelWanted:
            return
        transport = self.transports.get(transportName)
        if transport is None:
            raise ParseError("no %s transport" % (transportName,), 503)
        request = branch.request
        if self.recordRoute and request.method in DIALOG_CREATING:
            self._addRecordRoute(request, branch.context, transport, destination)
        request.headers.prepend(
            "Via", "SIP/2.0/%s 0.0.0.0;branch=%s" % (transportName, branch.branchId)
        )
        branch.transaction = self.transactions.sendRequest(request, transport, destination)
        self._branches[branch.transaction] = branch
        branch.context.branchStarted(branch)

    def _addRecordRoute(self, request, context, transport, destination):
        incoming = context.serverTransaction.transport
        outgoing = self.recordRouteURI(transport, destination[0])
        if incoming is not transport:
            # Double record-routing when the transport changes (RFC 5658).
            source = context.serverTransaction.source
            request.headers.prepend("Record-Route", "<%s>" % (
                self.recordRouteURI(incoming, source[0]),))
        request.headers.prepend("Record-Route", "<%s>" % (outgoing,))

    def recordRouteURI(self, transport, towards):
        host, port = transport.localAddress(towards)
        uri = URI("sip", host=("[%s]" % host if ":" in host else host), port=port,
                  params=(("lr", None),))
        if transport.name != "UDP":
            uri = uri.withParams(transport=transport.name.lower())
        return uri

    def sendCancel(self, branch, cancel):
        try:
            self.transactions.sendRequest(
                cancel, branch.transaction.transport, branch.transaction.destination
            )
        except ValueError as e:
            _log.info("cannot send CANCEL: {error}", error=e)

    # Responses -------------------------------------------------------------

    def responseReceived(self, response, clientTransaction):
        """
        A response for one of our branches, or a stray one (C{None}).
        """
        if clientTransaction is None:
            self.forwardStateless(response)
            return
        branch = self._branches.get(clientTransaction)
        if branch is None:
            # A 2xx retransmission or late fork after the context ended.
            if 200 <= response.code < 300:
                self.forwardStateless(response)
            return
        branch.context.responseReceived(branch, response)

    def branchFailed(self, clientTransaction, code):
        branch = self._branches.get(clientTransaction)
        if branch is not None:
            branch.context.branchFinished(branch, makeResponse(branch.request, code))

    def forwardResponse(self, serverTransaction, response):
        """
        Send a response of a branch upstream, without our Via (RFC 3261
        section 16.7 step 9).
        """
        upstream = response.copy()
        upstream.headers.removeFirst("Via")
        self.stats.increment("responses.out.%dxx" % (response.code // 100,))
        serverTransaction.respond(upstream)

    def forwardFinal(self, serverTransaction, best, finals):
        """
        Send the chosen final response, with the challenges of every 401 and
        407 merged into it (RFC 3261 section 16.7 step 7).
        """
        if best.toAddress().tag is None:
            # One we made ourselves (408, 480, 487, 503): a UAS's final
            # response carries a To tag (RFC 3261 section 8.2.6.2).
            best = best.copy()
            best.headers.set("To", str(best.toAddress().withParams(tag=tokenHex(6))))
        if best.code == 503:
            # Section 16.7 step 6: the caller must not take a downstream
            # 503 as this proxy being overloaded.
            best = best.copy()
            best.code, best.reason = 500, "Server Internal Error"
        if best.code in (401, 407):
            best = best.copy()
            for name in ("WWW-Authenticate", "Proxy-Authenticate"):
                values = []
                for response in finals:
                    if response.code in (401, 407):
                        values.extend(response.headers.getAll(name))
                best.headers.remove(name)
                for value in values:
                    best.headers.add(name, value)
        if "Via" in best.headers and best.headers.getAll("Via") != serverTransaction.request.headers.getAll("Via"):
            self.forwardResponse(serverTransaction, best)
        else:
            self.stats.increment("responses.out.%dxx" % (best.code // 100,))
            serverTransaction.respond(best)

    def forwardStateless(self, response):
        """
        Forward a response that matched no transaction (RFC 3261 section
        16.11 / 16.7 for 2xx retransmissions): pop our Via, send it where the
        next Via says.
        """
        try:
            vias = response.vias()
        except ParseError:
            return
        if len(vias) < 2 or not self.isOurs(URI("sip", host=vias[0].host, port=vias[0].port)):
            # Not sent by us: discard (RFC 3261 section 18.1.2).
            return
        upstream = response.copy()
        upstream.headers.removeFirst("Via")
        transport = self.transports.get(vias[1].transport)
        if transport is None:
            return
        self.stats.increment("proxy.stateless")
        transport.sendResponse(upstream, None)

    def forwardAck(self, ack):
        """
        Forward an ACK for a 2xx (no transaction) along its Route set.
        """
        ack = ack.copy()
        forwards = ack.maxForwards()
        ack.headers.set("Max-Forwards", str(70 if forwards is None else forwards - 1))
        hop = self.nextHop(ack)

        def resolved(destinations):
            for transportName, host, port in destinations:
                transport = self.transports.get(transportName)
                if transport is not None:
                    ack.headers.prepend("Via", str(Via(
                        transportName, "0.0.0.0", None,
                        (("branch", MAGIC_COOKIE + tokenHex(8)),),
                    )))
                    transport.sendRequest(ack, (host, port))
                    self.stats.increment("proxy.stateless")
                    return

        return self.resolve(hop).addCallback(resolved).addErrback(
            lambda f: _log.info("cannot forward ACK: {e}", e=f.getErrorMessage())
        )

    def contextDone(self, context):
        context.stop()
        for branch in context.branches:
            if branch.transaction is not None:
                self._branches.pop(branch.transaction, None)
        self._contexts.pop(context.serverTransaction, None)

    @property
    def activeContexts(self):
        return len(self._contexts)

    def stop(self):
        for context in list(self._contexts.values()):
            context.stop()
        self._contexts.clear()
        self._branches.clear()


def groupsByQ(targets):
    """
    Split targets with q values into groups of equal q, highest first
    (RFC 3261 section 16.6: parallel within a group, sequential between).
    """
    groups = {}
    for q, target in targets:
        groups.setdefault(q, []).append(target)
    return [groups[q] for q in sorted(groups, reverse=True)]


def hostTargets(uri, transportName, port=None):
    """
    The destination of a URI whose host is an address: no DNS needed.
    """
    host = uri.host.strip("[]")
    return [(transportName, host, uri.port or port or DEFAULT_PORTS.get(transportName, 5060))]

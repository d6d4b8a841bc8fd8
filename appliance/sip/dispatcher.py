"""
The SIP service's transaction user: decides, per request, who answers.

Requests addressed to the server itself are answered here (OPTIONS, RFC 3261
section 11); requests for users go to the registrar and proxy once they are
enabled, and until then get the answer a server without them owes: 403 for
registrations and for other domains, 404 for users of ours, 501 for methods
nobody here implements.
"""

import secrets

from twisted.logger import Logger
from zope.interface import implementer

from appliance import logs
from appliance.interfaces import ITransactionUser
from appliance.sip.message import URI, makeResponse

_log = Logger(observer=logs.observer)

#: Methods this server routes (RFC 3261 section 20.5, Allow).
ALLOWED = ("OPTIONS", "ACK", "CANCEL")

#: Methods defined by RFCs that a server may refuse with 405; anything else
#: is unknown and gets 501 (RFC 3261 section 8.2.1).
KNOWN = ALLOWED + (
    "INVITE", "BYE", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH",
    "INFO", "REFER", "MESSAGE", "UPDATE",
)

#: Option tags this server supports (RFC 3261 section 20.37).
SUPPORTED = ()

#: Bodies this server understands (RFC 3261 section 20.1).
ACCEPT = ("application/sdp",)


def newTag():
    """
    A fresh To / From tag with at least 32 bits of randomness
    (RFC 3261 section 19.3).
    """
    return secrets.token_hex(6)


def unsupportedExtensions(request):
    """
    Return the option tags of the request's Require header that this
    server does not support (RFC 3261 section 8.2.2.3).
    """
    required = []
    for value in request.headers.getAll("Require"):
        required.extend(tag.strip() for tag in value.split(",") if tag.strip())
    return [tag for tag in required if tag.lower() not in SUPPORTED]


@implementer(ITransactionUser)
class Dispatcher:
    """
    Routes each new request to the piece of the server that owns it.

    @param domains: the domains this server is responsible for.
    @param isLocalHost: a callable telling whether a host names this server
        (one of its addresses), for requests addressed to the server itself.
    @param stats: the SIP service's L{appliance.stats.Statistics}.
    """

    def __init__(self, domains, isLocalHost, stats):
        self._domains = frozenset(domain.lower() for domain in domains)
        self._isLocalHost = isLocalHost
        self._stats = stats

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

    def _isForServer(self, uri):
        return isinstance(uri, URI) and (
            uri.user is None or self._isLocalHost(uri.host)
        )

    def requestReceived(self, request, serverTransaction):
        if serverTransaction is None:
            # An ACK for a 2xx that this server never sent: nothing to do
            # until there is a proxy to forward it (RFC 3261 section 16.7).
            return
        method = request.method
        if method == "ACK":
            return
        if method not in KNOWN:
            self.respond(serverTransaction, request, 501, headers=self._capabilities())
            return
        if method != "CANCEL":
            unsupported = unsupportedExtensions(request)
            if unsupported:
                self.respond(
                    serverTransaction, request, 420,
                    headers=(("Unsupported", ", ".join(unsupported)),),
                )
                return
        if method == "OPTIONS":
            self.respond(serverTransaction, request, 200, headers=self._capabilities())
        elif method == "CANCEL":
            # The INVITE it would cancel was answered at once (there is no
            # proxy yet), so either that transaction completed (200: the
            # CANCEL had nothing to do) or there never was one (481).
            self.respond(
                serverTransaction, request,
                200 if serverTransaction.cancelledInvite() is not None else 481,
            )
        elif method == "REGISTER":
            self.respond(serverTransaction, request, 403, "Registrar not enabled")
        elif self._isForServer(request.uri):
            self.respond(serverTransaction, request, 405, headers=self._capabilities())
        elif isinstance(request.uri, URI) and request.uri.host in self._domains:
            self.respond(serverTransaction, request, 404)
        else:
            self.respond(serverTransaction, request, 403, "Relaying denied")

    def responseReceived(self, response, clientTransaction):
        # Without a proxy, this server sends no requests: a response is stray.
        _log.debug(
            "dropping stray {code} response for {callId}",
            code=response.code, callId=response.callId,
        )

    def transactionTimedOut(self, transaction):
        _log.info("transaction timed out: {transaction}", transaction=transaction)

    def transportFailed(self, transaction):
        _log.info("transport failed for {transaction}", transaction=transaction)

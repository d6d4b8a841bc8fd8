"""
The SIP transaction layer (RFC 3261 section 17, with the RFC 6026 fix).

L{TransactionLayer} sits between the transports and a transaction user
(L{appliance.interfaces.ITransactionUser}: a proxy core, a registrar or a
user agent core).  It matches incoming messages to transactions, absorbs
retransmissions, and creates the four state machines:

  - L{appliance.sip.clienttransaction.ClientInviteTransaction} (figure 5),
  - L{appliance.sip.clienttransaction.ClientNonInviteTransaction} (figure 6),
  - L{appliance.sip.servertransaction.ServerInviteTransaction} (figure 7),
  - L{appliance.sip.servertransaction.ServerNonInviteTransaction} (figure 8).

RFC 6026 is implemented: a 2xx to an INVITE moves both INVITE transactions
to the I{Accepted} state (timers L and M, 64*T1) instead of terminating
them.  The server transaction then absorbs retransmitted INVITEs rather
than handing them to the transaction user as new requests, and sends every
further 2xx the transaction user gives it; the client transaction passes
every 2xx (retransmissions and other forks) to the transaction user, which
acknowledges each one (RFC 3261 section 13.2.2.4).  Retransmitting a 2xx
remains the transaction user's job (RFC 3261 section 13.3.1.4).

Timers run on an injected L{twisted.internet.interfaces.IReactorTime}; the
state machines are plain classes whose C{state} is a L{TransactionState}.
They are written by hand rather than with C{automat} because they are on
the hot path of a proxy and each has only a handful of transitions.
"""

import enum

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from appliance.randomness import tokenHex
from appliance.sip.message import URI, ParseError, Via

_log = Logger()

MAGIC_COOKIE = "z9hG4bK"


def newBranch():
    """
    Return a new, globally unique branch parameter for a Via header field:
    the RFC 3261 magic cookie followed by a random token (section 8.1.1.7).
    """
    return MAGIC_COOKIE + tokenHex(10)


def _positive(instance, attribute, value):
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, not {value!r}")


@attrs.frozen
class TimerSettings:
    """
    The timer values of RFC 3261 section 17 (table 4), in seconds.

    Only T1, T2, T4, the unreliable value of timer D and the delay before
    an automatic 100 (Trying) are configurable; the other timers derive
    from them as the RFC prescribes.  Timers D, I, J and K are zero on a
    reliable transport, which means the transaction terminates at once.

    @ivar T1: the round-trip time estimate (default 500 ms).
    @ivar T2: the longest interval between retransmissions of non-INVITE
        requests and INVITE responses (default 4 s).
    @ivar T4: the longest time a message stays in the network (default 5 s).
    @ivar D: timer D over unreliable transports (at least 32 s).
    @ivar trying: how long a server INVITE transaction waits for the
        transaction user's first response before it sends 100 (Trying)
        itself (200 ms, RFC 3261 section 17.2.1).
    """

    T1: float = attrs.field(default=0.5, validator=_positive)
    T2: float = attrs.field(default=4.0, validator=_positive)
    T4: float = attrs.field(default=5.0, validator=_positive)
    D: float = attrs.field(default=32.0, validator=_positive)
    trying: float = attrs.field(default=0.2, validator=_positive)

    @T2.validator
    def _checkT2(self, attribute, value):
        if value < self.T1:
            raise ValueError(f"T2 ({value!r}) must not be less than T1")

    @property
    def timerB(self):
        """
        64*T1: timers B and F (client transaction timeouts), H (wait for
        an ACK), and RFC 6026's L and M (the Accepted state).
        """
        return 64 * self.T1

    timerF = timerB
    timerH = timerB
    timerL = timerB
    timerM = timerB

    def timerD(self, reliable):
        """
        Wait time for response retransmissions in a client INVITE
        transaction: C{D} seconds unreliable, zero reliable.
        """
        return 0 if reliable else self.D

    def timerI(self, reliable):
        """
        Wait time for ACK retransmissions: T4 unreliable, zero reliable.
        """
        return 0 if reliable else self.T4

    def timerJ(self, reliable):
        """
        Wait time for non-INVITE request retransmissions: 64*T1 unreliable,
        zero reliable.
        """
        return 0 if reliable else 64 * self.T1

    def timerK(self, reliable):
        """
        Wait time for non-INVITE response retransmissions: T4 unreliable,
        zero reliable.
        """
        return 0 if reliable else self.T4


class TransactionState(enum.Enum):
    """
    The states of the transaction state machines (RFC 3261 figures 5 to 8
    and RFC 6026 figures 5 and 7).
    """

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


def topVia(message):
    """
    Return the parsed top Via of C{message}.

    @raise ParseError: when there is no Via or it is malformed.
    """
    value = message.headers.get("Via")
    if value is None:
        raise ParseError("missing Via")
    return Via.parse(value)


def _sameURI(a, b):
    if isinstance(a, URI) and isinstance(b, URI):
        return a.equivalent(b)
    return a == b


class Transaction:
    """
    What the four state machines share: timers on the layer's clock, and
    transmission with the transport error handling of RFC 3261 sections
    17.1.4 and 17.2.4 (on an error the transaction terminates and tells the
    transaction user through C{transportFailed}).

    A transport's C{sendRequest} / C{sendResponse} may raise or may return a
    L{Deferred} that fails; both count as a transport error.

    @ivar request: the request that created the transaction.
    @ivar transport: the L{appliance.interfaces.ISIPTransport} it uses.
    @ivar branch: the branch parameter of the request's top Via, or
        C{None} for an RFC 2543 request without one.
    @ivar state: a L{TransactionState}.
    """

    state = TransactionState.TERMINATED

    def __init__(self, layer, request, transport, branch):
        self._layer = layer
        self.request = request
        self.transport = transport
        self.branch = branch
        self._calls = {}

    def __repr__(self):
        return (
            f"<{self.__class__.__name__} {self.request.method} "
            f"branch={self.branch} {self.state.value}>"
        )

    def _sendMessage(self, message):
        """
        Hand C{message} to the transport; implemented by subclasses.
        """
        raise NotImplementedError()

    def _startTimer(self, name, delay, f, *args):
        self._calls[name] = self._layer._clock.callLater(
            delay, self._timerFired, name, f, args
        )

    def _timerFired(self, name, f, args):
        del self._calls[name]
        f(*args)

    def _stopTimers(self, *names):
        """
        Cancel the named timers (all of them when no name is given).
        """
        for name in names or list(self._calls):
            call = self._calls.pop(name, None)
            if call is not None:
                call.cancel()

    def _transmit(self, message):
        try:
            result = self._sendMessage(message)
        except Exception:
            self._transportFailed(Failure())
            return
        if isinstance(result, Deferred):
            result.addErrback(self._transportFailed)

    def _retransmit(self, message):
        self._layer.retransmissionsSent += 1
        self._transmit(message)

    def _transportFailed(self, reason):
        if self.state is TransactionState.TERMINATED:
            return
        self._layer.transportErrors += 1
        _log.warn(
            "Transport error in {transaction!r}: {error}",
            transaction=self,
            error=reason.getErrorMessage(),
        )
        self._terminate()
        self._layer._notifyTransportFailed(self)

    def _timedOut(self):
        """
        Timer B, F or H fired: terminate and tell the transaction user.
        """
        self._layer.timeouts += 1
        self._terminate()
        self._layer._transactionUser.transactionTimedOut(self)

    def terminate(self):
        """
        End this transaction now, silently: its timers stop and nothing more
        reaches the transaction user (a proxy gives up on a branch whose
        CANCEL went unanswered, RFC 3261 section 16.8).
        """
        self._terminate()

    def _terminate(self):
        if self.state is TransactionState.TERMINATED:
            return
        self.state = TransactionState.TERMINATED
        self._stopTimers()
        self._layer._forget(self)


class TransactionLayer:
    """
    The transaction layer of one SIP service (RFC 3261 section 17).

    Transports hand it every message they parse (L{receiveRequest},
    L{receiveResponse}); the transaction user sends requests through
    L{sendRequest} and responds through
    L{appliance.sip.servertransaction.ServerTransaction.respond}.

    The transaction user hears, through its
    L{appliance.interfaces.ITransactionUser} methods:

      - C{requestReceived(request, serverTransaction)}: once per new
        request; C{None} as the transaction for an ACK that matched no
        transaction, or that matched an INVITE server transaction in the
        Accepted state (both are the ACK for a 2xx, RFC 6026 section 7.1).
      - C{responseReceived(response, clientTransaction)}: every
        provisional response, the final response exactly once, and every
        2xx to an INVITE (each must be acknowledged by the user agent core);
        C{None} as the transaction for a stray response.
      - C{transactionTimedOut(transaction)}: timer B, F or H fired.  Nothing
        follows for that transaction.
      - C{transportFailed(transaction)}: the transport failed to send a
        message of the transaction, which is terminated.  Nothing follows.
        When the very first send of L{sendRequest} fails, this is called
        from the clock (after a zero delay) so that the caller has the
        transaction object first.

    Statistics: L{activeTransactions} (a gauge) and the counters
    C{timeouts}, C{retransmissionsSent} (requests, responses and ACKs sent
    again), C{retransmissionsAbsorbed} (retransmitted requests and
    responses received), C{transportErrors} and C{strayResponses}; all of
    them by dotted name from L{statistics}.

    @ivar timers: the L{TimerSettings}.
    """

    def __init__(self, clock, transactionUser, timers=TimerSettings()):
        """
        @param clock: an L{twisted.internet.interfaces.IReactorTime}.
        @param transactionUser: an L{appliance.interfaces.ITransactionUser}.
        @param timers: the L{TimerSettings}.
        """
        # The transactions subclass Transaction, defined above, so they
        # cannot be imported at the top of this module.
        from appliance.sip import clienttransaction, servertransaction

        self._clientInvite = clienttransaction.ClientInviteTransaction
        self._clientNonInvite = clienttransaction.ClientNonInviteTransaction
        self._serverInvite = servertransaction.ServerInviteTransaction
        self._serverNonInvite = servertransaction.ServerNonInviteTransaction

        self._clock = clock
        self._transactionUser = transactionUser
        self.timers = timers
        # (branch, method) -> client transaction (RFC 3261 section 17.1.3)
        self._clients = {}
        # (branch, sent-by host, sent-by port, method) -> server transaction
        # (RFC 3261 section 17.2.3), ACK filed under INVITE
        self._servers = {}
        # (Call-ID, CSeq number, From tag, method) -> [server transaction]
        # for RFC 2543 requests without the magic cookie
        self._legacyServers = {}
        self._legacyCount = 0
        # the client transaction sendRequest is starting, and the
        # zero-delay transportFailed notifications for such transactions
        self._starting = None
        self._pending = set()

        self.timeouts = 0
        self.retransmissionsSent = 0
        self.retransmissionsAbsorbed = 0
        self.transportErrors = 0
        self.strayResponses = 0

    @property
    def activeTransactions(self):
        """
        The number of transactions not yet terminated.
        """
        return len(self._clients) + len(self._servers) + self._legacyCount

    def statistics(self):
        """
        Return the statistics as a C{dict} of dotted names to C{int}.
        """
        return {
            "transactions.active.client": len(self._clients),
            "transactions.active.server": len(self._servers) + self._legacyCount,
            "transactions.timeouts": self.timeouts,
            "transactions.retransmissions.sent": self.retransmissionsSent,
            "transactions.retransmissions.absorbed": self.retransmissionsAbsorbed,
            "transactions.transportErrors": self.transportErrors,
            "transactions.strayResponses": self.strayResponses,
        }

    def receiveRequest(self, request, transport, source):
        """
        Handle a request that C{transport} received from C{source}.

        A retransmission is absorbed by the transaction it belongs to (which
        sends its last response again); an ACK goes to its INVITE server
        transaction; any other request creates a server transaction and is
        passed to the transaction user.  A request whose Via, CSeq or From
        cannot be parsed is dropped: there is nowhere to answer it.
        """
        method = request.method
        try:
            via, key, legacyKey = self._serverKeys(request, method)
            match = self._findServer(request, via, key, legacyKey)
        except ParseError as e:
            _log.info(
                "Dropping {method} from {source}: {reason}",
                method=method,
                source=source,
                reason=e.reason,
            )
            return

        if match is not None:
            if method == "ACK":
                match._ackReceived(request)
            else:
                match._requestRetransmitted(request)
            return
        if method == "ACK":
            self._transactionUser.requestReceived(request, None)
            return

        if method == "INVITE":
            factory = self._serverInvite
        else:
            factory = self._serverNonInvite
        transaction = factory(self, request, transport, source, via, key, legacyKey)
        if key is not None:
            self._servers[key] = transaction
        else:
            self._legacyServers.setdefault(legacyKey, []).append(transaction)
            self._legacyCount += 1
        transaction._start()
        self._transactionUser.requestReceived(request, transaction)

    def absorb(self, request):
        """
        Handle C{request} at once if it belongs to a server transaction
        already running: a retransmission (the transaction sends its last
        response again) or the ACK of a non-2xx final response. Lets a
        transport skip the checks of a new request for what it has seen
        before, which matters most when a peer retransmits because the
        server is busy.

        @return: whether the request was absorbed; when not, pass it to
            L{receiveRequest} (after checking it).
        """
        try:
            via, key, legacyKey = self._serverKeys(request, request.method)
            match = self._findServer(request, via, key, legacyKey)
        except ParseError:
            return False
        if match is None:
            return False
        if request.method == "ACK":
            match._ackReceived(request)
        else:
            match._requestRetransmitted(request)
        return True

    def matchCancel(self, cancel):
        """
        Return the server INVITE transaction that the CANCEL request
        C{cancel} refers to, or C{None} (RFC 3261 section 9.2: the matching
        of section 17.2.3 with the method taken as INVITE).

        The CANCEL has its own server transaction; the transaction user
        answers it, and the INVITE with 487 if that is still unanswered.
        """
        try:
            via, key, legacyKey = self._serverKeys(cancel, "INVITE")
            return self._findServer(cancel, via, key, legacyKey)
        except ParseError:
            return None

    def _serverKeys(self, request, method):
        """
        Return the top Via of C{request} and the key of the server
        transaction table it belongs in: C{(key, None)} for an RFC 3261
        branch, C{(None, legacyKey)} for an RFC 2543 request.
        """
        via = topVia(request)
        if method == "ACK":
            method = "INVITE"
        branch = via.branch
        if branch is not None and branch.startswith(MAGIC_COOKIE):
            return via, (branch, via.host.lower(), via.port, method), None
        number, _ = request.cseq()
        legacyKey = (
            request.headers.get("Call-ID"),
            number,
            request.fromAddress().tag,
            method,
        )
        return via, None, legacyKey

    def _findServer(self, request, via, key, legacyKey):
        if key is not None:
            return self._servers.get(key)
        for transaction in self._legacyServers.get(legacyKey, ()):
            if transaction._matchesLegacy(request, via):
                return transaction
        return None

    def receiveResponse(self, response, transport, source):
        """
        Handle a response that C{transport} received from C{source}: match
        it to a client transaction by the branch of its top Via and its CSeq
        method (RFC 3261 section 17.1.3), or pass it to the transaction user
        as a stray response.  A response whose Via or CSeq cannot be parsed
        is dropped.
        """
        try:
            branch = topVia(response).branch
            _, method = response.cseq()
        except ParseError as e:
            _log.info(
                "Dropping response {code} from {source}: {reason}",
                code=response.code,
                source=source,
                reason=e.reason,
            )
            return
        transaction = self._clients.get((branch, method))
        if transaction is None:
            self.strayResponses += 1
            self._transactionUser.responseReceived(response, None)
        else:
            transaction._responseReceived(response)

    def sendRequest(self, request, transport, destination):
        """
        Send C{request} in a new client transaction (RFC 3261 section 17.1)
        to C{destination}, a C{(host, port)} tuple, over C{transport}.

        The transaction user must have put a Via with a unique branch
        (L{newBranch}) on top of the request; a CANCEL carries the branch of
        the INVITE it cancels.  ACK is not sent in a transaction: the ACK
        for a non-2xx is sent by the INVITE client transaction itself, the
        ACK for a 2xx by the user agent core straight to the transport.

        @return: the L{appliance.sip.clienttransaction.ClientTransaction}.
        @raise ValueError: for an ACK, a request without a top Via whose
            branch starts with the magic cookie, a CSeq that does not match
            the method, or a branch and method already in use.
        """
        method = request.method
        if method == "ACK":
            raise ValueError("ACK is not sent in a client transaction")
        try:
            branch = topVia(request).branch
            _, cseqMethod = request.cseq()
        except ParseError as e:
            raise ValueError(e.reason) from e
        if branch is None or not branch.startswith(MAGIC_COOKIE):
            raise ValueError(f"top Via branch must start with {MAGIC_COOKIE}")
        if cseqMethod != method:
            raise ValueError(f"CSeq method {cseqMethod} is not {method}")
        key = (branch, method)
        if key in self._clients:
            raise ValueError(f"a {method} transaction with branch {branch} exists")

        if method == "INVITE":
            factory = self._clientInvite
        else:
            factory = self._clientNonInvite
        transaction = factory(self, request, transport, destination, branch)
        self._clients[key] = transaction
        self._starting = transaction
        try:
            transaction._start()
        finally:
            self._starting = None
        return transaction

    def _notifyTransportFailed(self, transaction):
        if transaction is not self._starting:
            self._transactionUser.transportFailed(transaction)
            return

        def notify():
            self._pending.discard(call)
            self._transactionUser.transportFailed(transaction)

        call = self._clock.callLater(0, notify)
        self._pending.add(call)

    def _forget(self, transaction):
        """
        Remove a terminated transaction from the tables.
        """
        key = transaction._key
        table = self._clients if transaction._isClient else self._servers
        if key is not None:
            if table.get(key) is transaction:
                del table[key]
            return
        candidates = self._legacyServers.get(transaction._legacyKey, [])
        if transaction in candidates:
            candidates.remove(transaction)
            self._legacyCount -= 1
            if not candidates:
                del self._legacyServers[transaction._legacyKey]

    def stop(self):
        """
        Terminate every transaction and cancel every timer, without telling
        the transaction user (for service shutdown).
        """
        transactions = list(self._clients.values()) + list(self._servers.values())
        for candidates in self._legacyServers.values():
            transactions.extend(candidates)
        for transaction in transactions:
            transaction.state = TransactionState.TERMINATED
            transaction._stopTimers()
        self._clients.clear()
        self._servers.clear()
        self._legacyServers.clear()
        self._legacyCount = 0
        for call in self._pending:
            call.cancel()
        self._pending.clear()

"""
Client transactions (RFC 3261 section 17.1, with RFC 6026).

They are created by L{appliance.sip.transaction.TransactionLayer.sendRequest};
see that class for what the transaction user is told.
"""

from appliance.sip.message import Headers, Request
from appliance.sip.transaction import Transaction, TransactionState

_CALLING = TransactionState.CALLING
_TRYING = TransactionState.TRYING
_PROCEEDING = TransactionState.PROCEEDING
_COMPLETED = TransactionState.COMPLETED
_ACCEPTED = TransactionState.ACCEPTED


def _copyForRequest(request, method, to):
    """
    Build a CANCEL or the ACK for a non-2xx (C{method}) from C{request}: the top
    Via of C{request} alone, its Route header fields, Max-Forwards, From,
    C{to}, Call-ID and the CSeq number with C{method}.
    """
    headers = Headers()
    headers.add("Via", request.headers.getAll("Via")[0])
    for route in request.headers.getAll("Route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", request.headers.get("Max-Forwards", "70"))
    for name, value in [
        ("From", request.headers.get("From")),
        ("To", to),
        ("Call-ID", request.headers.get("Call-ID")),
    ]:
        if value is not None:
            headers.add(name, value)
    number, _ = request.cseq()
    headers.add("CSeq", f"{number} {method}")
    return Request(method=method, uri=request.uri, headers=headers)


def makeAck(invite, response):
    """
    Build the ACK for a non-2xx final response to C{invite}
    (RFC 3261 section 17.1.1.3): the Request-URI, Call-ID, From and CSeq
    number of the INVITE, the To of the response, a single Via equal to the
    INVITE's top Via, and the INVITE's Route header fields.
    """
    return _copyForRequest(invite, "ACK", response.headers.get("To"))


def makeCancel(request):
    """
    Build a CANCEL for C{request} (RFC 3261 section 9.1): the Request-URI,
    Call-ID, From, To and CSeq number of the request, its top Via (so its
    branch) and its Route header fields.  Send it with
    L{appliance.sip.transaction.TransactionLayer.sendRequest}.
    """
    return _copyForRequest(request, "CANCEL", request.headers.get("To"))


class ClientTransaction(Transaction):
    """
    A client transaction (RFC 3261 section 17.1).

    @ivar destination: the C{(host, port)} the request is sent to; the ACK
        for a non-2xx goes there too.
    """

    _isClient = True
    _legacyKey = None

    def __init__(self, layer, request, transport, destination, branch):
        Transaction.__init__(self, layer, request, transport, branch)
        self.destination = destination
        self._key = (branch, request.method)

    def _sendMessage(self, message):
        return self.transport.sendRequest(message, self.destination)

    def _responseReceived(self, response):
        raise NotImplementedError()


class ClientInviteTransaction(ClientTransaction):
    """
    The INVITE client transaction (RFC 3261 section 17.1.1, figure 5, as
    updated by RFC 6026 section 8.4).

    Calling: the INVITE is retransmitted on timer A (T1, doubling, over
    unreliable transports only) until a response arrives or timer B
    (64*T1) times the transaction out.  Proceeding: provisional responses
    go to the transaction user.  A 300-699 final response goes to the
    transaction user once and the transaction acknowledges it, and again
    each retransmission of it, in Completed until timer D.  A 2xx goes to
    the transaction user, as do all further 2xx in Accepted until timer M
    (64*T1).

    @ivar ack: the ACK sent for a non-2xx final response, or C{None}.
    """

    ack = None

    def _start(self):
        self.state = _CALLING
        timers = self._layer.timers
        if not self.transport.reliable:
            self._startTimer("A", timers.T1, self._timerA, timers.T1)
        self._startTimer("B", timers.timerB, self._timedOut)
        self._transmit(self.request)

    def _timerA(self, interval):
        """
        RFC 3261 section 17.1.1.2: retransmit, and double the interval.
        """
        self._retransmit(self.request)
        if self.state is _CALLING:
            self._startTimer("A", 2 * interval, self._timerA, 2 * interval)

    def _responseReceived(self, response):
        code = response.code
        transactionUser = self._layer._transactionUser
        state = self.state
        if state is _CALLING or state is _PROCEEDING:
            self._stopTimers("A", "B")
            if code < 200:
                self.state = _PROCEEDING
                transactionUser.responseReceived(response, self)
            elif code < 300:
                self.state = _ACCEPTED
                self._startTimer("M", self._layer.timers.timerM, self._terminate)
                transactionUser.responseReceived(response, self)
            else:
                self._completed(response)
        elif state is _ACCEPTED and 200 <= code < 300:
            transactionUser.responseReceived(response, self)
        elif state is _COMPLETED and code >= 300:
            self._layer.retransmissionsAbsorbed += 1
            self._retransmit(self.ack)
        else:
            self._layer.retransmissionsAbsorbed += 1

    def _completed(self, response):
        """
        A 300-699 final response arrived (RFC 3261 section 17.1.1.2): pass
        it up, send the ACK and wait timer D for retransmissions of it.
        """
        self.state = _COMPLETED
        self.ack = makeAck(self.request, response)
        timerD = self._layer.timers.timerD(self.transport.reliable)
        if timerD:
            self._startTimer("D", timerD, self._terminate)
        try:
            self._layer._transactionUser.responseReceived(response, self)
        finally:
            if self.state is _COMPLETED:
                self._transmit(self.ack)
                if not timerD:
                    self._terminate()


class ClientNonInviteTransaction(ClientTransaction):
    """
    The non-INVITE client transaction (RFC 3261 section 17.1.2, figure 6).

    Trying: the request is retransmitted on timer E (T1, doubling up to T2,
    over unreliable transports only) until timer F (64*T1) times the
    transaction out.  Proceeding: provisional responses go to the
    transaction user, and the request is retransmitted every T2.  The final
    response goes to the transaction user once; retransmissions of it are
    absorbed in Completed until timer K.
    """

    def _start(self):
        self.state = _TRYING
        timers = self._layer.timers
        if not self.transport.reliable:
            self._startTimer("E", timers.T1, self._timerE, timers.T1)
        self._startTimer("F", timers.timerF, self._timedOut)
        self._transmit(self.request)

    def _timerE(self, interval):
        """
        RFC 3261 section 17.1.2.2: retransmit; the next interval doubles,
        capped at T2, in Trying, and is T2 in Proceeding.
        """
        self._retransmit(self.request)
        T2 = self._layer.timers.T2
        if self.state is _TRYING:
            interval = min(2 * interval, T2)
            self._startTimer("E", interval, self._timerE, interval)
        elif self.state is _PROCEEDING:
            self._startTimer("E", T2, self._timerE, T2)

    def _responseReceived(self, response):
        if self.state is not _TRYING and self.state is not _PROCEEDING:
            self._layer.retransmissionsAbsorbed += 1
            return
        if response.code < 200:
            self.state = _PROCEEDING
        else:
            self._stopTimers("E", "F")
            self.state = _COMPLETED
            timerK = self._layer.timers.timerK(self.transport.reliable)
            if timerK:
                self._startTimer("K", timerK, self._terminate)
            else:
                self._terminate()
        self._layer._transactionUser.responseReceived(response, self)

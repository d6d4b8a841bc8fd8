"""
Server transactions (RFC 3261 section 17.2, with RFC 6026).

They are created by
L{appliance.sip.transaction.TransactionLayer.receiveRequest} and handed to
the transaction user, which answers through L{ServerTransaction.respond}.
"""

from twisted.logger import Logger

from appliance.sip.message import makeResponse
from appliance.sip.transaction import Transaction, TransactionState, _sameURI

_log = Logger()

_TRYING = TransactionState.TRYING
_PROCEEDING = TransactionState.PROCEEDING
_COMPLETED = TransactionState.COMPLETED
_CONFIRMED = TransactionState.CONFIRMED
_ACCEPTED = TransactionState.ACCEPTED


class ServerTransaction(Transaction):
    """
    A server transaction (RFC 3261 section 17.2).

    @ivar source: the C{(host, port)} the request came from; responses go
        back through C{transport.sendResponse(response, source)}.
    @ivar lastResponse: the last response sent, or C{None}.
    """

    _isClient = False
    lastResponse = None

    def __init__(self, layer, request, transport, source, via, key, legacyKey):
        Transaction.__init__(self, layer, request, transport, via.branch)
        self.source = source
        self._via = via
        self._key = key
        self._legacyKey = legacyKey

    def respond(self, response):
        """
        Send C{response} to the request, following the state machine.
        Responses the state machine has no use for (anything after the
        final response, except further 2xx to an INVITE) are discarded.
        """
        raise NotImplementedError()

    def cancelledInvite(self):
        """
        For a CANCEL, return the INVITE server transaction it cancels
        (matched as RFC 3261 section 9.2 says), or C{None} when there is
        none; C{None} for any other method.
        """
        if self.request.method != "CANCEL":
            return None
        return self._layer.matchCancel(self.request)

    def _discard(self, response):
        _log.debug(
            "{transaction!r} discards a {code} response from the TU",
            transaction=self,
            code=response.code,
        )

    def _sendMessage(self, message):
        return self.transport.sendResponse(message, self.source)

    def _send(self, response):
        self.lastResponse = response
        self._transmit(response)

    def _requestRetransmitted(self, request):
        """
        RFC 3261 sections 17.2.1 and 17.2.2: a retransmission of the request
        is answered with the last response, if any, in Proceeding and
        Completed, and absorbed in the other states.
        """
        self._layer.retransmissionsAbsorbed += 1
        if self.lastResponse is not None and (
            self.state is _PROCEEDING or self.state is _COMPLETED
        ):
            self._retransmit(self.lastResponse)

    def _ackReceived(self, ack):
        self._layer.retransmissionsAbsorbed += 1

    def _matchesLegacy(self, request, via):
        """
        Whether C{request}, which has the same Call-ID, CSeq number, From
        tag and method (ACK standing for INVITE) as this transaction's
        request, belongs to this transaction under the RFC 2543 rules of
        RFC 3261 section 17.2.3: same Request-URI and top Via, and the same
        To tag (for an ACK: the To tag of the response sent).
        """
        original = self.request
        if via != self._via or not _sameURI(request.uri, original.uri):
            return False
        toTag = request.toAddress().tag
        if request.method == "ACK":
            return (
                self.lastResponse is not None
                and self.lastResponse.code >= 200
                and toTag == self.lastResponse.toAddress().tag
            )
        return toTag == original.toAddress().tag


class ServerInviteTransaction(ServerTransaction):
    """
    The INVITE server transaction (RFC 3261 section 17.2.1, figure 7, as
    updated by RFC 6026 section 7.1).

    Proceeding: unless the transaction user responds within
    C{timers.trying} (200 ms), the transaction sends 100 (Trying) itself.
    A 300-699 response moves to Completed: it is retransmitted on timer G
    (T1, doubling up to T2, unreliable transports only) until the ACK
    arrives (Confirmed, which absorbs ACKs until timer I) or timer H
    (64*T1) fires, which times the transaction out.  A 2xx moves to
    Accepted until timer L (64*T1): retransmitted INVITEs are absorbed,
    further 2xx from the transaction user are sent, and ACKs go to the
    transaction user.
    """

    def _start(self):
        self.state = _PROCEEDING
        self._startTimer("trying", self._layer.timers.trying, self._sendTrying)

    def _sendTrying(self):
        """
        RFC 3261 sections 17.2.1 and 8.2.6.1: 100 (Trying), no To tag,
        Timestamp copied.
        """
        trying = makeResponse(self.request, 100)
        timestamp = self.request.headers.get("Timestamp")
        if timestamp is not None:
            trying.headers.set("Timestamp", timestamp)
        self._send(trying)

    def respond(self, response):
        code = response.code
        timers = self._layer.timers
        if self.state is _PROCEEDING:
            self._stopTimers("trying")
            if 200 <= code < 300:
                self.state = _ACCEPTED
                self._startTimer("L", timers.timerL, self._terminate)
            elif code >= 300:
                self.state = _COMPLETED
                if not self.transport.reliable:
                    self._startTimer("G", timers.T1, self._timerG, timers.T1)
                self._startTimer("H", timers.timerH, self._timedOut)
            self._send(response)
        elif self.state is _ACCEPTED and 200 <= code < 300:
            self._send(response)
        else:
            self._discard(response)

    def _timerG(self, interval):
        """
        RFC 3261 section 17.2.1: retransmit the final response; the interval
        doubles up to T2.
        """
        self._retransmit(self.lastResponse)
        if self.state is _COMPLETED:
            interval = min(2 * interval, self._layer.timers.T2)
            self._startTimer("G", interval, self._timerG, interval)

    def _ackReceived(self, ack):
        if self.state is _COMPLETED:
            self.state = _CONFIRMED
            self._stopTimers("G", "H")
            timerI = self._layer.timers.timerI(self.transport.reliable)
            if timerI:
                self._startTimer("I", timerI, self._terminate)
            else:
                self._terminate()
        elif self.state is _ACCEPTED:
            self._layer._transactionUser.requestReceived(ack, None)
        else:
            ServerTransaction._ackReceived(self, ack)


class ServerNonInviteTransaction(ServerTransaction):
    """
    The non-INVITE server transaction (RFC 3261 section 17.2.2, figure 8).

    Trying absorbs retransmitted requests; after a provisional response
    (Proceeding) or the final response (Completed) they are answered with
    the last response.  Completed lasts until timer J (64*T1 unreliable,
    zero reliable).
    """

    def _start(self):
        self.state = _TRYING

    def respond(self, response):
        if self.state is not _TRYING and self.state is not _PROCEEDING:
            self._discard(response)
            return
        if response.code < 200:
            self.state = _PROCEEDING
            self._send(response)
            return
        self.state = _COMPLETED
        timerJ = self._layer.timers.timerJ(self.transport.reliable)
        if timerJ:
            self._startTimer("J", timerJ, self._terminate)
        self._send(response)
        if not timerJ:
            self._terminate()

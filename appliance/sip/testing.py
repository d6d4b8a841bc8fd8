"""
Fakes of the SIP layers' seams, for tests: a transport that records what
is sent and a transaction user that records what it is told.  The tests of
this package check them with L{zope.interface.verify.verifyObject}.
"""

import attrs
from zope.interface import implementer

from appliance.interfaces import ISIPTransport, ITransactionUser


@implementer(ISIPTransport)
@attrs.define(kw_only=True)
class FakeTransport:
    """
    An L{ISIPTransport} that records every message sent instead of sending
    it.

    @ivar reliable: C{True} to behave like TCP / TLS (no retransmissions).
    @ivar name: defaults to C{'TCP'} when reliable, C{'UDP'} otherwise.
    @ivar sent: the C{(message, address)} pairs sent, in order.
    @ivar failure: when not C{None}, an exception that C{sendRequest} and
        C{sendResponse} raise instead of recording the message.
    @ivar address: the C{(host, port)} that L{localAddress} answers, as the
        real transports do for Via sent-by and Record-Route.
    """

    reliable: bool = False
    secure: bool = False
    name: str = attrs.field(
        default=attrs.Factory(
            lambda self: "TCP" if self.reliable else "UDP", takes_self=True
        )
    )
    sent: list = attrs.field(factory=list)
    failure: Exception | None = None
    address: tuple = ("192.0.2.1", 5060)

    def localAddress(self, towards):
        """
        Return L{address}, whatever C{towards} is.
        """
        return self.address

    def sendRequest(self, request, destination):
        if self.failure is not None:
            raise self.failure
        self.sent.append((request, destination))

    def sendResponse(self, response, source):
        if self.failure is not None:
            raise self.failure
        self.sent.append((response, source))

    def sentMessages(self):
        """
        Return the messages sent, without their addresses.
        """
        return [message for message, address in self.sent]


@implementer(ITransactionUser)
@attrs.define
class RecordingTransactionUser:
    """
    An L{ITransactionUser} that records each call as a tuple of the method
    name and its arguments, such as C{("requestReceived", request, st)}.

    @ivar onRequest: when not C{None}, called with C{(request,
        serverTransaction)} after a C{requestReceived} call is recorded, so
        that a test can respond at once.
    """

    calls: list = attrs.field(factory=list)
    onRequest: object = None

    def requestReceived(self, request, serverTransaction):
        self.calls.append(("requestReceived", request, serverTransaction))
        if self.onRequest is not None:
            self.onRequest(request, serverTransaction)

    def responseReceived(self, response, clientTransaction):
        self.calls.append(("responseReceived", response, clientTransaction))

    def transactionTimedOut(self, transaction):
        self.calls.append(("transactionTimedOut", transaction))

    def transportFailed(self, transaction):
        self.calls.append(("transportFailed", transaction))


@attrs.define
class FakeServerTransaction:
    """
    A stand-in for a L{appliance.sip.servertransaction.ServerTransaction}
    that records the responses its transaction user sends.

    @ivar request: the request, if a test wants to keep it here.
    @ivar source: the C{(host, port)} the request came from.
    @ivar responses: every response passed to L{respond}, in order.
    """

    request: object = None
    source: tuple = ("192.0.2.10", 5060)
    responses: list = attrs.field(factory=list)

    def respond(self, response):
        self.responses.append(response)

    def cancelledInvite(self):
        return None

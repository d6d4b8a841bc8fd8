"""
Tests for L{appliance.sip.transaction}, L{appliance.sip.clienttransaction},
L{appliance.sip.servertransaction} and the fakes of L{appliance.sip.testing}.
"""

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from appliance.interfaces import ISIPTransport, ITransactionUser
from appliance.sip.clienttransaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    makeCancel,
)
from appliance.sip.message import Headers, Request, makeResponse, parseMessage
from appliance.sip.servertransaction import (
    ServerInviteTransaction,
    ServerNonInviteTransaction,
)
from appliance.sip.testing import FakeTransport, RecordingTransactionUser
from appliance.sip.transaction import (
    MAGIC_COOKIE,
    TimerSettings,
    TransactionLayer,
    TransactionState,
    newBranch,
)

SOURCE = ("192.0.2.10", 5060)
DESTINATION = ("198.51.100.7", 5060)
BRANCH = "z9hG4bK776asdhds"


def request(
    method="INVITE",
    branch=BRANCH,
    sentBy="client.example.com:5060",
    uri="sip:bob@example.com",
    toTag=None,
    fromTag="1928301774",
    callId="a84b4c76e66710@client.example.com",
    cseq=314159,
    cseqMethod=None,
    extra=b"",
):
    """
    Parse a request with the given fields.
    """
    via = f"Via: SIP/2.0/UDP {sentBy}"
    if branch is not None:
        via += f";branch={branch}"
    to = "To: Bob <sip:bob@example.com>"
    if toTag is not None:
        to += f";tag={toTag}"
    text = (
        f"{method} {uri} SIP/2.0\r\n"
        f"{via}\r\n"
        "Max-Forwards: 70\r\n"
        f"{to}\r\n"
        f"From: Alice <sip:alice@example.com>;tag={fromTag}\r\n"
        f"Call-ID: {callId}\r\n"
        f"CSeq: {cseq} {cseqMethod or method}\r\n"
    )
    return parseMessage(text.encode("ascii") + extra + b"Content-Length: 0\r\n\r\n")


def respond(req, code, toTag="a6c85cf"):
    """
    Build a response to C{req}, with a To tag unless it is a 100.
    """
    return makeResponse(req, code, toTag=None if code == 100 else toTag)


class Harness:
    """
    A transaction layer on a L{task.Clock}, with a recording transaction user
    and a fake transport.
    """

    def __init__(self, reliable=False, timers=TimerSettings()):
        self.clock = task.Clock()
        self.user = RecordingTransactionUser()
        self.transport = FakeTransport(reliable=reliable)
        self.layer = TransactionLayer(self.clock, self.user, timers)

    def sendTimes(self, until):
        """
        Fire the delayed calls due by C{until} one at a time (a single
        L{task.Clock.advance} would fire a rescheduled timer only once), and
        return the times at which messages were sent.
        """
        times = []
        while self.clock.getDelayedCalls():
            due = min(call.getTime() for call in self.clock.getDelayedCalls())
            if due > until:
                break
            before = len(self.transport.sent)
            self.clock.advance(due - self.clock.seconds())
            times.extend([self.clock.seconds()] * (len(self.transport.sent) - before))
        return times

    def sent(self):
        return self.transport.sentMessages()

    def calls(self, name):
        return [call[1:] for call in self.user.calls if call[0] == name]


class TimerSettingsTests(SynchronousTestCase):
    """
    Tests for L{TimerSettings}.
    """

    def test_defaults(self):
        """
        The defaults are RFC 3261's T1, T2, T4 and 32 s for timer D.
        """
        timers = TimerSettings()
        self.assertEqual(
            (timers.T1, timers.T2, timers.T4, timers.D, timers.trying),
            (0.5, 4.0, 5.0, 32.0, 0.2),
        )

    def test_derivedTimers(self):
        """
        B, F, H, L and M are 64*T1; D, I, J and K depend on reliability.
        """
        timers = TimerSettings(T1=0.25)
        self.assertEqual(
            {timers.timerB, timers.timerF, timers.timerH, timers.timerL, timers.timerM},
            {16.0},
        )
        self.assertEqual(
            [timers.timerD(False), timers.timerI(False), timers.timerJ(False),
             timers.timerK(False)],
            [32.0, 5.0, 16.0, 5.0],
        )
        self.assertEqual(
            [timers.timerD(True), timers.timerI(True), timers.timerJ(True),
             timers.timerK(True)],
            [0, 0, 0, 0],
        )

    def test_invalid(self):
        """
        Non-positive timers and a T2 below T1 are rejected.
        """
        self.assertRaises(ValueError, TimerSettings, T1=0)
        self.assertRaises(ValueError, TimerSettings, T4=-1)
        self.assertRaises(ValueError, TimerSettings, T1=2, T2=1)


class HelperTests(SynchronousTestCase):
    """
    Tests for L{newBranch}, L{makeCancel} and the fakes.
    """

    def test_newBranch(self):
        """
        Branches start with the magic cookie and differ.
        """
        first, second = newBranch(), newBranch()
        self.assertTrue(first.startswith(MAGIC_COOKIE))
        self.assertGreater(len(first), len(MAGIC_COOKIE) + 8)
        self.assertNotEqual(first, second)

    def test_fakesProvideInterfaces(self):
        """
        The fakes implement the interfaces they stand in for.
        """
        self.assertTrue(verifyObject(ISIPTransport, FakeTransport()))
        self.assertTrue(verifyObject(ITransactionUser, RecordingTransactionUser()))

    def test_fakeTransportName(self):
        """
        The fake transport is named after its reliability unless told.
        """
        self.assertEqual(FakeTransport().name, "UDP")
        self.assertEqual(FakeTransport(reliable=True).name, "TCP")
        self.assertEqual(FakeTransport(reliable=True, name="TLS").name, "TLS")

    def test_makeCancel(self):
        """
        A CANCEL copies the Request-URI, top Via, Route, From, To, Call-ID and
        CSeq number of the request (RFC 3261 section 9.1).
        """
        invite = request(extra=b"Route: <sip:p1.example.com;lr>\r\n")
        cancel = makeCancel(invite)
        self.assertEqual(cancel.method, "CANCEL")
        self.assertEqual(cancel.uri, invite.uri)
        self.assertEqual(cancel.cseq(), (314159, "CANCEL"))
        for name in ["Via", "Route", "From", "To", "Call-ID"]:
            self.assertEqual(cancel.headers.getAll(name), invite.headers.getAll(name))


class ClientInviteTransactionTests(SynchronousTestCase):
    """
    Tests for L{ClientInviteTransaction} (RFC 3261 section 17.1.1, RFC 6026).
    """

    def test_timerARetransmissions(self):
        """
        Over UDP the INVITE is retransmitted at intervals doubling from T1
        (7 sends in all) until timer B times the transaction out once.
        """
        h = Harness()
        invite = request()
        ct = h.layer.sendRequest(invite, h.transport, DESTINATION)
        self.assertIsInstance(ct, ClientInviteTransaction)
        self.assertEqual(h.transport.sent, [(invite, DESTINATION)])
        times = h.sendTimes(100)
        self.assertEqual(times, [0.5, 1.5, 3.5, 7.5, 15.5, 31.5])
        self.assertEqual(len(h.sent()), 7)
        self.assertEqual(h.user.calls, [("transactionTimedOut", ct)])
        self.assertEqual(h.clock.seconds(), 32)
        self.assertIs(ct.state, TransactionState.TERMINATED)
        self.assertEqual(h.layer.activeTransactions, 0)
        self.assertEqual(h.layer.timeouts, 1)
        self.assertEqual(h.layer.retransmissionsSent, 6)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_noRetransmissionReliable(self):
        """
        Over a reliable transport the INVITE is sent once and timer B still
        applies.
        """
        h = Harness(reliable=True)
        ct = h.layer.sendRequest(request(), h.transport, DESTINATION)
        self.assertEqual(h.sendTimes(100), [])
        self.assertEqual(len(h.sent()), 1)
        self.assertEqual(h.user.calls, [("transactionTimedOut", ct)])
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_responseAfterTimeoutIsStray(self):
        """
        After timer B nothing more reaches the transaction user about the
        transaction: a late response is stray.
        """
        h = Harness()
        invite = request()
        h.layer.sendRequest(invite, h.transport, DESTINATION)
        h.clock.advance(32)
        late = respond(invite, 180)
        h.layer.receiveResponse(late, h.transport, DESTINATION)
        self.assertEqual(h.user.calls[1:], [("responseReceived", late, None)])
        self.assertEqual(h.layer.strayResponses, 1)

    def test_provisionalStopsRetransmissions(self):
        """
        A provisional response goes to the transaction user and stops
        timers A and B.
        """
        h = Harness()
        invite = request()
        ct = h.layer.sendRequest(invite, h.transport, DESTINATION)
        h.clock.advance(0.75)
        ringing = respond(invite, 180)
        h.layer.receiveResponse(ringing, h.transport, DESTINATION)
        self.assertIs(ct.state, TransactionState.PROCEEDING)
        self.assertEqual(h.user.calls, [("responseReceived", ringing, ct)])
        self.assertEqual(len(h.sent()), 2)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_nonSuccessGeneratesAck(self):
        """
        A 300-699 response goes to the transaction user once, and the
        transaction sends an ACK built per RFC 3261 section 17.1.1.3.
        """
        h = Harness()
        invite = request(
            extra=b"Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
            b"Contact: <sip:alice@client.example.com>\r\n"
        )
        ct = h.layer.sendRequest(invite, h.transport, DESTINATION)
        busy = respond(invite, 486)
        h.layer.receiveResponse(busy, h.transport, DESTINATION)
        self.assertEqual(h.user.calls, [("responseReceived", busy, ct)])
        self.assertIs(ct.state, TransactionState.COMPLETED)
        ack, address = h.transport.sent[-1]
        self.assertEqual(address, DESTINATION)
        self.assertIs(ct.ack, ack)
        self.assertEqual(ack.method, "ACK")
        self.assertEqual(ack.uri, invite.uri)
        self.assertEqual(ack.cseq(), (314159, "ACK"))
        self.assertEqual(ack.headers.getAll("Via"), invite.headers.getAll("Via"))
        self.assertEqual(ack.headers.getAll("Route"), invite.headers.getAll("Route"))
        self.assertEqual(len(ack.headers.getAll("Route")), 2)
        self.assertEqual(ack.headers.get("From"), invite.headers.get("From"))
        self.assertEqual(ack.headers.get("Call-ID"), invite.headers.get("Call-ID"))
        self.assertEqual(ack.headers.get("To"), busy.headers.get("To"))
        self.assertEqual(ack.toAddress().tag, "a6c85cf")
        self.assertNotIn("Contact", ack.headers)
        self.assertEqual(ack.body, b"")

    def test_retransmittedFinalAbsorbedAndAckResent(self):
        """
        A retransmitted final response is not passed up again but is
        acknowledged again, until timer D terminates the transaction.
        """
        h = Harness()
        invite = request()
        ct = h.layer.sendRequest(invite, h.transport, DESTINATION)
        busy = respond(invite, 486)
        h.layer.receiveResponse(busy, h.transport, DESTINATION)
        h.clock.advance(1)
        h.layer.receiveResponse(respond(invite, 486), h.transport, DESTINATION)
        self.assertEqual(len(h.user.calls), 1)
        self.assertEqual([m.method for m in h.sent()], ["INVITE", "ACK", "ACK"])
        self.assertIs(h.sent()[2], ct.ack)
        self.assertEqual(h.layer.retransmissionsAbsorbed, 1)
        h.clock.advance(31)
        self.assertIs(ct.state, TransactionState.TERMINATED)
        self.assertEqual(h.layer.activeTransactions, 0)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_timerDZeroReliable(self):
        """
        Over a reliable transport the transaction terminates as soon as the
        ACK is sent.
        """
        h = Harness(reliable=True)
        invite = request()
        ct = h.layer.sendRequest(invite, h.transport, DESTINATION)
        h.layer.receiveResponse(respond(invite, 603), h.transport, DESTINATION)
        self.assertIs(ct.state, TransactionState.TERMINATED)
        self.assertEqual([m.method for m in h.sent()], ["INVITE", "ACK"])
        self.assertEqual(h.layer.activeTransactions, 0)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_successAccepted(self):
        """
        Every 2xx goes to the transaction user, with no ACK from the
        transaction, until timer M (RFC 6026 section 8.4).
        """
        h = Harness()
        invite = request()
        ct = h.layer.sendRequest(invite, h.transport, DESTINATION)
        h.layer.receiveResponse(respond(invite, 180), h.transport, DESTINATION)
        ok = respond(invite, 200)
        h.layer.receiveResponse(ok, h.transport, DESTINATION)
        self.assertIs(ct.state, TransactionState.ACCEPTED)
        h.clock.advance(4)
        again = respond(invite, 200)
        h.layer.receiveResponse(again, h.transport, DESTINATION)
        h.layer.receiveResponse(respond(invite, 180), h.transport, DESTINATION)
        self.assertEqual(
            h.calls("responseReceived")[1:], [(ok, ct), (again, ct)]
        )
        self.assertEqual(len(h.sent()), 1)
        h.clock.advance(28)
        self.assertIs(ct.state, TransactionState.TERMINATED)
        self.assertEqual(h.layer.activeTransactions, 0)
        self.assertEqual(h.clock.getDelayedCalls(), [])


class ClientNonInviteTransactionTests(SynchronousTestCase):
    """
    Tests for L{ClientNonInviteTransaction} (RFC 3261 section 17.1.2).
    """

    def test_timerERetransmissions(self):
        """
        Over UDP the request is retransmitted at intervals doubling from T1
        up to T2 until timer F times the transaction out once.
        """
        h = Harness()
        ct = h.layer.sendRequest(request("OPTIONS"), h.transport, DESTINATION)
        self.assertIsInstance(ct, ClientNonInviteTransaction)
        times = h.sendTimes(100)
        self.assertEqual(
            times, [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
        )
        self.assertEqual(h.user.calls, [("transactionTimedOut", ct)])
        self.assertEqual(h.clock.seconds(), 32)
        self.assertEqual(h.layer.activeTransactions, 0)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_timerEInProceeding(self):
        """
        After a provisional response the request is retransmitted every T2.
        """
        h = Harness()
        options = request("OPTIONS")
        ct = h.layer.sendRequest(options, h.transport, DESTINATION)
        self.assertEqual(h.sendTimes(1), [0.5])
        h.clock.advance(1 - h.clock.seconds())
        h.layer.receiveResponse(respond(options, 100), h.transport, DESTINATION)
        self.assertIs(ct.state, TransactionState.PROCEEDING)
        times = h.sendTimes(100)
        self.assertEqual(times, [1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5])
        self.assertEqual(h.calls("transactionTimedOut"), [(ct,)])
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_noRetransmissionReliable(self):
        """
        Over a reliable transport the request is sent once; timer F applies.
        """
        h = Harness(reliable=True)
        ct = h.layer.sendRequest(request("OPTIONS"), h.transport, DESTINATION)
        self.assertEqual(h.sendTimes(100), [])
        self.assertEqual(h.user.calls, [("transactionTimedOut", ct)])
        self.assertEqual(h.clock.seconds(), 32)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_finalOnceThenTimerK(self):
        """
        The final response goes up once; retransmissions of it are absorbed
        until timer K (T4) ends the transaction.
        """
        h = Harness()
        options = request("OPTIONS")
        ct = h.layer.sendRequest(options, h.transport, DESTINATION)
        ok = respond(options, 200)
        h.layer.receiveResponse(ok, h.transport, DESTINATION)
        h.layer.receiveResponse(respond(options, 200), h.transport, DESTINATION)
        self.assertEqual(h.user.calls, [("responseReceived", ok, ct)])
        self.assertIs(ct.state, TransactionState.COMPLETED)
        h.clock.advance(4.9)
        self.assertEqual(h.layer.activeTransactions, 1)
        h.clock.advance(0.1)
        self.assertIs(ct.state, TransactionState.TERMINATED)
        self.assertEqual(len(h.sent()), 1)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_timerKZeroReliable(self):
        """
        Over a reliable transport the final response ends the transaction.
        """
        h = Harness(reliable=True)
        options = request("OPTIONS")
        ct = h.layer.sendRequest(options, h.transport, DESTINATION)
        h.layer.receiveResponse(respond(options, 404), h.transport, DESTINATION)
        self.assertIs(ct.state, TransactionState.TERMINATED)
        self.assertEqual(len(h.user.calls), 1)
        self.assertEqual(h.clock.getDelayedCalls(), [])


class SendRequestTests(SynchronousTestCase):
    """
    Tests for L{TransactionLayer.sendRequest} and response matching.
    """

    def test_rejectsAck(self):
        """
        ACK is never sent in a client transaction.
        """
        h = Harness()
        self.assertRaises(
            ValueError, h.layer.sendRequest, request("ACK"), h.transport, DESTINATION
        )

    def test_rejectsBranchWithoutMagicCookie(self):
        """
        The top Via branch must start with the magic cookie.
        """
        h = Harness()
        for branch in [None, "1234"]:
            self.assertRaises(
                ValueError,
                h.layer.sendRequest,
                request("OPTIONS", branch=branch),
                h.transport,
                DESTINATION,
            )
        self.assertEqual(h.sent(), [])

    def test_rejectsDuplicate(self):
        """
        A second request with the branch and method of a live transaction is
        refused.
        """
        h = Harness()
        h.layer.sendRequest(request("OPTIONS"), h.transport, DESTINATION)
        self.assertRaises(
            ValueError, h.layer.sendRequest, request("OPTIONS"), h.transport,
            DESTINATION,
        )

    def test_cancelHasItsOwnClientTransaction(self):
        """
        A CANCEL shares its INVITE's branch but responses match by CSeq
        method too (RFC 3261 section 17.1.3).
        """
        h = Harness()
        invite = request()
        inviteTransaction = h.layer.sendRequest(invite, h.transport, DESTINATION)
        cancel = makeCancel(invite)
        cancelTransaction = h.layer.sendRequest(cancel, h.transport, DESTINATION)
        okCancel = respond(cancel, 200)
        terminated = respond(invite, 487)
        h.layer.receiveResponse(okCancel, h.transport, DESTINATION)
        h.layer.receiveResponse(terminated, h.transport, DESTINATION)
        self.assertEqual(
            h.user.calls,
            [
                ("responseReceived", okCancel, cancelTransaction),
                ("responseReceived", terminated, inviteTransaction),
            ],
        )

    def test_strayResponse(self):
        """
        A response matching no client transaction goes to the transaction
        user with no transaction.
        """
        h = Harness()
        h.layer.sendRequest(request("OPTIONS"), h.transport, DESTINATION)
        stray = respond(request("OPTIONS", branch="z9hG4bKother"), 200)
        wrongMethod = respond(request("MESSAGE"), 200)
        h.layer.receiveResponse(stray, h.transport, DESTINATION)
        h.layer.receiveResponse(wrongMethod, h.transport, DESTINATION)
        self.assertEqual(
            h.user.calls,
            [("responseReceived", stray, None), ("responseReceived", wrongMethod, None)],
        )
        self.assertEqual(h.layer.strayResponses, 2)

    def test_responseWithoutViaDropped(self):
        """
        A response without a Via is dropped.
        """
        h = Harness()
        response = respond(request("OPTIONS"), 200)
        response.headers.remove("Via")
        h.layer.receiveResponse(response, h.transport, DESTINATION)
        self.assertEqual(h.user.calls, [])


class ServerInviteTransactionTests(SynchronousTestCase):
    """
    Tests for L{ServerInviteTransaction} (RFC 3261 section 17.2.1, RFC 6026).
    """

    def receive(self, h, req):
        h.layer.receiveRequest(req, h.transport, SOURCE)
        return h.user.calls[-1][2]

    def test_newRequestToUser(self):
        """
        A new INVITE creates a server transaction handed to the user.
        """
        h = Harness()
        invite = request()
        h.layer.receiveRequest(invite, h.transport, SOURCE)
        [(name, received, st)] = h.user.calls
        self.assertEqual(name, "requestReceived")
        self.assertIs(received, invite)
        self.assertIsInstance(st, ServerInviteTransaction)
        self.assertIs(st.state, TransactionState.PROCEEDING)
        self.assertEqual((st.transport, st.source), (h.transport, SOURCE))
        self.assertEqual(h.layer.activeTransactions, 1)

    def test_tryingAfter200ms(self):
        """
        Without a response from the user in 200 ms, the transaction sends
        100 (Trying) without a To tag and with the request's Timestamp.
        """
        h = Harness()
        st = self.receive(h, request(extra=b"Timestamp: 54\r\n"))
        h.clock.advance(0.199)
        self.assertEqual(h.sent(), [])
        h.clock.advance(0.001)
        [(trying, address)] = h.transport.sent
        self.assertEqual(address, SOURCE)
        self.assertEqual(trying.code, 100)
        self.assertIsNone(trying.toAddress().tag)
        self.assertEqual(trying.headers.get("Timestamp"), "54")
        self.assertIs(st.lastResponse, trying)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_noTryingAfterUserResponds(self):
        """
        A response from the user within 200 ms cancels the 100 (Trying).
        """
        h = Harness()
        invite = request()
        st = self.receive(h, invite)
        h.clock.advance(0.1)
        ringing = respond(invite, 180)
        st.respond(ringing)
        h.clock.advance(10)
        self.assertEqual(h.sent(), [ringing])

    def test_retransmissionInProceeding(self):
        """
        A retransmitted INVITE is not passed up and is answered with the
        last provisional response.
        """
        h = Harness()
        invite = request()
        st = self.receive(h, invite)
        h.layer.receiveRequest(request(), h.transport, SOURCE)
        self.assertEqual(h.sent(), [])
        ringing = respond(invite, 180)
        st.respond(ringing)
        h.layer.receiveRequest(request(), h.transport, SOURCE)
        self.assertEqual(h.sent(), [ringing, ringing])
        self.assertEqual(len(h.user.calls), 1)
        self.assertEqual(h.layer.retransmissionsAbsorbed, 2)

    def test_absorb(self):
        """
        L{TransactionLayer.absorb} takes a retransmission of a running
        transaction (answering it with the last response) and leaves a new
        request alone.
        """
        h = Harness()
        invite = request()
        self.assertFalse(h.layer.absorb(invite))
        self.assertEqual(h.user.calls, [])
        st = self.receive(h, invite)
        ringing = respond(invite, 180)
        st.respond(ringing)
        self.assertTrue(h.layer.absorb(request()))
        self.assertEqual(h.sent(), [ringing, ringing])
        self.assertEqual(len(h.user.calls), 1)
        self.assertFalse(h.layer.absorb(request(branch="z9hG4bKother")))

    def test_timerGAndH(self):
        """
        Over UDP a 300-699 response is retransmitted at intervals doubling
        from T1 up to T2 until timer H times the transaction out.
        """
        h = Harness()
        invite = request()
        st = self.receive(h, invite)
        busy = respond(invite, 486)
        st.respond(busy)
        self.assertIs(st.state, TransactionState.COMPLETED)
        times = h.sendTimes(100)
        self.assertEqual(
            times, [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
        )
        self.assertEqual(set(map(id, h.sent())), {id(busy)})
        self.assertEqual(h.calls("transactionTimedOut"), [(st,)])
        self.assertEqual(h.clock.seconds(), 32)
        self.assertIs(st.state, TransactionState.TERMINATED)
        self.assertEqual(h.layer.timeouts, 1)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_retransmissionInCompleted(self):
        """
        A retransmitted INVITE after the final response gets the final
        response again.
        """
        h = Harness(reliable=True)
        invite = request()
        st = self.receive(h, invite)
        busy = respond(invite, 486)
        st.respond(busy)
        h.layer.receiveRequest(request(), h.transport, SOURCE)
        self.assertEqual(h.sent(), [busy, busy])
        self.assertEqual(len(h.user.calls), 1)

    def test_ackConfirmsThenTimerI(self):
        """
        The ACK stops retransmissions; further ACKs are absorbed until timer
        I (T4) ends the transaction.
        """
        h = Harness()
        invite = request()
        st = self.receive(h, invite)
        st.respond(respond(invite, 486))
        h.clock.advance(0.5)
        h.layer.receiveRequest(request("ACK", toTag="a6c85cf"), h.transport, SOURCE)
        self.assertIs(st.state, TransactionState.CONFIRMED)
        h.layer.receiveRequest(request("ACK", toTag="a6c85cf"), h.transport, SOURCE)
        self.assertEqual(len(h.user.calls), 1)
        h.clock.advance(4.9)
        self.assertIs(st.state, TransactionState.CONFIRMED)
        h.clock.advance(0.1)
        self.assertIs(st.state, TransactionState.TERMINATED)
        self.assertEqual(len(h.sent()), 2)
        self.assertEqual(h.layer.activeTransactions, 0)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_reliableAckTerminates(self):
        """
        Over a reliable transport there is no timer G and the ACK ends the
        transaction (timer I is zero).
        """
        h = Harness(reliable=True)
        invite = request()
        st = self.receive(h, invite)
        st.respond(respond(invite, 404))
        self.assertEqual(h.sendTimes(1), [])
        h.layer.receiveRequest(request("ACK", toTag="a6c85cf"), h.transport, SOURCE)
        self.assertIs(st.state, TransactionState.TERMINATED)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_successAccepted(self):
        """
        After a 2xx, retransmitted INVITEs are absorbed silently, further
        2xx are sent, ACKs go to the user, and timer L ends the transaction
        (RFC 6026 section 7.1).
        """
        h = Harness()
        invite = request()
        st = self.receive(h, invite)
        ok = respond(invite, 200)
        st.respond(ok)
        self.assertIs(st.state, TransactionState.ACCEPTED)
        h.layer.receiveRequest(request(), h.transport, SOURCE)
        other = respond(invite, 200, toTag="other")
        st.respond(other)
        st.respond(respond(invite, 486))
        ack = request("ACK", toTag="a6c85cf")
        h.layer.receiveRequest(ack, h.transport, SOURCE)
        self.assertEqual(h.sent(), [ok, other])
        self.assertEqual(h.user.calls[1:], [("requestReceived", ack, None)])
        h.clock.advance(32)
        self.assertIs(st.state, TransactionState.TERMINATED)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_ackForSuccessWithNewBranch(self):
        """
        An ACK matching no transaction goes to the user with no transaction.
        """
        h = Harness()
        ack = request("ACK", branch="z9hG4bKnew", toTag="a6c85cf")
        h.layer.receiveRequest(ack, h.transport, SOURCE)
        self.assertEqual(h.user.calls, [("requestReceived", ack, None)])
        self.assertEqual(h.layer.activeTransactions, 0)

    def test_respondAfterTerminationDiscarded(self):
        """
        A response given to a terminated transaction is not sent.
        """
        h = Harness(reliable=True)
        invite = request()
        st = self.receive(h, invite)
        st.respond(respond(invite, 486))
        h.clock.advance(32)
        st.respond(respond(invite, 500))
        self.assertEqual(len(h.sent()), 1)

    def test_userRespondsSynchronously(self):
        """
        The user may respond from within requestReceived; no 100 (Trying)
        follows, only timer G's retransmission.
        """
        h = Harness()
        h.user.onRequest = lambda req, st: st.respond(respond(req, 603))
        h.layer.receiveRequest(request(), h.transport, SOURCE)
        h.clock.advance(0.5)
        self.assertEqual([m.code for m in h.sent()], [603, 603])


class ServerNonInviteTransactionTests(SynchronousTestCase):
    """
    Tests for L{ServerNonInviteTransaction} (RFC 3261 section 17.2.2).
    """

    def receive(self, h, req):
        h.layer.receiveRequest(req, h.transport, SOURCE)
        return h.user.calls[-1][2]

    def test_tryingAbsorbsRetransmissions(self):
        """
        Before any response, retransmissions are absorbed silently and no
        100 (Trying) is sent.
        """
        h = Harness()
        st = self.receive(h, request("REGISTER"))
        self.assertIsInstance(st, ServerNonInviteTransaction)
        self.assertIs(st.state, TransactionState.TRYING)
        h.layer.receiveRequest(request("REGISTER"), h.transport, SOURCE)
        h.clock.advance(1)
        self.assertEqual(h.sent(), [])
        self.assertEqual(len(h.user.calls), 1)

    def test_proceedingResendsProvisional(self):
        """
        After a provisional response, a retransmission gets it again.
        """
        h = Harness()
        register = request("REGISTER")
        st = self.receive(h, register)
        trying = respond(register, 100)
        st.respond(trying)
        self.assertIs(st.state, TransactionState.PROCEEDING)
        h.layer.receiveRequest(request("REGISTER"), h.transport, SOURCE)
        self.assertEqual(h.sent(), [trying, trying])

    def test_completedResendsFinalUntilTimerJ(self):
        """
        After the final response a retransmission gets it again, further
        responses are discarded, and timer J (64*T1) ends the transaction.
        """
        h = Harness()
        register = request("REGISTER")
        st = self.receive(h, register)
        ok = respond(register, 200)
        st.respond(ok)
        st.respond(respond(register, 500))
        h.clock.advance(31.9)
        h.layer.receiveRequest(request("REGISTER"), h.transport, SOURCE)
        self.assertEqual(h.sent(), [ok, ok])
        h.clock.advance(0.1)
        self.assertIs(st.state, TransactionState.TERMINATED)
        self.assertEqual(h.clock.getDelayedCalls(), [])
        h.layer.receiveRequest(request("REGISTER"), h.transport, SOURCE)
        self.assertEqual(len(h.calls("requestReceived")), 2)
        self.assertIsNot(h.user.calls[-1][2], st)

    def test_timerJZeroReliable(self):
        """
        Over a reliable transport the final response ends the transaction.
        """
        h = Harness(reliable=True)
        register = request("REGISTER")
        st = self.receive(h, register)
        st.respond(respond(register, 200))
        self.assertIs(st.state, TransactionState.TERMINATED)
        self.assertEqual(h.layer.activeTransactions, 0)
        self.assertEqual(h.clock.getDelayedCalls(), [])


class ServerMatchingTests(SynchronousTestCase):
    """
    Tests for the server transaction matching of RFC 3261 section 17.2.3.
    """

    def transactions(self, h):
        return [call[2] for call in h.user.calls if call[0] == "requestReceived"]

    def test_sentByAndMethodDistinguish(self):
        """
        The same branch from another sent-by, or with another method, is a
        new transaction; the sent-by host compares case-insensitively.
        """
        h = Harness()
        h.layer.receiveRequest(request("OPTIONS"), h.transport, SOURCE)
        h.layer.receiveRequest(
            request("OPTIONS", sentBy="other.example.com:5060"), h.transport, SOURCE
        )
        h.layer.receiveRequest(request("INFO"), h.transport, SOURCE)
        h.layer.receiveRequest(
            request("OPTIONS", sentBy="CLIENT.example.com:5060"), h.transport, SOURCE
        )
        self.assertEqual(len(self.transactions(h)), 3)
        self.assertEqual(h.layer.activeTransactions, 3)

    def test_cancelMatching(self):
        """
        A CANCEL is its own transaction, and L{TransactionLayer.matchCancel}
        and its transaction's cancelledInvite find the INVITE transaction it
        refers to.
        """
        h = Harness()
        invite = request()
        h.layer.receiveRequest(invite, h.transport, SOURCE)
        cancel = request("CANCEL")
        h.layer.receiveRequest(cancel, h.transport, SOURCE)
        inviteTransaction, cancelTransaction = self.transactions(h)
        self.assertIsInstance(cancelTransaction, ServerNonInviteTransaction)
        self.assertIs(h.layer.matchCancel(cancel), inviteTransaction)
        self.assertIs(cancelTransaction.cancelledInvite(), inviteTransaction)
        self.assertIsNone(inviteTransaction.cancelledInvite())
        self.assertIsNone(h.layer.matchCancel(request("CANCEL", branch="z9hG4bKx")))
        inviteTransaction.respond(respond(invite, 487))
        h.clock.advance(32)
        self.assertIsNone(h.layer.matchCancel(cancel))

    def test_rfc2543Retransmission(self):
        """
        Without the magic cookie, a request with the same Request-URI, tags,
        Call-ID, CSeq and top Via is a retransmission.
        """
        h = Harness()
        register = request("REGISTER", branch=None)
        h.layer.receiveRequest(register, h.transport, SOURCE)
        [st] = self.transactions(h)
        ok = respond(register, 200)
        st.respond(ok)
        h.layer.receiveRequest(request("REGISTER", branch=None), h.transport, SOURCE)
        self.assertEqual(h.sent(), [ok, ok])
        self.assertEqual(len(self.transactions(h)), 1)

    def test_rfc2543Differences(self):
        """
        Without the magic cookie, a different Request-URI, To tag, top Via,
        CSeq or branch makes a new transaction.
        """
        h = Harness()
        variants = [
            dict(),
            dict(uri="sip:carol@example.com"),
            dict(toTag="xyz"),
            dict(sentBy="other.example.com"),
            dict(cseq=2),
            dict(branch="1234"),
        ]
        for variant in variants:
            h.layer.receiveRequest(
                request("OPTIONS", **dict(dict(branch=None), **variant)),
                h.transport,
                SOURCE,
            )
        self.assertEqual(len(set(map(id, self.transactions(h)))), 6)
        self.assertEqual(h.layer.activeTransactions, 6)

    def test_rfc2543Ack(self):
        """
        Without the magic cookie, an ACK matches the INVITE transaction when
        its To tag is that of the response sent; otherwise it goes to the
        user.
        """
        h = Harness()
        invite = request(branch=None)
        h.layer.receiveRequest(invite, h.transport, SOURCE)
        [st] = self.transactions(h)
        st.respond(respond(invite, 486, toTag="mine"))
        stray = request("ACK", branch=None, toTag="someoneelse")
        h.layer.receiveRequest(stray, h.transport, SOURCE)
        self.assertEqual(h.user.calls[-1], ("requestReceived", stray, None))
        h.layer.receiveRequest(request("ACK", branch=None, toTag="mine"), h.transport, SOURCE)
        self.assertIs(st.state, TransactionState.CONFIRMED)
        self.assertEqual(len(h.user.calls), 2)
        h.clock.advance(5)
        self.assertEqual(h.layer.activeTransactions, 0)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_rfc2543Cancel(self):
        """
        Without the magic cookie, matchCancel finds the INVITE by the RFC
        2543 rules.
        """
        h = Harness()
        h.layer.receiveRequest(request(branch=None), h.transport, SOURCE)
        [st] = self.transactions(h)
        self.assertIs(h.layer.matchCancel(request("CANCEL", branch=None)), st)
        self.assertIsNone(h.layer.matchCancel(request("CANCEL", branch=None, cseq=9)))

    def test_requestWithoutViaDropped(self):
        """
        A request without a Via is dropped: it cannot be answered.
        """
        h = Harness()
        headers = Headers([("CSeq", "1 OPTIONS"), ("Call-ID", "x")])
        req = Request(method="OPTIONS", uri=request().uri, headers=headers)
        h.layer.receiveRequest(req, h.transport, SOURCE)
        self.assertEqual(h.user.calls, [])
        self.assertEqual(h.layer.activeTransactions, 0)


class FailingDeferredTransport(FakeTransport):
    """
    A transport whose sends fail asynchronously.
    """

    def sendRequest(self, request, destination):
        return defer.fail(OSError("connection refused"))

    sendResponse = sendRequest


class TransportErrorTests(SynchronousTestCase):
    """
    Tests for transport errors (RFC 3261 sections 17.1.4 and 17.2.4).
    """

    def test_initialSendFails(self):
        """
        When the first send fails the transaction terminates, and the user
        hears of it from the clock, after sendRequest returned.
        """
        h = Harness()
        h.transport.failure = OSError("network unreachable")
        ct = h.layer.sendRequest(request(), h.transport, DESTINATION)
        self.assertIs(ct.state, TransactionState.TERMINATED)
        self.assertEqual(h.user.calls, [])
        h.clock.advance(0)
        self.assertEqual(h.user.calls, [("transportFailed", ct)])
        self.assertEqual(h.layer.transportErrors, 1)
        self.assertEqual(h.layer.activeTransactions, 0)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_retransmissionFails(self):
        """
        A failing retransmission terminates the transaction at once.
        """
        h = Harness()
        ct = h.layer.sendRequest(request("OPTIONS"), h.transport, DESTINATION)
        h.transport.failure = OSError("network unreachable")
        h.clock.advance(0.5)
        self.assertEqual(h.user.calls, [("transportFailed", ct)])
        h.clock.advance(100)
        self.assertEqual(len(h.user.calls), 1)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_ackFails(self):
        """
        A failing ACK is reported after the final response.
        """
        h = Harness()
        invite = request()
        ct = h.layer.sendRequest(invite, h.transport, DESTINATION)
        h.transport.failure = OSError("network unreachable")
        busy = respond(invite, 486)
        h.layer.receiveResponse(busy, h.transport, DESTINATION)
        self.assertEqual(
            h.user.calls, [("responseReceived", busy, ct), ("transportFailed", ct)]
        )
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_responseFails(self):
        """
        A failing response terminates the server transaction and tells the
        user.
        """
        h = Harness()
        invite = request()
        h.layer.receiveRequest(invite, h.transport, SOURCE)
        st = h.user.calls[0][2]
        h.transport.failure = OSError("network unreachable")
        st.respond(respond(invite, 486))
        self.assertEqual(h.user.calls[1:], [("transportFailed", st)])
        self.assertIs(st.state, TransactionState.TERMINATED)
        self.assertEqual(h.layer.activeTransactions, 0)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_tryingFails(self):
        """
        A failing automatic 100 (Trying) is a transport error too.
        """
        h = Harness()
        h.layer.receiveRequest(request(), h.transport, SOURCE)
        st = h.user.calls[0][2]
        h.transport.failure = OSError("network unreachable")
        h.clock.advance(0.2)
        self.assertEqual(h.user.calls[1:], [("transportFailed", st)])
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_deferredFailure(self):
        """
        A transport may report an error through a failed Deferred.
        """
        clock = task.Clock()
        user = RecordingTransactionUser()
        transport = FailingDeferredTransport()
        layer = TransactionLayer(clock, user)
        invite = request()
        layer.receiveRequest(invite, transport, SOURCE)
        st = user.calls[0][2]
        st.respond(respond(invite, 486))
        self.assertEqual(user.calls[1:], [("transportFailed", st)])
        self.assertEqual(layer.transportErrors, 1)
        self.assertEqual(clock.getDelayedCalls(), [])


class LayerTests(SynchronousTestCase):
    """
    Tests for L{TransactionLayer.stop} and the statistics.
    """

    def test_stop(self):
        """
        stop() terminates every transaction and leaves no delayed call,
        without telling the user.
        """
        h = Harness()
        clients = [
            h.layer.sendRequest(request(), h.transport, DESTINATION),
            h.layer.sendRequest(request("OPTIONS"), h.transport, DESTINATION),
        ]
        h.layer.receiveRequest(request("INVITE", branch="z9hG4bKin"), h.transport, SOURCE)
        h.layer.receiveRequest(request("INVITE", branch=None), h.transport, SOURCE)
        failing = FakeTransport(failure=OSError("down"))
        h.layer.sendRequest(request("MESSAGE"), failing, DESTINATION)
        calls = list(h.user.calls)
        self.assertNotEqual(h.clock.getDelayedCalls(), [])
        h.layer.stop()
        self.assertEqual(h.clock.getDelayedCalls(), [])
        self.assertEqual(h.layer.activeTransactions, 0)
        self.assertEqual(h.user.calls, calls)
        self.assertEqual(
            {c.state for c in clients}, {TransactionState.TERMINATED}
        )

    def test_statistics(self):
        """
        The statistics count active transactions, timeouts, retransmissions,
        transport errors and stray responses.
        """
        h = Harness()
        h.layer.sendRequest(request("OPTIONS"), h.transport, DESTINATION)
        h.layer.receiveRequest(request("REGISTER", branch=None), h.transport, SOURCE)
        h.layer.receiveRequest(request("REGISTER", branch=None), h.transport, SOURCE)
        self.assertEqual(
            h.layer.statistics(),
            {
                "transactions.active.client": 1,
                "transactions.active.server": 1,
                "transactions.timeouts": 0,
                "transactions.retransmissions.sent": 0,
                "transactions.retransmissions.absorbed": 1,
                "transactions.transportErrors": 0,
                "transactions.strayResponses": 0,
            },
        )
        self.assertEqual(h.layer.activeTransactions, 2)
        h.sendTimes(32)
        stats = h.layer.statistics()
        self.assertEqual(stats["transactions.timeouts"], 1)
        self.assertEqual(stats["transactions.retransmissions.sent"], 10)
        self.assertEqual(stats["transactions.active.client"], 0)

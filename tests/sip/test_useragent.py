"""
Tests for L{appliance.sip.useragent}: the user agent core as a UAS (RFC 3261
sections 8.2, 9.2, 12 to 15), on a real transaction layer over fake
transports driven by a L{task.Clock}.
"""

from twisted.internet import task
from twisted.internet.defer import succeed
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from appliance.interfaces import ISIPTransport, ITransactionUser
from appliance.sip.message import URI, Request, Response, parseMessage
from appliance.sip.proxy import hostTargets, transportOf
from appliance.sip.sdp import SDPError, direction, makeOffer, parseSDP
from appliance.sip.testing import FakeTransport
from appliance.sip.transaction import TimerSettings, TransactionLayer
from appliance.sip.useragent import (
    ACTIVE,
    ENDED,
    INCOMING,
    RINGING,
    Call,
    CallError,
    UserAgent,
)
from appliance.stats import Statistics

HERE = ("192.0.2.1", 5060)
CALLER = ("198.51.100.7", 5060)
PROXY = "<sip:192.0.2.50;lr>"
EDGE = "<sip:203.0.113.9;lr>"
OUR_CONTACT = "<sip:echo@192.0.2.1:5060>"
CALLER_CONTACT = "<sip:alice@198.51.100.7:5060>"
CALL_ID = "3848276298220188511@198.51.100.7"
FROM_TAG = "9fxced76sl"
BRANCH = "z9hG4bK74bf9"

OFFER = makeOffer("198.51.100.7", 40000).toBytes()
ANSWER = makeOffer("192.0.2.1", 30000).toBytes()
HOLD = makeOffer("198.51.100.7", 40000, direction="sendonly", sessionVersion=1).toBytes()
HOLD_ANSWER = makeOffer("192.0.2.1", 30000, direction="recvonly", sessionVersion=1).toBytes()


def request(
    method="INVITE",
    branch=BRANCH,
    cseq=1,
    cseqMethod=None,
    toTag=None,
    uri="sip:echo@192.0.2.1",
    body=b"",
    contentType="application/sdp",
    contact=CALLER_CONTACT,
    recordRoutes=(),
    headers=(),
    callId=CALL_ID,
):
    """
    Parse a request from the caller with the given fields.
    """
    to = "<sip:echo@example.test>"
    if toTag is not None:
        to += ";tag=" + toTag
    lines = [
        "%s %s SIP/2.0" % (method, uri),
        "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=" + branch,
        "Max-Forwards: 70",
        "From: Alice <sip:alice@example.test>;tag=" + FROM_TAG,
        "To: " + to,
        "Call-ID: " + callId,
        "CSeq: %d %s" % (cseq, cseqMethod or method),
    ]
    if contact is not None:
        lines.append("Contact: " + contact)
    lines.extend("Record-Route: " + value for value in recordRoutes)
    lines.extend("%s: %s" % header for header in headers)
    if body:
        lines.append("Content-Type: " + contentType)
    head = "\r\n".join(lines) + "\r\nContent-Length: %d\r\n\r\n" % (len(body),)
    return parseMessage(head.encode("ascii") + body)


class Harness:
    """
    A L{UserAgent} over a L{TransactionLayer} on a L{task.Clock}, with a UDP
    and a TCP L{FakeTransport} and a resolver that needs no DNS.

    @ivar calls: every L{Call} the application was given.
    @ivar events: C{(callId, event, argument)} for every callback of a call
        the default application sets up.
    """

    def __init__(self, case, timers=TimerSettings(), accepts=lambda uri: True):
        self.case = case
        self.clock = task.Clock()
        self.timers = timers
        self.udp = FakeTransport(address=HERE)
        self.tcp = FakeTransport(reliable=True, address=HERE)
        self.stats = Statistics("test")
        self.resolved = []
        self.calls = []
        self.events = []
        self.onIncoming = lambda call: None
        self.agent = UserAgent(
            self.clock, {"UDP": self.udp, "TCP": self.tcp}, self.resolve, OUR_CONTACT,
            self._incoming, self.stats, timers, accepts=accepts,
        )
        self.layer = TransactionLayer(self.clock, self.agent, timers)
        self.agent.transactions = self.layer

    def resolve(self, uri):
        """
        Resolve an address URI to its transport, host and port.
        """
        self.resolved.append(uri)
        return succeed(hostTargets(uri, transportOf(uri)))

    def _incoming(self, call):
        self.calls.append(call)
        call.onAnswered = lambda: self.events.append("answered")
        call.onEnded = lambda reason: self.events.append(("ended", reason))
        self.onIncoming(call)

    def receive(self, message, transport=None, source=CALLER):
        """
        Hand C{message} to the transaction layer as a transport would.
        """
        transport = transport or self.udp
        if isinstance(message, Request):
            self.layer.receiveRequest(message, transport, source)
        else:
            self.layer.receiveResponse(message, transport, source)

    def responses(self, transport=None):
        """
        The responses sent over C{transport} (UDP by default), in order.
        """
        transport = transport or self.udp
        return [m for m in transport.sentMessages() if isinstance(m, Response)]

    def codes(self, transport=None):
        return [response.code for response in self.responses(transport)]

    def requests(self, method=None, transport=None):
        """
        The C{(request, destination)} pairs sent over C{transport}.
        """
        transport = transport or self.udp
        return [(m, address) for m, address in transport.sent
                if isinstance(m, Request) and method in (None, m.method)]

    def invite(self, transport=None, answer=ANSWER, **kwargs):
        """
        Receive an INVITE with an offer and answer it from the application.

        @return: the L{Call}, answered.
        """
        kwargs.setdefault("body", OFFER)
        self.onIncoming = lambda call: call.answer(answer)
        self.receive(request(**kwargs), transport)
        self.onIncoming = lambda call: None
        return self.calls[-1]

    def ack(self, call, cseq=1, transport=None, branch="z9hG4bKack1", body=b""):
        """
        Receive the ACK for the 2xx of C{call}.
        """
        self.receive(request("ACK", branch=branch, cseq=cseq, toTag=call.dialog.localTag,
                             body=body, contact=None), transport)

    def inDialog(self, call, method, cseq, branch, transport=None, **kwargs):
        """
        Receive an in-dialog request for C{call} and return the responses
        it caused.
        """
        transport = transport or self.udp
        before = len(transport.sent)
        self.receive(
            request(method, branch=branch, cseq=cseq, toTag=call.dialog.localTag, **kwargs),
            transport)
        return [m for m in transport.sentMessages()[before:] if isinstance(m, Response)]

    def answerRequest(self, sent, code=200, transport=None):
        """
        Receive a response from the peer to a request we sent.
        """
        response = Response(code, "OK")
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            for value in sent.headers.getAll(name):
                response.headers.add(name, value)
        self.receive(response, transport)

    def sendTimes(self, until, transport=None):
        """
        Fire the delayed calls due by C{until} one at a time and return
        C{(time, message)} for every message sent meanwhile.
        """
        transport = transport or self.udp
        sent = []
        while self.clock.getDelayedCalls():
            due = min(call.getTime() for call in self.clock.getDelayedCalls())
            if due > until:
                break
            before = len(transport.sent)
            self.clock.advance(due - self.clock.seconds())
            sent.extend((self.clock.seconds(), m) for m, _ in transport.sent[before:])
        return sent

    def finish(self):
        """
        Let every transaction run out, and check that no timer is left.
        """
        for _ in range(200):
            self.clock.advance(1)
        self.case.assertEqual(self.layer.activeTransactions, 0)
        self.case.assertEqual(self.clock.getDelayedCalls(), [])


class SeamTests(SynchronousTestCase):
    """
    The interfaces the user agent and its test fakes provide.
    """

    def test_userAgentIsTransactionUser(self):
        """
        L{UserAgent} provides L{ITransactionUser}.
        """
        self.assertTrue(verifyObject(ITransactionUser, Harness(self).agent))

    def test_fakeTransport(self):
        """
        The fake transports the tests use provide L{ISIPTransport}.
        """
        h = Harness(self)
        self.assertTrue(verifyObject(ISIPTransport, h.udp))
        self.assertTrue(verifyObject(ISIPTransport, h.tcp))


class IncomingInviteTests(SynchronousTestCase):
    """
    A new INVITE: the L{Call} handed to the application and the responses
    to it (RFC 3261 sections 8.2 and 13.3).
    """

    def setUp(self):
        self.h = Harness(self)

    def test_callWithOffer(self):
        """
        An INVITE with SDP gives the application a new L{Call} whose offer
        is the parsed session description.
        """
        self.h.receive(request(body=OFFER))
        [call] = self.h.calls
        self.assertIsInstance(call, Call)
        self.assertEqual(call.offer, parseSDP(OFFER))
        self.assertEqual(call.state, INCOMING)
        self.assertEqual(call.callId, CALL_ID)
        self.assertEqual(call.uri, URI.parse("sip:echo@192.0.2.1"))
        self.assertEqual(call.source, CALLER)
        self.assertEqual(self.h.agent.calls, [call])
        self.assertEqual(self.h.stats.get("calls.incoming"), 1)
        self.assertEqual(self.h.stats.get("calls.active"), 1)
        call.reject(603)
        self.h.finish()

    def test_callWithoutOffer(self):
        """
        An INVITE without a body gives a call whose offer is C{None}.
        """
        self.h.receive(request())
        [call] = self.h.calls
        self.assertIsNone(call.offer)
        call.reject(603)
        self.h.finish()

    def test_trying(self):
        """
        A call the application leaves unanswered gets 100 (Trying) from the
        transaction after 200 ms.
        """
        self.h.receive(request(body=OFFER))
        self.assertEqual(self.h.codes(), [])
        self.h.clock.advance(0.2)
        self.assertEqual(self.h.codes(), [100])
        self.h.calls[0].reject(603)
        self.h.finish()

    def test_ring(self):
        """
        L{Call.ring} sends 180 with the dialog's To tag, our Contact and the
        INVITE's Record-Route.
        """
        self.h.onIncoming = lambda call: call.ring()
        self.h.receive(request(body=OFFER, recordRoutes=[PROXY, EDGE]))
        [call] = self.h.calls
        [ringing] = self.h.responses()
        self.assertEqual(ringing.code, 180)
        self.assertEqual(ringing.toAddress().tag, call.dialog.localTag)
        self.assertEqual(ringing.headers.get("Contact"), OUR_CONTACT)
        self.assertEqual(ringing.headers.getAll("Record-Route"), [PROXY, EDGE])
        self.assertEqual(call.state, RINGING)
        call.reject(603)
        self.h.finish()

    def test_answer(self):
        """
        The 200 of an answered call carries our Contact, the dialog's To
        tag, the INVITE's Record-Route in order and the answer as
        application/sdp.
        """
        call = self.h.invite(recordRoutes=[PROXY, EDGE])
        [ok] = self.h.responses()
        self.assertEqual(ok.code, 200)
        self.assertEqual(ok.headers.get("Contact"), OUR_CONTACT)
        self.assertEqual(ok.toAddress().tag, call.dialog.localTag)
        self.assertEqual(ok.headers.getAll("Record-Route"), [PROXY, EDGE])
        self.assertEqual(ok.headers.get("Content-Type"), "application/sdp")
        self.assertEqual(ok.body, ANSWER)
        self.assertEqual(ok.cseq(), (1, "INVITE"))
        self.assertEqual(call.state, ACTIVE)
        self.assertEqual(call.answerBody, ANSWER)
        self.assertEqual(call.dialog.state, "confirmed")
        self.h.ack(call)
        self.h.finish()

    def test_answerTwice(self):
        """
        Answering, ringing or rejecting an answered call is a L{CallError}.
        """
        call = self.h.invite()
        self.assertRaises(CallError, call.answer, ANSWER)
        self.assertRaises(CallError, call.ring)
        self.assertRaises(CallError, call.reject)
        self.h.ack(call)
        self.h.finish()

    def test_reject(self):
        """
        L{Call.reject} sends the final response with a To tag, ends the call
        with C{"rejected"} and forgets it.
        """
        self.h.onIncoming = lambda call: call.reject(486)
        self.h.receive(request(body=OFFER))
        [call] = self.h.calls
        [busy] = self.h.responses()
        self.assertEqual(busy.code, 486)
        self.assertEqual(busy.toAddress().tag, call.dialog.localTag)
        self.assertIsNone(busy.headers.get("Contact"))
        self.assertEqual(call.state, ENDED)
        self.assertEqual(self.h.events, [("ended", "rejected")])
        self.assertEqual(self.h.agent.calls, [])
        self.h.receive(request("ACK", toTag=call.dialog.localTag, contact=None))
        self.h.finish()

    def test_rejectWithHeaders(self):
        """
        A rejection carries the reason phrase and headers it is given.
        """
        self.h.onIncoming = lambda call: call.reject(
            486, "Room Full", headers=[("Retry-After", "60")])
        self.h.receive(request(body=OFFER))
        [busy] = self.h.responses()
        self.assertEqual((busy.code, busy.reason), (486, "Room Full"))
        self.assertEqual(busy.headers.get("Retry-After"), "60")
        self.h.finish()

    def test_applicationFails(self):
        """
        An application that raises on a new call has it refused with 500.
        """
        def fail(call):
            raise RuntimeError("bug")

        self.h.onIncoming = fail
        self.h.receive(request(body=OFFER))
        self.assertEqual(self.h.codes(), [500])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.h.agent.calls, [])
        self.h.finish()

    def test_badSDP(self):
        """
        An INVITE whose SDP cannot be parsed is refused with 488 and no call
        reaches the application.
        """
        self.h.receive(request(body=b"v=0\r\nthis is not sdp\r\n"))
        self.assertEqual(self.h.codes(), [488])
        self.assertEqual(self.h.calls, [])
        self.h.finish()

    def test_unsupportedBodyType(self):
        """
        An INVITE whose body is of a type we do not understand is refused
        with 415 and an Accept header (RFC 3261 section 8.2.3).
        """
        self.h.receive(request(body=b"hello", contentType="text/plain"))
        [refused] = self.h.responses()
        self.assertEqual(refused.code, 415)
        self.assertEqual(refused.headers.getAll("Accept"), ["application/sdp"])
        self.assertEqual(self.h.calls, [])
        self.h.finish()

    def test_unsupportedRequire(self):
        """
        An INVITE requiring an extension we lack is refused with 420 listing
        it in Unsupported (RFC 3261 section 8.2.2.3).
        """
        self.h.receive(request(body=OFFER, headers=[("Require", "foo")]))
        [refused] = self.h.responses()
        self.assertEqual(refused.code, 420)
        self.assertEqual(refused.headers.getAll("Unsupported"), ["foo"])
        self.assertIsNotNone(refused.toAddress().tag)
        self.assertEqual(self.h.calls, [])
        self.h.finish()

    def test_notAccepted(self):
        """
        An INVITE for a Request-URI that C{accepts} refuses gets 404, and
        C{accepts} sees the Request-URI.
        """
        seen = []
        h = Harness(self, accepts=lambda uri: seen.append(uri) or False)
        h.receive(request(body=OFFER, uri="sip:nobody@192.0.2.1"))
        self.assertEqual(h.codes(), [404])
        self.assertEqual(seen, [URI.parse("sip:nobody@192.0.2.1")])
        self.assertEqual(h.calls, [])
        h.finish()

    def test_noContact(self):
        """
        An INVITE without a Contact cannot create a dialog: 400.
        """
        self.h.receive(request(body=OFFER, contact=None))
        self.assertEqual(self.h.codes(), [400])
        self.assertEqual(self.h.calls, [])
        self.h.finish()

    def test_retransmittedInvite(self):
        """
        A retransmitted INVITE is absorbed and makes no second call.
        """
        call = self.h.invite()
        self.h.receive(request(body=OFFER))
        self.assertEqual(self.h.calls, [call])
        self.h.ack(call)
        self.h.finish()


class RetransmissionTests(SynchronousTestCase):
    """
    The 2xx retransmission and ACK wait of RFC 3261 section 13.3.1.4.
    """

    def setUp(self):
        self.h = Harness(self)

    def test_retransmitSchedule(self):
        """
        Over UDP the 200 is sent again at T1, 2*T1, 4*T1... capped at T2
        until 64*T1.
        """
        call = self.h.invite()
        sent = self.h.sendTimes(31.9)
        times = [time for time, message in sent
                 if isinstance(message, Response) and message.code == 200]
        self.assertEqual(times, [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
        self.h.ack(call)
        self.h.finish()

    def test_retransmitScheduleOtherTimers(self):
        """
        The schedule follows the configured T1 and T2.
        """
        h = Harness(self, timers=TimerSettings(T1=0.25, T2=1.0))
        call = h.invite()
        times = [time for time, message in h.sendTimes(5)
                 if isinstance(message, Response) and message.code == 200]
        self.assertEqual(times, [0.25, 0.75, 1.75, 2.75, 3.75, 4.75])
        h.ack(call)
        h.finish()

    def test_retransmissionsAreTheSame200(self):
        """
        Every retransmission is the original 200, with its To tag and body.
        """
        call = self.h.invite()
        self.h.sendTimes(4)
        first, *again = self.h.responses()
        self.assertEqual(len(again), 3)
        for response in again:
            self.assertEqual(response.toBytes(), first.toBytes())
        self.h.ack(call)
        self.h.finish()

    def test_ackStopsRetransmission(self):
        """
        The ACK stops the retransmissions and calls C{onAnswered} once;
        a retransmitted ACK changes nothing.
        """
        call = self.h.invite()
        self.h.clock.advance(0.5)
        self.assertEqual(self.h.codes(), [200, 200])
        self.h.ack(call)
        self.assertEqual(self.h.events, ["answered"])
        self.h.ack(call)
        self.assertEqual(self.h.events, ["answered"])
        self.h.sendTimes(100)
        self.assertEqual(self.h.codes(), [200, 200])
        self.assertEqual(self.h.requests("BYE"), [])
        self.assertEqual(call.state, ACTIVE)
        self.assertEqual(self.h.agent.calls, [call])
        self.h.finish()

    def test_ackWithWrongTag(self):
        """
        An ACK whose To tag is not the call's does not stop the
        retransmissions.
        """
        call = self.h.invite()
        self.h.receive(request("ACK", branch="z9hG4bKack9", toTag="other", contact=None))
        self.h.clock.advance(0.5)
        self.assertEqual(self.h.codes(), [200, 200])
        self.assertEqual(self.h.events, [])
        self.h.ack(call)
        self.h.finish()

    def test_lateOfferAnswerInAck(self):
        """
        For an INVITE without an offer, the 200 carries ours and the ACK's
        body, the answer, is kept as C{ackBody}.
        """
        self.h.invite(body=b"")
        [call] = self.h.calls
        self.assertIsNone(call.offer)
        self.h.ack(call, body=OFFER)
        self.assertEqual(call.ackBody, OFFER)
        self.h.finish()

    def test_noAck(self):
        """
        Without an ACK within 64*T1 the call sends a BYE along the route set
        and ends with C{"no ack"}.
        """
        call = self.h.invite(recordRoutes=[PROXY])
        self.h.clock.advance(31.9)
        self.h.clock.advance(0.1)
        [(bye, destination)] = self.h.requests("BYE")
        self.assertEqual(destination, ("192.0.2.50", 5060))
        self.assertEqual(bye.headers.getAll("Route"), [PROXY])
        self.assertEqual(bye.uri, URI.parse("sip:alice@198.51.100.7:5060"))
        self.assertEqual(self.h.events, [("ended", "no ack")])
        self.assertEqual(call.state, ENDED)
        self.assertEqual(self.h.agent.calls, [])
        before = len(self.h.responses())
        self.h.sendTimes(60)
        self.assertEqual(len(self.h.responses()), before)
        self.h.answerRequest(bye)
        self.h.finish()

    def test_reliableNoRetransmission(self):
        """
        Over TCP the 200 is sent once; the ACK wait still applies.
        """
        call = self.h.invite(transport=self.h.tcp)
        self.h.clock.advance(31.9)
        self.assertEqual(self.h.codes(self.h.tcp), [200])
        self.h.clock.advance(0.1)
        self.assertEqual(len(self.h.requests("BYE")), 1)
        self.assertEqual(self.h.events, [("ended", "no ack")])
        self.assertEqual(call.state, ENDED)
        self.h.answerRequest(self.h.requests("BYE")[0][0])
        self.h.finish()

    def test_reliableAck(self):
        """
        Over TCP the ACK cancels the 64*T1 wait.
        """
        call = self.h.invite(transport=self.h.tcp)
        self.h.ack(call, transport=self.h.tcp)
        self.h.clock.advance(64)
        self.assertEqual(self.h.requests("BYE"), [])
        self.assertEqual(self.h.events, ["answered"])
        self.h.finish()


class CancelTests(SynchronousTestCase):
    """
    CANCEL (RFC 3261 section 9.2).
    """

    def setUp(self):
        self.h = Harness(self)

    def test_cancelRinging(self):
        """
        A CANCEL before the answer gets 200 and the INVITE 487; the call
        ends with C{"cancelled"}.
        """
        self.h.onIncoming = lambda call: call.ring()
        self.h.receive(request(body=OFFER))
        [call] = self.h.calls
        self.h.receive(request("CANCEL", contact=None))
        self.assertEqual(self.h.codes(), [180, 200, 487])
        cancelOk, terminated = self.h.responses()[1:]
        self.assertEqual(cancelOk.cseq(), (1, "CANCEL"))
        self.assertEqual(terminated.cseq(), (1, "INVITE"))
        self.assertEqual(terminated.toAddress().tag, call.dialog.localTag)
        self.assertEqual(call.state, ENDED)
        self.assertEqual(self.h.events, [("ended", "cancelled")])
        self.assertEqual(self.h.agent.calls, [])
        self.h.receive(request("ACK", toTag=call.dialog.localTag, contact=None))
        self.h.finish()

    def test_cancelAnswered(self):
        """
        A CANCEL after the 200 gets 200 and leaves the call alone.
        """
        call = self.h.invite()
        self.h.receive(request("CANCEL", contact=None))
        self.assertEqual(self.h.codes(), [200, 200])
        self.assertEqual(self.h.responses()[1].cseq(), (1, "CANCEL"))
        self.assertEqual(call.state, ACTIVE)
        self.h.ack(call)
        self.h.finish()

    def test_cancelUnknown(self):
        """
        A CANCEL matching no INVITE gets 481.
        """
        self.h.receive(request("CANCEL", contact=None))
        self.assertEqual(self.h.codes(), [481])
        self.h.finish()

    def test_cancelAnsweredReinvite(self):
        """
        A CANCEL matching a re-INVITE already answered gets 200, as any
        CANCEL that matches a transaction (RFC 3261 section 9.2).
        """
        call = self.h.invite()
        self.h.ack(call)
        self.h.inDialog(call, "INVITE", 2, "z9hG4bKre1", body=HOLD)
        responses = self.h.inDialog(call, "CANCEL", 2, "z9hG4bKre1", contact=None)
        self.assertEqual([r.code for r in responses], [200])
        self.assertEqual(call.state, ACTIVE)
        self.h.ack(call, cseq=2, branch="z9hG4bKack2")
        self.h.finish()


class ByeTests(SynchronousTestCase):
    """
    BYE in both directions (RFC 3261 section 15).
    """

    def setUp(self):
        self.h = Harness(self)

    def test_peerBye(self):
        """
        A BYE from the peer is answered 200 and ends the call with
        C{"bye"}.
        """
        call = self.h.invite()
        self.h.ack(call)
        [ok] = self.h.inDialog(call, "BYE", 2, "z9hG4bKbye1", contact=None)
        self.assertEqual((ok.code, ok.cseq()), (200, (2, "BYE")))
        self.assertEqual(call.state, ENDED)
        self.assertEqual(self.h.events, ["answered", ("ended", "bye")])
        self.assertEqual(self.h.agent.calls, [])
        self.assertEqual(self.h.stats.get("calls.active"), 0)
        self.h.finish()

    def test_peerByeBeforeAck(self):
        """
        A BYE before the ACK ends the call and stops the 200
        retransmissions and the ACK wait.
        """
        call = self.h.invite()
        self.h.inDialog(call, "BYE", 2, "z9hG4bKbye1", contact=None)
        self.assertEqual(self.h.events, [("ended", "bye")])
        self.h.sendTimes(100)
        self.assertEqual(self.h.codes(), [200, 200])
        self.assertEqual(self.h.requests("BYE"), [])
        self.h.finish()

    def test_peerByeOnEarlyDialog(self):
        """
        A BYE from the caller on the early dialog of a ringing call is
        answered 200, and the INVITE, still pending, 487 (RFC 3261 section
        15.1.2).
        """
        self.h.onIncoming = lambda call: call.ring()
        self.h.receive(request(body=OFFER))
        [call] = self.h.calls
        self.h.inDialog(call, "BYE", 2, "z9hG4bKbye1", contact=None)
        self.assertEqual(sorted(self.h.codes()), [180, 200, 487])
        self.assertEqual(call.state, ENDED)
        self.h.receive(request("ACK", toTag=call.dialog.localTag, contact=None))
        self.h.finish()

    def test_byeUnknownDialog(self):
        """
        A BYE for a dialog we do not have gets 481.
        """
        self.h.receive(request("BYE", toTag="unknown", cseq=2, contact=None))
        self.assertEqual(self.h.codes(), [481])
        self.h.finish()

    def test_byeWithoutToTag(self):
        """
        A BYE outside any dialog (no To tag) gets 481.
        """
        self.h.receive(request("BYE", cseq=2, contact=None))
        self.assertEqual(self.h.codes(), [481])
        self.h.finish()

    def test_hangup(self):
        """
        L{Call.hangup} sends a BYE along the route set to the first hop,
        ends the call with C{"hangup"}, and its L{Deferred} fires with the
        response to the BYE.
        """
        call = self.h.invite(recordRoutes=[PROXY, EDGE])
        self.h.ack(call)
        d = call.hangup()
        self.assertEqual(call.state, ENDED)
        self.assertEqual(self.h.events, ["answered", ("ended", "hangup")])
        [(bye, destination)] = self.h.requests("BYE")
        self.assertEqual(destination, ("192.0.2.50", 5060))
        self.assertEqual(self.h.resolved, [URI.parse("sip:192.0.2.50;lr")])
        self.assertEqual(bye.uri, URI.parse("sip:alice@198.51.100.7:5060"))
        self.assertEqual(bye.headers.getAll("Route"), [PROXY, EDGE])
        self.assertEqual(bye.cseq(), (1, "BYE"))
        self.assertEqual(bye.fromAddress().tag, call.dialog.localTag)
        self.assertEqual(bye.toAddress().tag, FROM_TAG)
        self.assertEqual(bye.callId, CALL_ID)
        self.assertNoResult(d)
        self.h.answerRequest(bye)
        self.assertEqual(self.successResultOf(d).code, 200)
        self.assertIdentical(call.hangup().result, None)
        self.h.finish()

    def test_hangupOverTCP(self):
        """
        The BYE goes over the transport the first hop asks for, with its
        name in the Via.
        """
        call = self.h.invite(recordRoutes=["<sip:192.0.2.50;transport=tcp;lr>"])
        self.h.ack(call)
        call.hangup()
        [(bye, destination)] = self.h.requests("BYE", transport=self.h.tcp)
        self.assertEqual(bye.topVia.transport, "TCP")
        self.assertEqual(destination, ("192.0.2.50", 5060))
        self.h.answerRequest(bye, transport=self.h.tcp)
        self.h.finish()

    def test_hangupTimesOut(self):
        """
        An unanswered BYE fires the hangup L{Deferred} with a local 408
        after timer F.
        """
        call = self.h.invite()
        self.h.ack(call)
        d = call.hangup()
        self.h.clock.advance(31.9)
        self.assertNoResult(d)
        self.h.sendTimes(32)
        self.assertEqual(self.successResultOf(d).code, 408)
        self.h.finish()

    def test_hangupNoRoute(self):
        """
        A BYE whose next hop resolves to nothing fires with 503.
        """
        call = self.h.invite()
        self.h.ack(call)
        self.h.agent._resolve = lambda uri: succeed([])
        self.assertEqual(self.successResultOf(call.hangup()).code, 503)
        self.h.finish()

    def test_hangupBeforeAnswer(self):
        """
        Hanging up an unanswered call sends 480 and no BYE.
        """
        self.h.receive(request(body=OFFER))
        [call] = self.h.calls
        self.assertIsNone(self.successResultOf(call.hangup()))
        self.assertEqual(self.h.codes(), [480])
        self.assertEqual(self.h.requests("BYE"), [])
        self.assertEqual(self.h.events, [("ended", "hangup")])
        self.h.receive(request("ACK", toTag=call.dialog.localTag, contact=None))
        self.h.finish()

    def test_hangupBeforeAck(self):
        """
        The callee does not send a BYE before the ACK of its 2xx (RFC 3261
        section 15): hanging up then sends it when the ACK arrives.
        """
        call = self.h.invite()
        call.hangup()
        self.assertEqual(self.h.requests("BYE"), [])
        self.h.ack(call)
        [(bye, _)] = self.h.requests("BYE")
        self.assertEqual(call.state, ENDED)
        self.h.answerRequest(bye)
        self.h.finish()


class InDialogTests(SynchronousTestCase):
    """
    Other requests inside a dialog (RFC 3261 section 12.2.2).
    """

    def setUp(self):
        self.h = Harness(self)
        self.call = self.h.invite()
        self.h.ack(self.call)

    def test_info(self):
        """
        An INFO reaches C{onInfo}, whose status is the answer.
        """
        seen = []
        self.call.onInfo = lambda request: seen.append(request.method) or 415
        [response] = self.h.inDialog(self.call, "INFO", 2, "z9hG4bKinfo1", contact=None)
        self.assertEqual((response.code, seen), (415, ["INFO"]))
        self.h.finish()

    def test_infoWithoutHandler(self):
        """
        Without C{onInfo}, an INFO is answered 200.
        """
        [response] = self.h.inDialog(self.call, "INFO", 2, "z9hG4bKinfo1", contact=None)
        self.assertEqual(response.code, 200)
        self.h.finish()

    def test_options(self):
        """
        An in-dialog OPTIONS gets 200 with Allow and Accept.
        """
        [response] = self.h.inDialog(self.call, "OPTIONS", 2, "z9hG4bKopt1", contact=None)
        self.assertEqual(response.code, 200)
        self.assertIn("BYE", response.headers.getAll("Allow"))
        self.assertEqual(response.headers.getAll("Accept"), ["application/sdp"])
        self.h.finish()

    def test_unknownMethod(self):
        """
        A method we do not implement gets 501 inside a dialog too.
        """
        [response] = self.h.inDialog(self.call, "SUBSCRIBE", 2, "z9hG4bKsub1", contact=None)
        self.assertEqual(response.code, 501)
        self.h.finish()

    def test_cseqOutOfOrder(self):
        """
        An in-dialog request with a CSeq below the last one gets 500 and the
        call goes on.
        """
        self.h.inDialog(self.call, "INFO", 5, "z9hG4bKinfo1", contact=None)
        [response] = self.h.inDialog(self.call, "INFO", 4, "z9hG4bKinfo2", contact=None)
        self.assertEqual(response.code, 500)
        self.assertEqual(self.call.state, ACTIVE)
        self.h.finish()

    def test_unknownDialog(self):
        """
        An INFO for a dialog we do not have gets 481.
        """
        self.h.receive(request("INFO", branch="z9hG4bKx", toTag="nope", cseq=2, contact=None))
        self.assertEqual(self.h.codes()[-1], 481)
        self.h.finish()

    def test_otherCallId(self):
        """
        The right tags with another Call-ID are not the dialog: 481.
        """
        self.h.receive(request("BYE", branch="z9hG4bKx", toTag=self.call.dialog.localTag,
                               cseq=2, contact=None, callId="other@198.51.100.7"))
        self.assertEqual(self.h.codes()[-1], 481)
        self.assertEqual(self.call.state, ACTIVE)
        self.h.finish()


class OutOfDialogTests(SynchronousTestCase):
    """
    Requests outside dialogs that are not INVITE.
    """

    def setUp(self):
        self.h = Harness(self)

    def test_options(self):
        """
        An OPTIONS outside a dialog gets 200 with Allow and Accept.
        """
        self.h.receive(request("OPTIONS", contact=None))
        [response] = self.h.responses()
        self.assertEqual(response.code, 200)
        self.assertIn("INVITE", response.headers.getAll("Allow"))
        self.h.finish()

    def test_unknownMethod(self):
        """
        An unknown method gets 501.
        """
        self.h.receive(request("PUBLISH", contact=None))
        self.assertEqual(self.h.codes(), [501])
        self.h.finish()

    def test_knownMethodNotServed(self):
        """
        An INFO outside a dialog gets 405 with Allow.
        """
        self.h.receive(request("INFO", contact=None))
        [response] = self.h.responses()
        self.assertEqual(response.code, 405)
        self.assertIn("INFO", response.headers.getAll("Allow"))
        self.h.finish()

    def test_strayAck(self):
        """
        An ACK for no call is ignored.
        """
        self.h.receive(request("ACK", toTag="nope", contact=None))
        self.assertEqual(self.h.udp.sent, [])
        self.h.finish()


class ReinviteTests(SynchronousTestCase):
    """
    re-INVITEs (RFC 3261 section 14.2) and their offer / answer.
    """

    def setUp(self):
        self.h = Harness(self)
        self.offers = []

        def onReinvite(offer):
            self.offers.append(offer)
            return HOLD_ANSWER

        self.onReinvite = onReinvite

    def answered(self, transport=None):
        call = self.h.invite(transport=transport)
        call.onReinvite = self.onReinvite
        self.h.ack(call, transport=transport)
        return call

    def test_hold(self):
        """
        A re-INVITE putting the call on hold reaches C{onReinvite} with the
        parsed offer, and its answer goes back in a 200 with our Contact
        and the dialog's To tag.
        """
        call = self.answered()
        [ok] = self.h.inDialog(call, "INVITE", 2, "z9hG4bKre1", body=HOLD)
        self.assertEqual(self.offers, [parseSDP(HOLD)])
        self.assertEqual(direction(self.offers[0], self.offers[0].media[0]), "sendonly")
        self.assertEqual(ok.code, 200)
        self.assertEqual(ok.cseq(), (2, "INVITE"))
        self.assertEqual(ok.body, HOLD_ANSWER)
        self.assertEqual(ok.headers.get("Content-Type"), "application/sdp")
        self.assertEqual(ok.headers.get("Contact"), OUR_CONTACT)
        self.assertEqual(ok.toAddress().tag, call.dialog.localTag)
        self.assertEqual(call.answerBody, HOLD_ANSWER)
        self.h.ack(call, cseq=2, branch="z9hG4bKack2")
        self.assertEqual(call.state, ACTIVE)
        self.h.finish()

    def test_reinviteRetransmitted(self):
        """
        The 200 to a re-INVITE is retransmitted over UDP until its ACK,
        and without that ACK the call ends after 64*T1.
        """
        call = self.answered()
        self.h.inDialog(call, "INVITE", 2, "z9hG4bKre1", body=HOLD)
        self.h.clock.advance(0.5)
        self.assertEqual(self.h.codes()[-2:], [200, 200])
        self.h.clock.advance(31.5)
        self.assertEqual(self.h.events, ["answered", ("ended", "no ack")])
        self.h.answerRequest(self.h.requests("BYE")[0][0])
        self.h.finish()

    def test_reinviteRefreshesTarget(self):
        """
        A re-INVITE's Contact becomes the target of our next request.
        """
        call = self.answered()
        self.h.inDialog(call, "INVITE", 2, "z9hG4bKre1", body=HOLD,
                        contact="<sip:alice@198.51.100.99:5062>")
        self.h.ack(call, cseq=2, branch="z9hG4bKack2")
        call.hangup()
        [(bye, destination)] = self.h.requests("BYE")
        self.assertEqual(bye.uri, URI.parse("sip:alice@198.51.100.99:5062"))
        self.assertEqual(destination, ("198.51.100.99", 5062))
        self.h.answerRequest(bye)
        self.h.finish()

    def test_reinviteWithoutHandler(self):
        """
        Without C{onReinvite}, a re-INVITE is answered with the session
        description we answered last.
        """
        call = self.h.invite()
        self.h.ack(call)
        [ok] = self.h.inDialog(call, "INVITE", 2, "z9hG4bKre1", body=HOLD)
        self.assertEqual((ok.code, ok.body), (200, ANSWER))
        self.h.ack(call, cseq=2, branch="z9hG4bKack2")
        self.h.finish()

    def test_reinviteWithoutOffer(self):
        """
        A re-INVITE without an offer calls C{onReinvite} with C{None}.
        """
        call = self.answered()
        [ok] = self.h.inDialog(call, "INVITE", 2, "z9hG4bKre1")
        self.assertEqual(self.offers, [None])
        self.assertEqual(ok.body, HOLD_ANSWER)
        self.h.ack(call, cseq=2, branch="z9hG4bKack2", body=OFFER)
        self.h.finish()

    def test_glareWhileUnacknowledged(self):
        """
        A second re-INVITE while the first one's 200 is unacknowledged gets
        491 with Retry-After and does not reach C{onReinvite}.
        """
        call = self.answered()
        self.h.inDialog(call, "INVITE", 2, "z9hG4bKre1", body=HOLD)
        [pending] = self.h.inDialog(call, "INVITE", 3, "z9hG4bKre2", body=OFFER)
        self.assertEqual(pending.code, 491)
        self.assertIn(pending.headers.get("Retry-After"), ("1", "2"))
        self.assertEqual(len(self.offers), 1)
        self.h.ack(call, cseq=2, branch="z9hG4bKack2")
        [ok] = self.h.inDialog(call, "INVITE", 4, "z9hG4bKre3", body=OFFER)
        self.assertEqual(ok.code, 200)
        self.h.ack(call, cseq=4, branch="z9hG4bKack4")
        self.h.finish()

    def test_glareOverTCP(self):
        """
        Over TCP, where nothing is retransmitted, a second re-INVITE before
        the first one's ACK still gets 491.
        """
        call = self.answered(transport=self.h.tcp)
        self.h.inDialog(call, "INVITE", 2, "z9hG4bKre1", transport=self.h.tcp, body=HOLD)
        [pending] = self.h.inDialog(
            call, "INVITE", 3, "z9hG4bKre2", transport=self.h.tcp, body=OFFER)
        self.assertEqual(pending.code, 491)
        self.h.ack(call, cseq=2, branch="z9hG4bKack2", transport=self.h.tcp)
        self.h.finish()

    def test_reinviteBeforeInitialAck(self):
        """
        A re-INVITE before the ACK of the initial 200 gets 491 over UDP and
        over TCP alike, and once the ACK arrives the call is not hung up
        for want of an ACK.
        """
        for transport in (self.h.udp, self.h.tcp):
            call = self.h.invite(transport=transport, callId="%s@198.51.100.7" % (transport.name,))
            call.onReinvite = self.onReinvite
            [pending] = self.h.inDialog(call, "INVITE", 2, "z9hG4bKre1", transport=transport,
                                        body=HOLD, callId=call.callId)
            self.assertEqual(pending.code, 491, transport.name)
            self.h.receive(request("ACK", branch="z9hG4bKack1", toTag=call.dialog.localTag,
                                   contact=None, callId=call.callId), transport)
            self.h.clock.advance(64)
            self.assertEqual(call.state, ACTIVE, transport.name)
        self.assertEqual(self.h.requests("BYE") + self.h.requests("BYE", self.h.tcp), [])
        self.h.finish()

    def test_reinviteOnEarlyDialog(self):
        """
        A re-INVITE before the final response to the INVITE gets 500 with
        Retry-After (RFC 3261 section 14.2), not an answer.
        """
        self.h.onIncoming = lambda call: call.ring()
        self.h.receive(request(body=OFFER))
        [call] = self.h.calls
        call.onReinvite = self.onReinvite
        [response] = self.h.inDialog(call, "INVITE", 2, "z9hG4bKre1", body=HOLD)
        self.assertEqual(response.code, 500)
        self.assertIsNotNone(response.headers.get("Retry-After"))
        self.assertEqual(self.offers, [])
        call.reject(603)
        self.h.receive(request("ACK", toTag=call.dialog.localTag, contact=None))
        self.h.finish()

    def test_badSDP(self):
        """
        A re-INVITE whose SDP cannot be parsed gets 488; the call and its
        session stay as they were.
        """
        call = self.answered()
        [refused] = self.h.inDialog(call, "INVITE", 2, "z9hG4bKre1", body=b"v=1\r\n")
        self.assertEqual(refused.code, 488)
        self.assertEqual(self.offers, [])
        self.assertEqual(call.state, ACTIVE)
        self.assertEqual(call.answerBody, ANSWER)
        [ok] = self.h.inDialog(call, "INVITE", 3, "z9hG4bKre2", body=HOLD)
        self.assertEqual(ok.code, 200)
        self.h.ack(call, cseq=3, branch="z9hG4bKack3")
        self.h.finish()

    def test_offerRefused(self):
        """
        An offer C{onReinvite} refuses with L{SDPError} gets 488 with its
        reason, and the call goes on.
        """
        call = self.answered()

        def refuse(offer):
            raise SDPError("no common codec")

        call.onReinvite = refuse
        [refused] = self.h.inDialog(call, "INVITE", 2, "z9hG4bKre1", body=HOLD)
        self.assertEqual((refused.code, refused.reason), (488, "no common codec"))
        self.assertEqual(call.state, ACTIVE)
        [ok] = self.h.inDialog(call, "BYE", 3, "z9hG4bKbye1", contact=None)
        self.assertEqual(ok.code, 200)
        self.assertEqual(self.h.events, ["answered", ("ended", "bye")])
        self.h.finish()

    def test_reinviteAckDoesNotAnswerAgain(self):
        """
        The ACK of a re-INVITE's 200 does not call C{onAnswered} again:
        the call was answered once.
        """
        call = self.answered()
        self.h.inDialog(call, "INVITE", 2, "z9hG4bKre1", body=HOLD)
        self.h.ack(call, cseq=2, branch="z9hG4bKack2")
        self.assertEqual(self.h.events, ["answered"])
        self.h.finish()


class StopTests(SynchronousTestCase):
    """
    L{UserAgent.stop}.
    """

    def test_stop(self):
        """
        Stopping sends a BYE for each answered call (ending it with
        C{"shutdown"}), refuses unanswered ones with 503, fires pending
        request L{Deferred}s with 503 and leaves no timer once the
        transaction layer stops too.
        """
        h = Harness(self)
        active = h.invite()
        h.ack(active)
        h.onIncoming = lambda call: call.ring()
        h.receive(request(body=OFFER, callId="second@198.51.100.7", branch="z9hG4bK2nd"))
        ringing = h.calls[-1]
        byes = []
        h.agent.send(active.dialog.createRequest("INFO"), active).addCallback(byes.append)
        h.agent.stop()
        self.assertEqual([r.method for r, _ in h.requests()], ["INFO", "BYE"])
        self.assertEqual(h.codes()[-1], 503)
        self.assertEqual((active.state, ringing.state), (ENDED, ENDED))
        self.assertIn(("ended", "shutdown"), h.events)
        self.assertEqual(h.agent.calls, [])
        self.assertEqual([r.code for r in byes], [503])
        h.layer.stop()
        self.assertEqual(h.clock.getDelayedCalls(), [])


class MessageTests(SynchronousTestCase):
    """
    MESSAGE outside dialogs (RFC 3428).
    """

    def test_refusedWithoutHandler(self):
        """
        Without an C{onMessage} handler, a MESSAGE is refused with 405 and
        Allow.
        """
        h = Harness(self)
        h.receive(request("MESSAGE", body=b"hello", contentType="text/plain"))
        [response] = h.responses()
        self.assertEqual(response.code, 405)
        self.assertIn("MESSAGE", response.headers.getAll("Allow"))

    def test_handlerDecides(self):
        """
        The handler sees the request and its status is the answer; a
        handler that raises gives 500.
        """
        h = Harness(self)
        seen = []
        h.agent.onMessage = lambda message: seen.append(message.body) or 202
        h.receive(request("MESSAGE", body=b"hello", contentType="text/plain"))
        h.agent.onMessage = lambda message: 1 / 0
        h.receive(request("MESSAGE", branch="z9hG4bKm2", cseq=2, body=b"again",
                          contentType="text/plain"))
        self.assertEqual(seen, [b"hello"])
        self.assertEqual(h.codes(), [202, 500])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_send(self):
        """
        C{message} sends a MESSAGE with the body and type to the target's
        address and fires with the final response.
        """
        h = Harness(self)
        d = h.agent.message("sip:bob@198.51.100.9:5062", "sip:vm@example.test", b"New message",
                            contentType="text/plain")
        [(sent, destination)] = h.requests("MESSAGE")
        self.assertEqual(destination, ("198.51.100.9", 5062))
        self.assertEqual((sent.body, sent.headers.get("Content-Type")), (b"New message", "text/plain"))
        self.assertIsNone(sent.headers.get("Contact"))
        h.answerRequest(sent, 200)
        self.assertEqual(self.successResultOf(d).code, 200)
        h.clock.advance(64 * h.timers.T1)
        self.assertEqual(h.clock.getDelayedCalls(), [])

"""
Tests for L{appliance.sip.thirdparty}: RFC 3725 flow I on a real transaction
layer driven by a L{task.Clock}.
"""

from twisted.trial.unittest import SynchronousTestCase

from appliance.sip import sdp
from appliance.sip.thirdparty import connect, refusal
from appliance.sip.uac import CallFailed
from tests.sip.test_uac import CallerHarness, reply
from tests.sip.test_useragent import ANSWER, OFFER

A = "sip:alice@198.51.100.20"
B = "sip:bob@198.51.100.30"


class FlowITests(SynchronousTestCase):
    """
    L{connect} joins two parties it calls itself.
    """

    def setUp(self):
        self.h = CallerHarness(self)

    def invites(self):
        return [request for request, _ in self.h.requests("INVITE")]

    def acks(self):
        return [request for request, _ in self.h.requests("ACK")]

    def test_flowI(self):
        """
        A is called without an offer; its 200's offer goes to B; B's answer
        goes to A in the ACK, after B's ACK; From shows each the other.
        """
        callA, result = connect(self.h.agent, A, B)
        [inviteA] = self.invites()
        self.assertEqual((inviteA.body, inviteA.headers.get("From").split(";")[0]), (b"", "<%s>" % (B,)))
        reply(self.h, inviteA, 200, toTag="a1", body=OFFER)
        self.assertEqual(self.acks(), [], "A is acknowledged only with B's answer")
        [_, inviteB] = self.invites()
        self.assertEqual(inviteB.body, OFFER)
        self.assertEqual(inviteB.headers.get("From").split(";")[0], "<%s>" % (A,))
        reply(self.h, inviteB, 200, toTag="b1", body=ANSWER)
        ackB, ackA = self.acks()
        self.assertEqual((str(ackB.uri).split("@")[0], ackB.body), ("sip:bob", b""))
        self.assertEqual(ackA.body, ANSWER)
        self.assertEqual(ackA.headers.get("Content-Type"), "application/sdp")
        first, second = self.successResultOf(result)
        self.assertIs(first, callA)
        self.h.finish()

    def test_hangupCarriesOver(self):
        """
        When B hangs up, A gets a BYE (RFC 3725 section 4.4).
        """
        callA, result = connect(self.h.agent, A, B)
        reply(self.h, self.invites()[0], 200, toTag="a1", body=OFFER)
        reply(self.h, self.invites()[1], 200, toTag="b1", body=ANSWER)
        callA, callB = self.successResultOf(result)
        callB._end("bye")
        [(bye, _)] = self.h.requests("BYE")
        self.assertEqual(bye.callId, callA.callId)
        self.h.finish()

    def test_secondPartyRefuses(self):
        """
        When B refuses, A is acknowledged with an answer refusing every
        stream and hung up; the result fails with B's status.
        """
        callA, result = connect(self.h.agent, A, B)
        reply(self.h, self.invites()[0], 200, toTag="a1", body=OFFER)
        reply(self.h, self.invites()[1], 486, toTag="b1")
        self.assertEqual(self.failureResultOf(result, CallFailed).value.code, 486)
        [ackA] = [ack for ack in self.acks() if ack.callId == callA.callId]
        refused = sdp.parseSDP(ackA.body)
        self.assertEqual([media.port for media in refused.media], [0])
        [(bye, _)] = self.h.requests("BYE")
        self.assertEqual(bye.callId, callA.callId)
        self.h.finish()

    def test_firstPartyRefuses(self):
        """
        When A does not answer, B is never called.
        """
        callA, result = connect(self.h.agent, A, B)
        reply(self.h, self.invites()[0], 480, toTag="a1")
        self.assertEqual(self.failureResultOf(result, CallFailed).value.code, 480)
        self.assertEqual(len(self.invites()), 1)
        self.h.finish()

    def test_refusalOfGarbage(self):
        """
        An offer that cannot be parsed is refused with an empty body.
        """
        self.assertEqual(refusal(b"not sdp"), b"")

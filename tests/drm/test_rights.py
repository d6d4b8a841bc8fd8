"""
Tests for L{appliance.drm.rights} on a task.Clock.
"""

import os

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from appliance.drm import rights as R
from appliance.drm.keystore import KeyStore
from appliance.drm.rights import IRightsPolicy, Rights, RightsPolicy
from appliance.storage.database import SynchronousDatabase
from tests.drm.test_keystore import result

KEY = "0b9d2f1e-6a57-4c1e-9a43-2b5f0d5f1a11"
OWNER, BOB, CAROL, DAVE = "alice@example.test", "bob@example.test", "carol@example.test", "dave@example.test"
DAY = 86400.0


class RightsPolicyTests(SynchronousTestCase):
    """
    Plays, expiry, revocation, narrowing and delegation rules.
    """

    def setUp(self):
        path = os.path.join(self.mktemp() + ".sqlite")
        self.database = SynchronousDatabase(path)
        self.database.open()
        self.addCleanup(self.database.close)
        self.clock = Clock()
        self.clock.advance(1000000)
        KeyStore(self.database, os.urandom(32), self.clock).storeKey(KEY, "c", OWNER, os.urandom(32))
        self.policy = RightsPolicy(self.database, self.clock)

    def give(self, holder=BOB, **kwargs):
        kwargs.setdefault("plays", 3)
        return result(self.policy.grant(KEY, holder, Rights(**kwargs)))

    def play(self, holder=BOB):
        return result(self.policy.consumePlay(KEY, holder))

    def test_interface(self):
        """
        RightsPolicy provides IRightsPolicy.
        """
        verifyObject(IRightsPolicy, self.policy)

    def test_playsCounted(self):
        """
        Each play spends one; after N the next is refused as exhausted.
        """
        self.give(plays=2)
        self.assertEqual(self.play().rights.plays, 1)
        self.assertEqual(self.play().rights.plays, 0)
        decision = self.play()
        self.assertEqual((decision.allowed, decision.reason), (False, R.EXHAUSTED))

    def test_noRightsUnknownKey(self):
        """
        A stranger has no rights; an unknown key is named as such.
        """
        self.assertEqual(self.play(CAROL).reason, R.NO_RIGHTS)
        self.assertEqual(result(self.policy.consumePlay("nope", BOB)).reason, R.UNKNOWN_KEY)

    def test_expiry(self):
        """
        Rights end at not_after, and play_window seconds after the first play.
        """
        now = self.clock.seconds()
        self.give(plays=10, notAfter=now + DAY)
        self.assertTrue(self.play().allowed)
        self.clock.advance(DAY)
        self.assertEqual(self.play().reason, R.EXPIRED)
        self.give(CAROL, plays=10, playWindow=60)
        self.clock.advance(1000)
        self.assertTrue(self.play(CAROL).allowed)
        self.clock.advance(59)
        self.assertTrue(self.play(CAROL).allowed)
        self.clock.advance(1)
        self.assertEqual(self.play(CAROL).reason, R.EXPIRED)

    def test_notYetValid(self):
        """
        Before not_before, plays are refused.
        """
        self.give(notBefore=self.clock.seconds() + 10)
        self.assertEqual(self.play().reason, R.NOT_YET_VALID)
        self.clock.advance(10)
        self.assertTrue(self.play().allowed)

    def test_revokeByOwnerOnly(self):
        """
        Only the owner revokes; revocation cascades to delegates.
        """
        self.give(plays=5, forwardDepth=1)
        self.assertTrue(result(self.policy.delegate(KEY, BOB, CAROL, {"plays": 2})).allowed)
        decision, count = result(self.policy.revoke(KEY, BOB, BOB))
        self.assertEqual(decision.reason, R.NOT_OWNER)
        decision, count = result(self.policy.revoke(KEY, OWNER, BOB))
        self.assertEqual((decision.allowed, count), (True, 2))
        self.assertEqual(self.play().reason, R.REVOKED)
        self.assertEqual(self.play(CAROL).reason, R.REVOKED)

    def test_revokedDelegateNotRestored(self):
        """
        After the owner revokes a delegate, its grantor cannot delegate to it again.
        """
        self.give(plays=5, forwardDepth=1)
        result(self.policy.delegate(KEY, BOB, CAROL, {"plays": 1}))
        result(self.policy.revoke(KEY, OWNER, CAROL))
        decision = result(self.policy.delegate(KEY, BOB, CAROL, {"plays": 1}))
        self.assertEqual((decision.allowed, decision.reason), (False, R.REVOKED))
        self.assertEqual(self.play(CAROL).reason, R.REVOKED)
        self.assertTrue(self.play(BOB).allowed)

    def test_revokeAll(self):
        """
        Revoking without a holder revokes every holder.
        """
        self.give(BOB)
        self.give(CAROL)
        self.assertEqual(result(self.policy.revoke(KEY, OWNER))[1], 2)
        self.assertEqual(self.play(CAROL).reason, R.REVOKED)

    def test_narrow(self):
        """
        The owner narrows: limits only go down.
        """
        self.give(plays=5, forwardDepth=2)
        decision = result(self.policy.narrow(KEY, OWNER, BOB, plays=9, forwardDepth=0))
        self.assertEqual((decision.rights.plays, decision.rights.forwardDepth), (5, 0))
        decision = result(self.policy.narrow(KEY, OWNER, BOB, plays=1))
        self.assertEqual(decision.rights.plays, 1)
        self.assertEqual(result(self.policy.narrow(KEY, BOB, BOB, plays=0)).reason, R.NOT_OWNER)

    def test_delegateLess(self):
        """
        Delegating fewer plays and an earlier expiry works; the delegate plays exactly that much.
        """
        now = self.clock.seconds()
        self.give(plays=5, notAfter=now + DAY, forwardDepth=1)
        decision = result(self.policy.delegate(KEY, BOB, CAROL, {"plays": 2, "notAfter": now + 60}))
        self.assertTrue(decision.allowed)
        self.assertEqual(decision.rights.forwardDepth, 0)
        self.assertEqual(decision.rights.grantedBy, BOB)
        self.assertTrue(self.play(CAROL).allowed)
        self.assertTrue(self.play(CAROL).allowed)
        self.assertEqual(self.play(CAROL).reason, R.EXHAUSTED)
        self.assertEqual(result(self.policy.view(KEY, BOB))[1][BOB].plays, 5)

    def test_delegateInherits(self):
        """
        Omitted limits inherit the grantor's, forwarding one level less.
        """
        now = self.clock.seconds()
        self.give(plays=4, notAfter=now + DAY, forwardDepth=2, mayCopy=True)
        rights = result(self.policy.delegate(KEY, BOB, CAROL, {})).rights
        self.assertEqual((rights.plays, rights.notAfter, rights.forwardDepth, rights.mayCopy),
                         (4, now + DAY, 1, True))

    def test_delegateMoreRefused(self):
        """
        More plays, later or no expiry, equal forwarding depth or copy rights not held are refused.
        """
        now = self.clock.seconds()
        self.give(plays=3, notAfter=now + DAY, forwardDepth=1)
        for requested in ({"plays": 4}, {"notAfter": now + DAY + 1}, {"forwardDepth": 1},
                          {"mayCopy": True}, {"mayModify": True}):
            decision = result(self.policy.delegate(KEY, BOB, CAROL, requested))
            self.assertEqual((decision.allowed, decision.reason), (False, R.EXCEEDS), requested)

    def test_delegateWithoutForward(self):
        """
        A delegate without forward right cannot delegate further; nor can one with no rights.
        """
        self.give(plays=3, forwardDepth=1)
        result(self.policy.delegate(KEY, BOB, CAROL, {"plays": 1}))
        decision = result(self.policy.delegate(KEY, CAROL, DAVE, {"plays": 1}))
        self.assertEqual(decision.reason, R.NO_FORWARD)
        self.assertEqual(result(self.policy.delegate(KEY, DAVE, CAROL, {})).reason, R.NO_RIGHTS)

    def test_delegateExpiredOrExhaustedGrantor(self):
        """
        An expired grantor cannot delegate; an exhausted one can only give zero plays.
        """
        now = self.clock.seconds()
        self.give(plays=1, notAfter=now + 10, forwardDepth=1)
        self.play()
        self.assertEqual(result(self.policy.delegate(KEY, BOB, CAROL, {"plays": 1})).reason, R.EXCEEDS)
        self.clock.advance(10)
        self.assertEqual(result(self.policy.delegate(KEY, BOB, CAROL, {})).reason, R.EXPIRED)

    def test_delegateNotOverOthers(self):
        """
        Delegation cannot replace rights someone else gave, nor give to the owner or oneself.
        """
        self.give(BOB, plays=3, forwardDepth=1)
        self.give(CAROL, plays=1)
        for holder in (CAROL, OWNER, BOB):
            self.assertEqual(result(self.policy.delegate(KEY, BOB, holder, {"plays": 1})).reason,
                             R.ALREADY_HELD)

    def test_view(self):
        """
        The owner sees every holder; a holder sees its own rights; others nothing.
        """
        self.give(BOB)
        self.give(CAROL)
        self.assertEqual(sorted(result(self.policy.view(KEY, OWNER))[1]), [BOB, CAROL])
        self.assertEqual(list(result(self.policy.view(KEY, BOB))[1]), [BOB])
        self.assertEqual(result(self.policy.view(KEY, DAVE))[0].reason, R.NO_RIGHTS)
        self.assertEqual(self.clock.getDelayedCalls(), [])

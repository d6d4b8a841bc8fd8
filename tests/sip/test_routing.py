"""
Tests for L{appliance.sip.routing}: where requests for our users go (RFC 3261
section 16.5), and the call rules kept in a real SQLite file.
"""

from twisted.trial.unittest import SynchronousTestCase

from appliance.sip.location import Binding
from appliance.sip.message import URI, makeResponse
from appliance.sip.proxy import Target
from appliance.sip.routing import RuleError, ServiceRoute, checkRule, flowOf

from tests.sip.test_proxy import BOB1, BOB2, BOB3, Harness, request

BOB = "bob@example.test"
VOICEMAIL = "sip:vm@198.51.100.99:5060"
BUSY = "sip:busy@198.51.100.98:5060"


class NoAnswerContext:
    """
    What a failure handler reads of a response context.
    """

    def __init__(self, noAnswer=False):
        self.noAnswer = noAnswer


class CheckRuleTests(SynchronousTestCase):
    """
    L{checkRule} validates a rule and normalises its target.
    """

    def test_unknownRule(self):
        """
        A rule that is not one of the four is refused.
        """
        self.assertRaises(RuleError, checkRule, "always", VOICEMAIL)

    def test_redirectTakesNoTarget(self):
        """
        The redirect rule has no target.
        """
        self.assertRaises(RuleError, checkRule, "redirect", VOICEMAIL)
        self.assertEqual(checkRule("redirect", ""), "")

    def test_targetMustBeSIP(self):
        """
        Targets are sip or sips URIs.
        """
        self.assertRaises(RuleError, checkRule, "busy", "tel:+15551234")
        self.assertRaises(RuleError, checkRule, "busy", "not a uri")
        self.assertEqual(checkRule("busy", VOICEMAIL), VOICEMAIL)


class CallRulesTests(SynchronousTestCase):
    """
    L{appliance.sip.routing.CallRules} on a real database.
    """

    def setUp(self):
        self.h = Harness(self)

    def test_setAndLookup(self):
        """
        A stored rule is found by C{lookup}, with whether the user exists.
        """
        self.successResultOf(self.h.rules.set(BOB, "busy", BUSY))
        self.assertEqual(self.successResultOf(self.h.rules.lookup(BOB)), (True, {"busy": BUSY}))
        self.assertEqual(
            self.successResultOf(self.h.rules.lookup("nobody@example.test")), (False, {})
        )

    def test_setReplaces(self):
        """
        Setting a rule again replaces its target.
        """
        self.successResultOf(self.h.rules.set(BOB, "busy", BUSY))
        self.successResultOf(self.h.rules.set(BOB, "busy", VOICEMAIL))
        self.assertEqual(self.successResultOf(self.h.rules.list(BOB)), [(BOB, "busy", VOICEMAIL)])

    def test_setForUnknownUser(self):
        """
        A rule for a user who does not exist fails with L{KeyError}.
        """
        self.failureResultOf(self.h.rules.set("nobody@example.test", "busy", BUSY), KeyError)

    def test_remove(self):
        """
        A removed rule is gone; removing it again fails with L{KeyError}.
        """
        self.successResultOf(self.h.rules.set(BOB, "busy", BUSY))
        self.successResultOf(self.h.rules.remove(BOB, "busy"))
        self.assertEqual(self.successResultOf(self.h.rules.list()), [])
        self.failureResultOf(self.h.rules.remove(BOB, "busy"), KeyError)


class RouterTests(SynchronousTestCase):
    """
    L{appliance.sip.routing.Router.route} decisions.
    """

    def setUp(self):
        self.h = Harness(self)

    def decide(self, aor=BOB, harness=None):
        harness = harness or self.h
        return self.successResultOf(harness.router.route(request(), aor))

    def test_unknownUser(self):
        """
        A user who does not exist: 404.
        """
        self.assertEqual(self.decide("nobody@example.test").status, 404)

    def test_notRegistered(self):
        """
        A user without bindings: 480.
        """
        decision = self.decide()
        self.assertEqual((decision.status, decision.groups), (480, ()))

    def test_serviceRoutes(self):
        """
        Service routes come before users: C{echo} exactly, C{conf-*} for any
        room name (not the bare prefix), to the service's current address
        and transport.
        """
        self.h.router.serviceRoutes = [
            ServiceRoute("echo", lambda: ("udp", "127.0.0.1", 5070)),
            ServiceRoute("conf-*", lambda: ("tcp", "::1", 5071)),
        ]
        self.assertEqual(self.decide("echo@example.test").groups,
                         ([Target(uri=URI.parse("sip:echo@127.0.0.1:5070"))],))
        self.assertEqual(self.decide("conf-sales@example.test").groups,
                         ([Target(uri=URI.parse("sip:conf-sales@[::1]:5071;transport=tcp"))],))
        self.assertEqual(self.decide("conf-@example.test").status, 404)
        self.assertEqual(self.decide("echoes@example.test").status, 404)

    def test_unregisteredRule(self):
        """
        A user without bindings but with an unregistered rule: its target.
        """
        self.successResultOf(self.h.rules.set(BOB, "unregistered", VOICEMAIL))
        decision = self.decide()
        self.assertIsNone(decision.status)
        self.assertEqual(decision.groups, ([Target(uri=URI.parse(VOICEMAIL))],))

    def test_groupsByQ(self):
        """
        Bindings become targets grouped by q, highest first.
        """
        self.h.register(BOB3, q=0.5)
        self.h.register(BOB1, q=1.0)
        self.h.register(BOB2, q=1.0)
        decision = self.decide()
        self.assertIsNone(decision.status)
        self.assertEqual(
            [sorted(str(target.uri) for target in group) for group in decision.groups],
            [[BOB1, BOB2], [BOB3]],
        )

    def test_targetFlowAndPath(self):
        """
        A binding without Path is reached over its source flow; one with a
        Path through the Path, without a flow.
        """
        self.h.register(BOB1, source=("udp", "203.0.113.5", 40000))
        self.h.register(
            BOB2, path=("<sip:198.51.100.50;lr>",), source=("udp", "198.51.100.50", 5060)
        )
        targets = {str(t.uri): t for t in self.decide().groups[0]}
        self.assertEqual(targets[BOB1].flow, ("udp", "203.0.113.5", 40000))
        self.assertEqual(targets[BOB1].path, ())
        self.assertIsNone(targets[BOB2].flow)
        self.assertEqual(targets[BOB2].path, ("<sip:198.51.100.50;lr>",))

    def test_redirectRule(self):
        """
        The redirect rule answers 302 with the bindings.
        """
        self.h.register(BOB1)
        self.successResultOf(self.h.rules.set(BOB, "redirect"))
        decision = self.decide()
        self.assertEqual(decision.status, 302)
        self.assertEqual([b.contact for b in decision.contacts], [BOB1])

    def test_redirectDomain(self):
        """
        Every user of a redirect domain is answered 302.
        """
        h = Harness(self, redirectDomains=["example.test"])
        h.register(BOB1)
        self.assertEqual(self.decide(harness=h).status, 302)

    def test_noRulesNoFailureHandler(self):
        """
        Without busy or noanswer rules nothing retargets.
        """
        self.h.register(BOB1)
        self.assertIsNone(self.decide().onFailure)

    def test_failureHandler(self):
        """
        Busy (486, 600) goes to the busy rule, no answer (the ring timeout,
        408, 480) to the noanswer rule, anything else nowhere.
        """
        self.h.register(BOB1)
        self.successResultOf(self.h.rules.set(BOB, "busy", BUSY))
        self.successResultOf(self.h.rules.set(BOB, "noanswer", VOICEMAIL))
        onFailure = self.decide().onFailure
        original = request()

        def retarget(code, noAnswer=False):
            targets = onFailure(NoAnswerContext(noAnswer), makeResponse(original, code))
            return [str(t.uri) for t in targets] if targets else targets

        self.assertEqual(retarget(486), [BUSY])
        self.assertEqual(retarget(600), [BUSY])
        self.assertEqual(retarget(408), [VOICEMAIL])
        self.assertEqual(retarget(480), [VOICEMAIL])
        self.assertEqual(retarget(487, noAnswer=True), [VOICEMAIL])
        self.assertIsNone(retarget(404))


class RoutedCallTests(SynchronousTestCase):
    """
    Routing decisions carried out by the dispatcher and the proxy.
    """

    def setUp(self):
        self.h = Harness(self)

    def test_unknownUser(self):
        """
        An INVITE for a user who does not exist is answered 404.
        """
        self.h.receive(request(uri="sip:nobody@example.test"))
        self.assertEqual(self.h.codes(), [404])
        self.assertEqual(self.h.forwarded(), [])
        self.h.finish()

    def test_notRegistered(self):
        """
        An INVITE for a user without bindings is answered 480.
        """
        self.h.receive(request())
        self.assertEqual(self.h.codes(), [480])
        self.assertIsNotNone(self.h.upstream()[0].toAddress().tag)
        self.h.finish()

    def test_unregisteredRule(self):
        """
        The unregistered rule sends the call to its target.
        """
        self.successResultOf(self.h.rules.set(BOB, "unregistered", VOICEMAIL))
        self.h.receive(request())
        [(invite, destination)] = self.h.requestsSent("INVITE")
        self.assertEqual((str(invite.uri), destination), (VOICEMAIL, ("198.51.100.99", 5060)))
        self.h.answer(invite, 200)
        self.assertEqual(self.h.codes(), [200])
        self.h.finish()

    def test_redirect(self):
        """
        In redirect mode the caller gets 302 with every contact and its q.
        """
        self.h.register(BOB1, q=1.0)
        self.h.register(BOB2, q=0.5)
        self.successResultOf(self.h.rules.set(BOB, "redirect"))
        self.h.receive(request())
        [response] = self.h.upstream()
        self.assertEqual(response.code, 302)
        contacts = [(str(c.uri), c.param("q")) for c in response.contacts()]
        self.assertEqual(contacts, [(BOB1, "1.0"), (BOB2, "0.5")])
        self.assertEqual(self.h.forwarded(), [])
        self.h.finish()

    def test_redirectDomain(self):
        """
        A redirect domain answers 302 too.
        """
        h = Harness(self, redirectDomains=["example.test"])
        h.register(BOB1)
        h.receive(request())
        self.assertEqual(h.codes(), [302])
        h.finish()

    def test_busyRule(self):
        """
        When the phone is busy the call goes to the busy rule's target and
        the 486 never reaches the caller.
        """
        self.h.register(BOB1)
        self.successResultOf(self.h.rules.set(BOB, "busy", BUSY))
        self.h.receive(request())
        [invite] = self.h.forwarded()
        self.h.answer(invite, 486)
        [_, (retarget, destination)] = self.h.requestsSent("INVITE")
        self.assertEqual(str(retarget.uri), BUSY)
        self.assertEqual(destination, ("198.51.100.98", 5060))
        self.assertEqual(self.h.codes(), [])
        self.h.answer(retarget, 200)
        self.assertEqual(self.h.codes(), [200])
        self.h.finish()

    def test_noAnswerRule(self):
        """
        After the ring timeout the ringing phone is cancelled and the call
        goes to the noanswer rule's target, with a fresh ring timeout.
        """
        self.h.register(BOB1)
        self.successResultOf(self.h.rules.set(BOB, "noanswer", VOICEMAIL))
        self.h.receive(request())
        [invite] = self.h.forwarded()
        self.h.answer(invite, 180)
        self.h.clock.advance(30)
        [(cancel, _)] = self.h.requestsSent("CANCEL")
        self.h.answer(cancel, 200)
        self.h.answer(invite, 487)
        [_, retarget] = self.h.forwarded()
        self.assertEqual(str(retarget.uri), VOICEMAIL)
        self.assertEqual(self.h.codes(), [180])
        self.h.answer(retarget, 180, toTag="vm")
        self.h.clock.advance(30)
        cancels = self.h.requestsSent("CANCEL")
        self.assertEqual(len(cancels), 2)
        self.h.answer(cancels[1][0], 200)
        self.h.answer(retarget, 487, toTag="vm")
        # One final response; which code: see test_proxy's
        # test_ringTimeoutCancels.
        self.assertEqual(self.h.codes()[:2], [180, 180])
        self.assertEqual(len(self.h.codes()), 3)
        self.h.finish()

    def test_noAnswerRuleOn480(self):
        """
        A 480 from the phone counts as no answer.
        """
        self.h.register(BOB1)
        self.successResultOf(self.h.rules.set(BOB, "noanswer", VOICEMAIL))
        self.h.receive(request())
        [invite] = self.h.forwarded()
        self.h.answer(invite, 480)
        [_, retarget] = self.h.forwarded()
        self.assertEqual(str(retarget.uri), VOICEMAIL)
        self.h.answer(retarget, 200)
        self.assertEqual(self.h.codes(), [200])
        self.h.finish()

    def test_ruleRetargetsOnce(self):
        """
        A rule's target that fails too ends the call with its response.
        """
        self.h.register(BOB1)
        self.successResultOf(self.h.rules.set(BOB, "busy", BUSY))
        self.h.receive(request())
        [invite] = self.h.forwarded()
        self.h.answer(invite, 486)
        [_, retarget] = self.h.forwarded()
        self.h.answer(retarget, 486)
        self.assertEqual(len(self.h.forwarded()), 2)
        self.assertEqual(self.h.codes(), [486])
        self.h.finish()

    def test_noRuleForOtherFailures(self):
        """
        A failure that is neither busy nor no answer is passed on.
        """
        self.h.register(BOB1)
        self.successResultOf(self.h.rules.set(BOB, "busy", BUSY))
        self.h.receive(request())
        [invite] = self.h.forwarded()
        self.h.answer(invite, 404)
        self.assertEqual(len(self.h.forwarded()), 1)
        self.assertEqual(self.h.codes(), [404])
        self.h.finish()


class FlowTests(SynchronousTestCase):
    """
    L{flowOf}: when the proxy sends to where a phone registered from rather
    than to its contact.
    """

    def test_flows(self):
        """
        Connections are reused, NATed UDP contacts are reached at their
        source, a contact asking for another transport or matching its source
        is resolved, and a Path always wins.
        """
        cases = [
            ("sip:a@10.0.0.5:5060", ("tcp", "192.0.2.9", 40000), (), ("tcp", "192.0.2.9", 40000)),
            ("sip:a@10.0.0.5:5060", ("udp", "192.0.2.9", 40000), (), ("udp", "192.0.2.9", 40000)),
            ("sip:a@192.0.2.9:40000", ("udp", "192.0.2.9", 40000), (), None),
            ("sip:a@192.0.2.9", ("udp", "192.0.2.9", 5060), (), None),
            ("sip:a@192.0.2.9:7000;transport=tcp", ("udp", "192.0.2.9", 7000), (), None),
            ("sip:a@10.0.0.5", ("tls", "192.0.2.9", 40000), ("<sip:edge.test;lr>",), None),
            ("sip:a@10.0.0.5", None, (), None),
        ]
        for contact, source, path, expected in cases:
            binding = Binding(aor="a@example.test", contact=contact, source=source, path=path)
            self.assertEqual(flowOf(binding, URI.parse(contact)), expected, contact)

"""
Tests for L{appliance.sip.dispatcher}: which part of the server answers each
request (RFC 3261 sections 8.2, 10, 11, 16.3 to 16.5), on a real transaction
layer driven by a L{Clock}.
"""

from twisted.internet.defer import succeed
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from appliance.interfaces import ITransactionUser
from appliance.sip.auth import AuthResult
from appliance.sip.dispatcher import unsupportedExtensions
from appliance.sip.message import Response

from tests.sip.test_proxy import BOB1, CALLER, Harness, request

OUR_ROUTE = "<sip:192.0.2.1:5060;lr>"


class StubAuthenticator:
    """
    Stands in for L{appliance.sip.auth.DigestAuthenticator.authenticate}:
    records each call and returns C{result}.
    """

    def __init__(self, result):
        self.result = result
        self.calls = []

    def __call__(self, request, realm, source, proxy=False, domain=None):
        self.calls.append((request.method, realm, source, proxy, domain))
        return succeed(self.result)


class LocalRequestTests(SynchronousTestCase):
    """
    Requests addressed to the server itself, and REGISTER.
    """

    def setUp(self):
        self.h = Harness(self)

    def test_interface(self):
        """
        The dispatcher is an L{ITransactionUser}.
        """
        self.assertTrue(verifyObject(ITransactionUser, self.h.dispatcher))

    def test_options(self):
        """
        OPTIONS to the server is answered 200 with Allow, Accept and
        Supported (RFC 3261 section 11.2), and a To tag.
        """
        for uri in ("sip:example.test", "sip:192.0.2.1:5060"):
            self.h.receive(request("OPTIONS", uri=uri, branch="z9hG4bK" + uri[-4:]))
        for response in self.h.upstream():
            self.assertEqual(response.code, 200)
            allow = response.headers.getAll("Allow")
            self.assertIn("INVITE", allow)
            self.assertIn("OPTIONS", allow)
            self.assertEqual(response.headers.getAll("Accept"), ["application/sdp"])
            self.assertEqual(response.headers.getAll("Supported"), ["path", "outbound"])
            self.assertIsNotNone(response.toAddress().tag)
        self.assertEqual(len(self.h.upstream()), 2)
        self.assertEqual(self.h.forwarded(None), [])
        self.h.finish()

    def test_optionsWithMaxForwardsZero(self):
        """
        An OPTIONS for the server itself is answered even with Max-Forwards
        0 (RFC 3261 section 16.3 step 3 concerns forwarding only).
        """
        self.h.receive(request("OPTIONS", uri="sip:example.test", maxForwards=0))
        self.assertEqual(self.h.codes(), [200])
        self.h.finish()

    def test_unknownMethod(self):
        """
        A method the server does not know is answered 501 (section 8.2.1).
        """
        self.h.receive(request("FOO", uri="sip:example.test"))
        [response] = self.h.upstream()
        self.assertEqual(response.code, 501)
        self.h.finish()

    def test_knownMethodNotServed(self):
        """
        A known method addressed to the server itself is answered 405 with
        Allow (section 8.2.1).
        """
        self.h.receive(request("INVITE", uri="sip:example.test"))
        [response] = self.h.upstream()
        self.assertEqual(response.code, 405)
        self.assertIn("REGISTER", response.headers.getAll("Allow"))
        self.assertEqual(self.h.forwarded(), [])
        self.h.finish()

    def test_register(self):
        """
        A REGISTER for our domain goes to the registrar with its source and
        transport.
        """
        self.h.receive(request("REGISTER", uri="sip:example.test", toURI="sip:bob@example.test"))
        [(registered, st, source, transportName)] = self.h.registrar.calls
        self.assertEqual(registered.method, "REGISTER")
        self.assertEqual((source, transportName), (CALLER, "UDP"))
        self.assertEqual(self.h.codes(), [200])
        self.h.finish()

    def test_registerOverTCP(self):
        """
        The registrar learns the transport the REGISTER came over.
        """
        self.h.receive(
            request("REGISTER", uri="sip:example.test", toURI="sip:bob@example.test"),
            transport=self.h.tcp,
        )
        [(_, _, _, transportName)] = self.h.registrar.calls
        self.assertEqual(transportName, "TCP")
        self.assertEqual(self.h.codes(self.h.tcp), [200])
        self.h.finish()

    def test_registerOtherDomain(self):
        """
        A REGISTER for a domain that is not ours is refused with 403.
        """
        self.h.receive(request("REGISTER", uri="sip:other.test", toURI="sip:bob@other.test"))
        self.assertEqual(self.h.registrar.calls, [])
        self.assertEqual(self.h.codes(), [403])
        self.assertEqual(self.h.forwarded(None), [])
        self.h.finish()

    def test_requireUnknown(self):
        """
        A locally served request requiring an unknown extension is answered
        420 with Unsupported (section 8.2.2.3).
        """
        self.h.receive(request("OPTIONS", uri="sip:example.test",
                               headers=[("Require", "foo, path")]))
        [response] = self.h.upstream()
        self.assertEqual(response.code, 420)
        self.assertEqual(response.headers.get("Unsupported"), "foo")
        self.h.finish()

    def test_requireKnown(self):
        """
        Requiring supported extensions is fine.
        """
        self.h.receive(request("OPTIONS", uri="sip:example.test",
                               headers=[("Require", "path, outbound")]))
        self.assertEqual(self.h.codes(), [200])
        self.h.finish()

    def test_registerRequireUnknown(self):
        """
        The registrar never sees a REGISTER requiring an unknown extension.
        """
        self.h.receive(request("REGISTER", uri="sip:example.test", toURI="sip:bob@example.test",
                               headers=[("Require", "gruu")]))
        self.assertEqual(self.h.registrar.calls, [])
        self.assertEqual(self.h.codes(), [420])
        self.h.finish()

    def test_unsupportedExtensions(self):
        """
        Option tags are split on commas and compared case-insensitively.
        """
        r = request(headers=[("Proxy-Require", "Path, foo"), ("Proxy-Require", "bar")])
        self.assertEqual(unsupportedExtensions(r, "Proxy-Require"), ["foo", "bar"])
        self.assertEqual(unsupportedExtensions(r), [])


class ProxyCheckTests(SynchronousTestCase):
    """
    The request validation of a proxy (RFC 3261 section 16.3) and who may
    relay.
    """

    def setUp(self):
        self.h = Harness(self)
        self.h.register(BOB1)

    def test_maxForwardsZero(self):
        """
        A request to forward with Max-Forwards 0 is answered 483.
        """
        self.h.receive(request(maxForwards=0))
        self.assertEqual(self.h.codes(), [483])
        self.assertEqual(self.h.forwarded(), [])
        self.h.finish()

    def test_requireNotCheckedWhenProxying(self):
        """
        Require is for the UAS: a proxy forwards what it does not know
        (section 16.3 step 5 checks Proxy-Require only).
        """
        self.h.receive(request(headers=[("Require", "100rel")]))
        [invite] = self.h.forwarded()
        self.assertEqual(invite.headers.get("Require"), "100rel")
        self.h.answer(invite, 486)
        self.h.finish()

    def test_proxyRequireUnknown(self):
        """
        An unknown Proxy-Require is answered 420 with Unsupported.
        """
        self.h.receive(request(headers=[("Proxy-Require", "foo")]))
        [response] = self.h.upstream()
        self.assertEqual(response.code, 420)
        self.assertEqual(response.headers.get("Unsupported"), "foo")
        self.assertEqual(self.h.forwarded(), [])
        self.h.finish()

    def test_loop(self):
        """
        A request that comes back unchanged (same Request-URI) with our Via
        is a loop: 482 (section 16.3 step 4).
        """
        original = request()
        self.h.receive(original)
        [invite] = self.h.forwarded()
        looped = invite.copy()
        looped.uri = original.uri
        looped.headers.prepend("Via", "SIP/2.0/UDP 198.51.100.21:5060;branch=z9hG4bKloop")
        self.h.receive(looped, source=("198.51.100.21", 5060))
        responses = [m for m, a in self.h.udp.sent if getattr(m, "code", 0) >= 200]
        self.assertEqual([r.code for r in responses], [482])
        self.assertEqual(len(self.h.forwarded()), 1)
        self.h.answer(invite, 486)
        self.h.finish()

    def test_spiral(self):
        """
        A request that comes back with another Request-URI is a spiral, not
        a loop: it is forwarded again.
        """
        self.h.receive(request())
        [invite] = self.h.forwarded()
        spiral = invite.copy()
        spiral.headers.prepend("Via", "SIP/2.0/UDP 198.51.100.21:5060;branch=z9hG4bKspiral")
        self.h.receive(spiral, source=("198.51.100.21", 5060))
        first, second = self.h.forwarded()
        self.assertEqual(str(second.uri), BOB1)
        self.assertEqual(len(second.vias()), 4)
        self.h.answer(second, 486)
        self.h.answer(first, 486)
        self.h.finish()

    def test_relayDenied(self):
        """
        Someone else's caller may not relay through us to another domain.
        """
        self.h.receive(request(uri="sip:carl@other.test", fromURI="sip:mallory@evil.test"))
        self.assertEqual(self.h.codes(), [403])
        self.assertEqual(self.h.forwarded(), [])
        self.h.finish()

    def test_incomingFromOutside(self):
        """
        Anyone may call a user of ours, unauthenticated.
        """
        authenticate = StubAuthenticator(AuthResult(None, 407))
        h = Harness(self, authenticate=authenticate)
        h.register(BOB1)
        h.receive(request(fromURI="sip:carl@other.test"))
        self.assertEqual(authenticate.calls, [])
        [invite] = h.forwarded()
        h.answer(invite, 486)
        h.finish()

    def test_relayForAuthenticatedUser(self):
        """
        An authenticated user of ours may call another domain; it is
        authenticated as a proxy (407) in its domain's realm.
        """
        authenticate = StubAuthenticator(AuthResult("alice@example.test", None))
        h = Harness(self, authenticate=authenticate)
        h.receive(request(uri="sip:carl@other.test"))
        self.assertEqual(
            authenticate.calls, [("INVITE", "example.test", CALLER, True, "example.test")]
        )
        [(invite, destination)] = h.requestsSent("INVITE")
        self.assertEqual(str(invite.uri), "sip:carl@other.test")
        self.assertEqual(destination, ("198.51.100.7", 5060))
        h.answer(invite, 200)
        self.assertEqual(h.codes(), [200])
        h.finish()

    def test_ownCredentialsConsumed(self):
        """
        The Proxy-Authorization for our realm is removed once it has served;
        one for another realm is passed on (RFC 3261 section 22.3).
        """
        authenticate = StubAuthenticator(AuthResult("alice@example.test", None))
        h = Harness(self, authenticate=authenticate)
        ours = 'Digest username="alice", realm="example.test", nonce="n", uri="sip:x", response="r"'
        theirs = 'Digest username="alice", realm="other.test", nonce="m", uri="sip:x", response="s"'
        h.receive(request(uri="sip:carl@other.test", headers=[
            ("Proxy-Authorization", ours), ("Proxy-Authorization", theirs)]))
        [(invite, destination)] = h.requestsSent("INVITE")
        self.assertEqual(invite.headers.getAll("Proxy-Authorization"), [theirs])
        h.answer(invite, 200)
        h.finish()

    def test_challenge(self):
        """
        A user of ours without credentials gets the authenticator's 407 and
        its Proxy-Authenticate.
        """
        challenge = 'Digest realm="example.test", nonce="abc", algorithm=SHA-256'
        authenticate = StubAuthenticator(
            AuthResult(None, 407, headers=(("Proxy-Authenticate", challenge),))
        )
        h = Harness(self, authenticate=authenticate)
        h.receive(request(uri="sip:carl@other.test"))
        [response] = h.upstream()
        self.assertEqual(response.code, 407)
        self.assertEqual(response.headers.getAll("Proxy-Authenticate"), [challenge])
        self.assertEqual(h.forwarded(), [])
        h.finish()

    def test_trustedSourceNotChallenged(self):
        """
        A request from one of the appliance's own user agents (a trusted
        UDP source) is routed without a challenge; the same request from
        another port of that host is challenged.
        """
        challenge = 'Digest realm="example.test", nonce="abc", algorithm=SHA-256'
        authenticate = StubAuthenticator(
            AuthResult(None, 407, headers=(("Proxy-Authenticate", challenge),))
        )
        h = Harness(self, authenticate=authenticate)
        h.dispatcher.trusted.append(lambda: CALLER)
        h.receive(request(uri="sip:carl@other.test"))
        [(invite, destination)] = h.requestsSent("INVITE")
        h.answer(invite, 200)
        h.receive(request(uri="sip:carl@other.test", callId="call-2", branch="z9hG4bKother"),
                  source=(CALLER[0], CALLER[1] + 1))
        codes = [message.code for message, _ in h.udp.sent if isinstance(message, Response)]
        self.assertEqual(codes[-1], 407)
        self.assertEqual(len(h.requestsSent("INVITE")), 1)
        h.finish()

    def test_credentialsOfAnotherUser(self):
        """
        Credentials of a user other than the From are refused with 403.
        """
        authenticate = StubAuthenticator(AuthResult("bob@example.test", None))
        h = Harness(self, authenticate=authenticate)
        h.receive(request(uri="sip:carl@other.test"))
        self.assertEqual(h.codes(), [403])
        self.assertEqual(h.forwarded(), [])
        h.finish()


class DialogTests(SynchronousTestCase):
    """
    Requests inside a dialog and ACKs for 2xx (RFC 3261 sections 16.4, 16.6
    and 16.12).
    """

    def setUp(self):
        self.h = Harness(self)

    def ack(self, routes=(), uri=BOB1, maxForwards=70):
        return request("ACK", uri=uri, toURI="sip:bob@example.test", toTag="callee",
                       branch="z9hG4bKack1", maxForwards=maxForwards,
                       headers=[("Route", route) for route in routes])

    def test_ackWithOurRoute(self):
        """
        The ACK for a 2xx carrying our Route is forwarded statelessly to the
        Request-URI, without our Route, with our Via and Max-Forwards - 1.
        """
        self.h.receive(self.ack([OUR_ROUTE]))
        [(ack, destination)] = self.h.requestsSent("ACK")
        self.assertEqual(destination, ("198.51.100.21", 5060))
        self.assertEqual(str(ack.uri), BOB1)
        self.assertEqual(ack.headers.getAll("Route"), [])
        self.assertEqual(ack.headers.get("Max-Forwards"), "69")
        self.assertEqual(len(ack.vias()), 2)
        self.assertTrue(ack.vias()[0].branch.startswith("z9hG4bK"))
        self.assertEqual(self.h.clock.getDelayedCalls(), [])

    def test_ackAlongRouteSet(self):
        """
        After our Route the ACK goes to the next (loose) Route.
        """
        self.h.receive(self.ack([OUR_ROUTE, "<sip:198.51.100.60:5062;lr>"]))
        [(ack, destination)] = self.h.requestsSent("ACK")
        self.assertEqual(destination, ("198.51.100.60", 5062))
        self.assertEqual(ack.headers.getAll("Route"), ["<sip:198.51.100.60:5062;lr>"])
        self.assertEqual(str(ack.uri), BOB1)
        self.assertEqual(self.h.clock.getDelayedCalls(), [])

    def test_ackWithoutRouteDropped(self):
        """
        An ACK without Route is not relayed.
        """
        self.h.receive(self.ack())
        self.assertEqual(self.h.udp.sent, [])
        self.assertEqual(self.h.clock.getDelayedCalls(), [])

    def test_ackWithForeignRouteDropped(self):
        """
        An ACK whose Route does not start with us is not relayed (no open
        relay).
        """
        self.h.receive(self.ack(["<sip:198.51.100.60;lr>"]))
        self.assertEqual(self.h.udp.sent, [])
        self.assertEqual(self.h.clock.getDelayedCalls(), [])

    def test_ackMaxForwardsZeroDropped(self):
        """
        An ACK with Max-Forwards 0 is not forwarded.
        """
        self.h.receive(self.ack([OUR_ROUTE], maxForwards=0))
        self.assertEqual(self.h.udp.sent, [])
        self.assertEqual(self.h.clock.getDelayedCalls(), [])

    def bye(self, routes=(), uri=BOB1, **kwargs):
        return request("BYE", uri=uri, toURI="sip:bob@example.test", toTag="callee",
                       cseq=2, branch="z9hG4bKbye1",
                       headers=[("Route", route) for route in routes], **kwargs)

    def test_byeAlongRoute(self):
        """
        A BYE with our Route is forwarded to its Request-URI without our
        Route and without a Record-Route, and the 200 comes back.
        """
        self.h.receive(self.bye([OUR_ROUTE]))
        [(bye, destination)] = self.h.requestsSent("BYE")
        self.assertEqual(destination, ("198.51.100.21", 5060))
        self.assertEqual(str(bye.uri), BOB1)
        self.assertEqual(bye.headers.getAll("Route"), [])
        self.assertEqual(bye.headers.getAll("Record-Route"), [])
        self.h.answer(bye, 200)
        self.assertEqual(self.h.codes(), [200])
        self.h.finish()

    def test_byeFromOutsideAlongRoute(self):
        """
        Inside a dialog we record-routed, callers of other domains are
        forwarded too.
        """
        self.h.receive(self.bye([OUR_ROUTE], fromURI="sip:carl@other.test"))
        [bye] = self.h.forwarded("BYE")
        self.h.answer(bye, 200)
        self.assertEqual(self.h.codes(), [200])
        self.h.finish()

    def test_inDialogWithoutOurRoute(self):
        """
        A request inside a dialog we are not on, for someone not ours, is
        answered 404: no relaying.
        """
        self.h.receive(self.bye())
        self.assertEqual(self.h.codes(), [404])
        self.assertEqual(self.h.forwarded("BYE"), [])
        self.h.finish()

    def test_inDialogForLocalUser(self):
        """
        A request inside a dialog addressed to a user of ours (no Route)
        goes to the user's contacts.
        """
        self.h.register(BOB1)
        self.h.receive(self.bye(uri="sip:bob@example.test", fromURI="sip:carl@other.test"))
        [bye] = self.h.forwarded("BYE")
        self.assertEqual(str(bye.uri), BOB1)
        self.h.answer(bye, 200)
        self.h.finish()

    def test_looseRoutingToStrictRouter(self):
        """
        When the next hop is a strict router (no lr), its URI becomes the
        Request-URI and the Request-URI goes to the end of the Route set
        (section 16.6 step 7 / 16.12.1.2).
        """
        self.h.receive(self.bye([OUR_ROUTE, "<sip:198.51.100.60:5062>"]))
        [(bye, destination)] = self.h.requestsSent("BYE")
        self.assertEqual(destination, ("198.51.100.60", 5062))
        self.assertEqual(str(bye.uri), "sip:198.51.100.60:5062")
        self.assertEqual(bye.headers.getAll("Route"), ["<%s>" % (BOB1,)])
        self.h.answer(bye, 200)
        self.assertEqual(self.h.codes(), [200])
        self.h.finish()

    def test_fromStrictRouter(self):
        """
        A strict router puts our Record-Route in the Request-URI and the
        remote target in the last Route: the proxy restores the
        Request-URI and forwards (section 16.4).
        """
        self.h.receive(self.bye(
            ["<sip:198.51.100.60:5062;lr>", "<%s>" % (BOB1,)], uri="sip:192.0.2.1:5060;lr"
        ))
        [(bye, destination)] = self.h.requestsSent("BYE")
        self.assertEqual(str(bye.uri), BOB1)
        self.assertEqual(destination, ("198.51.100.60", 5062))
        self.assertEqual(bye.headers.getAll("Route"), ["<sip:198.51.100.60:5062;lr>"])
        self.h.answer(bye, 200)
        self.h.finish()

    def test_fromStrictRouterLastHop(self):
        """
        From a strict router with the remote target as the only Route, the
        request goes to the remote target.
        """
        self.h.receive(self.bye(["<%s>" % (BOB1,)], uri="sip:192.0.2.1:5060;lr"))
        self.assertNotIn(404, self.h.codes())
        [(bye, destination)] = self.h.requestsSent("BYE")
        self.assertEqual((str(bye.uri), destination), (BOB1, ("198.51.100.21", 5060)))
        self.assertEqual(bye.headers.getAll("Route"), [])
        self.h.answer(bye, 200)
        self.h.finish()

    def test_reInviteAlongRoute(self):
        """
        A re-INVITE with our Route is forwarded along the route set.
        """
        self.h.receive(request(uri=BOB1, toTag="callee", cseq=3, branch="z9hG4bKreinvite",
                               headers=[("Route", OUR_ROUTE)]))
        [(invite, destination)] = self.h.requestsSent("INVITE")
        self.assertEqual(destination, ("198.51.100.21", 5060))
        self.assertEqual(invite.headers.getAll("Route"), [])
        self.h.answer(invite, 200)
        self.assertEqual(self.h.codes(), [200])
        self.h.finish()

    def test_routedRequestToOtherDomain(self):
        """
        A request out of a dialog routed through us (our Route, then
        another) follows the Route set when the caller is ours and
        authenticated; strangers may not use it to relay.
        """
        self.h.receive(request(uri="sip:carl@other.test", fromURI="sip:mallory@evil.test",
                               headers=[("Route", OUR_ROUTE)]))
        self.assertEqual(self.h.codes(), [403])
        self.assertEqual(self.h.forwarded(), [])
        self.h.finish()

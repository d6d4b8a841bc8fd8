"""
Tests for L{appliance.sip.proxy}: the stateful forking proxy (RFC 3261
section 16), driven through the dispatcher and a real transaction layer on a
L{Clock}, with fake transports and a location service on a real SQLite file.
"""

from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from appliance.interfaces import ISIPTransport
from appliance.sip.dispatcher import Dispatcher
from appliance.sip.location import ContactChange, LocationService
from appliance.sip.message import (
    URI,
    ParseError,
    Request,
    Response,
    makeResponse,
    parseMessage,
)
from appliance.sip.proxy import (
    TIMER_C,
    Proxy,
    Target,
    bestResponse,
    groupsByQ,
    hostTargets,
    isAddress,
    transportOf,
)
from appliance.sip.routing import CallRules, Router
from appliance.sip.testing import FakeTransport
from appliance.sip.transaction import MAGIC_COOKIE, TransactionLayer
from appliance.stats import Statistics
from appliance.storage.database import SynchronousDatabase
from appliance.storage.users import UserDirectory

DOMAIN = "example.test"
#: The address of this proxy (every fake transport answers it).
HERE = ("192.0.2.1", 5060)
#: Where the caller's requests come from.
CALLER = ("198.51.100.1", 5060)
BOB1 = "sip:bob@198.51.100.21:5060"
BOB2 = "sip:bob@198.51.100.22:5060"
BOB3 = "sip:bob@198.51.100.23:5060"
START = 1700000000.0
#: Names the fake resolver knows (RFC 3263 is tested elsewhere).
NAMES = {"other.test": [("UDP", "198.51.100.7", 5060)]}


def request(method="INVITE", uri="sip:bob@example.test", fromURI="sip:alice@example.test",
            toURI=None, toTag=None, callId="call-1@198.51.100.1", cseq=1,
            branch="z9hG4bKcaller1", maxForwards=70, headers=(), vias=None):
    """
    A request as it arrives from the caller, parsed.
    """
    lines = ["%s %s SIP/2.0" % (method, uri)]
    for via in vias or ["SIP/2.0/UDP 198.51.100.1:5060;branch=%s" % (branch,)]:
        lines.append("Via: " + via)
    if maxForwards is not None:
        lines.append("Max-Forwards: %d" % (maxForwards,))
    lines += [
        "From: <%s>;tag=caller" % (fromURI,),
        "To: <%s>%s" % (toURI or uri, ";tag=" + toTag if toTag else ""),
        "Call-ID: %s" % (callId,),
        "CSeq: %d %s" % (cseq, method),
        "Contact: <sip:alice@198.51.100.1:5060>",
    ]
    lines += ["%s: %s" % header for header in headers]
    lines += ["Content-Length: 0", "", ""]
    return parseMessage("\r\n".join(lines).encode("utf-8"))


def unique(messages):
    """
    C{messages} without the retransmissions (the same object sent again).
    """
    result = []
    for message in messages:
        if not any(message is seen for seen in result):
            result.append(message)
    return result


class StubRegistrar:
    """
    Records each REGISTER handed to it and answers 200.
    """

    def __init__(self):
        self.calls = []

    def handleRegister(self, request, serverTransaction, source, transportName):
        self.calls.append((request, serverTransaction, source, transportName))
        serverTransaction.respond(makeResponse(request, 200, toTag="reg"))


class Harness:
    """
    The SIP service's pieces wired as L{appliance.sip.service.SIPService}
    wires them, on a L{Clock}, a UDP and a TCP L{FakeTransport}, a fake
    resolver and a real database.
    """

    def __init__(self, case, ringTimeout=30, authenticate=None, redirectDomains=(),
                 recordRoute=True):
        self.case = case
        self.clock = Clock()
        self.clock.advance(START)
        database = SynchronousDatabase(case.mktemp())
        database.open()
        case.addCleanup(database.close)
        self.users = UserDirectory(database)
        self.rules = CallRules(database)
        self.location = LocationService(database, self.clock)
        case.successResultOf(self.location.load())
        for user in ("alice", "bob", "carol"):
            case.successResultOf(self.users.addUser("%s@%s" % (user, DOMAIN), "secret"))
        self.udp = FakeTransport(address=HERE)
        self.tcp = FakeTransport(reliable=True, address=HERE)
        self.stats = Statistics("sip")
        self.registrar = StubRegistrar()
        self.router = Router(self.location, self.rules, redirectDomains)
        self.dispatcher = Dispatcher(
            [DOMAIN], self.isOurs, self.stats, registrar=self.registrar,
            router=self.router, authenticate=authenticate,
        )
        self.transactions = TransactionLayer(self.clock, self.dispatcher)
        self.proxy = Proxy(
            self.transactions, {"UDP": self.udp, "TCP": self.tcp}, self.clock, self.stats,
            self.isOurs, self.resolve, recordRoute=recordRoute, ringTimeout=ringTimeout,
        )
        self.dispatcher.proxy = self.proxy
        self._cseq = 0

    def isOurs(self, uri):
        """
        As L{appliance.sip.service.SIPService.isOurs}; C{0.0.0.0} stands for
        us too, as the fake transports do not fill in the Via sent-by.
        """
        if not isinstance(uri, URI):
            return False
        if uri.user is None and uri.host == DOMAIN:
            return True
        return uri.host in (HERE[0], "0.0.0.0") and uri.port in (None, HERE[1])

    def resolve(self, uri):
        """
        As L{appliance.sip.service.SIPService.resolve}, with L{NAMES} for
        DNS.
        """
        if isAddress(uri.host):
            return succeed(hostTargets(uri, transportOf(uri)))
        if uri.host in NAMES:
            return succeed(NAMES[uri.host])
        return fail(ParseError("cannot resolve %s" % (uri.host,), 503))

    def register(self, contact, aor="bob@example.test", q=1.0, source=None, path=()):
        self._cseq += 1
        self.case.successResultOf(self.location.update(aor, "reg-" + aor, self._cseq, [
            ContactChange(contact=contact, expires=3600, q=q, source=source, path=path),
        ]))

    def receive(self, message, transport=None, source=CALLER):
        """
        Hand C{message} to the transaction layer as a transport would.
        """
        transport = transport or self.udp
        if isinstance(message, Request):
            self.transactions.receiveRequest(message, transport, source)
        else:
            self.transactions.receiveResponse(message, transport, source)

    def requestsSent(self, method=None, transport=None):
        """
        The C{(request, destination)} pairs sent over C{transport} (UDP by
        default), without retransmissions.
        """
        transport = transport or self.udp
        result = []
        for message, address in transport.sent:
            if isinstance(message, Request) and method in (None, message.method):
                if not any(message is seen for seen, _ in result):
                    result.append((message, address))
        return result

    def forwarded(self, method="INVITE", transport=None):
        """
        The requests of C{method} forwarded, without their destinations.
        """
        return [message for message, _ in self.requestsSent(method, transport)]

    def upstream(self, transport=None):
        """
        The responses sent towards the caller, without retransmissions.
        """
        transport = transport or self.udp
        return unique(
            message for message, address in transport.sent
            if isinstance(message, Response) and address == CALLER
        )

    def codes(self, transport=None):
        return [response.code for response in self.upstream(transport)]

    def answer(self, forwarded, code, toTag="callee", transport=None, headers=()):
        """
        Send back a response of the callee to C{forwarded}.
        """
        response = makeResponse(forwarded, code, toTag=toTag if code > 100 else None)
        for header in headers:
            response.headers.add(*header)
        self.receive(response, transport, ("198.51.100.21", 5060))
        return response

    def finish(self):
        """
        Let every timer run out, then check that nothing is left: no timer
        and no response context.
        """
        for _ in range(500):
            if not self.clock.getDelayedCalls():
                break
            self.clock.advance(1)
        self.case.assertEqual(self.clock.getDelayedCalls(), [])
        self.case.assertEqual(self.proxy.activeContexts, 0)


class PureFunctionTests(SynchronousTestCase):
    """
    The helpers of L{appliance.sip.proxy} that need no network.
    """

    def test_fakeTransportProvidesInterface(self):
        """
        The fake transport with its C{localAddress} is an L{ISIPTransport}.
        """
        transport = FakeTransport(address=("192.0.2.9", 5070))
        self.assertTrue(verifyObject(ISIPTransport, transport))
        self.assertEqual(transport.localAddress(("198.51.100.1", 5060)), ("192.0.2.9", 5070))

    def test_transportOf(self):
        """
        The transport parameter wins, sips means TLS, anything else UDP.
        """
        self.assertEqual(transportOf(URI.parse("sip:a@h;transport=tcp")), "TCP")
        self.assertEqual(transportOf(URI.parse("sips:a@h")), "TLS")
        self.assertEqual(transportOf(URI.parse("sip:a@h")), "UDP")

    def test_groupsByQ(self):
        """
        Targets are grouped by equal q, highest q first, keeping their order
        within a group.
        """
        self.assertEqual(
            groupsByQ([(0.5, "c"), (1.0, "a"), (0.1, "d"), (1.0, "b")]),
            [["a", "b"], ["c"], ["d"]],
        )

    def test_groupsByQEmpty(self):
        """
        No targets, no groups.
        """
        self.assertEqual(groupsByQ([]), [])

    def finals(self, *codes):
        original = request()
        return [makeResponse(original, code) for code in codes]

    def test_bestResponseNone(self):
        """
        Without responses there is no best one.
        """
        self.assertIsNone(bestResponse([]))

    def test_bestResponsePrefers6xx(self):
        """
        A 6xx wins over lower classes (RFC 3261 section 16.7 step 6).
        """
        self.assertEqual(bestResponse(self.finals(404, 603, 302)).code, 603)

    def test_bestResponseLowestClass(self):
        """
        Otherwise the lowest class wins.
        """
        self.assertEqual(bestResponse(self.finals(500, 404, 486)).code, 404)
        self.assertEqual(bestResponse(self.finals(500, 302)).code, 302)

    def test_bestResponsePrefersChallenges(self):
        """
        Within 4xx, 401 and 407 win over other codes.
        """
        self.assertEqual(bestResponse(self.finals(404, 407, 486)).code, 407)
        self.assertEqual(bestResponse(self.finals(404, 407, 401)).code, 401)

    def test_bestResponseAvoids408(self):
        """
        A 408 is chosen only when no other 4xx is there.
        """
        self.assertEqual(bestResponse(self.finals(408, 480)).code, 480)
        self.assertEqual(bestResponse(self.finals(408)).code, 408)

    def test_bestResponseKeeps503(self):
        """
        L{bestResponse} only chooses: a 503 stays a 503 (L{Proxy.forwardFinal}
        converts it, see L{ResponseTests.test_503Becomes500}).
        """
        self.assertEqual(bestResponse(self.finals(503)).code, 503)


class ForwardingTests(SynchronousTestCase):
    """
    Request forwarding (RFC 3261 section 16.6).
    """

    def setUp(self):
        self.h = Harness(self)

    def test_requestURIRewritten(self):
        """
        The forwarded request goes to the contact, with the contact as its
        Request-URI.
        """
        self.h.register(BOB1)
        self.h.receive(request())
        [(invite, destination)] = self.h.requestsSent("INVITE")
        self.assertEqual(str(invite.uri), BOB1)
        self.assertEqual(destination, ("198.51.100.21", 5060))
        self.h.answer(invite, 486)
        self.h.finish()

    def test_maxForwardsDecremented(self):
        """
        Max-Forwards goes down by one (section 16.6 step 3).
        """
        self.h.register(BOB1)
        self.h.receive(request(maxForwards=70))
        [invite] = self.h.forwarded()
        self.assertEqual(invite.headers.getAll("Max-Forwards"), ["69"])
        self.h.answer(invite, 486)
        self.h.finish()

    def test_maxForwardsAdded(self):
        """
        A request without Max-Forwards gets one of 70 (section 16.6 step 3:
        "the proxy MUST add one with a field value, which SHOULD be 70").
        """
        self.h.register(BOB1)
        self.h.receive(request(maxForwards=None))
        [invite] = self.h.forwarded()
        self.assertEqual(invite.headers.getAll("Max-Forwards"), ["70"])
        self.h.answer(invite, 486)
        self.h.finish()

    def test_viaOnTop(self):
        """
        Our Via goes on top of the caller's, with a branch starting with the
        magic cookie.
        """
        self.h.register(BOB1)
        self.h.receive(request())
        [invite] = self.h.forwarded()
        vias = invite.vias()
        self.assertEqual(len(vias), 2)
        self.assertTrue(vias[0].branch.startswith(MAGIC_COOKIE))
        self.assertEqual(vias[0].transport, "UDP")
        self.assertEqual(vias[1].branch, "z9hG4bKcaller1")
        self.h.answer(invite, 486)
        self.h.finish()

    def test_uniqueBranchPerFork(self):
        """
        Each fork has its own branch (section 16.6 step 8), and every
        contact of the same q is tried in parallel.
        """
        self.h.register(BOB1)
        self.h.register(BOB2)
        self.h.register(BOB3)
        self.h.receive(request())
        invites = self.h.forwarded()
        self.assertEqual(sorted(str(i.uri) for i in invites), [BOB1, BOB2, BOB3])
        branches = {invite.vias()[0].branch for invite in invites}
        self.assertEqual(len(branches), 3)
        for invite in invites:
            self.h.answer(invite, 486)
        self.assertEqual(self.h.codes()[-1], 486)
        self.h.finish()

    def test_recordRouteForInvite(self):
        """
        An INVITE gets our Record-Route, a loose-routing URI of the
        transport it leaves by (section 16.6 step 4).
        """
        self.h.register(BOB1)
        self.h.receive(request())
        [invite] = self.h.forwarded()
        self.assertEqual(invite.headers.getAll("Record-Route"), ["<sip:192.0.2.1:5060;lr>"])
        self.h.answer(invite, 486)
        self.h.finish()

    def test_noRecordRouteForMessage(self):
        """
        A request that creates no dialog gets no Record-Route.
        """
        self.h.register(BOB1)
        self.h.receive(request("MESSAGE"))
        [message] = self.h.forwarded("MESSAGE")
        self.assertEqual(message.headers.getAll("Record-Route"), [])
        self.h.answer(message, 200)
        self.assertEqual(self.h.codes(), [200])
        self.h.finish()

    def test_noRecordRouteWhenDisabled(self):
        """
        With record-routing off, no Record-Route is added.
        """
        h = Harness(self, recordRoute=False)
        h.register(BOB1)
        h.receive(request())
        [invite] = h.forwarded()
        self.assertEqual(invite.headers.getAll("Record-Route"), [])
        h.answer(invite, 486)
        h.finish()

    def test_doubleRecordRouteWhenTransportChanges(self):
        """
        From UDP to TCP the proxy record-routes twice (RFC 5658): the top
        value for the TCP side, with transport=tcp, then the UDP side.
        """
        self.h.register(BOB1 + ";transport=tcp")
        self.h.receive(request())
        self.assertEqual(self.h.forwarded(transport=self.h.udp), [])
        [(invite, destination)] = self.h.requestsSent("INVITE", self.h.tcp)
        self.assertEqual(destination, ("198.51.100.21", 5060))
        self.assertEqual(invite.headers.getAll("Record-Route"), [
            "<sip:192.0.2.1:5060;lr;transport=tcp>", "<sip:192.0.2.1:5060;lr>",
        ])
        self.assertEqual(invite.vias()[0].transport, "TCP")
        self.h.answer(invite, 486, transport=self.h.tcp)
        self.assertEqual(self.h.codes(), [486])
        self.h.finish()

    def test_pathPreloadedAsRoute(self):
        """
        The Path of the binding becomes the Route set, and the request goes
        to its first hop (RFC 3327 section 5.3).
        """
        edge = "<sip:198.51.100.50:5070;lr>"
        self.h.register(BOB1, path=(edge,), source=("udp", "198.51.100.50", 5070))
        self.h.receive(request())
        [(invite, destination)] = self.h.requestsSent("INVITE")
        self.assertEqual(destination, ("198.51.100.50", 5070))
        self.assertEqual(str(invite.uri), BOB1)
        self.assertEqual(invite.headers.getAll("Route"), [edge])
        self.h.answer(invite, 486)
        self.h.finish()

    def test_flowTarget(self):
        """
        A binding without Path is reached over the flow its REGISTER came
        from (RFC 5626 section 7), not at its (private) contact address.
        """
        self.h.register("sip:bob@10.0.0.5:5060", source=("udp", "203.0.113.5", 40000))
        self.h.receive(request())
        [(invite, destination)] = self.h.requestsSent("INVITE")
        self.assertEqual(destination, ("203.0.113.5", 40000))
        self.assertEqual(str(invite.uri), "sip:bob@10.0.0.5:5060")
        self.h.answer(invite, 486)
        self.h.finish()

    def test_flowTargetOverTCP(self):
        """
        A binding registered over TCP is reached over TCP at its source.
        """
        self.h.register("sip:bob@10.0.0.5:5060;transport=tcp", source=("tcp", "203.0.113.5", 40001))
        self.h.receive(request())
        [(invite, destination)] = self.h.requestsSent("INVITE", self.h.tcp)
        self.assertEqual(destination, ("203.0.113.5", 40001))
        self.h.answer(invite, 486, transport=self.h.tcp)
        self.h.finish()

    def test_flowTargetDirect(self):
        """
        L{Proxy.sendBranch} sends a target with a flow and no Path to the
        flow's address over the flow's transport (names as the transports
        are keyed).
        """
        st = FakeServerTransactionLike(request(), self.h.udp)
        self.h.proxy.proxy(request(), st, [[Target(
            uri=URI.parse("sip:bob@10.0.0.5"), flow=("TCP", "203.0.113.5", 40001))]])
        [(invite, destination)] = self.h.requestsSent("INVITE", self.h.tcp)
        self.assertEqual(destination, ("203.0.113.5", 40001))
        self.h.answer(invite, 486, transport=self.h.tcp)
        self.assertEqual([r.code for r in st.responses], [486])
        self.h.finish()

    def test_unresolvableTarget(self):
        """
        A target that cannot be resolved fails its branch; with no other
        branch the caller gets a final error response.
        """
        h = self.h
        st = FakeServerTransactionLike(request(), h.udp)
        h.proxy.proxy(request(), st, [[Target(uri=URI.parse("sip:bob@nowhere.test"))]])
        self.assertEqual([r.code for r in st.responses], [500])
        h.finish()


class FakeServerTransactionLike:
    """
    What the proxy uses of a server transaction, for driving L{Proxy.proxy}
    directly: the request, the transport and source, and C{respond}.
    """

    def __init__(self, request, transport, source=CALLER):
        self.request = request
        self.transport = transport
        self.source = source
        self.responses = []
        self.lastResponse = None

    def respond(self, response):
        self.responses.append(response)
        self.lastResponse = response


class ResponseTests(SynchronousTestCase):
    """
    Response processing (RFC 3261 section 16.7) by the
    L{appliance.sip.responsecontext.ResponseContext}.
    """

    def setUp(self):
        self.h = Harness(self)

    def forks(self, *contacts, method="INVITE"):
        for contact in contacts:
            self.h.register(contact)
        self.h.receive(request(method))
        invites = self.h.forwarded(method)
        byURI = {str(invite.uri): invite for invite in invites}
        return [byURI[contact] for contact in contacts]

    def test_trying(self):
        """
        A 100 from a branch is not forwarded (section 16.7 step 5).
        """
        [invite] = self.forks(BOB1)
        self.h.answer(invite, 100)
        self.assertEqual(self.h.codes(), [])
        self.h.answer(invite, 486)
        self.assertEqual(self.h.codes(), [486])
        self.h.finish()

    def test_ringingForwarded(self):
        """
        A 180 is forwarded at once, without our Via (section 16.7 step 9).
        """
        [invite] = self.forks(BOB1)
        self.h.answer(invite, 180)
        [ringing] = self.h.upstream()
        self.assertEqual(ringing.code, 180)
        self.assertEqual(
            ringing.headers.getAll("Via"),
            ["SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKcaller1"],
        )
        self.assertEqual(ringing.toAddress().tag, "callee")
        self.h.answer(invite, 486)
        self.h.finish()

    def test_okForwardedAndOthersCancelled(self):
        """
        A 2xx goes upstream at once; the other branches are cancelled, each
        only once it has had a provisional response (section 9.1).
        """
        a, b, c = self.forks(BOB1, BOB2, BOB3)
        self.h.answer(b, 180, toTag="b")
        self.h.answer(a, 200, toTag="a")
        self.assertEqual(self.h.codes(), [180, 200])
        cancels = self.h.requestsSent("CANCEL")
        self.assertEqual(len(cancels), 1)
        cancel, destination = cancels[0]
        self.assertEqual(destination, ("198.51.100.22", 5060))
        self.assertEqual(cancel.vias()[0].branch, b.vias()[0].branch)
        self.assertEqual(str(cancel.uri), BOB2)
        # c answers late with a provisional: now it can be cancelled.
        self.h.answer(c, 180, toTag="c")
        cancels = self.h.requestsSent("CANCEL")
        self.assertEqual(len(cancels), 2)
        self.assertEqual(cancels[1][1], ("198.51.100.23", 5060))
        self.h.answer(cancels[0][0], 200)
        self.h.answer(cancels[1][0], 200)
        self.h.answer(b, 487, toTag="b")
        self.h.answer(c, 487, toTag="c")
        # The late 180 and the 487s never go upstream.
        self.assertEqual(self.h.codes(), [180, 200])
        self.h.finish()

    def test_every2xxForwarded(self):
        """
        Every 2xx to a forked INVITE goes upstream (section 16.7 step 5).
        """
        a, b = self.forks(BOB1, BOB2)
        self.h.answer(a, 200, toTag="a")
        self.h.answer(b, 200, toTag="b")
        upstream = self.h.upstream()
        self.assertEqual([r.code for r in upstream], [200, 200])
        self.assertEqual([r.toAddress().tag for r in upstream], ["a", "b"])
        self.assertEqual(self.h.requestsSent("CANCEL"), [])
        self.h.finish()

    def test_nonInvite2xxOnce(self):
        """
        For a non-INVITE only the first 2xx goes upstream.
        """
        a, b = self.forks(BOB1, BOB2, method="MESSAGE")
        self.h.answer(a, 200, toTag="a")
        self.h.answer(b, 202, toTag="b")
        self.assertEqual(self.h.codes(), [200])
        self.assertEqual(self.h.requestsSent("CANCEL"), [])
        self.h.finish()

    def test_6xxCancelsOthers(self):
        """
        A 6xx cancels the other branches and is the answer
        (section 16.7 step 5 and 6).
        """
        a, b = self.forks(BOB1, BOB2)
        self.h.answer(a, 180, toTag="a")
        self.h.answer(b, 180, toTag="b")
        self.h.answer(a, 603, toTag="a")
        [(cancel, destination)] = self.h.requestsSent("CANCEL")
        self.assertEqual(destination, ("198.51.100.22", 5060))
        self.assertEqual(self.h.codes(), [180, 180])
        self.h.answer(cancel, 200)
        self.h.answer(b, 487, toTag="b")
        self.assertEqual(self.h.codes(), [180, 180, 603])
        self.h.finish()

    def test_bestOfAll(self):
        """
        The final response waits for every branch, then the best goes
        upstream, once, without our Via.
        """
        a, b = self.forks(BOB1, BOB2)
        self.h.answer(a, 500)
        self.assertEqual(self.h.codes(), [])
        self.h.answer(b, 404)
        [final] = self.h.upstream()
        self.assertEqual(final.code, 404)
        self.assertEqual(len(final.headers.getAll("Via")), 1)
        self.h.finish()

    def test_challengesMerged(self):
        """
        A 401 / 407 answer carries the challenges of every 401 and 407
        (section 16.7 step 7).
        """
        a, b, c = self.forks(BOB1, BOB2, BOB3)
        self.h.answer(a, 407, headers=[("Proxy-Authenticate", 'Digest realm="a"')])
        self.h.answer(b, 404)
        self.h.answer(c, 401, headers=[("WWW-Authenticate", 'Digest realm="c"')])
        [final] = self.h.upstream()
        self.assertIn(final.code, (401, 407))
        self.assertEqual(final.headers.getAll("Proxy-Authenticate"), ['Digest realm="a"'])
        self.assertEqual(final.headers.getAll("WWW-Authenticate"), ['Digest realm="c"'])
        self.h.finish()

    def test_503Becomes500(self):
        """
        A 503 of the only branch reaches the caller as 500 (section 16.7
        step 6).
        """
        [invite] = self.forks(BOB1)
        self.h.answer(invite, 503)
        [final] = self.h.upstream()
        self.assertEqual((final.code, final.reason), (500, "Server Internal Error"))
        self.h.finish()

    def test_sequentialGroups(self):
        """
        A lower q group is tried only once the higher one failed.
        """
        self.h.register(BOB1, q=1.0)
        self.h.register(BOB2, q=0.5)
        self.h.receive(request())
        [first] = self.h.forwarded()
        self.assertEqual(str(first.uri), BOB1)
        self.h.answer(first, 480)
        self.assertEqual(self.h.codes(), [])
        [_, second] = self.h.forwarded()
        self.assertEqual(str(second.uri), BOB2)
        self.assertNotEqual(second.vias()[0].branch, first.vias()[0].branch)
        self.h.answer(second, 200)
        self.assertEqual(self.h.codes(), [200])
        self.h.finish()

    def test_6xxStopsGroups(self):
        """
        A 6xx ends the search: lower q groups are not tried.
        """
        self.h.register(BOB1, q=1.0)
        self.h.register(BOB2, q=0.5)
        self.h.receive(request())
        [first] = self.h.forwarded()
        self.h.answer(first, 600)
        self.assertEqual(len(self.h.forwarded()), 1)
        self.assertEqual(self.h.codes(), [600])
        self.h.finish()

    def test_2xxStopsGroups(self):
        """
        A 2xx ends the search too.
        """
        self.h.register(BOB1, q=1.0)
        self.h.register(BOB2, q=0.5)
        self.h.receive(request())
        [first] = self.h.forwarded()
        self.h.answer(first, 200)
        self.assertEqual(len(self.h.forwarded()), 1)
        self.assertEqual(self.h.codes(), [200])
        self.h.finish()

    def test_failingTargetDoesNotEndGroup(self):
        """
        A target that fails at once (a transport we do not have) does not
        end the call while the other targets of its group are still to be
        tried: the caller gets the answer of the one that works.
        """
        self.h.register(BOB2)
        self.h.clock.advance(1)
        # More recently updated, so first in the group.
        self.h.register("sip:bob@198.51.100.23;transport=tls")
        self.h.receive(request())
        self.assertEqual(self.h.codes(), [])
        [invite] = self.h.forwarded()
        self.assertEqual(str(invite.uri), BOB2)
        self.h.answer(invite, 200)
        self.assertEqual(self.h.codes(), [200])
        self.h.finish()

    def test_strayResponseForwardedStatelessly(self):
        """
        A 2xx that matches no transaction but carries our Via is forwarded
        to the next Via (section 16.11, late 2xx retransmissions).
        """
        [invite] = self.forks(BOB1)
        self.h.answer(invite, 200)
        self.h.finish()
        self.h.udp.sent.clear()
        self.h.answer(invite, 200)
        [(response, address)] = self.h.udp.sent
        self.assertEqual(response.code, 200)
        self.assertEqual(len(response.headers.getAll("Via")), 1)
        self.assertEqual(self.h.clock.getDelayedCalls(), [])

    def test_strayResponseNotOursDropped(self):
        """
        A response whose top Via is not ours is dropped (section 18.1.2).
        """
        response = makeResponse(request(), 200, toTag="x")
        self.h.receive(response)
        self.assertEqual(self.h.udp.sent, [])
        self.assertEqual(self.h.clock.getDelayedCalls(), [])


class TimerTests(SynchronousTestCase):
    """
    The ring timeout, timer C and the transaction timeouts.
    """

    def test_ringTimeoutCancels(self):
        """
        When nobody answers within the ring timeout, every ringing branch is
        cancelled and the caller gets a final response.
        """
        h = Harness(self, ringTimeout=30)
        h.register(BOB1)
        h.register(BOB2)
        h.receive(request())
        a, b = h.forwarded()
        h.answer(a, 180, toTag="a")
        h.answer(b, 180, toTag="b")
        h.clock.advance(29)
        self.assertEqual(h.requestsSent("CANCEL"), [])
        h.clock.advance(1)
        cancels = h.requestsSent("CANCEL")
        self.assertEqual(len(cancels), 2)
        for cancel, _ in cancels:
            h.answer(cancel, 200)
        h.answer(a, 487, toTag="a")
        self.assertEqual(h.codes(), [180, 180])
        h.answer(b, 487, toTag="b")
        self.assertEqual(h.codes()[:2], [180, 180])
        self.assertIn(h.codes()[2], (408, 480))
        h.finish()

    def test_ringTimeoutWithoutProvisional(self):
        """
        A branch that never answered is not cancelled (section 9.1); its
        timer B makes it a 408, which the caller gets.
        """
        h = Harness(self, ringTimeout=10)
        h.register(BOB1)
        h.receive(request())
        h.clock.advance(10)
        self.assertEqual(h.requestsSent("CANCEL"), [])
        self.assertEqual(h.codes(), [100])
        h.clock.advance(32 - 10)
        self.assertEqual(h.codes(), [100, 408])
        self.assertEqual(h.proxy.activeContexts, 0)
        h.finish()

    def test_lateProvisionalAfterRingTimeout(self):
        """
        A branch that first rings after the ring timeout is cancelled then.
        """
        h = Harness(self, ringTimeout=10)
        h.register(BOB1)
        h.receive(request())
        [invite] = h.forwarded()
        h.clock.advance(10)
        h.answer(invite, 180)
        [(cancel, _)] = h.requestsSent("CANCEL")
        h.answer(cancel, 200)
        h.answer(invite, 487)
        self.assertGreaterEqual(h.codes()[-1], 400)
        h.finish()

    def test_generatedFinalHasToTag(self):
        """
        A final response the proxy makes itself (here the 408 of a branch
        that timed out) carries a To tag (RFC 3261 section 8.2.6.2).
        """
        h = Harness(self, ringTimeout=600)
        h.register(BOB1 + ";transport=tcp")
        h.receive(request())
        h.clock.advance(32)
        final = h.upstream()[-1]
        self.assertEqual(final.code, 408)
        self.assertIsNotNone(final.toAddress().tag)
        h.finish()

    def test_noResponseTimesOut(self):
        """
        An INVITE branch over TCP without any response ends with a 408 when
        timer B fires (section 16.7: a timeout is a 408), and the context
        ends.
        """
        h = Harness(self, ringTimeout=600)
        h.register(BOB1 + ";transport=tcp")
        h.receive(request())
        h.clock.advance(31)
        self.assertNotIn(408, h.codes())
        h.clock.advance(1)
        self.assertEqual(h.codes(), [100, 408])
        self.assertEqual(h.proxy.activeContexts, 0)
        h.finish()

    def test_nonInviteTimesOut(self):
        """
        A non-INVITE branch without any response ends with 408 on timer F.
        """
        h = Harness(self)
        h.register(BOB1)
        h.receive(request("MESSAGE"))
        h.clock.advance(32)
        self.assertEqual(h.codes(), [408])
        self.assertEqual(h.proxy.activeContexts, 0)
        h.finish()

    def test_timerCCancelsRingingBranch(self):
        """
        Timer C (more than three minutes, section 16.6 step 11) cancels a
        branch that rings too long; each provisional restarts it.
        """
        h = Harness(self, ringTimeout=600)
        h.register(BOB1)
        h.receive(request())
        [invite] = h.forwarded()
        h.answer(invite, 180)
        h.clock.advance(100)
        h.answer(invite, 183)
        h.clock.advance(TIMER_C - 1)
        self.assertEqual(h.requestsSent("CANCEL"), [])
        h.clock.advance(1)
        [(cancel, _)] = h.requestsSent("CANCEL")
        h.answer(cancel, 200)
        h.answer(invite, 487)
        self.assertEqual(h.codes(), [180, 183, 487])
        h.finish()

    def test_cancelledBranchNeverAnswering(self):
        """
        A ringing branch that answers neither the CANCEL nor the INVITE does
        not hold the call forever: 64*T1 after the CANCEL the branch counts
        as finished (RFC 3261 section 9.1) and the caller gets a final
        response.
        """
        h = Harness(self)
        h.register(BOB1)
        h.receive(request())
        [invite] = h.forwarded()
        h.answer(invite, 180)
        h.receive(request("CANCEL"))
        self.assertEqual(len(h.requestsSent("CANCEL")), 1)
        self.assertEqual(h.codes(), [180, 200])
        h.clock.advance(32)
        self.assertEqual(h.codes(), [180, 200, 487])
        h.finish()

    def test_timerCWithoutAnswerToCancel(self):
        """
        After timer C cancelled a ringing branch that then stays silent, the
        branch ends and the caller gets a final response.
        """
        h = Harness(self, ringTimeout=600)
        h.register(BOB1)
        h.receive(request())
        [invite] = h.forwarded()
        h.answer(invite, 180)
        h.clock.advance(TIMER_C)
        self.assertEqual(len(h.requestsSent("CANCEL")), 1)
        h.clock.advance(32)
        self.assertEqual(len(h.codes()), 2)
        self.assertTrue(h.codes()[1] >= 400)
        h.finish()

    def test_transportFailureIs503(self):
        """
        A branch whose transport fails counts as a 503 (section 16.7 /
        17.1.4), converted to 500 for the caller.
        """
        h = Harness(self)
        h.register(BOB1 + ";transport=tcp")
        h.tcp.failure = OSError("connection refused")
        h.receive(request())
        h.clock.advance(0)
        self.assertEqual(h.codes(), [500])
        h.finish()


class CancelTests(SynchronousTestCase):
    """
    A CANCEL from the caller (RFC 3261 section 16.10).
    """

    def setUp(self):
        self.h = Harness(self)

    def test_cancelForwarded(self):
        """
        The CANCEL is answered 200 at once, each ringing branch gets a
        CANCEL, and the caller gets 487 once every branch sent its 487.
        """
        h = self.h
        h.register(BOB1)
        h.register(BOB2)
        h.receive(request())
        a, b = h.forwarded()
        h.answer(a, 180, toTag="a")
        h.answer(b, 180, toTag="b")
        h.receive(request("CANCEL"))
        self.assertEqual(h.codes(), [180, 180, 200])
        self.assertEqual(h.upstream()[-1].headers.get("CSeq"), "1 CANCEL")
        cancels = h.requestsSent("CANCEL")
        self.assertEqual(
            sorted(destination for _, destination in cancels),
            [("198.51.100.21", 5060), ("198.51.100.22", 5060)],
        )
        for cancel, _ in cancels:
            h.answer(cancel, 200)
        h.answer(a, 487, toTag="a")
        self.assertEqual(h.codes(), [180, 180, 200])
        h.answer(b, 487, toTag="b")
        self.assertEqual(h.codes(), [180, 180, 200, 487])
        self.assertEqual(h.upstream()[-1].headers.get("CSeq"), "1 INVITE")
        h.finish()

    def test_cancelBeforeProvisional(self):
        """
        A branch with no provisional response yet is cancelled only once one
        arrives (section 9.1).
        """
        h = self.h
        h.register(BOB1)
        h.receive(request())
        [invite] = h.forwarded()
        h.receive(request("CANCEL"))
        self.assertEqual(h.requestsSent("CANCEL"), [])
        h.answer(invite, 180)
        [(cancel, _)] = h.requestsSent("CANCEL")
        h.answer(cancel, 200)
        h.answer(invite, 487)
        # The late 180 still goes upstream: the INVITE is unanswered.
        self.assertEqual(h.codes(), [200, 180, 487])
        h.finish()

    def test_cancelNoGroupsAfter(self):
        """
        After a CANCEL, lower q groups are not tried and no rule retargets.
        """
        h = self.h
        h.register(BOB1, q=1.0)
        h.register(BOB2, q=0.5)
        self.successResultOf(h.rules.set("bob@example.test", "noanswer", "sip:vm@198.51.100.99"))
        h.receive(request())
        [invite] = h.forwarded()
        h.answer(invite, 180)
        h.receive(request("CANCEL"))
        [(cancel, _)] = h.requestsSent("CANCEL")
        h.answer(cancel, 200)
        h.answer(invite, 487)
        self.assertEqual(len(h.forwarded()), 1)
        self.assertEqual(h.codes(), [180, 200, 487])
        h.finish()

    def test_cancelMatchingNothing(self):
        """
        A CANCEL for no known INVITE gets 481.
        """
        self.h.receive(request("CANCEL"))
        self.assertEqual(self.h.codes(), [481])
        self.h.finish()

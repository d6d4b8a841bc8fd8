"""
Tests for L{appliance.sip.registrar}: REGISTER processing (RFC 3261 section
10.3, RFC 3327, RFC 5626) against a location service on a real SQLite file.
"""

import attrs
from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from appliance.sip.location import LocationService
from appliance.sip.message import parseMessage, validateRequest
from appliance.sip.registrar import SUPPORTED, Registrar
from appliance.sip.testing import FakeServerTransaction
from appliance.stats import Statistics
from appliance.storage.database import SynchronousDatabase

from tests.sip.test_location import START, SwitchableDatabase

AOR = "alice@example.test"
SOURCE = ("192.0.2.1", 5060)
INSTANCE = '"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"'


def register(contacts=(), callId="reg-1", cseq=1, to="sip:alice@example.test",
             uri="sip:example.test", extra=(), vias=1):
    """
    A REGISTER as it arrives from the network, parsed and validated.
    """
    lines = ["REGISTER %s SIP/2.0" % (uri,)]
    for hop in range(vias):
        lines.append("Via: SIP/2.0/UDP 192.0.2.%d:5060;branch=z9hG4bK%d%s" % (hop + 1, hop, callId))
    lines += [
        "From: <%s>;tag=f1" % (to,),
        "To: <%s>" % (to,),
        "Call-ID: %s" % (callId,),
        "CSeq: %d REGISTER" % (cseq,),
        "Max-Forwards: 70",
    ]
    lines += ["Contact: %s" % (contact,) for contact in contacts]
    lines += ["%s: %s" % header for header in extra]
    lines += ["Content-Length: 0", "", ""]
    request = parseMessage("\r\n".join(lines).encode("utf-8"))
    validateRequest(request)
    return request


@attrs.frozen
class AuthResult:
    """
    The shape of C{appliance.sip.auth.AuthResult}, so these tests do not
    depend on the digest implementation.
    """

    user: str | None
    status: int | None = None
    headers: tuple = ()
    reason: str = "ok"


class RegistrarTestsMixin:
    """
    A registrar for example.test (min 60, max 3600, default 1800 seconds).
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(START)
        database = SynchronousDatabase(self.mktemp())
        database.open()
        self.addCleanup(database.close)
        self.database = SwitchableDatabase(database)
        self.location = LocationService(self.database, self.clock)
        self.successResultOf(self.location.load())
        self.stats = Statistics("sip")
        self.registrar = self.makeRegistrar()
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))

    def makeRegistrar(self, **kwargs):
        return Registrar(
            self.location, ["Example.TEST"], self.clock, minExpires=60,
            maxExpires=3600, defaultExpires=1800, stats=self.stats, **kwargs
        )

    def send(self, request, registrar=None, transport="UDP"):
        """
        Hand C{request} to the registrar; return the one response sent.
        """
        transaction = FakeServerTransaction(request, SOURCE)
        d = (registrar or self.registrar).handleRegister(request, transaction, SOURCE, transport)
        response = self.successResultOf(d)
        self.assertEqual(transaction.responses, [response])
        return response

    def contacts(self, response):
        return response.headers.getAll("Contact")


class RegisterTests(RegistrarTestsMixin, SynchronousTestCase):
    """
    Adding, refreshing, removing and querying bindings.
    """

    def test_add(self):
        """
        A REGISTER with one contact is answered 200 with a To tag, the
        binding with its expiry, a Date header (RFC 3261 section 20.17) and
        no Record-Route; the binding is stored with its source and
        User-Agent.
        """
        request = register(
            ["<sip:alice@192.0.2.1:5060>"],
            extra=[("User-Agent", "Phone/1"), ("Record-Route", "<sip:p.example.test;lr>")],
        )
        response = self.send(request, transport="TCP")
        self.assertEqual(response.code, 200)
        self.assertIsNotNone(response.toAddress().tag)
        self.assertEqual(self.contacts(response), ["<sip:alice@192.0.2.1:5060>;expires=1800"])
        self.assertEqual(response.headers.get("Date"), "Tue, 14 Nov 2023 22:13:20 GMT")
        self.assertNotIn("Record-Route", response.headers)
        [binding] = self.location.lookup(AOR)
        self.assertEqual(binding.source, ("tcp", "192.0.2.1", 5060))
        self.assertEqual(binding.userAgent, "Phone/1")
        self.assertEqual((binding.callId, binding.cseq), ("reg-1", 1))
        self.assertEqual(self.stats.get("registrar.accepted"), 1)
        self.assertEqual(self.stats.get("responses.out.2xx"), 1)

    def test_listsAllBindings(self):
        """
        The 200 lists every binding of the address of record, including
        those registered by other requests, with the q of each when not 1.
        """
        self.send(register(["<sip:desk@192.0.2.1>;q=0.5"], callId="desk"))
        response = self.send(register(
            ["<sip:mobile@192.0.2.2>;q=0.9", "<sip:soft@192.0.2.3>"], callId="mobile"
        ))
        self.assertEqual(self.contacts(response), [
            "<sip:soft@192.0.2.3>;expires=1800",
            "<sip:mobile@192.0.2.2>;q=0.9;expires=1800",
            "<sip:desk@192.0.2.1>;q=0.5;expires=1800",
        ])

    def test_remainingExpiryDecreases(self):
        """
        Each Contact of a 200 carries the seconds its binding has left,
        which shrink as the clock advances.
        """
        self.send(register(["<sip:desk@192.0.2.1>"], extra=[("Expires", "600")]))
        self.clock.advance(100)
        response = self.send(register([], cseq=2))
        self.assertEqual(self.contacts(response), ["<sip:desk@192.0.2.1>;expires=500"])
        self.clock.advance(499.5)
        response = self.send(register([], cseq=3))
        self.assertEqual(self.contacts(response), ["<sip:desk@192.0.2.1>;expires=1"])

    def test_refresh(self):
        """
        Registering the same contact again refreshes the binding instead of
        adding one.
        """
        self.send(register(["<sip:alice@192.0.2.1>"], extra=[("Expires", "600")]))
        self.clock.advance(300)
        response = self.send(register(["<sip:alice@192.0.2.1>"], cseq=2, extra=[("Expires", "600")]))
        self.assertEqual(self.contacts(response), ["<sip:alice@192.0.2.1>;expires=600"])
        self.assertEqual(self.location.count(), 1)

    def test_removeOne(self):
        """
        A contact with C{expires=0} removes its binding only; the 200 lists
        the others.
        """
        self.send(register(["<sip:a@192.0.2.1>", "<sip:b@192.0.2.2>"]))
        response = self.send(register(["<sip:a@192.0.2.1>;expires=0"], cseq=2))
        self.assertEqual(self.contacts(response), ["<sip:b@192.0.2.2>;expires=1800"])
        self.assertEqual(self.stats.get("registrar.removed"), 1)

    def test_removeWithExpiresHeader(self):
        """
        C{Expires: 0} removes every contact listed without its own expiry.
        """
        self.send(register(["<sip:a@192.0.2.1>", "<sip:b@192.0.2.2>"]))
        response = self.send(register(
            ["<sip:a@192.0.2.1>", "<sip:b@192.0.2.2>;expires=120"], cseq=2,
            extra=[("Expires", "0")],
        ))
        self.assertEqual(self.contacts(response), ["<sip:b@192.0.2.2>;expires=120"])

    def test_wildcard(self):
        """
        C{Contact: *} with C{Expires: 0} removes every binding
        (RFC 3261 section 10.2.2).
        """
        self.send(register(["<sip:a@192.0.2.1>", "<sip:b@192.0.2.2>"]))
        response = self.send(register(["*"], cseq=2, extra=[("Expires", "0")]))
        self.assertEqual(response.code, 200)
        self.assertEqual(self.contacts(response), [])
        self.assertEqual(self.location.lookup(AOR), [])
        self.assertEqual(self.stats.get("registrar.removed"), 2)

    def test_wildcardMisuse(self):
        """
        C{Contact: *} without C{Expires: 0}, or with other contacts, is a
        400 and removes nothing (RFC 3261 section 10.3 step 6).
        """
        self.send(register(["<sip:a@192.0.2.1>"]))
        for cseq, contacts, extra in [
            (2, ["*"], []),
            (3, ["*"], [("Expires", "3600")]),
            (4, ["*", "<sip:b@192.0.2.2>"], [("Expires", "0")]),
        ]:
            request = register(["<sip:a@192.0.2.1>"], cseq=cseq, extra=extra)
            request.headers.set("Contact", contacts[0])
            for contact in contacts[1:]:
                request.headers.add("Contact", contact)
            self.assertEqual(self.send(request).code, 400)
        self.assertEqual(len(self.location.lookup(AOR)), 1)
        self.assertEqual(self.stats.get("registrar.rejected"), 3)

    def test_query(self):
        """
        A REGISTER without Contact changes nothing and lists the bindings;
        for an address of record without any, the 200 has no Contact.
        """
        response = self.send(register([]))
        self.assertEqual((response.code, self.contacts(response)), (200, []))
        self.send(register(["<sip:a@192.0.2.1>"], cseq=2))
        response = self.send(register([], cseq=2))
        self.assertEqual(self.contacts(response), ["<sip:a@192.0.2.1>;expires=1800"])

    def test_stats(self):
        """
        Accepted registrations (queries included), refusals and removed
        bindings are counted.
        """
        self.send(register(["<sip:a@192.0.2.1>", "<sip:b@192.0.2.2>"]))
        self.send(register(["<sip:a@192.0.2.1>;expires=0"], cseq=2))
        self.send(register([], cseq=3))
        self.send(register(["<sip:c@192.0.2.3>;expires=5"], cseq=4))
        self.send(register(["*"], cseq=5, extra=[("Expires", "0")]))
        self.assertEqual(
            {key: self.stats.get(key) for key in (
                "registrar.accepted", "registrar.rejected", "registrar.removed",
                "responses.out.2xx", "responses.out.4xx")},
            {"registrar.accepted": 4, "registrar.rejected": 1, "registrar.removed": 2,
             "responses.out.2xx": 4, "responses.out.4xx": 1},
        )

    def test_contactParamsKept(self):
        """
        Contact parameters other than expires and q are stored and returned
        in the 200 (RFC 5626 section 6: all Contact parameters).
        """
        response = self.send(register(['<sip:a@192.0.2.1>;methods="INVITE,BYE";expires=300']))
        self.assertEqual(self.contacts(response), ['<sip:a@192.0.2.1>;methods="INVITE,BYE";expires=300'])


class ExpiryTests(RegistrarTestsMixin, SynchronousTestCase):
    """
    RFC 3261 section 10.3 step 7: which expiry applies, and the limits.
    """

    def expiry(self, contact, extra=()):
        response = self.send(register([contact], extra=extra))
        self.assertEqual(response.code, 200)
        return self.location.bindingsFor(AOR)[0][1]

    def test_paramBeatsHeader(self):
        """
        The contact's expires parameter wins over the Expires header.
        """
        self.assertEqual(self.expiry("<sip:a@192.0.2.1>;expires=120", [("Expires", "900")]), 120)

    def test_header(self):
        """
        Without a parameter, the Expires header applies.
        """
        self.assertEqual(self.expiry("<sip:a@192.0.2.1>", [("Expires", "900")]), 900)

    def test_default(self):
        """
        Without either, the default applies.
        """
        self.assertEqual(self.expiry("<sip:a@192.0.2.1>"), 1800)

    def test_clamped(self):
        """
        A longer expiry than the maximum is shortened to it, even a huge
        one.
        """
        self.assertEqual(self.expiry("<sip:a@192.0.2.1>;expires=99999999999999999999"), 3600)

    def test_malformedParameter(self):
        """
        A malformed expires parameter counts as 3600 (RFC 3261 section
        20.10).
        """
        self.assertEqual(self.expiry("<sip:a@192.0.2.1>;expires=soon", [("Expires", "120")]), 3600)

    def test_tooBrief(self):
        """
        An expiry between 1 and the minimum is refused with 423 and
        Min-Expires, and nothing of the request is stored.
        """
        response = self.send(register(
            ["<sip:a@192.0.2.1>", "<sip:b@192.0.2.2>;expires=59"]
        ))
        self.assertEqual(response.code, 423)
        self.assertEqual(response.headers.get("Min-Expires"), "60")
        self.assertEqual(self.location.lookup(AOR), [])
        self.assertEqual(self.stats.get("registrar.rejected"), 1)

    def test_minimumAccepted(self):
        """
        The minimum itself is accepted.
        """
        self.assertEqual(self.expiry("<sip:a@192.0.2.1>", [("Expires", "60")]), 60)


class ValidationTests(RegistrarTestsMixin, SynchronousTestCase):
    """
    Requests refused before anything is stored.
    """

    def assertRefused(self, request, code):
        response = self.send(request)
        self.assertEqual(response.code, code)
        self.assertEqual(self.location.lookup(AOR), [])
        return response

    def test_outOfOrder(self):
        """
        A REGISTER with the Call-ID of a binding and a CSeq not above its
        own is refused with 500 and changes nothing.
        """
        self.send(register(["<sip:a@192.0.2.1>"], cseq=10))
        for cseq in (9, 10):
            response = self.send(register(["<sip:a@192.0.2.1>;expires=0"], cseq=cseq))
            self.assertEqual((response.code, response.reason), (500, "Out of Order"))
        self.assertEqual(len(self.location.lookup(AOR)), 1)

    def test_qValues(self):
        """
        q must be a qvalue (RFC 3261 section 25.1): 0 to 1 with at most
        three decimals.
        """
        for q in ("1.5", "0.1234", "-1", "x", "1.001"):
            self.assertRefused(register(["<sip:a@192.0.2.1>;q=%s" % (q,)]), 400)
        self.send(register(["<sip:a@192.0.2.1>;q=0.125"]))
        self.assertEqual(self.location.lookup(AOR)[0].q, 0.125)

    def test_malformedContact(self):
        """
        A Contact that does not parse is a 400.
        """
        request = register(["<sip:a@192.0.2.1>"])
        request.headers.set("Contact", "<sip:a@192.0.2.1")
        self.assertRefused(request, 400)

    def test_malformedExpiresHeader(self):
        """
        An Expires header that is not a number is a 400.
        """
        request = register(["<sip:a@192.0.2.1>"])
        request.headers.set("Expires", "tomorrow")
        self.assertRefused(request, 400)

    def test_foreignDomain(self):
        """
        A Request-URI that is not one of our domains is refused with 403.
        """
        self.assertRefused(register(["<sip:a@192.0.2.1>"], uri="sip:elsewhere.test"), 403)

    def test_toNotInDomain(self):
        """
        A To URI of another domain than the Request-URI's, or without a
        user, is a 404 (RFC 3261 section 10.3 step 5).
        """
        self.assertRefused(register(["<sip:a@192.0.2.1>"], to="sip:alice@elsewhere.test"), 404)
        self.assertRefused(register(["<sip:a@192.0.2.1>"], to="sip:example.test"), 404)

    def test_unknownUser(self):
        """
        Without authentication, an address of record that C{userExists}
        denies is a 404; one it knows is registered.
        """
        asked = []

        def userExists(aor):
            asked.append(aor)
            return succeed(aor == "bob@example.test")

        registrar = self.makeRegistrar(userExists=userExists)
        self.assertEqual(self.send(register(["<sip:a@192.0.2.1>"]), registrar).code, 404)
        bob = register(["<sip:b@192.0.2.1>"], to="sip:bob@example.test")
        self.assertEqual(self.send(bob, registrar).code, 200)
        self.assertEqual(asked, [AOR, "bob@example.test"])

    def test_unsupportedRequire(self):
        """
        A Require tag other than path and outbound is a 420 listing it.
        """
        response = self.assertRefused(
            register(["<sip:a@192.0.2.1>"], extra=[("Require", "path, 100rel")]), 420
        )
        self.assertEqual(response.headers.get("Unsupported"), "100rel")
        self.assertEqual(SUPPORTED, ("path", "outbound"))

    def test_databaseFailure(self):
        """
        When the location service cannot write, the REGISTER gets 500 with
        Retry-After and memory keeps the bindings it had.
        """
        self.send(register(["<sip:a@192.0.2.1>"]))
        before = self.location.lookup(AOR)
        self.database.failing = True
        response = self.send(register(["<sip:b@192.0.2.2>"], cseq=2))
        self.assertEqual(response.code, 500)
        self.assertEqual(response.headers.get("Retry-After"), "5")
        self.assertEqual(self.location.lookup(AOR), before)


class AuthenticationTests(RegistrarTestsMixin, SynchronousTestCase):
    """
    The authentication hook (RFC 3261 section 10.3 steps 3 and 4).
    """

    def authenticating(self, result):
        calls = []

        def authenticate(request, realm, source):
            calls.append((realm, source))
            return result if not isinstance(result, AuthResult) else succeed(result)

        return self.makeRegistrar(authenticate=authenticate), calls

    def test_challenge(self):
        """
        A challenge from the hook is sent as it is, status and headers, with
        the standard reason phrase; the realm defaults to the Request-URI's
        domain.
        """
        challenge = 'Digest realm="example.test", nonce="abc", algorithm=MD5, qop="auth"'
        registrar, calls = self.authenticating(
            AuthResult(None, 401, (("WWW-Authenticate", challenge),), "no credentials")
        )
        response = self.send(register(["<sip:a@192.0.2.1>"]), registrar)
        self.assertEqual((response.code, response.reason), (401, "Unauthorized"))
        self.assertEqual(response.headers.getAll("WWW-Authenticate"), [challenge])
        self.assertEqual(calls, [("example.test", SOURCE)])
        self.assertEqual(self.location.lookup(AOR), [])
        self.assertEqual(self.stats.get("registrar.challenged"), 1)
        self.assertEqual(self.stats.get("registrar.rejected"), 0)

    def test_authenticatedAsAOR(self):
        """
        A user authenticated as the address of record (with or without the
        domain) registers.
        """
        for cseq, user in enumerate(["alice@example.test", "alice"], start=1):
            registrar, _ = self.authenticating(AuthResult(user))
            response = self.send(register(["<sip:a@192.0.2.1>"], cseq=cseq), registrar)
            self.assertEqual(response.code, 200)

    def test_otherUser(self):
        """
        A user authenticated as someone else is refused with 403.
        """
        registrar, _ = self.authenticating(AuthResult("bob@example.test"))
        response = self.send(register(["<sip:a@192.0.2.1>"]), registrar)
        self.assertEqual(response.code, 403)
        self.assertEqual(response.reason, "Not authorized for this address of record")
        self.assertEqual(self.location.lookup(AOR), [])

    def test_hookFails(self):
        """
        A hook that fails gives a 500 and the failure is logged.
        """
        registrar, _ = self.authenticating(fail(RuntimeError("directory down")))
        response = self.send(register(["<sip:a@192.0.2.1>"]), registrar)
        self.assertEqual(response.code, 500)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class PathTests(RegistrarTestsMixin, SynchronousTestCase):
    """
    RFC 3327 section 5.3.
    """

    PATH = [("Path", "<sip:p3.example.test;lr>, <sip:p1.example.net;lr>")]

    def test_storedAndEchoed(self):
        """
        With C{Supported: path}, the Path values are stored with the binding
        and copied into the 200 in order.
        """
        response = self.send(register(
            ["<sip:a@192.0.2.4>"], vias=3, extra=self.PATH + [("Supported", "path")]
        ))
        self.assertEqual(response.code, 200)
        path = ["<sip:p3.example.test;lr>", "<sip:p1.example.net;lr>"]
        self.assertEqual(response.headers.getAll("Path"), path)
        self.assertEqual(self.location.lookup(AOR)[0].path, tuple(path))

    def test_notSupportedByUA(self):
        """
        A Path the UA did not declare support for is refused with 420 and
        C{Unsupported: path}, as RFC 3327 section 5.3 recommends.
        """
        response = self.send(register(["<sip:a@192.0.2.4>"], vias=3, extra=self.PATH))
        self.assertEqual(response.code, 420)
        self.assertEqual(response.headers.get("Unsupported"), "path")
        self.assertEqual(self.location.lookup(AOR), [])

    def test_malformedPath(self):
        """
        A Path value that does not parse is a 400.
        """
        response = self.send(register(
            ["<sip:a@192.0.2.4>"], vias=2, extra=[("Path", "<sip:p1"), ("Supported", "path")]
        ))
        self.assertEqual(response.code, 400)


class OutboundTests(RegistrarTestsMixin, SynchronousTestCase):
    """
    RFC 5626 section 6: instance and reg-id.
    """

    def outbound(self, contact="sip:line1@192.0.2.2;transport=tcp", regId=1, **kwargs):
        return "<%s>;reg-id=%d;+sip.instance=%s" % (contact, regId, INSTANCE)

    def test_flowReplaced(self):
        """
        A new contact with the instance and reg-id of a binding replaces it;
        the 200 requires outbound when the UA supports it.
        """
        supported = [("Supported", "path, outbound")]
        self.send(register([self.outbound()], extra=supported, callId="boot-1"))
        response = self.send(register(
            [self.outbound("sip:line1@198.51.100.9;transport=tcp")], extra=supported, callId="boot-2"
        ))
        self.assertEqual(response.headers.get("Require"), "outbound")
        self.assertEqual(self.contacts(response), [
            "<sip:line1@198.51.100.9;transport=tcp>;reg-id=1;+sip.instance=%s;expires=1800"
            % (INSTANCE,)
        ])
        [binding] = self.location.lookup(AOR)
        self.assertEqual(
            (binding.instance, binding.regId),
            ("urn:uuid:00000000-0000-1000-8000-000A95A0E128", 1),
        )

    def test_secondFlow(self):
        """
        Another reg-id of the same instance is a second binding.
        """
        self.send(register([self.outbound(regId=1)], callId="flow-1"))
        response = self.send(register([self.outbound("sip:line1@192.0.2.3", regId=2)], callId="flow-2"))
        self.assertEqual(len(self.contacts(response)), 2)

    def test_noRequireWithoutSupported(self):
        """
        Without C{Supported: outbound} the 200 does not require it.
        """
        response = self.send(register([self.outbound()]))
        self.assertNotIn("Require", response.headers)

    def test_regIdWithoutInstanceIgnored(self):
        """
        A reg-id without an instance is ignored: not stored, not echoed,
        and no Require.
        """
        response = self.send(register(
            ["<sip:a@192.0.2.1>;reg-id=1"], extra=[("Supported", "outbound")]
        ))
        self.assertEqual(self.contacts(response), ["<sip:a@192.0.2.1>;expires=1800"])
        self.assertNotIn("Require", response.headers)
        self.assertIsNone(self.location.lookup(AOR)[0].regId)

    def test_firstHopLacksOutbound(self):
        """
        Behind a proxy whose Path has no C{ob}, a UA that supports outbound
        and sends a reg-id gets 439.
        """
        response = self.send(register(
            [self.outbound()], vias=2,
            extra=[("Supported", "path, outbound"), ("Path", "<sip:edge.example.test;lr>")],
        ))
        self.assertEqual(response.code, 439)
        self.assertEqual(self.location.lookup(AOR), [])

    def test_regIdIgnoredBehindProxy(self):
        """
        Behind a proxy without outbound, a UA that does not claim outbound
        support has its reg-id ignored.
        """
        response = self.send(register([self.outbound()], vias=2))
        self.assertEqual(response.code, 200)
        self.assertNotIn("reg-id", self.contacts(response)[0])
        self.assertIsNone(self.location.lookup(AOR)[0].regId)

    def test_edgeProxyWithOb(self):
        """
        Behind an edge proxy whose Path carries C{ob}, outbound applies.
        """
        response = self.send(register(
            [self.outbound()], vias=2,
            extra=[("Supported", "path, outbound"), ("Path", "<sip:flow@edge.example.test;lr;ob>")],
        ))
        self.assertEqual(response.headers.get("Require"), "outbound")
        self.assertEqual(self.location.lookup(AOR)[0].regId, 1)

    def test_regIdWithSeveralContacts(self):
        """
        A reg-id among several contacts with non-zero expiry is a 400.
        """
        response = self.send(register([self.outbound(), "<sip:other@192.0.2.8>"]))
        self.assertEqual(response.code, 400)

    def test_badRegId(self):
        """
        A reg-id that is not 1 to 2**31-1 is a 400.
        """
        for value in ("0", "x", "2147483648"):
            request = register(["<sip:a@192.0.2.1>;reg-id=%s;+sip.instance=%s" % (value, INSTANCE)])
            self.assertEqual(self.send(request).code, 400)

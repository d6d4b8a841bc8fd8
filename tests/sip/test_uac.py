"""
Tests for L{appliance.sip.uac}: digest answers (RFC 7616, RFC 8760), calls
we place (RFC 3261 section 13.2), CANCEL (section 9.1) and re-INVITEs we
send (section 14.1), on a real transaction layer and user agent over fake
transports driven by a L{task.Clock}.

Expected digests come from the examples of RFC 7616 section 3.9.1 or are
computed here with L{hashlib}, independently of the code under test.
"""

import hashlib
import types

from twisted.internet.defer import succeed
from twisted.trial.unittest import SynchronousTestCase

from appliance.sip import uac
from appliance.sip.auth import DigestAuthenticator, parseCredentials
from appliance.sip.dialog import CONFIRMED, EARLY
from appliance.sip.message import REASONS, URI, Request, Response, parseMessage
from appliance.sip.transaction import MAGIC_COOKIE
from appliance.sip.uac import (
    CallFailed,
    OutgoingCall,
    authorize,
    digestAuthorization,
    newRequest,
)
from appliance.sip.useragent import ACTIVE, CALLING, ENDED, CallError
from tests.sip.test_useragent import (
    ANSWER,
    CALLER_CONTACT,
    EDGE,
    HOLD,
    HOLD_ANSWER,
    OFFER,
    OUR_CONTACT,
    PROXY,
    Harness,
)

ME = "sip:echo@192.0.2.1"
TARGET = "sip:bob@198.51.100.20"
CALLEE = ("198.51.100.20", 5060)
BOB_CONTACT = "<sip:bob@198.51.100.20:5070>"
BOB_AT = ("198.51.100.20", 5070)
BOB_MOVED = "<sip:bob@198.51.100.21:5072>"
PROXY_AT = ("192.0.2.50", 5060)

# RFC 7616 section 3.9.1.
RFC_REALM = "http-auth@example.org"
RFC_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"

REALM = "example.test"
CREDENTIALS = ("alice", "s3cret")
_H = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def hexHash(algorithm, text):
    """
    C{H(text)} of RFC 7616 section 3.4, as lower-case hex.
    """
    return _H[algorithm](text.encode("utf-8")).hexdigest()


def expectedResponse(params, method, password, algorithm="MD5"):
    """
    The request-digest for the parsed credentials C{params}, written out
    independently (RFC 7616 section 3.4.1; RFC 2069 without qop).
    """
    ha1 = hexHash(algorithm, "%s:%s:%s" % (params["username"], params["realm"], password))
    ha2 = hexHash(algorithm, "%s:%s" % (method, params["uri"]))
    if "qop" in params:
        return hexHash(algorithm, ":".join(
            (ha1, params["nonce"], params["nc"], params["cnonce"], params["qop"], ha2)))
    return hexHash(algorithm, "%s:%s:%s" % (ha1, params["nonce"], ha2))


def challenge(algorithm="MD5", realm=REALM, nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", qop='"auth"',
              opaque=None):
    """
    A Digest challenge value.
    """
    value = 'Digest realm="%s", nonce="%s"' % (realm, nonce)
    if algorithm is not None:
        value += ", algorithm=" + algorithm
    if qop is not None:
        value += ", qop=" + qop
    if opaque is not None:
        value += ', opaque="%s"' % (opaque,)
    return value


def reply(h, sent, code, toTag=None, contact=BOB_CONTACT, recordRoutes=(), body=b"", headers=(),
          reason=None):
    """
    Receive, as from the wire, the peer's response to C{sent}: its Via,
    From, To (with C{toTag} added), Call-ID and CSeq, and for 101 to 299
    C{contact}.

    @return: the response received.
    """
    response = Response(code, reason or REASONS.get(code, "Unknown"))
    add = response.headers.add
    for value in sent.headers.getAll("Via"):
        add("Via", value)
    add("From", sent.headers.get("From"))
    to = sent.headers.get("To")
    if toTag is not None and ";tag=" not in to:
        to += ";tag=" + toTag
    add("To", to)
    add("Call-ID", sent.headers.get("Call-ID"))
    add("CSeq", sent.headers.get("CSeq"))
    for value in recordRoutes:
        add("Record-Route", value)
    if contact is not None and 100 < code < 300:
        add("Contact", contact)
    for name, value in headers:
        add(name, value)
    if body:
        add("Content-Type", "application/sdp")
        response.body = body
    received = parseMessage(response.toBytes())
    h.receive(received, source=CALLEE)
    return received


def peerRequest(h, call, method, cseq, branch, body=b"", contact=BOB_CONTACT,
                contentType="application/sdp", headers=()):
    """
    Receive a request from the callee inside the dialog of C{call}, and
    return the responses it caused.
    """
    dialog = call.dialog
    lines = [
        "%s %s SIP/2.0" % (method, "sip:echo@192.0.2.1:5060"),
        "Via: SIP/2.0/UDP 198.51.100.20:5070;branch=" + branch,
        "Max-Forwards: 70",
        "From: %s;tag=%s" % (dialog.remoteURI, dialog.remoteTag),
        "To: %s;tag=%s" % (dialog.localURI, dialog.localTag),
        "Call-ID: " + dialog.callId,
        "CSeq: %d %s" % (cseq, method),
    ]
    if contact is not None:
        lines.append("Contact: " + contact)
    lines.extend("%s: %s" % header for header in headers)
    if body:
        lines.append("Content-Type: " + contentType)
    head = "\r\n".join(lines) + "\r\nContent-Length: %d\r\n\r\n" % (len(body),)
    before = len(h.udp.sent)
    h.receive(parseMessage(head.encode("ascii") + body), source=BOB_AT)
    return [m for m in h.udp.sentMessages()[before:] if isinstance(m, Response)]


class CallerHarness(Harness):
    """
    The user agent harness of L{tests.sip.test_useragent}, placing calls.

    @ivar events: what the callbacks of the placed calls heard, in order.
    """

    def place(self, target=TARGET, body=OFFER, **kwargs):
        """
        Place a call to C{target} and record its callbacks in C{events}.

        @return: the L{OutgoingCall} and the INVITE sent.
        """
        call = self.agent.invite(target, ME, body, **kwargs)
        call.onProgress = lambda response: self.events.append(("progress", response.code))
        call.onAnswered = lambda: self.events.append("answered")
        call.onEnded = lambda reason: self.events.append(("ended", reason))
        return call, self.requests("INVITE")[-1][0]

    def answered(self, recordRoutes=()):
        """
        Place a call the callee answers with 200 and a To tag C{b1}.

        @return: the L{OutgoingCall}, answered and acknowledged.
        """
        call, invite = self.place()
        reply(self, invite, 200, toTag="b1", recordRoutes=recordRoutes, body=ANSWER)
        return call

    def sentAfter(self, index, method):
        """
        The C{(request, destination)} pairs of C{method} sent since
        C{self.udp.sent[index]}.
        """
        return [(m, a) for m, a in self.udp.sent[index:] if isinstance(m, Request) and m.method == method]


class DigestAuthorizationTests(SynchronousTestCase):
    """
    L{digestAuthorization}: the credentials for one challenge (RFC 7616
    section 3.4).
    """

    def rfcChallenge(self, algorithm):
        return ('Digest realm="%s", qop="auth, auth-int", algorithm=%s, nonce="%s", opaque="%s"'
                % (RFC_REALM, algorithm, RFC_NONCE, RFC_OPAQUE))

    def answer(self, value):
        scheme, params = parseCredentials(value)
        self.assertEqual(scheme, "digest")
        return params

    def test_rfc7616MD5(self):
        """
        The MD5 example of RFC 7616 section 3.9.1 gives its response, with
        qop=auth, nc=00000001, the cnonce and the opaque echoed.
        """
        params = self.answer(digestAuthorization(
            self.rfcChallenge("MD5"), "GET", "/dir/index.html", "Mufasa", "Circle of Life",
            cnonce=RFC_CNONCE))
        self.assertEqual(params, {
            "username": "Mufasa", "realm": RFC_REALM, "nonce": RFC_NONCE, "uri": "/dir/index.html",
            "response": "8ca523f5e9506fed4657c9700eebdbec", "algorithm": "MD5", "cnonce": RFC_CNONCE,
            "qop": "auth", "nc": "00000001", "opaque": RFC_OPAQUE,
        })

    def test_rfc7616SHA256(self):
        """
        The SHA-256 example of RFC 7616 section 3.9.1 gives its response.
        """
        params = self.answer(digestAuthorization(
            self.rfcChallenge("SHA-256"), "GET", "/dir/index.html", "Mufasa", "Circle of Life",
            cnonce=RFC_CNONCE))
        self.assertEqual(
            params["response"], "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")
        self.assertEqual((params["algorithm"], params["qop"], params["opaque"]),
                         ("SHA-256", "auth", RFC_OPAQUE))

    def test_qopAuthIndependent(self):
        """
        For a SIP challenge with qop=auth the response is the RFC 7616
        digest of the method and Request-URI, for both algorithms.
        """
        for algorithm in ("MD5", "SHA-256"):
            params = self.answer(digestAuthorization(
                challenge(algorithm), "INVITE", "sip:bob@example.test", "alice", "s3cret",
                cnonce="0a4f113b"))
            self.assertEqual(params["response"],
                             expectedResponse(params, "INVITE", "s3cret", algorithm), algorithm)
            self.assertEqual((params["qop"], params["nc"], params["cnonce"]),
                             ("auth", "00000001", "0a4f113b"))

    def test_noQop(self):
        """
        Without qop the response is the RFC 2069 digest, and no qop, nc
        or cnonce is sent, for both algorithms.
        """
        for algorithm in ("MD5", "SHA-256"):
            params = self.answer(digestAuthorization(
                challenge(algorithm, qop=None), "REGISTER", "sip:example.test", "alice", "s3cret"))
            self.assertEqual(params["response"],
                             hexHash(algorithm, "%s:%s:%s" % (
                                 hexHash(algorithm, "alice:%s:s3cret" % (REALM,)),
                                 params["nonce"],
                                 hexHash(algorithm, "REGISTER:sip:example.test"))), algorithm)
            self.assertEqual(params["algorithm"], algorithm)
            for name in ("qop", "nc", "cnonce", "opaque"):
                self.assertNotIn(name, params)

    def test_defaultAlgorithm(self):
        """
        A challenge without an algorithm is answered with MD5 (RFC 7616
        section 3.3).
        """
        params = self.answer(digestAuthorization(
            challenge(None), "INVITE", "sip:bob@example.test", "alice", "s3cret"))
        self.assertEqual(params["algorithm"], "MD5")
        self.assertEqual(params["response"], expectedResponse(params, "INVITE", "s3cret"))

    def test_opaqueEchoed(self):
        """
        The challenge's opaque comes back unchanged.
        """
        params = self.answer(digestAuthorization(
            challenge(opaque="5ccc069c403ebaf9f0171e9517f40e41"), "INVITE", "sip:b@x", "a", "p"))
        self.assertEqual(params["opaque"], "5ccc069c403ebaf9f0171e9517f40e41")

    def test_cnonceAndCount(self):
        """
        Without a given cnonce a random one is made for each answer, and
        the nonce count is 8 hex digits.
        """
        first = self.answer(digestAuthorization(challenge(), "INVITE", "sip:b@x", "a", "p", nc=26))
        second = self.answer(digestAuthorization(challenge(), "INVITE", "sip:b@x", "a", "p"))
        self.assertNotEqual(first["cnonce"], second["cnonce"])
        self.assertEqual(first["nc"], "0000001a")
        self.assertEqual(first["response"], expectedResponse(first, "INVITE", "p"))

    def test_quotedValues(self):
        """
        Quotes and backslashes in the username and realm are escaped, and
        the digest uses the unescaped values.
        """
        params = self.answer(digestAuthorization(
            'Digest realm="a \\"b\\" c", nonce="n", qop="auth"', "INVITE", "sip:b@x", 'al"i\\ce', "p"))
        self.assertEqual((params["username"], params["realm"]), ('al"i\\ce', 'a "b" c'))
        self.assertEqual(params["response"], expectedResponse(params, "INVITE", "p"))

    def test_unmeetable(self):
        """
        Another scheme, an unknown or session algorithm, auth-int alone, a
        missing nonce or realm, or a malformed value give C{None}.
        """
        for value in [
            'Basic realm="example.test"',
            challenge("SHA-512-256"),
            challenge("MD5-sess"),
            challenge("SHA-256-sess"),
            challenge(qop='"auth-int"'),
            'Digest realm="example.test", qop="auth"',
            'Digest nonce="abc", qop="auth"',
            "Digest",
        ]:
            self.assertIsNone(
                digestAuthorization(value, "INVITE", "sip:b@x", "a", "p"), value)

    def test_acceptedByServer(self):
        """
        The answers to the appliance's own challenges (SHA-256 first, then
        MD5) are accepted by L{DigestAuthenticator}.
        """
        users = types.SimpleNamespace(digestHash=lambda username, realm, algorithm: succeed(
            hexHash(algorithm, "%s:%s:s3cret" % (username, realm))))
        server = DigestAuthenticator(users, types.SimpleNamespace(seconds=lambda: 1000.0), b"k" * 32)
        invite = newRequest("INVITE", TARGET, ME, TARGET, OUR_CONTACT)
        first = self.successResultOf(server.authenticate(invite, REALM, CALLEE))
        response = Response(401, "Unauthorized")
        for name, value in first.headers:
            response.headers.add(name, value)
        retry = authorize(invite, response, CREDENTIALS)
        self.assertEqual(parseCredentials(retry.headers.get("Authorization"))[1]["algorithm"], "SHA-256")
        result = self.successResultOf(server.authenticate(retry, REALM, CALLEE))
        self.assertEqual((result.user, result.reason), ("alice@example.test", "ok"))


class AuthorizeTests(SynchronousTestCase):
    """
    L{authorize}: a request again with credentials (RFC 3261 section 22.2).
    """

    def setUp(self):
        self.request = newRequest("INVITE", TARGET, ME, TARGET, OUR_CONTACT, body=OFFER)

    def challenged(self, code, *values):
        name = "WWW-Authenticate" if code == 401 else "Proxy-Authenticate"
        response = Response(code, REASONS[code])
        for value in values:
            response.headers.add(name, value)
        return response

    def test_www(self):
        """
        A 401 is answered with Authorization, the next CSeq, a new branch,
        and every other header and the body as they were; the original
        request is left alone.
        """
        before = self.request.toBytes()
        retry = authorize(self.request, self.challenged(401, challenge()), CREDENTIALS)
        self.assertEqual(self.request.toBytes(), before)
        [value] = retry.headers.getAll("Authorization")
        params = parseCredentials(value)[1]
        self.assertEqual(params["response"], expectedResponse(params, "INVITE", "s3cret"))
        self.assertEqual((params["username"], params["uri"]), ("alice", TARGET))
        self.assertEqual(retry.headers.getAll("Proxy-Authorization"), [])
        self.assertEqual(retry.cseq(), (2, "INVITE"))
        self.assertNotEqual(retry.topVia.branch, self.request.topVia.branch)
        self.assertTrue(retry.topVia.branch.startswith(MAGIC_COOKIE))
        for name in ("From", "To", "Call-ID", "Contact", "Max-Forwards", "Content-Type"):
            self.assertEqual(retry.headers.getAll(name), self.request.headers.getAll(name), name)
        self.assertEqual((retry.method, retry.uri, retry.body), ("INVITE", self.request.uri, OFFER))

    def test_proxy(self):
        """
        A 407 is answered with Proxy-Authorization, not Authorization.
        """
        retry = authorize(self.request, self.challenged(407, challenge("SHA-256")), CREDENTIALS)
        [value] = retry.headers.getAll("Proxy-Authorization")
        params = parseCredentials(value)[1]
        self.assertEqual(params["response"], expectedResponse(params, "INVITE", "s3cret", "SHA-256"))
        self.assertEqual(retry.headers.getAll("Authorization"), [])

    def test_firstChallengePerRealm(self):
        """
        Of several challenges for one realm, the first (the server's
        preference, RFC 8760 section 2.4) is answered, and only it.
        """
        for first, second in [("SHA-256", "MD5"), ("MD5", "SHA-256")]:
            retry = authorize(self.request, self.challenged(401, challenge(first), challenge(second)),
                              CREDENTIALS)
            [value] = retry.headers.getAll("Authorization")
            self.assertEqual(parseCredentials(value)[1]["algorithm"], first)

    def test_skipsUnmeetable(self):
        """
        A challenge we cannot meet does not take its realm's place: the
        next one for that realm is answered.
        """
        retry = authorize(self.request, self.challenged(
            401, challenge("SHA-512-256"), challenge("MD5")), CREDENTIALS)
        [value] = retry.headers.getAll("Authorization")
        self.assertEqual(parseCredentials(value)[1]["algorithm"], "MD5")

    def test_oneAnswerPerRealm(self):
        """
        Challenges from two realms (two proxies) get one answer each.
        """
        retry = authorize(self.request, self.challenged(
            407, challenge(realm="a.test"), challenge("SHA-256", realm="b.test"),
            challenge("MD5", realm="b.test")), CREDENTIALS)
        answers = [parseCredentials(v)[1] for v in retry.headers.getAll("Proxy-Authorization")]
        self.assertEqual([(p["realm"], p["algorithm"]) for p in answers],
                         [("a.test", "MD5"), ("b.test", "SHA-256")])

    def test_replacesOldCredentials(self):
        """
        Credentials the request carried already are replaced, not added to.
        """
        self.request.headers.add("Authorization", 'Digest username="old"')
        retry = authorize(self.request, self.challenged(401, challenge()), CREDENTIALS)
        [value] = retry.headers.getAll("Authorization")
        self.assertEqual(parseCredentials(value)[1]["username"], "alice")

    def test_nothingToAnswer(self):
        """
        Without a challenge that can be met there is no retry.
        """
        self.assertIsNone(authorize(self.request, self.challenged(401), CREDENTIALS))
        self.assertIsNone(authorize(self.request, self.challenged(401, 'Basic realm="x"'), CREDENTIALS))
        self.assertIsNone(authorize(
            self.request, self.challenged(407, challenge("SHA-512-256")), CREDENTIALS))

    def test_inDialogSequence(self):
        """
        Inside a dialog the retry takes the dialog's next CSeq, which the
        dialog counts.
        """
        call = types.SimpleNamespace(dialog=types.SimpleNamespace(localSeq=7))
        request = newRequest("BYE", TARGET, ME, TARGET, None, cseq=7)
        retry = authorize(request, self.challenged(401, challenge()), CREDENTIALS, call)
        self.assertEqual(retry.cseq(), (8, "BYE"))
        self.assertEqual(call.dialog.localSeq, 8)


class NewRequestTests(SynchronousTestCase):
    """
    L{newRequest}: a request outside any dialog (RFC 3261 section 8.1.1).
    """

    def test_fields(self):
        """
        The request has a placeholder Via with a new branch, Max-Forwards
        70, From with a tag, To without, a Call-ID, the CSeq, the Contact,
        the route as Route, extra headers and the body with its type.
        """
        request = newRequest("INVITE", TARGET, ME, TARGET, OUR_CONTACT, route="sip:192.0.2.50;lr",
                             body=OFFER, headers=[("Subject", "hello")])
        self.assertEqual((request.method, request.uri), ("INVITE", URI.parse(TARGET)))
        via = request.topVia
        self.assertEqual((via.transport, via.host), ("UDP", "0.0.0.0"))
        self.assertTrue(via.branch.startswith(MAGIC_COOKIE))
        self.assertEqual(request.maxForwards(), 70)
        self.assertIsNotNone(request.fromAddress().tag)
        self.assertEqual(request.fromAddress().uri, URI.parse(ME))
        self.assertIsNone(request.toAddress().tag)
        self.assertTrue(request.callId.endswith("@198.51.100.20"))
        self.assertEqual(request.cseq(), (1, "INVITE"))
        self.assertEqual(request.headers.getAll("Contact"), [OUR_CONTACT])
        self.assertEqual(request.headers.getAll("Route"), ["<sip:192.0.2.50;lr>"])
        self.assertEqual(request.headers.get("Subject"), "hello")
        self.assertEqual((request.headers.get("Content-Type"), request.body), ("application/sdp", OFFER))

    def test_given(self):
        """
        A given Call-ID, CSeq number, From tag and content type are used;
        without a body there is no Content-Type, without a contact no
        Contact.
        """
        request = newRequest("MESSAGE", URI.parse(TARGET), ME, TARGET, None, callId="c@x", cseq=9,
                             fromTag="ft")
        self.assertEqual((request.callId, request.cseq(), request.fromAddress().tag),
                         ("c@x", (9, "MESSAGE"), "ft"))
        self.assertNotIn("Content-Type", request.headers)
        self.assertNotIn("Contact", request.headers)
        self.assertNotIn("Route", request.headers)
        typed = newRequest("MESSAGE", TARGET, ME, TARGET, None, body=b"hi", contentType="text/plain")
        self.assertEqual(typed.headers.get("Content-Type"), "text/plain")

    def test_unique(self):
        """
        Two requests get different branches, From tags and Call-IDs.
        """
        a = newRequest("INVITE", TARGET, ME, TARGET, None)
        b = newRequest("INVITE", TARGET, ME, TARGET, None)
        self.assertNotEqual(a.topVia.branch, b.topVia.branch)
        self.assertNotEqual(a.fromAddress().tag, b.fromAddress().tag)
        self.assertNotEqual(a.callId, b.callId)


class OutgoingCallTests(SynchronousTestCase):
    """
    Calls we place (RFC 3261 section 13.2): provisional responses, early
    dialogs, the 2xx and its ACK, failures.
    """

    def setUp(self):
        self.h = CallerHarness(self)

    def test_invite(self):
        """
        Placing a call sends an INVITE with our Contact and the offer to
        the target's address, and counts it; the call is calling.
        """
        call, invite = self.h.place()
        [(sent, destination)] = self.h.requests("INVITE")
        self.assertIsInstance(call, OutgoingCall)
        self.assertEqual(destination, CALLEE)
        self.assertEqual(invite.uri, URI.parse(TARGET))
        self.assertEqual(invite.headers.get("Contact"), OUR_CONTACT)
        self.assertEqual((invite.body, invite.headers.get("Content-Type")), (OFFER, "application/sdp"))
        self.assertEqual(invite.cseq(), (1, "INVITE"))
        self.assertEqual(call.callId, invite.callId)
        self.assertIs(call.request, invite)
        self.assertEqual(call.state, CALLING)
        self.assertEqual(self.h.stats.get("calls.outgoing"), 1)
        self.assertNoResult(call.result)
        reply(self.h, invite, 486, toTag="b1")
        self.failureResultOf(call.result, CallFailed)
        self.h.finish()

    def test_route(self):
        """
        With a route, the INVITE carries it as Route and goes to it.
        """
        call, invite = self.h.place(route="sip:192.0.2.50;lr")
        [(_, destination)] = self.h.requests("INVITE")
        self.assertEqual(destination, PROXY_AT)
        self.assertEqual(invite.headers.getAll("Route"), ["<sip:192.0.2.50;lr>"])
        self.assertEqual(invite.uri, URI.parse(TARGET))
        reply(self.h, invite, 486, toTag="b1")
        self.failureResultOf(call.result, CallFailed)
        self.h.finish()

    def test_provisional(self):
        """
        Provisional responses reach C{onProgress}; one with a To tag and a
        Contact makes an early dialog, and the call is still calling.
        """
        call, invite = self.h.place()
        reply(self.h, invite, 100)
        self.assertIsNone(call.dialog)
        reply(self.h, invite, 180, toTag="b1")
        self.assertEqual(self.h.events, [("progress", 100), ("progress", 180)])
        self.assertEqual(call.dialog.state, EARLY)
        self.assertEqual(call.dialog.remoteTag, "b1")
        self.assertEqual(call.dialog.localTag, invite.fromAddress().tag)
        self.assertEqual(call.state, CALLING)
        self.assertEqual(self.h.agent.calls, [call])
        self.assertNoResult(call.result)
        reply(self.h, invite, 486, toTag="b1")
        self.failureResultOf(call.result, CallFailed)
        self.assertEqual(self.h.agent.calls, [])
        self.h.finish()

    def test_answered(self):
        """
        A 2xx confirms the dialog, the call becomes active with the peer's
        answer, C{result} fires with the call and C{onAnswered} is told.
        """
        call, invite = self.h.place()
        reply(self.h, invite, 200, toTag="b1", body=ANSWER)
        self.assertIs(self.successResultOf(call.result), call)
        self.assertEqual(call.state, ACTIVE)
        self.assertEqual(call.dialog.state, CONFIRMED)
        self.assertEqual((call.answerBody, call.remoteBody), (OFFER, ANSWER))
        self.assertEqual(self.h.events, ["answered"])
        self.assertEqual(self.h.agent.calls, [call])
        self.h.finish()

    def test_ack(self):
        """
        The ACK for a 2xx has the INVITE's CSeq number with method ACK, a
        new branch, the tags and Call-ID of the dialog, the route set from
        the 2xx's Record-Route reversed, and goes to the first route.
        """
        call, invite = self.h.place()
        reply(self.h, invite, 200, toTag="b1", recordRoutes=[EDGE, PROXY], body=ANSWER)
        [(ack, destination)] = self.h.requests("ACK")
        self.assertEqual(ack.cseq(), (1, "ACK"))
        self.assertNotEqual(ack.topVia.branch, invite.topVia.branch)
        self.assertTrue(ack.topVia.branch.startswith(MAGIC_COOKIE))
        self.assertEqual(ack.headers.getAll("Route"), [PROXY, EDGE])
        self.assertEqual(ack.uri, URI.parse("sip:bob@198.51.100.20:5070"))
        self.assertEqual(destination, PROXY_AT)
        self.assertEqual((ack.fromAddress().tag, ack.toAddress().tag),
                         (invite.fromAddress().tag, "b1"))
        self.assertEqual(ack.callId, invite.callId)
        self.assertEqual(ack.body, b"")
        self.h.finish()

    def test_ackOutsideTransactions(self):
        """
        The ACK goes straight to the transport: it starts no transaction
        and is never retransmitted on a timer.
        """
        call, invite = self.h.place()
        reply(self.h, invite, 200, toTag="b1", body=ANSWER)
        self.assertEqual(self.h.layer.activeTransactions, 1)
        self.h.clock.advance(10)
        self.assertEqual(len(self.h.requests("ACK")), 1)
        self.h.finish()

    def test_okRetransmitted(self):
        """
        A retransmitted 2xx, while the INVITE transaction still passes
        them up, gets the same ACK again.
        """
        call, invite = self.h.place()
        ok = reply(self.h, invite, 200, toTag="b1", recordRoutes=[PROXY], body=ANSWER)
        self.h.clock.advance(1)
        self.h.receive(ok)
        first, again = self.h.requests("ACK")
        self.assertEqual(again[0].toBytes(), first[0].toBytes())
        self.assertEqual(again[1], first[1])
        self.assertEqual(self.h.events, ["answered"])
        self.h.finish()

    def test_okRetransmittedAfterTransaction(self):
        """
        A 2xx retransmitted after the INVITE transaction ended (a stray
        response) gets the same ACK again.
        """
        call, invite = self.h.place()
        ok = reply(self.h, invite, 200, toTag="b1", body=ANSWER)
        self.h.clock.advance(64 * self.h.timers.T1)
        self.assertEqual(self.h.layer.activeTransactions, 0)
        self.h.receive(ok)
        first, again = self.h.requests("ACK")
        self.assertEqual(again[0].toBytes(), first[0].toBytes())
        self.assertEqual(again[1], BOB_AT)
        self.h.finish()

    def test_earlyDialogConfirmed(self):
        """
        A 2xx with the To tag of the early dialog confirms that dialog with
        the 2xx's route set and Contact (RFC 3261 section 12.1.2).
        """
        call, invite = self.h.place()
        reply(self.h, invite, 180, toTag="b1", recordRoutes=[EDGE], contact=BOB_MOVED)
        early = call.dialog
        reply(self.h, invite, 200, toTag="b1", recordRoutes=[EDGE, PROXY], body=ANSWER)
        self.assertIs(call.dialog, early)
        self.assertEqual(call.dialog.routeSet, [PROXY, EDGE])
        self.assertEqual(call.dialog.remoteTarget, URI.parse("sip:bob@198.51.100.20:5070"))
        [(ack, destination)] = self.h.requests("ACK")
        self.assertEqual(ack.headers.getAll("Route"), [PROXY, EDGE])
        self.assertEqual(destination, PROXY_AT)
        self.h.finish()

    def test_earlyDialogReplaced(self):
        """
        A 2xx from another fork than the 180 replaces the early dialog with
        its own, which alone is known to the user agent.
        """
        call, invite = self.h.place()
        reply(self.h, invite, 180, toTag="b1", recordRoutes=[EDGE], contact=BOB_MOVED)
        reply(self.h, invite, 200, toTag="b2", body=ANSWER)
        self.assertEqual(call.dialog.remoteTag, "b2")
        self.assertEqual(call.dialog.routeSet, [])
        self.assertEqual(call.dialog.state, CONFIRMED)
        self.assertEqual(self.h.agent.calls, [call])
        [(ack, destination)] = self.h.requests("ACK")
        self.assertEqual((ack.toAddress().tag, destination), ("b2", BOB_AT))
        self.assertEqual(ack.headers.getAll("Route"), [])
        self.assertIs(self.successResultOf(call.result), call)
        self.h.finish()

    def test_secondFork(self):
        """
        A 2xx from a second fork is acknowledged and ended with a BYE on
        its own dialog (RFC 3261 section 13.2.2.4); the call stays with
        the first.
        """
        call, invite = self.h.place()
        reply(self.h, invite, 200, toTag="b1", body=ANSWER)
        reply(self.h, invite, 200, toTag="b2", contact=BOB_MOVED, body=ANSWER)
        acks = self.h.requests("ACK")
        self.assertEqual([a.toAddress().tag for a, _ in acks], ["b1", "b2"])
        self.assertEqual(acks[1][0].cseq(), (1, "ACK"))
        self.assertEqual(acks[1][1], ("198.51.100.21", 5072))
        [(bye, destination)] = self.h.requests("BYE")
        self.assertEqual((bye.toAddress().tag, destination), ("b2", ("198.51.100.21", 5072)))
        self.assertEqual(bye.callId, invite.callId)
        reply(self.h, bye, 200)
        self.assertEqual((call.state, call.dialog.remoteTag), (ACTIVE, "b1"))
        self.assertEqual(self.h.events, ["answered"])
        self.h.finish()

    def test_unusableOk(self):
        """
        A 2xx that cannot make a dialog (no Contact) does not leave the
        call calling forever: C{result} fails with L{CallFailed}.
        """
        call, invite = self.h.place()
        reply(self.h, invite, 200, toTag="b1", contact=None, body=ANSWER)
        self.failureResultOf(call.result, CallFailed)
        self.assertEqual(call.state, ENDED)
        self.h.finish()

    def test_rejected(self):
        """
        A 4xx or 6xx final response fails C{result} with L{CallFailed}
        carrying its code and reason and ends the call with
        C{"rejected"}; a 5xx ends it with C{"failed"}.
        """
        for code, reason in [(486, "rejected"), (603, "rejected"), (503, "failed")]:
            self.h.events[:] = []
            call, invite = self.h.place()
            reply(self.h, invite, code, toTag="b1")
            failure = self.failureResultOf(call.result, CallFailed)
            self.assertEqual((failure.value.code, failure.value.reason), (code, REASONS[code]))
            self.assertEqual(call.state, ENDED)
            self.assertEqual(self.h.events, [("ended", reason)])
        [ack] = [a for a, _ in self.h.requests("ACK") if a.callId == invite.callId]
        self.assertEqual(ack.topVia.branch, invite.topVia.branch)
        self.h.finish()

    def test_rejectedAfterEarlyDialog(self):
        """
        A final failure after an early dialog terminates and forgets it.
        """
        call, invite = self.h.place()
        reply(self.h, invite, 180, toTag="b1")
        early = call.dialog
        reply(self.h, invite, 480, toTag="b1")
        self.assertEqual(self.failureResultOf(call.result, CallFailed).value.code, 480)
        self.assertEqual(early.state, "terminated")
        self.assertEqual(self.h.agent.calls, [])
        self.assertEqual(self.h.events, [("progress", 180), ("ended", "rejected")])
        self.h.finish()

    def test_timeout(self):
        """
        Without any response the call fails with a local 408 after timer
        B (64*T1).
        """
        call, invite = self.h.place()
        self.h.clock.advance(64 * self.h.timers.T1 - 0.1)
        self.assertNoResult(call.result)
        self.h.clock.advance(0.1)
        self.assertEqual(self.failureResultOf(call.result, CallFailed).value.code, 408)
        self.assertEqual(call.state, ENDED)
        self.h.finish()

    def test_noRoute(self):
        """
        A target that resolves to nothing fails the call with 503.
        """
        self.h.agent._resolve = lambda uri: succeed([])
        call = self.h.agent.invite(TARGET, ME, OFFER)
        self.assertEqual(self.failureResultOf(call.result, CallFailed).value.code, 503)
        self.h.finish()

    def test_hangup(self):
        """
        Hanging up an answered call sends a BYE along the dialog, ends it
        with C{"hangup"}, and fires with the BYE's response.
        """
        call = self.h.answered(recordRoutes=[PROXY])
        d = call.hangup()
        [(bye, destination)] = self.h.requests("BYE")
        self.assertEqual(destination, PROXY_AT)
        self.assertEqual(bye.cseq(), (2, "BYE"))
        self.assertEqual(bye.uri, URI.parse("sip:bob@198.51.100.20:5070"))
        self.assertEqual(bye.toAddress().tag, "b1")
        self.assertEqual(call.state, ENDED)
        self.assertEqual(self.h.events, ["answered", ("ended", "hangup")])
        self.assertEqual(self.h.agent.calls, [])
        reply(self.h, bye, 200)
        self.assertEqual(self.successResultOf(d).code, 200)
        self.h.finish()

    def test_peerBye(self):
        """
        A BYE from the callee is answered 200 and ends the call with
        C{"bye"}.
        """
        call = self.h.answered()
        [ok] = peerRequest(self.h, call, "BYE", 1, "z9hG4bKbye1", contact=None)
        self.assertEqual(ok.code, 200)
        self.assertEqual(self.h.events, ["answered", ("ended", "bye")])
        self.h.finish()


class ChallengeTests(SynchronousTestCase):
    """
    401 and 407 to an INVITE, answered once with credentials (RFC 3261
    section 22.2).
    """

    def setUp(self):
        self.h = CallerHarness(self)

    def test_www(self):
        """
        A 401 is acknowledged and the INVITE sent again with Authorization,
        CSeq 2, a new branch and the same Call-ID and From tag; its 2xx is
        acknowledged with CSeq 2.
        """
        call, invite = self.h.place(credentials=CREDENTIALS)
        reply(self.h, invite, 401, toTag="s1", headers=[("WWW-Authenticate", challenge())])
        [ack401] = [a for a, _ in self.h.requests("ACK")]
        self.assertEqual(ack401.topVia.branch, invite.topVia.branch)
        first, retry = [r for r, _ in self.h.requests("INVITE")]
        self.assertIs(retry, call.request)
        self.assertEqual(retry.cseq(), (2, "INVITE"))
        self.assertNotEqual(retry.topVia.branch, invite.topVia.branch)
        self.assertEqual((retry.callId, retry.fromAddress().tag), (invite.callId, invite.fromAddress().tag))
        self.assertIsNone(retry.toAddress().tag)
        params = parseCredentials(retry.headers.get("Authorization"))[1]
        self.assertEqual(params["response"], expectedResponse(params, "INVITE", "s3cret"))
        self.assertEqual(params["uri"], TARGET)
        self.assertNoResult(call.result)
        reply(self.h, retry, 200, toTag="b1", body=ANSWER)
        self.assertIs(self.successResultOf(call.result), call)
        self.assertEqual(self.h.requests("ACK")[-1][0].cseq(), (2, "ACK"))
        self.h.finish()

    def test_proxy(self):
        """
        A 407 is answered with Proxy-Authorization.
        """
        call, invite = self.h.place(credentials=CREDENTIALS)
        reply(self.h, invite, 407, toTag="s1", headers=[("Proxy-Authenticate", challenge("SHA-256"))])
        retry = call.request
        params = parseCredentials(retry.headers.get("Proxy-Authorization"))[1]
        self.assertEqual(params["response"], expectedResponse(params, "INVITE", "s3cret", "SHA-256"))
        self.assertNotIn("Authorization", retry.headers)
        reply(self.h, retry, 486, toTag="b1")
        self.assertEqual(self.failureResultOf(call.result, CallFailed).value.code, 486)
        self.h.finish()

    def test_once(self):
        """
        A second challenge fails the call with its code: credentials are
        tried once.
        """
        call, invite = self.h.place(credentials=CREDENTIALS)
        reply(self.h, invite, 401, toTag="s1", headers=[("WWW-Authenticate", challenge())])
        reply(self.h, call.request, 401, toTag="s2", headers=[("WWW-Authenticate", challenge())])
        self.assertEqual(self.failureResultOf(call.result, CallFailed).value.code, 401)
        self.assertEqual(len(self.h.requests("INVITE")), 2)
        self.h.finish()

    def test_withoutCredentials(self):
        """
        Without credentials a challenge fails the call at once.
        """
        call, invite = self.h.place()
        reply(self.h, invite, 407, toTag="s1", headers=[("Proxy-Authenticate", challenge())])
        self.assertEqual(self.failureResultOf(call.result, CallFailed).value.code, 407)
        self.assertEqual(len(self.h.requests("INVITE")), 1)
        self.h.finish()

    def test_unmeetable(self):
        """
        A challenge that cannot be met fails the call with its code.
        """
        call, invite = self.h.place(credentials=CREDENTIALS)
        reply(self.h, invite, 401, toTag="s1",
              headers=[("WWW-Authenticate", challenge("SHA-512-256"))])
        self.assertEqual(self.failureResultOf(call.result, CallFailed).value.code, 401)
        self.assertEqual(len(self.h.requests("INVITE")), 1)
        self.h.finish()

    def test_cancelAfterChallenge(self):
        """
        A provisional response to the challenged INVITE does not allow a
        CANCEL of its retry: the CANCEL waits for the retry's own
        provisional response (RFC 3261 section 9.1).
        """
        call, invite = self.h.place(credentials=CREDENTIALS)
        reply(self.h, invite, 100)
        reply(self.h, invite, 407, toTag="s1", headers=[("Proxy-Authenticate", challenge())])
        retry = call.request
        call.cancel()
        self.assertEqual(self.h.requests("CANCEL"), [])
        reply(self.h, retry, 100)
        [(cancel, _)] = self.h.requests("CANCEL")
        self.assertEqual(cancel.topVia.branch, retry.topVia.branch)
        reply(self.h, cancel, 200, contact=None)
        reply(self.h, retry, 487, toTag="b1")
        self.assertEqual(self.failureResultOf(call.result, CallFailed).value.code, 487)
        self.h.finish()


class CancelTests(SynchronousTestCase):
    """
    Giving up a call before its answer (RFC 3261 section 9.1).
    """

    def setUp(self):
        self.h = CallerHarness(self)

    def assertCancels(self, cancel, invite):
        """
        C{cancel} is the CANCEL of C{invite}: same Request-URI, branch,
        Call-ID, From, To, Route and CSeq number.
        """
        self.assertEqual(cancel.uri, invite.uri)
        self.assertEqual(cancel.topVia.branch, invite.topVia.branch)
        self.assertEqual(cancel.cseq(), (invite.cseq()[0], "CANCEL"))
        for name in ("Call-ID", "From", "To", "Route"):
            self.assertEqual(cancel.headers.getAll(name), invite.headers.getAll(name), name)

    def test_beforeProvisional(self):
        """
        Cancelling before any provisional response sends nothing; the
        first provisional response (even 100) sends the CANCEL, and the
        487 fails the call.
        """
        call, invite = self.h.place(route="sip:192.0.2.50;lr")
        call.cancel()
        self.h.clock.advance(1)
        self.assertEqual(self.h.requests("CANCEL"), [])
        self.assertEqual(call.state, CALLING)
        reply(self.h, invite, 100)
        [(cancel, destination)] = self.h.requests("CANCEL")
        self.assertCancels(cancel, invite)
        self.assertEqual(destination, PROXY_AT)
        reply(self.h, cancel, 200, contact=None)
        reply(self.h, invite, 487, toTag="b1")
        failure = self.failureResultOf(call.result, CallFailed)
        self.assertEqual(failure.value.code, 487)
        self.assertEqual(call.state, ENDED)
        self.assertEqual(self.h.events, [("progress", 100), ("ended", "rejected")])
        self.h.finish()

    def test_afterProvisional(self):
        """
        Cancelling after a provisional response sends the CANCEL at once.
        """
        call, invite = self.h.place()
        reply(self.h, invite, 180, toTag="b1")
        call.cancel()
        [(cancel, destination)] = self.h.requests("CANCEL")
        self.assertCancels(cancel, invite)
        self.assertEqual(destination, CALLEE)
        reply(self.h, cancel, 200, contact=None)
        reply(self.h, invite, 487, toTag="b1")
        self.assertEqual(self.failureResultOf(call.result, CallFailed).value.code, 487)
        self.assertEqual(self.h.agent.calls, [])
        self.h.finish()

    def test_once(self):
        """
        Cancelling twice, or provisional responses after the CANCEL, send
        no second CANCEL.
        """
        call, invite = self.h.place()
        reply(self.h, invite, 100)
        call.cancel()
        call.cancel()
        reply(self.h, invite, 180, toTag="b1")
        self.assertEqual(len(self.h.requests("CANCEL")), 1)
        reply(self.h, invite, 487, toTag="b1")
        self.failureResultOf(call.result, CallFailed)
        self.h.finish()

    def test_neverAnswered(self):
        """
        A call cancelled before any response, that never gets one, fails
        with a local 408 and no CANCEL is ever sent.
        """
        call, invite = self.h.place()
        call.cancel()
        self.h.clock.advance(64 * self.h.timers.T1)
        self.assertEqual(self.failureResultOf(call.result, CallFailed).value.code, 408)
        self.assertEqual(self.h.requests("CANCEL"), [])
        self.h.finish()

    def test_hangupWhileCalling(self):
        """
        Hanging up an unanswered call cancels it and returns C{result}.
        """
        call, invite = self.h.place()
        reply(self.h, invite, 180, toTag="b1")
        self.assertIs(call.hangup(), call.result)
        self.assertEqual(len(self.h.requests("CANCEL")), 1)
        reply(self.h, invite, 487, toTag="b1")
        self.failureResultOf(call.result, CallFailed)
        self.h.finish()

    def test_cancelAnsweredDoesNothing(self):
        """
        Cancelling an answered call sends nothing.
        """
        call = self.h.answered()
        call.cancel()
        self.assertEqual(self.h.requests("CANCEL"), [])
        self.assertEqual(call.state, ACTIVE)
        self.h.finish()

    def test_okCrossesCancel(self):
        """
        A 2xx that crosses the CANCEL is acknowledged and the call ended
        with a BYE, without C{onAnswered}.
        """
        call, invite = self.h.place()
        call.result.addErrback(lambda failure: failure.trap(CallFailed))
        reply(self.h, invite, 180, toTag="b1")
        call.cancel()
        [(cancel, _)] = self.h.requests("CANCEL")
        reply(self.h, cancel, 200, contact=None)
        reply(self.h, invite, 200, toTag="b1", body=ANSWER)
        [(ack, _)] = self.h.requests("ACK")
        self.assertEqual((ack.cseq(), ack.toAddress().tag), ((1, "ACK"), "b1"))
        [(bye, destination)] = self.h.requests("BYE")
        self.assertEqual((bye.cseq(), bye.toAddress().tag, destination), ((2, "BYE"), "b1", BOB_AT))
        self.assertEqual(call.state, ENDED)
        self.assertNotIn("answered", self.h.events)
        reply(self.h, bye, 200)
        self.h.finish()

    def test_okCrossesCancelFailsResult(self):
        """
        When a 2xx crosses the CANCEL, C{result} (which C{hangup} of an
        unanswered call returns) still fires: it fails with L{CallFailed}.
        """
        call, invite = self.h.place()
        reply(self.h, invite, 180, toTag="b1")
        d = call.hangup()
        reply(self.h, invite, 200, toTag="b1", body=ANSWER)
        reply(self.h, self.h.requests("BYE")[0][0], 200)
        self.failureResultOf(d, CallFailed)
        self.h.finish()


class StopTests(SynchronousTestCase):
    """
    L{appliance.sip.useragent.UserAgent.stop} and the calls we placed.
    """

    def setUp(self):
        self.h = CallerHarness(self)

    def stop(self):
        self.h.agent.stop()
        self.h.layer.stop()
        self.assertEqual(self.h.clock.getDelayedCalls(), [])

    def test_answered(self):
        """
        Stopping sends a BYE for an answered call we placed and ends it
        with C{"shutdown"}.
        """
        call = self.h.answered()
        self.stop()
        [(bye, _)] = self.h.requests("BYE")
        self.assertEqual(bye.toAddress().tag, "b1")
        self.assertEqual(call.state, ENDED)
        self.assertEqual(self.h.events, ["answered", ("ended", "shutdown")])
        self.assertEqual(self.h.agent.calls, [])

    def test_unanswered(self):
        """
        Stopping fails the C{result} of a call without any response with
        L{CallFailed} and ends it.
        """
        call, invite = self.h.place()
        self.stop()
        self.assertEqual(self.failureResultOf(call.result, CallFailed).value.code, 503)
        self.assertEqual(call.state, ENDED)

    def test_ringing(self):
        """
        Stopping ends a ringing call we placed (early dialog) with
        C{"shutdown"}, and its C{result} fails with L{CallFailed}.
        """
        call, invite = self.h.place()
        reply(self.h, invite, 180, toTag="b1")
        self.stop()
        self.assertEqual(call.state, ENDED)
        self.assertIn(("ended", "shutdown"), self.h.events)
        self.assertEqual(self.h.agent.calls, [])
        self.failureResultOf(call.result, CallFailed)


class ReinviteTests(SynchronousTestCase):
    """
    re-INVITEs we send (RFC 3261 section 14.1) with
    L{appliance.sip.session.Session.reinvite}.
    """

    def setUp(self):
        self.h = CallerHarness(self)
        self.delays = []

    def fixDelay(self):
        """
        Make the glare delay the top of its range, recording the range.
        """
        def uniform(low, high):
            self.delays.append((low, high))
            return high

        self.patch(uac.random, "uniform", uniform)

    def lastInvite(self):
        return self.h.requests("INVITE")[-1][0]

    def test_acked(self):
        """
        A re-INVITE carries the offer, our Contact and the next CSeq; its
        2xx is acknowledged with that CSeq, the answer kept, and the
        L{Deferred} fires with the 2xx.
        """
        call = self.h.answered()
        d = call.reinvite(HOLD)
        reinvite = self.lastInvite()
        self.assertEqual(reinvite.cseq(), (2, "INVITE"))
        self.assertEqual((reinvite.body, reinvite.headers.get("Content-Type")), (HOLD, "application/sdp"))
        self.assertEqual(reinvite.headers.get("Contact"), OUR_CONTACT)
        self.assertEqual(reinvite.toAddress().tag, "b1")
        self.assertNoResult(d)
        reply(self.h, reinvite, 200, body=HOLD_ANSWER)
        self.assertEqual(self.successResultOf(d).code, 200)
        first, ack = self.h.requests("ACK")
        self.assertEqual(ack[0].cseq(), (2, "ACK"))
        self.assertNotIn(ack[0].topVia.branch, (first[0].topVia.branch, reinvite.topVia.branch))
        self.assertEqual(ack[1], BOB_AT)
        self.assertEqual((call.answerBody, call.remoteBody), (HOLD, HOLD_ANSWER))
        self.assertEqual(call.state, ACTIVE)
        self.h.finish()

    def test_ackFollowsNewContact(self):
        """
        The 2xx of a re-INVITE refreshes the remote target (RFC 3261
        section 12.2.1.2), and its ACK goes to the new target.
        """
        call = self.h.answered()
        call.reinvite(HOLD)
        reply(self.h, self.lastInvite(), 200, contact=BOB_MOVED, body=HOLD_ANSWER)
        self.assertEqual(call.dialog.remoteTarget, URI.parse("sip:bob@198.51.100.21:5072"))
        ack, destination = self.h.requests("ACK")[-1]
        self.assertEqual(ack.uri, URI.parse("sip:bob@198.51.100.21:5072"))
        self.assertEqual(destination, ("198.51.100.21", 5072))
        self.h.finish()

    def test_okRetransmitted(self):
        """
        A retransmitted 2xx of a re-INVITE gets that re-INVITE's ACK
        again, not the ACK of the initial INVITE.
        """
        call = self.h.answered()
        call.reinvite(HOLD)
        ok = reply(self.h, self.lastInvite(), 200, body=HOLD_ANSWER)
        self.h.receive(ok)
        acks = [a.cseq() for a, _ in self.h.requests("ACK")]
        self.assertEqual(acks, [(1, "ACK"), (2, "ACK"), (2, "ACK")])
        self.h.finish()

    def test_refused(self):
        """
        A refused re-INVITE fires with its response; the session stays as
        it was and another re-INVITE may follow.
        """
        call = self.h.answered()
        d = call.reinvite(HOLD)
        reply(self.h, self.lastInvite(), 488, toTag="b1")
        self.assertEqual(self.successResultOf(d).code, 488)
        self.assertEqual((call.state, call.answerBody, call.remoteBody), (ACTIVE, OFFER, ANSWER))
        d = call.reinvite(HOLD)
        reply(self.h, self.lastInvite(), 200, body=HOLD_ANSWER)
        self.assertEqual(self.successResultOf(d).code, 200)
        self.h.finish()

    def test_notActive(self):
        """
        A re-INVITE of a call not yet answered, or ended, fails with
        L{CallError} and sends nothing.
        """
        call, invite = self.h.place()
        self.failureResultOf(call.reinvite(HOLD), CallError)
        reply(self.h, invite, 486, toTag="b1")
        self.failureResultOf(call.result, CallFailed)
        self.failureResultOf(call.reinvite(HOLD), CallError)
        self.assertEqual(len(self.h.requests("INVITE")), 1)
        self.h.finish()

    def test_pending(self):
        """
        A second re-INVITE while one is pending fails with L{CallError}.
        """
        call = self.h.answered()
        d = call.reinvite(HOLD)
        self.failureResultOf(call.reinvite(OFFER), CallError)
        reply(self.h, self.lastInvite(), 200, body=HOLD_ANSWER)
        self.successResultOf(d)
        self.assertEqual(len(self.h.requests("INVITE")), 2)
        self.h.finish()

    def test_peerReinviteWhilePending(self):
        """
        The callee's re-INVITE while ours is pending gets 491.
        """
        call = self.h.answered()
        d = call.reinvite(HOLD)
        [response] = peerRequest(self.h, call, "INVITE", 1, "z9hG4bKpeer1", body=OFFER)
        self.assertEqual(response.code, 491)
        reply(self.h, self.lastInvite(), 200, body=HOLD_ANSWER)
        self.successResultOf(d)
        self.h.finish()

    def test_glareCaller(self):
        """
        After a 491, the caller (owner of the Call-ID) tries once more after
        2.1 to 4 s, with the next CSeq and a new branch (RFC 3261 section
        14.1).
        """
        self.fixDelay()
        call = self.h.answered()
        d = call.reinvite(HOLD)
        first = self.lastInvite()
        reply(self.h, first, 491, toTag="b1")
        self.assertEqual(self.delays, [(2.1, 4.0)])
        self.h.clock.advance(3.99)
        self.assertEqual(len(self.h.requests("INVITE")), 2)
        self.assertNoResult(d)
        self.h.clock.advance(0.01)
        retry = self.lastInvite()
        self.assertEqual(retry.cseq(), (3, "INVITE"))
        self.assertNotEqual(retry.topVia.branch, first.topVia.branch)
        self.assertEqual(retry.body, HOLD)
        reply(self.h, retry, 200, body=HOLD_ANSWER)
        self.assertEqual(self.successResultOf(d).code, 200)
        self.assertEqual(self.h.requests("ACK")[-1][0].cseq(), (3, "ACK"))
        self.h.finish()

    def test_glareCallerWindow(self):
        """
        Unpatched, the caller's retry after a 491 comes no sooner than
        2.1 s and no later than 4 s.
        """
        call = self.h.answered()
        d = call.reinvite(HOLD)
        reply(self.h, self.lastInvite(), 491, toTag="b1")
        self.h.clock.advance(2.09)
        self.assertEqual(len(self.h.requests("INVITE")), 2)
        self.h.clock.advance(1.91)
        self.assertEqual(len(self.h.requests("INVITE")), 3)
        reply(self.h, self.lastInvite(), 200, body=HOLD_ANSWER)
        self.successResultOf(d)
        self.h.finish()

    def test_glareCallee(self):
        """
        On a call we answered (the peer owns the Call-ID), the retry after
        a 491 comes after 0 to 2 s.
        """
        self.fixDelay()
        call = self.h.invite()
        self.h.ack(call)
        d = call.reinvite(HOLD)
        first = self.lastInvite()
        self.assertEqual(first.uri, URI.parse("sip:alice@198.51.100.7:5060"))
        reply(self.h, first, 491, contact=CALLER_CONTACT)
        self.assertEqual(self.delays, [(0, 2.0)])
        self.h.clock.advance(2.0)
        retry = self.lastInvite()
        self.assertEqual(retry.cseq(), (2, "INVITE"))
        self.assertEqual(first.cseq(), (1, "INVITE"))
        reply(self.h, retry, 200, contact=CALLER_CONTACT, body=HOLD_ANSWER)
        self.assertEqual(self.successResultOf(d).code, 200)
        self.h.finish()

    def test_glareOnce(self):
        """
        A second 491 is the result: there is one retry only.
        """
        self.fixDelay()
        call = self.h.answered()
        d = call.reinvite(HOLD)
        reply(self.h, self.lastInvite(), 491, toTag="b1")
        self.h.clock.advance(4)
        reply(self.h, self.lastInvite(), 491, toTag="b1")
        self.assertEqual(self.successResultOf(d).code, 491)
        self.h.clock.advance(10)
        self.assertEqual(len(self.h.requests("INVITE")), 3)
        self.assertEqual(call.state, ACTIVE)
        self.h.finish()

    def test_hangupDuringGlareWait(self):
        """
        Hanging up while waiting to retry after a 491 sends no retry and
        fails the re-INVITE's L{Deferred} with L{CallError}.
        """
        call = self.h.answered()
        d = call.reinvite(HOLD)
        reply(self.h, self.lastInvite(), 491, toTag="b1")
        call.hangup()
        reply(self.h, self.h.requests("BYE")[0][0], 200)
        self.h.clock.advance(5)
        self.assertEqual(len(self.h.requests("INVITE")), 2)
        self.failureResultOf(d, CallError)
        self.h.finish()

    def test_requestTimeout(self):
        """
        A 408 to a re-INVITE hangs the call up with a BYE (RFC 3261 section
        14.1); the L{Deferred} fires with the 408.
        """
        call = self.h.answered()
        d = call.reinvite(HOLD)
        reply(self.h, self.lastInvite(), 408, toTag="b1")
        self.assertEqual(self.successResultOf(d).code, 408)
        [(bye, _)] = self.h.requests("BYE")
        self.assertEqual(bye.cseq(), (3, "BYE"))
        self.assertEqual(self.h.events, ["answered", ("ended", "hangup")])
        reply(self.h, bye, 200)
        self.h.finish()

    def test_noResponse(self):
        """
        A re-INVITE that gets no response at all times out after 64*T1 and
        the call is hung up.
        """
        call = self.h.answered()
        d = call.reinvite(HOLD)
        self.h.clock.advance(64 * self.h.timers.T1)
        self.assertEqual(self.successResultOf(d).code, 408)
        self.assertEqual(len(self.h.requests("BYE")), 1)
        self.assertEqual(call.state, ENDED)
        self.h.finish()

    def test_gone(self):
        """
        A 481 to a re-INVITE ends the call without a BYE (the dialog is
        gone); the L{Deferred} fires with the 481.
        """
        call = self.h.answered()
        d = call.reinvite(HOLD)
        reply(self.h, self.lastInvite(), 481, toTag="b1")
        self.assertEqual(self.successResultOf(d).code, 481)
        self.assertEqual(self.h.requests("BYE"), [])
        self.assertEqual(self.h.events, ["answered", ("ended", "gone")])
        self.assertEqual(self.h.agent.calls, [])
        self.h.finish()

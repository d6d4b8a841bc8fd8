"""
Tests for L{appliance.sip.auth}: SIP digest authentication (RFC 3261 section 22, RFC 7616, RFC 8760).

Expected digests are computed here with L{hashlib}, independently of the code under test.
"""

import base64
import hashlib
import random
import re

from twisted.internet import task
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from appliance.sip.auth import AuthResult, DigestAuthenticator, digestResponse, parseCredentials
from appliance.sip.message import URI, Headers, Request
from appliance.storage.database import SynchronousDatabase
from appliance.storage.users import UserDirectory

REALM = "example.test"
PASSWORD = "s3cret"
SECRET = b"0123456789abcdef0123456789abcdef"
SOURCE = ("192.0.2.7", 5060)
WRONG = "unknown user or wrong password"
_H = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def clientResponse(algorithm, username, realm, password, method, uri, nonce, nc, cnonce, qop="auth"):
    """
    The response a client computes (RFC 7616 section 3.4.1), written out independently.
    """
    h = _H[algorithm]
    ha1 = h(("%s:%s:%s" % (username, realm, password)).encode()).hexdigest()
    ha2 = h(("%s:%s" % (method, uri)).encode()).hexdigest()
    return h(("%s:%s:%s:%s:%s:%s" % (ha1, nonce, nc, cnonce, qop, ha2)).encode()).hexdigest()


def quote(text):
    """
    A quoted-string (RFC 3261 section 25.1) of C{text}.
    """
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def credentials(nonce, *, username="alice", password=PASSWORD, algorithm="MD5", nc="00000001",
                cnonce="0a4f113b", uri="sip:example.test", method="REGISTER", realm=REALM, qop="auth",
                response=None, scheme="Digest"):
    """
    An Authorization value as a client would build it.
    """
    if response is None:
        response = clientResponse(algorithm, username, realm, password, method, uri, nonce, nc, cnonce, qop)
    return (
        '%s username=%s, realm=%s, nonce=%s, uri=%s, response="%s", algorithm=%s, cnonce=%s, qop=%s, '
        "nc=%s" % (scheme, quote(username), quote(realm), quote(nonce), quote(uri), response, algorithm,
                   quote(cnonce), qop, nc))


def makeRequest(*authorizations, method="REGISTER", uri="sip:example.test", header="Authorization"):
    """
    A request with the given credentials.
    """
    headers = Headers([
        ("Via", "SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKabc"),
        ("From", "<sip:alice@example.test>;tag=1"), ("To", "<sip:alice@example.test>"),
        ("Call-ID", "c1"), ("CSeq", "1 %s" % (method,)),
    ] + [(header, value) for value in authorizations])
    return Request(method, URI.parse(uri), headers)


def nonceOf(result, algorithm="MD5"):
    """
    The nonce of the challenge for C{algorithm} in C{result}.
    """
    for name, value in result.headers:
        if "algorithm=%s," % (algorithm,) in value:
            return re.search(r'nonce="([^"]*)"', value).group(1)
    raise AssertionError("no %s challenge in %r" % (algorithm, result.headers))


def hasResult(d):
    """
    Whether C{d} has a result now (C{d.called} is also true while it waits on a chained L{Deferred}).
    """
    results = []
    d.addBoth(lambda result: results.append(result) or result)
    return bool(results)


class DigestResponseTests(SynchronousTestCase):
    """
    The pure response computation.
    """

    def test_rfc7616Examples(self):
        """
        L{digestResponse} gives the responses of the worked examples of RFC 7616 section 3.9.1.
        """
        nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
        cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
        for algorithm, expected in [
                ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
                ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")]:
            ha1 = _H[algorithm](b"Mufasa:http-auth@example.org:Circle of Life").hexdigest()
            self.assertEqual(
                digestResponse(algorithm, ha1, nonce, "00000001", cnonce, "auth", "GET", "/dir/index.html"),
                expected)


class ParseCredentialsTests(SynchronousTestCase):
    """
    The Authorization header grammar.
    """

    def test_quotedStrings(self):
        """
        Quoted values may hold commas and escaped quotes; names are case-insensitive; tokens work too.
        """
        self.assertEqual(
            parseCredentials('Digest USERNAME="a,b\\"c",Realm=x ,  nc=00000001,'),
            ("digest", {"username": 'a,b"c', "realm": "x", "nc": "00000001"}))

    def test_malformed(self):
        """
        Duplicates, a missing scheme or parameters, unterminated quotes and junk are refused.
        """
        for value in ['Digest realm="a", realm="a"', "Digest", 'realm="a"', 'Digest realm="a',
                      "Digest realm=a b=c", 'Digest realm="a" x', "Digest =a", "", "Digest ,,",
                      'Digest a="1"' + "".join(", p%d=1" % (i,) for i in range(40))]:
            self.assertIsNone(parseCredentials(value), value)


class AuthenticatorTests(SynchronousTestCase):
    """
    L{DigestAuthenticator} against a real user directory on a temporary SQLite file.
    """

    def setUp(self):
        self.database = SynchronousDatabase(self.mktemp())
        self.database.open()
        self.addCleanup(self.database.close)
        self.users = UserDirectory(self.database, clock=lambda: 1000.0)
        self.successResultOf(self.users.addUser("alice@example.test", PASSWORD))
        self.clock = task.Clock()
        self.clock.advance(1000000)
        self.auth = self.makeAuthenticator()
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))

    def makeAuthenticator(self, **kwargs):
        """
        An authenticator on the test clock and directory: 4 failures lock out for 600 s by default.
        """
        kwargs.setdefault("maxFailures", 4)
        kwargs.setdefault("lockout", 600)
        return DigestAuthenticator(self.users, self.clock, SECRET, nonceLifetime=300, **kwargs)

    def settle(self, d):
        """
        Advance the clock until C{d} fires (through any slow-down delay) and return its result.
        """
        while not hasResult(d):
            calls = self.clock.getDelayedCalls()
            self.assertTrue(calls, "nothing pending and no result")
            self.clock.advance(min(call.getTime() for call in calls) - self.clock.seconds())
        return self.successResultOf(d)

    def authenticate(self, *authorizations, source=SOURCE, realm=REALM, proxy=False, **kwargs):
        """
        Authenticate a request with C{authorizations} and return the settled result.
        """
        request = makeRequest(*authorizations, header="Proxy-Authorization" if proxy else "Authorization",
                              **kwargs)
        return self.settle(self.auth.authenticate(request, realm, source, proxy=proxy))

    def challenge(self, **kwargs):
        """
        The nonce of a fresh challenge.
        """
        return nonceOf(self.authenticate(**kwargs))

    def assertChallenge(self, result, reason, stale=False, status=401, name="WWW-Authenticate"):
        """
        C{result} is a challenge with C{reason}: SHA-256 then MD5, qop auth, one fresh nonce.
        """
        self.assertEqual((result.user, result.status, result.reason), (None, status, reason))
        self.assertEqual([header for header, value in result.headers], [name, name])
        nonce = nonceOf(result)
        staleText = ", stale=true" if stale else ""
        self.assertEqual([value for header, value in result.headers], [
            'Digest realm="example.test", nonce="%s", algorithm=%s, qop="auth"%s'
            % (nonce, algorithm, staleText) for algorithm in ("SHA-256", "MD5")])

    def test_noCredentials(self):
        """
        A request without credentials is challenged with SHA-256 and MD5 sharing one nonce, uncounted.
        """
        result = self.authenticate()
        self.assertChallenge(result, "no credentials")
        self.assertEqual(nonceOf(result, "SHA-256"), nonceOf(result, "MD5"))
        self.assertEqual(self.auth.statistics()["auth.failures"], 0)
        self.assertEqual(self.auth.statistics()["auth.challenges"], 1)

    def test_noncesAreUnique(self):
        """
        Two challenges at the same instant carry different nonces.
        """
        self.assertNotEqual(self.challenge(), self.challenge())

    def test_md5AndSHA256(self):
        """
        Correct MD5 and SHA-256 responses with qop=auth authenticate the user as name@domain.
        """
        for algorithm in ("MD5", "SHA-256"):
            result = self.authenticate(credentials(self.challenge(), algorithm=algorithm))
            self.assertEqual(result, AuthResult("alice@example.test", None, (), "ok"))
            self.assertTrue(result.authenticated)

    def test_usernameWithDomain(self):
        """
        A client may send C{alice@example.test} as its username (HA1 over that name).
        """
        result = self.authenticate(credentials(self.challenge(), username="alice@example.test",
                                               algorithm="SHA-256"))
        self.assertEqual(result.user, "alice@example.test")

    def test_wrongPasswordLikeUnknownUser(self):
        """
        A wrong password and an unknown user give the same status, reason and challenge form.
        """
        wrong = self.authenticate(credentials(self.challenge(), password="guess"))
        unknown = self.authenticate(credentials(self.challenge(), username="mallory"),
                                    source=("192.0.2.8", 1))
        for result in (wrong, unknown):
            self.assertChallenge(result, WRONG)
        self.assertEqual(self.auth.statistics()["auth.failures"], 2)

    def test_caseInsensitiveParamsAndEscapes(self):
        """
        Parameter names in any case and escaped characters in quoted values are understood.
        """
        nonce = self.challenge()
        cnonce = 'a,b"c\\d'
        value = credentials(nonce, cnonce=cnonce).replace("username=", "UserName=").replace("nc=", "NC=")
        self.assertEqual(self.authenticate(value).reason, "ok")

    def test_expiredNonceIsStale(self):
        """
        After the nonce lifetime a correct response is challenged again with stale=true, uncounted.
        """
        nonce = self.challenge()
        self.clock.advance(301)
        self.assertChallenge(self.authenticate(credentials(nonce)), "stale nonce", stale=True)
        self.assertEqual(self.auth.statistics()["auth.failures"], 0)
        self.assertEqual(self.auth.statistics()["auth.stale"], 1)

    def test_expiredNonceWrongPassword(self):
        """
        A wrong response with an expired nonce is an ordinary failure, without stale.
        """
        nonce = self.challenge()
        self.clock.advance(301)
        self.assertChallenge(self.authenticate(credentials(nonce, password="x")), WRONG)

    def test_forgedNonce(self):
        """
        A modified nonce, one of another secret or realm, or junk never authenticates.
        """
        nonce = self.challenge()
        raw = bytearray(base64.urlsafe_b64decode(nonce + "="))
        raw[0] ^= 1
        modified = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
        other = nonceOf(self.settle(DigestAuthenticator(self.users, self.clock, b"other secret").authenticate(
            makeRequest(), REALM, SOURCE)))
        otherRealm = nonceOf(self.authenticate(realm="other.test"))
        self.auth = self.makeAuthenticator(maxFailures=100)
        for forged in (modified, other, otherRealm, "abc", "x" * 43, nonce[:-1] + "!"):
            self.assertChallenge(self.authenticate(credentials(forged)), "invalid nonce", stale=True)
            self.assertChallenge(self.authenticate(credentials(forged, password="x")), WRONG)

    def test_nonceCount(self):
        """
        A nonce is reused with increasing nc; an nc not above the last accepted one is a replay.
        """
        nonce = self.challenge()
        for nc, reason in [("00000001", "ok"), ("00000001", "replayed nonce count"), ("00000002", "ok"),
                           ("0000000A", "ok"), ("00000009", "replayed nonce count"), ("0000000b", "ok")]:
            result = self.authenticate(credentials(nonce, nc=nc))
            self.assertEqual(result.reason, reason, nc)
            if reason != "ok":
                self.assertChallenge(result, reason, stale=True)

    def test_nonceTableBounded(self):
        """
        When the nc table is full the oldest nonce is forgotten and then refused as stale, never replayed.
        """
        self.auth = self.makeAuthenticator(maxNonces=2)
        nonces = [self.challenge() for _ in range(3)]
        for nonce in nonces:
            self.assertEqual(self.authenticate(credentials(nonce)).reason, "ok")
        self.assertEqual(self.authenticate(credentials(nonces[0], nc="00000002")).reason, "stale nonce")
        self.assertEqual(self.authenticate(credentials(nonces[0])).reason, "stale nonce")
        self.assertEqual(self.authenticate(credentials(nonces[2], nc="00000002")).reason, "ok")

    def test_restartDoesNotReopenReplay(self):
        """
        A new authenticator with the same secret treats nonces issued before it started as stale.
        """
        nonce = self.challenge()
        self.assertEqual(self.authenticate(credentials(nonce)).reason, "ok")
        self.clock.advance(1)
        self.auth = self.makeAuthenticator()
        self.assertEqual(self.authenticate(credentials(nonce)).reason, "stale nonce")
        self.assertEqual(self.authenticate(credentials(self.challenge())).reason, "ok")

    def test_clockSteppedBack(self):
        """
        Nonces issued after the wall clock was stepped back are fresh; those issued before are stale.
        """
        nonce = self.challenge()
        self.clock.rightNow -= 3600
        self.assertEqual(self.authenticate(credentials(nonce)).reason, "stale nonce")
        self.assertEqual(self.authenticate(credentials(self.challenge())).reason, "ok")

    def test_wrongRealm(self):
        """
        Credentials for another realm only are challenged as "wrong realm", uncounted.
        """
        value = credentials(self.challenge(), realm="other.test")
        self.assertChallenge(self.authenticate(value), "wrong realm")
        self.assertEqual(self.auth.statistics()["auth.failures"], 0)

    def test_picksCredentialsForRealm(self):
        """
        Among several Authorization headers, those of our realm are used; other schemes are ignored.
        """
        nonce = self.challenge()
        result = self.authenticate("Basic YWxpY2U6eA==", credentials(nonce, realm="other.test"),
                                   credentials(nonce))
        self.assertEqual(result.reason, "ok")
        self.assertChallenge(self.authenticate("Basic YWxpY2U6eA=="), "no credentials")

    def test_digestURI(self):
        """
        A digest-uri other than the Request-URI passes when the response was
        computed over it (RFC 3261 section 22.4: proxies rewrite the
        Request-URI); one that is not a SIP URI is malformed.
        """
        nonce = self.challenge()
        for nc, uri in enumerate(("sip:127.0.0.1:5060", "sip:EXAMPLE.test;x-ignored=1"), start=1):
            result = self.authenticate(credentials(nonce, uri=uri, nc="%08x" % (nc,)))
            self.assertEqual(result.reason, "ok")
        self.assertChallenge(self.authenticate(credentials(nonce, uri="not a uri", nc="00000003")),
                             "malformed credentials")

    def test_methodInDigest(self):
        """
        HA2 covers the request method: a response computed for another method fails.
        """
        nonce = self.challenge()
        self.assertEqual(self.authenticate(credentials(nonce, method="INVITE")).reason, WRONG)
        result = self.authenticate(credentials(nonce, method="INVITE"), method="INVITE")
        self.assertEqual(result.reason, "ok")

    def test_ackAndCancelRefused(self):
        """
        ACK and CANCEL cannot be challenged (RFC 3261 section 22.1): asking is a programming error.
        """
        for method in ("ACK", "CANCEL"):
            self.assertRaises(ValueError, self.auth.authenticate, makeRequest(method=method), REALM, SOURCE)

    def test_proxy(self):
        """
        With proxy=True, Proxy-Authorization is read and challenges are 407 with Proxy-Authenticate.
        """
        result = self.authenticate(proxy=True)
        self.assertChallenge(result, "no credentials", status=407, name="Proxy-Authenticate")
        nonce = nonceOf(result)
        self.assertEqual(self.authenticate(credentials(nonce, method="INVITE"), proxy=True,
                                           method="INVITE").user, "alice@example.test")
        request = makeRequest(credentials(nonce, nc="00000002"))
        self.assertEqual(self.settle(self.auth.authenticate(request, REALM, SOURCE, proxy=True)).status, 407)

    def test_noQopRefused(self):
        """
        A response without qop (RFC 2069 style) is refused, since it cannot be protected against replay.
        """
        nonce = self.challenge()
        h = hashlib.md5
        ha1 = h(b"alice:example.test:s3cret").hexdigest()
        ha2 = h(b"REGISTER:sip:example.test").hexdigest()
        response = h(("%s:%s:%s" % (ha1, nonce, ha2)).encode()).hexdigest()
        value = ('Digest username="alice", realm="example.test", nonce="%s", uri="sip:example.test", '
                 'response="%s"' % (nonce, response))
        self.assertChallenge(self.authenticate(value), "qop required")

    def test_unsupportedAlgorithmAndQop(self):
        """
        Algorithms and qop values that were not offered are challenged again.
        """
        nonce = self.challenge()
        result = self.authenticate(credentials(nonce, algorithm="MD5-sess", response="0" * 32))
        self.assertEqual(result.reason, "unsupported algorithm")
        result = self.authenticate(credentials(nonce, qop="auth-int"))
        self.assertEqual(result.reason, "malformed credentials")
        self.auth = self.makeAuthenticator(algorithms=("SHA-256",))
        nonce = nonceOf(self.authenticate(), "SHA-256")
        self.assertEqual(self.authenticate(credentials(nonce)).reason, "unsupported algorithm")

    def test_malformedCredentials(self):
        """
        Unreadable or incomplete credentials are challenged as "malformed credentials" and counted.
        """
        nonce = self.challenge()
        good = credentials(nonce)
        self.auth = self.makeAuthenticator(maxFailures=100)
        for value in [good.replace("nc=00000001", "nc=1"), good.replace("nc=00000001", "nc=00000000"),
                      good.replace("nc=00000001", "nc=0000000g"),
                      good.replace('cnonce="0a4f113b"', 'cnonce=""'),
                      good.replace("username=", "user="), good + ', nonce="x"', good[:-5],
                      good.replace('response="', 'response="0'), good + ', userhash=true',
                      'Digest realm="example.test"', "Digest"]:
            self.assertChallenge(self.authenticate(value), "malformed credentials")
        self.assertEqual(self.auth.statistics()["auth.failures"], 11)

    def test_fuzzNeverRaises(self):
        """
        Hundreds of random Authorization values never raise and never authenticate.
        """
        generator = random.Random(7616)
        nonce = self.challenge()
        pieces = ["Digest ", "digest", " ", ",", "=", '"', "\\", "username", "alice", "realm", REALM, "nonce",
                  nonce, "uri", "sip:example.test", "response", "nc", "00000001", "qop", "auth", "cnonce",
                  "algorithm", "SHA-256", "MD5", "\x00", "\udcff", "\u00e9", "=\"\"", "0" * 64]
        self.auth = self.makeAuthenticator(maxFailures=10 ** 6, maxDelay=0)
        for _ in range(400):
            value = "".join(generator.choice(pieces) for _ in range(generator.randrange(1, 30)))
            result = self.authenticate(value, source=("192.0.2.%d" % (generator.randrange(256),), 5060))
            self.assertIsNone(result.user)
            self.assertEqual(result.status, 401)

    def test_lockout(self):
        """
        After maxFailures failures the source gets 403 without a check, until the lockout period ends.
        """
        for _ in range(4):
            self.assertEqual(self.authenticate(credentials(self.challenge(), password="x")).status, 401)
        stats = self.auth.statistics()
        self.assertEqual((stats["auth.lockouts"], stats["auth.sources.locked"]), (1, 1))
        good = credentials(self.challenge(source=("192.0.2.99", 5060)))
        self.assertEqual(self.authenticate(good), AuthResult(None, 403, (), "locked out"))
        self.assertEqual(self.authenticate(source=(SOURCE[0], 9999)).status, 403)
        self.assertEqual(self.authenticate(good, source=("192.0.2.99", 5060)).reason, "ok")
        self.clock.advance(600)
        self.assertEqual(self.auth.statistics()["auth.sources.locked"], 0)
        self.assertEqual(self.authenticate(credentials(self.challenge())).reason, "ok")
        self.assertEqual(self.auth.statistics()["auth.refused"], 2)

    def test_logsNoSecrets(self):
        """
        A lockout is logged with the source, and no log event carries a response, nonce or password.
        """
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        values = [credentials(self.challenge(), password="Guess1") for _ in range(4)]
        for value in values:
            self.authenticate(value)
        texts = [formatEvent(event) + repr(event) for event in events]
        self.assertTrue(any("locking out 192.0.2.7" in text for text in texts), texts)
        for text in texts:
            self.assertNotIn("Guess1", text)
            for value in values:
                self.assertNotIn(re.search(r'response="([^"]*)"', value).group(1), text)
                self.assertNotIn(re.search(r'nonce="([^"]*)"', value).group(1), text)

    def test_successResetsFailures(self):
        """
        A success forgets the source's earlier failures.
        """
        for _ in range(3):
            self.authenticate(credentials(self.challenge(), password="x"))
        self.authenticate(credentials(self.challenge()))
        for _ in range(3):
            self.authenticate(credentials(self.challenge(), password="x"))
        self.assertEqual(self.auth.statistics()["auth.lockouts"], 0)

    def test_failureWindow(self):
        """
        Failures older than the failure window no longer count towards a lockout.
        """
        for _ in range(3):
            self.authenticate(credentials(self.challenge(), password="x"))
        self.clock.advance(300)
        self.authenticate(credentials(self.challenge(), password="x"))
        self.assertEqual(self.auth.statistics()["auth.lockouts"], 0)

    def test_noLockoutWhenDisabled(self):
        """
        With lockout 0 a source is never locked out.
        """
        self.auth = self.makeAuthenticator(lockout=0)
        for _ in range(6):
            self.authenticate(credentials(self.challenge(), password="x"))
        self.assertEqual(self.authenticate(credentials(self.challenge())).reason, "ok")

    def test_slowDown(self):
        """
        The first failure is answered at once, later ones after a delay doubling from 0.125 s to 2 s.
        """
        self.auth = self.makeAuthenticator(maxFailures=100)
        delays = []
        for _ in range(8):
            request = makeRequest(credentials(self.challenge(), password="x"))
            d = self.auth.authenticate(request, REALM, SOURCE)
            calls = self.clock.getDelayedCalls()
            delays.append(calls[0].getTime() - self.clock.seconds() if calls else 0)
            self.assertEqual(hasResult(d), not calls)
            self.settle(d)
        self.assertEqual(delays, [0, 0.125, 0.25, 0.5, 1, 2, 2, 2])

    def test_stopAnswersPending(self):
        """
        L{DigestAuthenticator.stop} answers failures waiting for their delay at once and cancels the timers.
        """
        self.authenticate(credentials(self.challenge(), password="x"))
        d = self.auth.authenticate(makeRequest(credentials(self.challenge(), password="x")), REALM, SOURCE)
        self.assertFalse(hasResult(d))
        self.auth.stop()
        self.assertEqual(self.successResultOf(d).reason, WRONG)

    def test_cancelPending(self):
        """
        Cancelling a delayed answer cancels its timer.
        """
        self.authenticate(credentials(self.challenge(), password="x"))
        d = self.auth.authenticate(makeRequest(credentials(self.challenge(), password="x")), REALM, SOURCE)
        d.cancel()
        self.failureResultOf(d)

    def test_sourceTableBounded(self):
        """
        At most maxSources sources are remembered; the oldest is forgotten first.
        """
        self.auth = self.makeAuthenticator(maxSources=2, maxDelay=0)
        for host in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
            self.authenticate(credentials(self.challenge(), password="x"), source=(host, 5060))
        self.assertEqual(len(self.auth._sources), 2)
        self.assertNotIn("192.0.2.1", self.auth._sources)

    def test_bareNameInSharedRealm(self):
        """
        With a realm shared by domains, a bare name authenticates only as a user of the given domain.
        """
        users = UserDirectory(self.database, realmFor=lambda domain: "shared", clock=lambda: 0.0)
        self.successResultOf(users.addUser("bob@a.test", "pw"))
        self.auth = DigestAuthenticator(users, self.clock, SECRET)
        for domain, user in [("a.test", "bob@a.test"), ("b.test", None)]:
            nonce = nonceOf(self.authenticate(realm="shared"))
            value = credentials(nonce, username="bob", password="pw", realm="shared")
            result = self.settle(self.auth.authenticate(makeRequest(value), "shared", SOURCE, domain=domain))
            self.assertEqual(result.user, user)

    def test_statistics(self):
        """
        The statistics count successes, failures, challenges, lockouts, stale nonces and refusals.
        """
        self.authenticate(credentials(self.challenge()))
        self.assertEqual(self.auth.statistics(), {
            "auth.successes": 1, "auth.failures": 0, "auth.challenges": 1, "auth.lockouts": 0,
            "auth.stale": 0, "auth.refused": 0, "auth.sources.locked": 0})

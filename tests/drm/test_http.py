"""
Tests for L{appliance.drm.http}: rate limiting, routing and the digest challenge, without sockets.
"""

import io
import json
import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet.address import IPv4Address
from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from appliance.drm.http import HTTPDigestAuthenticator, LicenseResource, RateLimiter
from appliance.stats import Statistics


class RateLimiterTests(SynchronousTestCase):
    """
    Token buckets per key on a task.Clock.
    """

    def test_burstThenRate(self):
        """
        A burst is allowed at once, then one request per 1/rate seconds; the wait is reported.
        """
        clock = Clock()
        limiter = RateLimiter(clock, rate=2, burst=3)
        self.assertEqual([limiter.take("a") for _ in range(3)], [0, 0, 0])
        self.assertAlmostEqual(limiter.take("a"), 0.5)
        self.assertEqual(limiter.take("b"), 0)
        clock.advance(0.5)
        self.assertEqual(limiter.take("a"), 0)

    def test_disabled(self):
        """
        A rate of 0 disables limiting.
        """
        limiter = RateLimiter(Clock(), rate=0, burst=1)
        self.assertEqual([limiter.take("a") for _ in range(5)], [0] * 5)


class _Users:
    def digestHash(self, user, realm, algorithm):
        return succeed(None)

    def getUser(self, user):
        return succeed(None)


class ResourceTests(SynchronousTestCase):
    """
    Routing, 401 challenges, 429 and CORS, with a dummy request.
    """

    def setUp(self):
        self.clock = Clock()
        self.stats = Statistics("drm")
        self.authenticator = HTTPDigestAuthenticator(_Users(), self.clock, os.urandom(32))
        self.resource = LicenseResource(
            None, self.authenticator, ["example.test", "other.test"], "token",
            RateLimiter(self.clock, 1, 2), Ed25519PrivateKey.generate().public_key(), self.stats)

    def render(self, method, path, body=b"", headers=()):
        request = DummyRequest(path.lstrip(b"/").split(b"/"))
        request.method = method
        request.path = request.uri = path
        request.content = io.BytesIO(body)
        request.client = IPv4Address("TCP", "127.0.0.1", 40000)
        for name, value in headers:
            request.requestHeaders.addRawHeader(name, value)
        result = self.resource.render(request)
        if isinstance(result, bytes):
            request.write(result)
        return request

    def test_challengeEveryRealm(self):
        """
        A license request without credentials gets 401 with SHA-256 and MD5 challenges for
        each realm.
        """
        request = self.render(b"POST", b"/drm/license", b'{"key_id": "x"}')
        self.assertEqual(request.responseCode, 401)
        challenges = request.responseHeaders.getRawHeaders(b"www-authenticate")
        self.assertEqual(len(challenges), 4)
        self.assertIn(b'realm="other.test"', challenges[2])
        self.assertIn(b"algorithm=SHA-256", challenges[0])

    def test_rateLimitedPerSource(self):
        """
        Past the burst, a source gets 429 with Retry-After.
        """
        for _ in range(2):
            self.render(b"POST", b"/drm/license")
        request = self.render(b"POST", b"/drm/license")
        self.assertEqual(request.responseCode, 429)
        self.assertEqual(request.responseHeaders.getRawHeaders(b"retry-after"), [b"1"])
        self.assertEqual(self.stats.get("requests.rate_limited"), 1)

    def test_unknownRouteAndMethod(self):
        """
        Unknown paths are 404, wrong methods 405.
        """
        self.assertEqual(self.render(b"GET", b"/drm/nothing").responseCode, 404)
        self.assertEqual(self.render(
            b"GET", b"/drm/keys/0b9d2f1e-6a57-4c1e-9a43-2b5f0d5f1a11/revoke").responseCode, 405)

    def test_depositNeedsToken(self):
        """
        A deposit without the service token is 401 and touches nothing.
        """
        request = self.render(b"POST", b"/drm/keys", b"{}", [(b"authorization", b"Bearer wrong")])
        self.assertEqual(request.responseCode, 401)
        self.assertEqual(json.loads(b"".join(request.written))["reason"], "service token required")

    def test_clearKeyPreflight(self):
        """
        The Clear Key route answers CORS preflights for any origin, allowing the Authorization
        header but not the browser's own credentials.
        """
        request = self.render(b"OPTIONS", b"/drm/clearkey", headers=[(b"origin", b"https://w.test")])
        self.assertEqual(request.responseCode, 204)
        self.assertEqual(request.responseHeaders.getRawHeaders(b"access-control-allow-origin"), [b"*"])
        self.assertIsNone(request.responseHeaders.getRawHeaders(b"access-control-allow-credentials"))
        self.assertIn(b"Authorization",
                      request.responseHeaders.getRawHeaders(b"access-control-allow-headers")[0])

    def test_publicKey(self):
        """
        The public key is served without authentication.
        """
        request = self.render(b"GET", b"/drm/public-key")
        self.assertEqual(json.loads(b"".join(request.written))["algorithm"], "Ed25519")

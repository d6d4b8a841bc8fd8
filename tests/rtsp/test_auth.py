"""
Tests for L{appliance.rtsp.auth}.
"""

from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from appliance.rtsp.auth import DigestAuthenticator, authorizationFor
from appliance.rtsp.message import Request
from appliance.storage.users import digestHA1


class Users:
    def digestHash(self, user, realm, algorithm):
        if user == "bob" and realm == "example.test" and algorithm == "MD5":
            return succeed(digestHA1("bob", realm, "secret"))
        return succeed(None)


class DigestTests(SynchronousTestCase):
    """
    Digest authentication of RTSP requests (RFC 2617 section 3).
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000000)
        self.auth = DigestAuthenticator(Users(), self.clock, nonceLifetime=300, secret=b"k")

    def check(self, header, method="DESCRIBE"):
        request = Request(method, "rtsp://h/bob/inbox/1.au")
        if header is not None:
            request.headers.add("Authorization", header)
        return self.successResultOf(self.auth.authenticate(request, "example.test"))

    def answer(self, password="secret", method="DESCRIBE", challenge=None, **kwargs):
        challenge = challenge or self.auth.challenge("example.test")
        return authorizationFor(challenge, method, "rtsp://h/bob/inbox/1.au", "bob", password, **kwargs)

    def test_challenge(self):
        """
        The challenge names the realm, MD5 and qop=auth.
        """
        challenge = self.auth.challenge("example.test")
        self.assertTrue(challenge.startswith('Digest realm="example.test", nonce="'))
        self.assertIn('qop="auth"', challenge)

    def test_goodWithAndWithoutQop(self):
        """
        Right answers are accepted with qop=auth and in the RFC 2069 form.
        """
        self.assertEqual(self.check(self.answer()), ("bob", False))
        plain = self.auth.challenge("example.test").replace(', qop="auth"', "")
        self.assertEqual(self.check(self.answer(challenge=plain)), ("bob", False))

    def test_refused(self):
        """
        A wrong password, method, realm, scheme, forged nonce or a missing
        header are refused.
        """
        self.assertEqual(self.check(None), (None, False))
        self.assertEqual(self.check(self.answer("wrong")), (None, False))
        self.assertEqual(self.check(self.answer(method="PLAY")), (None, False))
        self.assertEqual(self.check(self.answer().replace("example.test", "other")), (None, False))
        self.assertEqual(self.check("Basic Ym9iOnNlY3JldA=="), (None, False))
        forged = 'Digest realm="example.test", nonce="f4240.0000", qop="auth"'
        self.assertEqual(self.check(self.answer(challenge=forged)), (None, False))
        self.assertEqual(self.check('Digest username="bob", "'), (None, False))

    def test_staleNonce(self):
        """
        A right answer on an expired nonce is reported as stale.
        """
        header = self.answer()
        self.clock.advance(301)
        self.assertEqual(self.check(header), (None, True))
        self.assertIn("stale=true", self.auth.challenge("example.test", stale=True))

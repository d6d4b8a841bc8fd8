"""
Tests for L{appliance.sip.registration}: a registration kept fresh, on a real
transaction layer driven by a L{task.Clock}.
"""

import hashlib

from twisted.trial.unittest import SynchronousTestCase

from appliance.sip.auth import parseCredentials
from appliance.sip.message import Response
from appliance.sip.registration import Registration, grantedExpiry
from tests.sip.test_useragent import Harness

AOR = "sip:vm-bob@example.test"
CONTACT = "<sip:vm-bob@192.0.2.1:5070>"


def answer(sent, code, headers=()):
    response = Response(code, "Reason")
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        for value in sent.headers.getAll(name):
            response.headers.add(name, value)
    for name, value in headers:
        response.headers.add(name, value)
    return response


class RegistrationTests(SynchronousTestCase):
    """
    L{Registration} binds, refreshes, follows the registrar and unbinds.
    """

    def setUp(self):
        self.h = Harness(self)
        self.changes = []
        self.registration = Registration(
            self.h.agent, AOR, CONTACT, credentials=("vm-bob", "secret"), expires=600,
            registrar="sip:192.0.2.50", onChange=lambda r: self.changes.append(r.registered))

    def sent(self):
        return [request for request, _ in self.h.requests("REGISTER")]

    def reply(self, code, headers=()):
        self.h.receive(answer(self.sent()[-1], code, headers))

    def finish(self):
        self.h.clock.advance(64 * self.h.timers.T1)
        self.assertEqual(self.h.clock.getDelayedCalls(), [])

    def test_registerAndRefresh(self):
        """
        The REGISTER carries the contact and the wanted expiry; the expiry
        the registrar grants in the Contact decides the refresh, which keeps
        the Call-ID and grows the CSeq.
        """
        self.registration.start()
        [first] = self.sent()
        self.assertEqual(str(first.uri), "sip:192.0.2.50")
        self.assertEqual((first.headers.get("Contact"), first.headers.get("Expires")), (CONTACT, "600"))
        self.assertEqual(first.headers.get("To"), "<%s>" % (AOR,))
        self.reply(200, [("Contact", CONTACT + ";expires=120")])
        self.assertEqual((self.registration.registered, self.registration.expires), (True, 120))
        self.assertEqual(self.changes, [True])
        self.h.clock.advance(59)
        self.assertEqual(len(self.sent()), 1)
        self.h.clock.advance(1)
        second = self.sent()[-1]
        self.assertEqual(second.callId, first.callId)
        self.assertEqual(second.cseq(), (2, "REGISTER"))
        self.reply(200, [("Expires", "3600")])
        self.assertEqual(self.registration.expires, 3600)
        self.registration.stop()
        self.reply(200)
        self.assertEqual(self.sent()[-1].headers.get("Expires"), "0")
        self.assertEqual(self.changes, [True, False])
        self.finish()

    def test_challengeAnswered(self):
        """
        A 401 is answered with a digest over the REGISTER (RFC 3261 section
        22.2) in the next CSeq, and later requests continue from there.
        """
        self.registration.start()
        self.reply(401, [("WWW-Authenticate", 'Digest realm="example.test", nonce="abc", qop="auth", '
                                               'algorithm=MD5')])
        retry = self.sent()[-1]
        self.assertEqual(retry.cseq(), (2, "REGISTER"))
        scheme, params = parseCredentials(retry.headers.get("Authorization"))
        ha1 = hashlib.md5(b"vm-bob:example.test:secret").hexdigest()
        ha2 = hashlib.md5(b"REGISTER:sip:192.0.2.50").hexdigest()
        expected = hashlib.md5(("%s:abc:%s:%s:auth:%s" % (ha1, params["nc"], params["cnonce"], ha2))
                               .encode()).hexdigest()
        self.assertEqual((scheme, params["response"], params["username"]), ("digest", expected, "vm-bob"))
        self.reply(200, [("Contact", CONTACT + ";expires=100")])
        self.h.clock.advance(50)
        self.assertEqual(self.sent()[-1].cseq(), (3, "REGISTER"))
        self.reply(200, [("Contact", CONTACT + ";expires=100")])
        self.registration.stop()
        self.reply(200)
        self.finish()

    def test_intervalTooBrief(self):
        """
        A 423 makes the registration ask again for Min-Expires.
        """
        self.registration.start()
        self.reply(423, [("Min-Expires", "1800")])
        self.assertEqual(self.sent()[-1].headers.get("Expires"), "1800")
        self.reply(200)
        self.assertEqual(self.registration.expires, 1800)
        self.registration.stop()
        self.reply(200)
        self.finish()

    def test_failuresRetriedWithGrowingDelay(self):
        """
        A failure is tried again after 5 s, then 10 s; nothing is bound
        meanwhile, and stopping then sends no REGISTER.
        """
        self.registration.start()
        self.reply(503)
        self.h.clock.advance(5)
        self.assertEqual(len(self.sent()), 2)
        self.reply(403)
        self.h.clock.advance(9)
        self.assertEqual(len(self.sent()), 2)
        self.h.clock.advance(1)
        self.assertEqual(len(self.sent()), 3)
        self.assertFalse(self.registration.registered)
        self.reply(500)
        self.assertIsNone(self.successResultOf(self.registration.stop()))
        self.assertEqual(len(self.sent()), 3)
        self.finish()

    def test_grantedExpiry(self):
        """
        The Contact matching ours decides; without one, Expires; else the
        default.
        """
        response = Response(200, "OK")
        response.headers.add("Contact", "<sip:other@192.0.2.9:5060>;expires=10")
        response.headers.add("Contact", CONTACT + ";expires=70")
        self.assertEqual(grantedExpiry(response, CONTACT, 600), 70)
        response = Response(200, "OK")
        response.headers.add("Expires", "90")
        self.assertEqual(grantedExpiry(response, CONTACT, 600), 90)
        self.assertEqual(grantedExpiry(Response(200, "OK"), CONTACT, 600), 600)

"""
Tests for L{appliance.drm.license}: the issuer on a task.Clock, signing and verification.
"""

import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from appliance.drm.keystore import KeyStore
from appliance.drm.license import (
    ILicenseIssuer, LicenseError, LicenseIssuer, b64decode, b64encode, keyIdFor, kidFor,
    loadSigningKey, signLicense, verifyLicense,
)
from appliance.drm.rights import Rights
from appliance.stats import Statistics
from appliance.storage.database import SynchronousDatabase
from tests.drm.test_keystore import result

KEY = "0b9d2f1e-6a57-4c1e-9a43-2b5f0d5f1a11"
OWNER, BOB, CAROL = "alice@example.test", "bob@example.test", "carol@example.test"


class IssuerTests(SynchronousTestCase):
    """
    Deposit, licenses, Clear Key, audit and statistics.
    """

    def setUp(self):
        self.database = SynchronousDatabase(self.mktemp() + ".sqlite")
        self.database.open()
        self.addCleanup(self.database.close)
        self.clock = Clock()
        self.clock.advance(1700000000)
        self.stats = Statistics("drm")
        self.signing = Ed25519PrivateKey.generate()
        self.issuer = LicenseIssuer(self.database, KeyStore(self.database, os.urandom(32), self.clock),
                                    self.signing, self.clock, self.stats)
        self.key = os.urandom(32)
        outcome = result(self.issuer.deposit(KEY, "content", OWNER, self.key,
                                             {BOB: Rights(plays=2, forwardDepth=1)}, "127.0.0.1"))
        self.assertEqual(outcome.status, 201)

    def audit(self):
        return result(self.database.runInteraction(lambda c: c.execute(
            "SELECT user, action, outcome, reason FROM drm_audit ORDER BY id").fetchall()))

    def test_interface(self):
        """
        LicenseIssuer provides ILicenseIssuer.
        """
        verifyObject(ILicenseIssuer, self.issuer)

    def test_issueSigned(self):
        """
        A license carries the key and rights, and verifies with the server's public key.
        """
        outcome = result(self.issuer.issue(BOB, KEY, "127.0.0.1"))
        self.assertEqual(outcome.status, 200)
        payload = verifyLicense(outcome.body, self.signing.public_key(), KEY, self.clock.seconds())
        self.assertEqual(payload["key"], self.key)
        self.assertEqual(payload["holder"], BOB)
        self.assertEqual(payload["rights"]["plays_left"], 1)
        self.assertEqual(self.stats.get("licenses.issued"), 1)
        self.assertEqual(self.stats.get("keys.stored"), 1)

    def test_refusals(self):
        """
        Refusals say why, with 403 or 404, are counted by reason and audited.
        """
        self.assertEqual(result(self.issuer.issue(CAROL, KEY, "h")).body["reason"], "no rights")
        self.assertEqual(result(self.issuer.issue(BOB, "x", "h")).status, 404)
        result(self.issuer.issue(BOB, KEY, "h"))
        result(self.issuer.issue(BOB, KEY, "h"))
        outcome = result(self.issuer.issue(BOB, KEY, "h"))
        self.assertEqual((outcome.status, outcome.body["reason"]), (403, "exhausted"))
        self.assertEqual(self.stats.get("licenses.refused.exhausted"), 1)
        self.assertEqual(self.stats.get("licenses.refused.no_rights"), 1)
        rows = self.audit()
        self.assertEqual(rows[0], (OWNER, "deposit", "stored", None))
        self.assertIn((CAROL, "license", "refused", "no rights"), rows)
        self.assertEqual(rows[-1], (BOB, "license", "refused", "exhausted"))

    def test_duplicateDeposit(self):
        """
        Depositing a key id twice is refused with 409.
        """
        outcome = result(self.issuer.deposit(KEY, "c", OWNER, self.key, {}, "h"))
        self.assertEqual(outcome.status, 409)

    def test_clearKey(self):
        """
        The Clear Key answer is a JWK set with base64url kid and k; refusals spend nothing.
        """
        kid = kidFor(KEY)
        outcome = result(self.issuer.clearKey(BOB, [(kid, KEY)], "h"))
        self.assertEqual(outcome.body, {"keys": [{"kty": "oct", "kid": kid, "k": b64encode(self.key)}],
                                        "type": "temporary"})
        outcome = result(self.issuer.clearKey(CAROL, [(kid, KEY)], "h"))
        self.assertEqual((outcome.status, outcome.body["reason"]), (403, "no rights"))
        self.assertEqual(keyIdFor(kid), KEY)

    def test_delegateRevokeView(self):
        """
        Delegation, the owner's view and revocation go through the issuer with their outcomes.
        """
        self.assertEqual(result(self.issuer.delegate(BOB, KEY, CAROL, {"plays": 5}, "h")).status, 403)
        self.assertEqual(result(self.issuer.delegate(BOB, KEY, CAROL, {"plays": 1}, "h")).status, 201)
        self.assertEqual(self.stats.get("delegations"), 1)
        view = result(self.issuer.view(OWNER, KEY, "h")).body
        self.assertEqual(sorted(view["rights"]), [BOB, CAROL])
        self.assertEqual(result(self.issuer.revoke(BOB, KEY, None, "h")).status, 403)
        self.assertEqual(result(self.issuer.revoke(OWNER, KEY, BOB, "h")).body["revoked"], 2)
        self.assertEqual(result(self.issuer.issue(CAROL, KEY, "h")).body["reason"], "revoked")
        narrowed = result(self.issuer.narrow(OWNER, KEY, BOB, {"plays": 0}, "h"))
        self.assertEqual(narrowed.body["rights"]["plays_left"], 0)


class SignatureTests(SynchronousTestCase):
    """
    Client-side license verification.
    """

    def test_forgedRejected(self):
        """
        A license signed by another key, or altered, is rejected.
        """
        server, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
        payload = {"version": 1, "key_id": KEY, "key": b64encode(b"k" * 32), "not_after": 10}
        document = signLicense(other, payload)
        e = self.assertRaises(LicenseError, verifyLicense, document, server.public_key())
        self.assertIn("does not verify", str(e))
        document = signLicense(server, payload)
        data = bytearray(b64decode(document["license"]))
        data[-2] ^= 1
        document["license"] = b64encode(bytes(data))
        self.assertRaises(LicenseError, verifyLicense, document, server.public_key())

    def test_wrongKeyIdOrExpired(self):
        """
        A genuine license for another key, or past its not_after, is rejected.
        """
        server = Ed25519PrivateKey.generate()
        document = signLicense(server, {"version": 1, "key_id": KEY, "key": "", "not_after": 10})
        self.assertRaises(LicenseError, verifyLicense, document, server.public_key(), "other")
        self.assertRaises(LicenseError, verifyLicense, document, server.public_key(), KEY, 11)
        self.assertEqual(verifyLicense(document, server.public_key(), KEY, 10)["key"], b"")

    def test_signingKeyFile(self):
        """
        The signing key is made once with mode 0600 and its public key written beside it.
        """
        directory = self.mktemp()
        path = os.path.join(directory, "signing.key")
        key = loadSigningKey(path)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        self.assertTrue(os.path.exists(os.path.join(directory, "signing.pub")))
        self.assertEqual(loadSigningKey(path).public_key().public_bytes_raw(),
                         key.public_key().public_bytes_raw())

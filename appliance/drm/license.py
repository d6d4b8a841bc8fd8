"""
The license issuer: the business logic of the license server, apart from
HTTP (appliance.drm.http) so that it runs and is tested on a task.Clock.

A license is the canonical JSON of C{{"version", "license_id", "key_id",
"content_id", "holder", "key" (base64url), "rights", "issued", "not_after"}}
signed with the server's Ed25519 key; it travels as C{{"license":
base64url(JSON octets), "signature": base64url(signature), "algorithm":
"Ed25519"}} so that the signed octets are exactly those verified
(L{verifyLicense}). Every issuance and refusal is written to C{drm_audit}
within the transaction that decides it.
"""

import base64
import json
import os
import uuid

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from twisted.logger import Logger
from zope.interface import Interface, implementer

from appliance import logs
from appliance.drm import rights as R
from appliance.drm.keystore import KeyStoreError, ensureSecretFile, insertKey, selectKey, selectRecord

_log = Logger(observer=logs.observer)

LICENSE_VERSION = 1
#: How long a player may take to start with a license it received.
LICENSE_LIFETIME = 300


class LicenseError(Exception):
    """
    A license that does not verify or cannot be read (client side).
    """


def b64encode(data):
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def b64decode(text):
    """
    Decode base64url with or without padding.

    @raise ValueError: when malformed.
    """
    if not isinstance(text, str) or len(text) > 4096:
        raise ValueError("not base64url")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (ValueError, TypeError):
        raise ValueError("not base64url")


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")


def kidFor(keyId):
    """
    The EME Clear Key C{kid} of a key id: base64url of the UUID's 16 octets.
    """
    return b64encode(uuid.UUID(keyId).bytes)


def keyIdFor(kid):
    """
    The inverse of L{kidFor}.

    @raise ValueError: for anything but 16 octets of base64url.
    """
    raw = b64decode(kid)
    if len(raw) != 16:
        raise ValueError("a kid is 16 octets")
    return str(uuid.UUID(bytes=raw))


def loadSigningKey(path):
    """
    Read (or make, mode 0600) the server's Ed25519 signing key, PEM PKCS#8,
    and write its public key next to it as C{<path>.pub}.

    @raise KeyStoreError: when the file holds anything else.
    """
    pem = ensureSecretFile(path, lambda: Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyStoreError("%s is not an unencrypted Ed25519 private key (PEM)" % (path,))
    public = publicKeyPEM(key.public_key())
    publicPath = os.path.splitext(path)[0] + ".pub"
    try:
        with open(publicPath, "rb") as f:
            current = f.read()
    except FileNotFoundError:
        current = None
    if current != public:
        with open(publicPath, "wb") as f:
            f.write(public)
    return key


def publicKeyPEM(publicKey):
    return publicKey.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def loadPublicKey(pem):
    """
    Load the server's public key from PEM.

    @raise LicenseError: for anything but an Ed25519 public key.
    """
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise LicenseError("not a PEM public key")
    if not isinstance(key, Ed25519PublicKey):
        raise LicenseError("not an Ed25519 public key")
    return key


def signLicense(signingKey, payload):
    data = canonical(payload)
    return {"license": b64encode(data), "signature": b64encode(signingKey.sign(data)),
            "algorithm": "Ed25519"}


def verifyLicense(document, publicKey, keyId=None, now=None):
    """
    Check a license document's signature (and key id and validity) and
    return its payload, with C{"key"} decoded to octets.

    @raise LicenseError: saying why it is not accepted.
    """
    try:
        if document.get("algorithm") != "Ed25519":
            raise LicenseError("unsupported license signature algorithm")
        data = b64decode(document["license"])
        signature = b64decode(document["signature"])
    except (KeyError, AttributeError, ValueError):
        raise LicenseError("malformed license")
    try:
        publicKey.verify(signature, data)
    except InvalidSignature:
        raise LicenseError("the license signature does not verify: not issued by this server")
    try:
        payload = json.loads(data)
        payload["key"] = b64decode(payload["key"])
    except (KeyError, TypeError, ValueError):
        raise LicenseError("malformed license")
    if payload.get("version") != LICENSE_VERSION:
        raise LicenseError("unsupported license version")
    if keyId is not None and payload.get("key_id") != keyId:
        raise LicenseError("the license is for another key")
    if now is not None and not now <= payload.get("not_after", 0):
        raise LicenseError("the license has expired")
    return payload


@attrs.frozen
class Outcome:
    """
    What the issuer answers: C{status} (HTTP-like: 200, 201, 403, 404, 409)
    and a JSON-ready C{body}.
    """

    status: int
    body: dict

    @property
    def allowed(self):
        return self.status < 300


class _Refused(Exception):
    def __init__(self, decision, keyId):
        self.decision = decision
        self.keyId = keyId


def _audit(cursor, now, user, source, keyId, action, outcome, reason):
    cursor.execute(
        "INSERT INTO drm_audit (time, user, source, key_id, action, outcome, reason) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)", (now, user, source, keyId, action, outcome, reason))


def _refusal(decision, keyId=None):
    status = 404 if decision.reason == R.UNKNOWN_KEY else 403
    body = {"error": "refused", "reason": decision.reason}
    if keyId is not None:
        body["key_id"] = keyId
    return Outcome(status, body)


class ILicenseIssuer(Interface):
    """
    The license server's operations; each fires with an L{Outcome}.
    """

    def deposit(keyId, contentId, owner, key, grants, source):
        """
        Store a content key and its holders' rights (C{{holder: Rights}}).
        """

    def issue(user, keyId, source):
        """
        A signed license for playing, spending one play.
        """

    def clearKey(user, kids, source):
        """
        An EME Clear Key JWK set for C{kids}, spending one play of each.
        """

    def delegate(user, keyId, holder, requested, source):
        """
        Delegate rights from C{user} to C{holder}.
        """

    def revoke(user, keyId, holder, source):
        """
        Revoke as the owner.
        """

    def narrow(user, keyId, holder, limits, source):
        """
        Narrow a holder's rights as the owner.
        """

    def view(user, keyId, source):
        """
        The rights C{user} may see.
        """


@implementer(ILicenseIssuer)
class LicenseIssuer:
    """
    L{ILicenseIssuer} on the appliance database.

    @param keyStore: the L{appliance.drm.keystore.KeyStore} (for its master key).
    @param signingKey: the server's L{Ed25519PrivateKey}.
    @param clock: an C{IReactorTime}.
    @param stats: the service's L{appliance.stats.Statistics}.
    """

    def __init__(self, database, keyStore, signingKey, clock, stats, licenseLifetime=LICENSE_LIFETIME):
        self._database = database
        self._master = keyStore.masterKey
        self._keyStore = keyStore
        self._signingKey = signingKey
        self._clock = clock
        self._stats = stats
        self._lifetime = licenseLifetime
        self.keysStored = 0
        stats.gauge("keys.stored", lambda: self.keysStored)
        for name in ("licenses.issued", "delegations"):
            stats.increment(name, 0)

    def __repr__(self):
        return "<LicenseIssuer>"

    def start(self):
        """
        Read the number of keys stored.
        """
        d = self._keyStore.count()
        d.addCallback(lambda count: setattr(self, "keysStored", count))
        return d

    @property
    def publicKey(self):
        return self._signingKey.public_key()

    def _refused(self, action, user, keyId, reason):
        self._stats.increment("licenses.refused")
        self._stats.increment("licenses.refused." + reason.replace(" ", "_").replace("'", ""))
        _log.info("DRM {action} for {user} on {keyId} refused: {reason}",
                  action=action, user=user, keyId=keyId, reason=reason)

    def deposit(self, keyId, contentId, owner, key, grants, source):
        now = self._clock.seconds()

        def store(cursor):
            try:
                insertKey(cursor, self._master, keyId, contentId, owner, key, now)
            except KeyError:
                _audit(cursor, now, None, source, keyId, "deposit", "refused", "key exists")
                return Outcome(409, {"error": "refused", "reason": "key exists", "key_id": keyId})
            for holder, rights in grants.items():
                R.putRightsIn(cursor, keyId, holder, rights, now)
            _audit(cursor, now, owner, source, keyId, "deposit", "stored", None)
            return Outcome(201, {"key_id": keyId, "holders": sorted(grants)})

        def stored(outcome):
            if outcome.allowed:
                self.keysStored += 1
                _log.info("DRM key {keyId} deposited by {owner} for {holders}", keyId=keyId,
                          owner=owner, holders=", ".join(sorted(grants)))
            return outcome

        return self._database.runInteraction(store).addCallback(stored)

    def issue(self, user, keyId, source):
        now = self._clock.seconds()

        def decide(cursor):
            decision = R.consumePlayIn(cursor, keyId, user, now)
            if not decision.allowed:
                _audit(cursor, now, user, source, keyId, "license", "refused", decision.reason)
                return decision, None, None
            key = selectKey(cursor, self._master, keyId)
            record = selectRecord(cursor, keyId)
            _audit(cursor, now, user, source, keyId, "license", "issued", None)
            return decision, key, record

        def answer(result):
            decision, key, record = result
            if key is None:
                self._refused("license", user, keyId, decision.reason)
                return _refusal(decision, keyId)
            self._stats.increment("licenses.issued")
            _log.debug("DRM license for {user} on {keyId}: {plays} plays left",
                      user=user, keyId=keyId, plays=decision.rights.plays)
            payload = {
                "version": LICENSE_VERSION, "license_id": str(uuid.uuid4()), "key_id": keyId,
                "content_id": record.contentId, "holder": user, "key": b64encode(key),
                "rights": decision.rights.asDict(), "issued": now, "not_after": now + self._lifetime,
            }
            return Outcome(200, signLicense(self._signingKey, payload))

        return self._database.runInteraction(decide).addCallback(answer)

    def clearKey(self, user, kids, source):
        now = self._clock.seconds()

        def decide(cursor):
            keys = []
            for kid, keyId in kids:
                decision = R.consumePlayIn(cursor, keyId, user, now)
                if not decision.allowed:
                    raise _Refused(decision, keyId)
                keys.append({"kty": "oct", "kid": kid,
                             "k": b64encode(selectKey(cursor, self._master, keyId))})
            for _, keyId in kids:
                _audit(cursor, now, user, source, keyId, "clearkey", "issued", None)
            return keys

        def refused(failure):
            failure.trap(_Refused)
            e = failure.value

            def record(cursor):
                _audit(cursor, now, user, source, e.keyId, "clearkey", "refused", e.decision.reason)

            self._refused("clearkey", user, e.keyId, e.decision.reason)
            d = self._database.runInteraction(record)
            return d.addCallback(lambda _: _refusal(e.decision, e.keyId))

        def issued(keys):
            if isinstance(keys, Outcome):
                return keys
            self._stats.increment("licenses.issued", len(keys))
            return Outcome(200, {"keys": keys, "type": "temporary"})

        d = self._database.runInteraction(decide)
        d.addCallbacks(issued, refused)
        return d

    def _owned(self, action, user, keyId, source, run, describe):
        now = self._clock.seconds()

        def decide(cursor):
            result = run(cursor, now)
            decision = result[0] if isinstance(result, tuple) else result
            _audit(cursor, now, user, source, keyId, action,
                   "done" if decision.allowed else "refused", None if decision.allowed else decision.reason)
            return result

        def answer(result):
            decision = result[0] if isinstance(result, tuple) else result
            if not decision.allowed:
                self._refused(action, user, keyId, decision.reason)
                return _refusal(decision, keyId)
            return describe(result)

        return self._database.runInteraction(decide).addCallback(answer)

    def delegate(self, user, keyId, holder, requested, source):
        def described(decision):
            self._stats.increment("delegations")
            _log.info("DRM {user} delegated {keyId} to {holder}", user=user, keyId=keyId, holder=holder)
            return Outcome(201, {"key_id": keyId, "holder": holder, "rights": decision.rights.asDict()})

        return self._owned(
            "delegate", user, keyId, source,
            lambda cursor, now: R.delegateIn(cursor, keyId, user, holder, requested, now), described)

    def revoke(self, user, keyId, holder, source):
        return self._owned(
            "revoke", user, keyId, source,
            lambda cursor, now: R.revokeIn(cursor, keyId, user, holder, now),
            lambda result: Outcome(200, {"key_id": keyId, "revoked": result[1]}))

    def narrow(self, user, keyId, holder, limits, source):
        return self._owned(
            "narrow", user, keyId, source,
            lambda cursor, now: R.narrowIn(cursor, keyId, user, holder, now=now, **limits),
            lambda decision: Outcome(200, {"key_id": keyId, "holder": holder,
                                           "rights": decision.rights.asDict()}))

    def view(self, user, keyId, source):
        def run(cursor, now):
            decision, rights = R.viewIn(cursor, keyId, user)
            return decision, rights, R.ownerIn(cursor, keyId)

        return self._owned(
            "view", user, keyId, source, run,
            lambda result: Outcome(200, {"key_id": keyId, "owner": result[2], "rights": {
                holder: rights.asDict() for holder, rights in result[1].items()}}))

"""
The content key store: keys at rest in SQLite, each wrapped with AES-256-GCM
under the master key kept in C{<data_dir>/drm/master.key} (32 random octets,
mode 0600, made on first start).

A database copied without the master key file yields no content key. Keys
are never logged, and appear in no exception message.
"""

import os

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from zope.interface import Interface, implementer

MASTER_KEY_SIZE = 32
_WRAP_NONCE = 12
_WRAP_LABEL = b"appliance drm key wrap v1:"


class KeyStoreError(Exception):
    """
    The master key file is unusable, or a stored key cannot be unwrapped
    with it.
    """


def ensureSecretFile(path, make):
    """
    Return the contents of the secret file at C{path}, creating it with
    C{make()} (bytes) and mode 0600 (directory 0700) when it does not exist.
    """
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    data = make()
    temporary = path + ".new"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    return data


def loadMasterKey(path):
    """
    Read (or create on first use) the master key file.

    @raise KeyStoreError: when it exists with the wrong size or is readable
        by others than its owner.
    """
    key = ensureSecretFile(path, lambda: os.urandom(MASTER_KEY_SIZE))
    if len(key) != MASTER_KEY_SIZE:
        raise KeyStoreError("%s is not a %d-octet master key" % (path, MASTER_KEY_SIZE))
    if os.stat(path).st_mode & 0o077:
        raise KeyStoreError("%s must be readable by its owner only (chmod 600)" % (path,))
    return key


def wrapKey(masterKey, keyId, key):
    """
    Encrypt a content key under the master key, bound to its key id.
    """
    nonce = os.urandom(_WRAP_NONCE)
    return nonce + AESGCM(masterKey).encrypt(nonce, key, _WRAP_LABEL + keyId.encode("ascii"))


def unwrapKey(masterKey, keyId, wrapped):
    """
    The inverse of L{wrapKey}.

    @raise KeyStoreError: with another master key, another key id or an
        altered record.
    """
    try:
        return AESGCM(masterKey).decrypt(
            wrapped[:_WRAP_NONCE], wrapped[_WRAP_NONCE:], _WRAP_LABEL + keyId.encode("ascii"))
    except (InvalidTag, ValueError):
        raise KeyStoreError("the stored key %s cannot be unwrapped with this master key" % (keyId,))


@attrs.frozen
class KeyRecord:
    """
    What the store knows about a key, apart from the key itself.
    """

    keyId: str
    contentId: str
    owner: str
    created: float


class IKeyStore(Interface):
    """
    Content keys by key id.
    """

    def storeKey(keyId, contentId, owner, key):
        """
        Store a new key; fires with the L{KeyRecord}, or fails with
        C{KeyError} when the key id exists.
        """

    def getKey(keyId):
        """
        Fire with the key octets, or C{None} for an unknown key id.
        """

    def getRecord(keyId):
        """
        Fire with the L{KeyRecord}, or C{None}.
        """

    def count():
        """
        Fire with the number of keys stored.
        """


def insertKey(cursor, masterKey, keyId, contentId, owner, key, now):
    """
    Insert a wrapped key within a transaction (for callers that store rights
    in the same one).

    @raise KeyError: when the key id exists.
    """
    cursor.execute("SELECT 1 FROM drm_keys WHERE key_id = ?", (keyId,))
    if cursor.fetchone() is not None:
        raise KeyError(keyId)
    cursor.execute(
        "INSERT INTO drm_keys (key_id, content_id, owner, wrapped, created) VALUES (?, ?, ?, ?, ?)",
        (keyId, contentId, owner, wrapKey(masterKey, keyId, key), now),
    )
    return KeyRecord(keyId, contentId, owner, now)


def selectRecord(cursor, keyId):
    cursor.execute(
        "SELECT key_id, content_id, owner, created FROM drm_keys WHERE key_id = ?", (keyId,))
    row = cursor.fetchone()
    return None if row is None else KeyRecord(*row)


def selectKey(cursor, masterKey, keyId):
    cursor.execute("SELECT wrapped FROM drm_keys WHERE key_id = ?", (keyId,))
    row = cursor.fetchone()
    return None if row is None else unwrapKey(masterKey, keyId, bytes(row[0]))


@implementer(IKeyStore)
class KeyStore:
    """
    The key store on the appliance database.

    @param database: L{appliance.storage.database.Database} (or the
        synchronous one).
    @param masterKey: the 32-octet master key (L{loadMasterKey}).
    @param clock: an C{IReactorTime} for the creation times.
    """

    def __init__(self, database, masterKey, clock):
        if len(masterKey) != MASTER_KEY_SIZE:
            raise ValueError("the master key must be %d octets" % (MASTER_KEY_SIZE,))
        self._database = database
        self._master = bytes(masterKey)
        self._clock = clock

    def __repr__(self):
        return "<KeyStore>"

    def storeKey(self, keyId, contentId, owner, key):
        now = self._clock.seconds()
        return self._database.runInteraction(
            insertKey, self._master, keyId, contentId, owner, bytes(key), now)

    def getKey(self, keyId):
        return self._database.runInteraction(selectKey, self._master, keyId)

    def getRecord(self, keyId):
        return self._database.runInteraction(selectRecord, keyId)

    def count(self):
        return self._database.runInteraction(
            lambda cursor: cursor.execute("SELECT COUNT(*) FROM drm_keys").fetchone()[0])

    def unwrap(self, keyId, wrapped):
        """
        Unwrap a key read by a caller's own query.
        """
        return unwrapKey(self._master, keyId, wrapped)

    @property
    def masterKey(self):
        return self._master

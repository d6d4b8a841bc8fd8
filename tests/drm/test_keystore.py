"""
Tests for L{appliance.drm.keystore}.
"""

import os
import stat

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from appliance.drm.keystore import (
    IKeyStore, KeyStore, KeyStoreError, loadMasterKey, unwrapKey, wrapKey,
)
from appliance.drm.package import newKey
from appliance.storage.database import SynchronousDatabase

KEY_ID = "0b9d2f1e-6a57-4c1e-9a43-2b5f0d5f1a11"


def result(d):
    out = []
    d.addBoth(out.append)
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


class KeyStoreTests(SynchronousTestCase):
    """
    Wrapped keys in SQLite, the master key file.
    """

    def setUp(self):
        self.directory = self.mktemp()
        os.makedirs(self.directory)
        self.database = SynchronousDatabase(os.path.join(self.directory, "db.sqlite"))
        self.database.open()
        self.addCleanup(self.database.close)
        self.master = loadMasterKey(os.path.join(self.directory, "drm", "master.key"))
        self.store = KeyStore(self.database, self.master, Clock())

    def test_interface(self):
        """
        KeyStore provides IKeyStore.
        """
        verifyObject(IKeyStore, self.store)

    def test_masterKeyFile(self):
        """
        The master key file is made once, 32 octets, mode 0600, and read back the same.
        """
        path = os.path.join(self.directory, "drm", "master.key")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(len(self.master), 32)
        self.assertEqual(loadMasterKey(path), self.master)

    def test_masterKeyPermissions(self):
        """
        A master key readable by others is refused.
        """
        path = os.path.join(self.directory, "drm", "master.key")
        os.chmod(path, 0o644)
        self.assertRaises(KeyStoreError, loadMasterKey, path)

    def test_storeAndGet(self):
        """
        A stored key comes back with its record; unknown ids give None; duplicates fail.
        """
        key = newKey()
        record = result(self.store.storeKey(KEY_ID, "content", "alice@example.test", key))
        self.assertEqual(record.owner, "alice@example.test")
        self.assertEqual(result(self.store.getKey(KEY_ID)), key)
        self.assertEqual(result(self.store.getRecord(KEY_ID)), record)
        self.assertIsNone(result(self.store.getKey("other")))
        self.assertEqual(result(self.store.count()), 1)
        self.assertRaises(KeyError, result, self.store.storeKey(KEY_ID, "c", "o", key))

    def test_notReadableWithoutMasterKey(self):
        """
        The database file holds neither the key nor anything another master key unwraps.
        """
        key = newKey()
        result(self.store.storeKey(KEY_ID, "content", "alice@example.test", key))
        self.database.close()
        for name in os.listdir(self.directory):
            path = os.path.join(self.directory, name)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    self.assertNotIn(key, f.read())
        self.database.open()
        other = KeyStore(self.database, os.urandom(32), Clock())
        self.assertRaises(KeyStoreError, result, other.getKey(KEY_ID))

    def test_wrapBoundToKeyId(self):
        """
        A wrapped key moved to another key id does not unwrap.
        """
        wrapped = wrapKey(self.master, KEY_ID, newKey())
        self.assertRaises(KeyStoreError, unwrapKey, self.master, "another", wrapped)

    def test_reprHidesKey(self):
        """
        The store's repr shows no key material.
        """
        self.assertNotIn(self.master.hex(), repr(self.store))

"""
Tests for L{appliance.storage.users}.
"""

import hashlib

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from appliance.interfaces import IUserDirectory
from appliance.storage.database import SynchronousDatabase
from appliance.storage.users import InvalidUser, UserDirectory, digestHA1, splitUser


class DigestTests(SynchronousTestCase):
    """
    HA1 computation.
    """

    def test_rfc7616Example(self):
        """
        HA1 for MD5 and SHA-256 is H(username:realm:password), as in the
        worked example of RFC 7616 section 3.9.1.
        """
        self.assertEqual(
            digestHA1("Mufasa", "http-auth@example.org", "Circle of Life", "SHA-256"),
            hashlib.sha256(b"Mufasa:http-auth@example.org:Circle of Life").hexdigest(),
        )
        self.assertEqual(
            digestHA1("Mufasa", "testrealm@host.com", "Circle Of Life"),
            "939e7578ed9e3c518a452acee763bce9",
        )

    def test_splitUser(self):
        """
        A user is name@domain with the domain lower-cased; anything else is
        refused.
        """
        self.assertEqual(splitUser("Alice@Example.TEST"), ("Alice", "example.test"))
        for bad in ["alice", "@example.test", "al ice@example.test", "a@b@c", "a@-x", "a:b@x"]:
            self.assertRaises(InvalidUser, splitUser, bad)


class UserDirectoryTests(SynchronousTestCase):
    """
    The user directory on a real SQLite file.
    """

    def setUp(self):
        self.path = self.mktemp()
        self.database = SynchronousDatabase(self.path)
        self.database.open()
        self.addCleanup(self.database.close)
        self.users = UserDirectory(self.database, clock=lambda: 1000.0)

    def test_interface(self):
        """
        The directory provides L{IUserDirectory}.
        """
        self.assertTrue(verifyObject(IUserDirectory, self.users))

    def test_addAndGet(self):
        """
        An added user can be read back with its details.
        """
        self.successResultOf(
            self.users.addUser("alice@example.test", "s3cret", "Alice A", "a@example.test")
        )
        user = self.successResultOf(self.users.getUser("alice@example.test"))
        self.assertEqual(
            (user.aor, user.realm, user.displayName, user.email, user.created),
            ("alice@example.test", "example.test", "Alice A", "a@example.test", 1000.0),
        )

    def test_duplicateRefused(self):
        """
        Adding an existing user fails with L{KeyError}.
        """
        self.successResultOf(self.users.addUser("alice@example.test", "x"))
        self.failureResultOf(self.users.addUser("alice@EXAMPLE.test", "y"), KeyError)

    def test_passwordNeverStored(self):
        """
        The database file holds the digest hashes but not the password.
        """
        self.successResultOf(self.users.addUser("alice@example.test", "UniqueSecret123"))
        self.database.close()
        with open(self.path, "rb") as f:
            data = f.read()
        for suffix in ("-wal", ""):
            try:
                with open(self.path + suffix, "rb") as f:
                    data += f.read()
            except FileNotFoundError:
                pass
        self.assertNotIn(b"UniqueSecret123", data)
        self.database.open()

    def test_digestHashes(self):
        """
        The stored HA1 for both algorithms and both username forms matches
        what a client computes; other realms and algorithms give nothing.
        """
        self.successResultOf(self.users.addUser("alice@example.test", "pw"))
        for username in ("alice", "alice@example.test"):
            for algorithm in ("MD5", "SHA-256"):
                self.assertEqual(
                    self.successResultOf(
                        self.users.digestHash(username, "example.test", algorithm)
                    ),
                    digestHA1(username, "example.test", "pw", algorithm),
                )
        for args in [("alice", "other.test", "MD5"), ("alice", "example.test", "SHA-512"),
                     ("bob", "example.test", "MD5"), ("x y", "example.test", "MD5")]:
            self.assertIsNone(self.successResultOf(self.users.digestHash(*args)))

    def test_setPassword(self):
        """
        A new password replaces the hashes.
        """
        self.successResultOf(self.users.addUser("alice@example.test", "old"))
        self.successResultOf(self.users.setPassword("alice@example.test", "new"))
        self.assertEqual(
            self.successResultOf(self.users.digestHash("alice", "example.test", "MD5")),
            digestHA1("alice", "example.test", "new"),
        )
        self.failureResultOf(self.users.setPassword("bob@example.test", "x"), KeyError)

    def test_removeAndList(self):
        """
        Users list in order, per domain, and removed users are gone.
        """
        for user in ["bob@b.test", "carol@a.test", "alice@a.test"]:
            self.successResultOf(self.users.addUser(user, "x"))
        self.successResultOf(self.users.removeUser("carol@a.test"))
        self.failureResultOf(self.users.removeUser("carol@a.test"), KeyError)
        everyone = self.successResultOf(self.users.listUsers())
        self.assertEqual([u.aor for u in everyone], ["alice@a.test", "bob@b.test"])
        inA = self.successResultOf(self.users.listUsers("A.test"))
        self.assertEqual([u.aor for u in inA], ["alice@a.test"])

    def test_configuredRealm(self):
        """
        With a configured realm the hashes are made for that realm.
        """
        users = UserDirectory(self.database, realmFor=lambda domain: "corp")
        self.successResultOf(users.addUser("alice@example.test", "pw"))
        self.assertEqual(
            self.successResultOf(users.digestHash("alice", "corp", "MD5")),
            digestHA1("alice", "corp", "pw"),
        )

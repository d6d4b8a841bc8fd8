"""
Tests for L{appliance.storage.database}.
"""

import sqlite3

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from appliance.storage.database import (
    Database,
    SchemaError,
    SynchronousDatabase,
    connect,
    migrate,
    schemaVersion,
)
from appliance.storage.schema import MIGRATIONS


class MigrationTests(SynchronousTestCase):
    """
    Versioned schema migrations.
    """

    def test_newDatabaseIsMigratedAndInWALMode(self):
        """
        A new file gets every migration and WAL journaling.
        """
        path = self.mktemp()
        connection = connect(path)
        self.addCleanup(connection.close)
        self.assertEqual(schemaVersion(connection), len(MIGRATIONS))
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
        self.assertEqual(mode, "wal")

    def test_migrationsApplyOnlyOnce(self):
        """
        Reopening a migrated file applies nothing again and keeps the data.
        """
        path = self.mktemp()
        connection = connect(path)
        connection.execute(
            "INSERT INTO users (username, domain, realm, ha1_md5, ha1b_md5, "
            "ha1_sha256, ha1b_sha256, created) VALUES ('a', 'd', 'd', '', '', '', '', 0)"
        )
        connection.close()
        connection = connect(path)
        self.addCleanup(connection.close)
        self.assertEqual(connection.execute("SELECT count(*) FROM users").fetchone()[0], 1)

    def test_newerSchemaRefused(self):
        """
        A database written by a newer appliance is refused, not damaged.
        """
        connection = sqlite3.connect(":memory:", isolation_level=None)
        connection.execute("PRAGMA user_version=%d" % (len(MIGRATIONS) + 1,))
        self.assertRaises(SchemaError, migrate, connection)

    def test_failedMigrationRollsBack(self):
        """
        A migration that fails leaves the schema version and tables as they
        were.
        """
        connection = sqlite3.connect(":memory:", isolation_level=None)
        steps = [["CREATE TABLE a (x)"], ["CREATE TABLE b (x)", "NOT SQL"]]
        self.assertRaises(sqlite3.OperationalError, migrate, connection, steps)
        self.assertEqual(schemaVersion(connection), 1)
        tables = [r[0] for r in connection.execute("SELECT name FROM sqlite_master")]
        self.assertEqual(tables, ["a"])


class SynchronousDatabaseTests(SynchronousTestCase):
    """
    Interactions are transactions.
    """

    def setUp(self):
        self.database = SynchronousDatabase(self.mktemp())
        self.database.open()
        self.addCleanup(self.database.close)

    def test_interactionResult(self):
        """
        The function's result is the Deferred's result.
        """
        d = self.database.runInteraction(lambda cursor, x: x * 2, 21)
        self.assertEqual(self.successResultOf(d), 42)

    def test_failureRollsBack(self):
        """
        A function that raises leaves nothing of what it wrote.
        """

        def write(cursor):
            cursor.execute(
                "INSERT INTO users (username, domain, realm, ha1_md5, ha1b_md5, "
                "ha1_sha256, ha1b_sha256, created) VALUES ('a', 'd', 'd', '', '', '', '', 0)"
            )
            raise ValueError("no")

        self.failureResultOf(self.database.runInteraction(write), ValueError)
        count = self.database.runInteraction(
            lambda cursor: cursor.execute("SELECT count(*) FROM users").fetchone()[0]
        )
        self.assertEqual(self.successResultOf(count), 0)


class ThreadedDatabaseTests(TestCase):
    """
    The reactor's database runs interactions in its own thread.
    """

    def test_runsOffTheReactorThread(self):
        """
        The interaction runs in a thread other than the caller's and its
        result arrives through the reactor.
        """
        import threading

        database = Database(reactor, self.mktemp())
        database.open()
        self.addCleanup(database.close)
        d = database.runInteraction(lambda cursor: threading.current_thread())
        d.addCallback(self.assertNotEqual, threading.current_thread())
        return d


class GroupCommitTests(TestCase):
    """
    Interactions queued together commit together, each still atomic.
    """

    def setUp(self):
        self.database = Database(reactor, self.mktemp())
        self.database.open()
        self.addCleanup(self.database.close)

    def test_batchKeepsEachInteractionAtomic(self):
        """
        Of several interactions queued at once, the one that raises leaves
        nothing behind and fails alone; the others are committed and get
        their results.
        """
        import threading

        from twisted.internet.defer import gatherResults

        def insert(cursor, name, fail=False):
            cursor.execute(
                "INSERT INTO users (username, domain, realm, ha1_md5, ha1b_md5, "
                "ha1_sha256, ha1b_sha256, created) VALUES (?, 'd', 'd', '', '', '', '', 0)",
                (name,),
            )
            if fail:
                raise ValueError(name)
            return name, threading.current_thread()

        results = [self.database.runInteraction(insert, "u%d" % i, fail=(i == 3)) for i in range(8)]
        failed = results.pop(3)
        self.assertFailure(failed, ValueError)

        def check(values):
            self.assertEqual([name for name, thread in values],
                             ["u0", "u1", "u2", "u4", "u5", "u6", "u7"])
            return self.database.runInteraction(
                lambda cursor: [row[0] for row in cursor.execute(
                    "SELECT username FROM users ORDER BY username")]
            )

        d = gatherResults(results + [failed])
        d.addCallback(lambda values: check(values[:-1]))
        d.addCallback(self.assertEqual, ["u0", "u1", "u2", "u4", "u5", "u6", "u7"])
        return d

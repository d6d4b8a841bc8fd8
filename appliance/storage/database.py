"""
The appliance's SQLite database: WAL mode, versioned schema migrations, and
queries run off the reactor thread.

All services share one database file in the data directory. Work is handed
to L{Database.runInteraction} as a function of a cursor; it runs in a
dedicated thread that owns the one connection, inside a transaction that
commits when the function returns and rolls back when it raises, so the
reactor never waits on the disk. L{SynchronousDatabase} offers the same
interface for the command-line tool and unit tests, running the function at
once.
"""

import os
import sqlite3

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from appliance import logs
from appliance.storage.schema import MIGRATIONS

_log = Logger(observer=logs.observer)


class SchemaError(Exception):
    """
    The database was written by a newer version of the appliance.
    """


def connect(path):
    """
    Open the SQLite file at C{path} (creating its directory), switch it to
    WAL mode and bring its schema up to date.

    @return: an open L{sqlite3.Connection} in autocommit mode; transactions
        are begun explicitly.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    connection = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=10
    )
    connection.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL is durable against a crash of the process, which is
    # the failure we guard against; FULL adds an fsync per commit for power
    # loss. Registrations and messages must survive a restart: keep FULL.
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA foreign_keys=ON")
    migrate(connection)
    return connection


def schemaVersion(connection):
    return connection.execute("PRAGMA user_version").fetchone()[0]


def migrate(connection, migrations=MIGRATIONS):
    """
    Apply the migrations the database has not seen yet, each in its own
    transaction, recording progress in C{PRAGMA user_version}.

    @raise SchemaError: when the file is newer than this code.
    """
    current = schemaVersion(connection)
    if current > len(migrations):
        raise SchemaError(
            "database schema version %d is newer than this appliance "
            "understands (%d)" % (current, len(migrations))
        )
    for version, script in enumerate(migrations[current:], start=current + 1):
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in script:
                connection.execute(statement)
            connection.execute("PRAGMA user_version=%d" % (version,))
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        _log.info("database schema migrated to version {version}", version=version)


def _transaction(connection, function, args, kwargs):
    cursor = connection.cursor()
    cursor.execute("BEGIN IMMEDIATE")
    try:
        result = function(cursor, *args, **kwargs)
    except BaseException:
        cursor.execute("ROLLBACK")
        raise
    cursor.execute("COMMIT")
    return result


def _batch(connection, work):
    """
    Run several interactions in one transaction, each inside its own
    savepoint: one that raises is rolled back alone, the others commit
    together (group commit: one disk sync for the lot).

    @return: a list of C{(succeeded, result or Failure)}, in order.
    """
    cursor = connection.cursor()
    outcomes = []
    cursor.execute("BEGIN IMMEDIATE")
    try:
        for function, args, kwargs in work:
            cursor.execute("SAVEPOINT interaction")
            try:
                result = function(cursor, *args, **kwargs)
            except Exception:
                cursor.execute("ROLLBACK TO interaction")
                cursor.execute("RELEASE interaction")
                outcomes.append((False, Failure()))
            else:
                cursor.execute("RELEASE interaction")
                outcomes.append((True, result))
        cursor.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            cursor.execute("ROLLBACK")
        raise
    return outcomes


class Database:
    """
    The database as the running appliance uses it: one connection owned by
    one worker thread, so that writes are serialised and the reactor thread
    never touches the file.

    Interactions queue up while the thread is busy and then run as one
    batch in one transaction (see L{_batch}), so that a burst of, say,
    registrations costs one disk sync rather than one each, while each
    interaction stays atomic and its result is only delivered once it is on
    disk.

    @ivar path: the SQLite file.
    """

    #: The most interactions committed together.
    maxBatch = 256

    def __init__(self, reactor, path):
        self._reactor = reactor
        self.path = path
        self._connection = None
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="appliance-db")
        self._queue = []
        self._busy = False

    def open(self):
        """
        Open the file and migrate it; synchronous, for start-up before any
        request is served.
        """
        self._connection = connect(self.path)
        self._pool.start()

    def close(self):
        """
        Stop the worker thread after the queued work and close the file.
        """
        self._pool.stop()
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def runInteraction(self, function, *args, **kwargs):
        """
        Run C{function(cursor, *args, **kwargs)} atomically in the database
        thread, committed (possibly together with other interactions) before
        the result is delivered.

        @return: a L{Deferred} firing with its result.
        """
        d = Deferred()
        self._queue.append((function, args, kwargs, d))
        if not self._busy:
            self._runQueued()
        return d

    def _runQueued(self):
        batch, self._queue = self._queue[:self.maxBatch], self._queue[self.maxBatch:]
        self._busy = True
        work = [(function, args, kwargs) for function, args, kwargs, d in batch]
        done = deferToThreadPool(self._reactor, self._pool, _batch, self._connection, work)
        done.addBoth(self._delivered, [d for function, args, kwargs, d in batch])

    def _delivered(self, outcomes, waiting):
        self._busy = False
        if self._queue:
            self._runQueued()
        if isinstance(outcomes, Failure):
            for d in waiting:
                d.errback(outcomes)
            return
        for d, (succeeded, result) in zip(waiting, outcomes):
            if succeeded:
                d.callback(result)
            else:
                d.errback(result)


class SynchronousDatabase:
    """
    The same interface as L{Database}, running each interaction at once in
    the calling thread: for the command-line tool and unit tests.
    """

    def __init__(self, path):
        self.path = path
        self._connection = None

    def open(self):
        self._connection = connect(self.path)

    def close(self):
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def runInteraction(self, function, *args, **kwargs):
        try:
            result = _transaction(self._connection, function, args, kwargs)
        except Exception:
            return fail()
        return succeed(result)

"""
The user directory: one store of users for SIP digest, RTSP digest, web
login and license requests.

A user is C{name@domain}. Passwords are never stored, in clear or otherwise
reversible: only the HTTP / SIP digest HA1 hashes (RFC 7616 section 3.4.2,
RFC 8760), which are what a digest server needs and all it needs.
"""

import hashlib
import re
import time

import attrs
from zope.interface import implementer

from appliance.interfaces import IUserDirectory

ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}

_USERNAME = re.compile(r"^[A-Za-z0-9._~+-]{1,64}$")
_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


class InvalidUser(ValueError):
    """
    A user name that is not C{name@domain} with safe characters.
    """


@attrs.frozen
class User:
    """
    A user record, without its hashes.
    """

    username: str
    domain: str
    realm: str
    displayName: str | None = None
    email: str | None = None
    created: float = 0.0

    @property
    def aor(self):
        """
        The address of record, C{name@domain}.
        """
        return "%s@%s" % (self.username, self.domain)


def splitUser(user):
    """
    Split C{'name@domain'} into its parts, checking both.

    @raise InvalidUser: for anything else.
    """
    name, at, domain = user.rpartition("@")
    domain = domain.lower()
    if not at or not _USERNAME.match(name) or not _DOMAIN.match(domain):
        raise InvalidUser(
            "%r is not a user name of the form name@domain" % (user,)
        )
    return name, domain


def digestHA1(username, realm, password, algorithm="MD5"):
    """
    Compute H(username ":" realm ":" password), RFC 7616 section 3.4.2.
    """
    data = ("%s:%s:%s" % (username, realm, password)).encode("utf-8")
    return ALGORITHMS[algorithm](data).hexdigest()


def _hashes(username, domain, realm, password):
    aor = "%s@%s" % (username, domain)
    return (
        digestHA1(username, realm, password, "MD5"),
        digestHA1(aor, realm, password, "MD5"),
        digestHA1(username, realm, password, "SHA-256"),
        digestHA1(aor, realm, password, "SHA-256"),
    )


_COLUMNS = "username, domain, realm, display_name, email, created"


def _user(row):
    return User(row[0], row[1], row[2], row[3], row[4], row[5])


@implementer(IUserDirectory)
class UserDirectory:
    """
    The users of the appliance's domains, in the database.

    @param database: a L{appliance.storage.database.Database} or
        L{SynchronousDatabase}.
    @param realmFor: a callable from a domain to the digest realm its users
        are challenged in (the domain itself unless configured otherwise).
    @param clock: returns the current time, for the C{created} stamp.
    """

    def __init__(self, database, realmFor=lambda domain: domain, clock=time.time):
        self._database = database
        self._realmFor = realmFor
        self._clock = clock

    def addUser(self, user, password, displayName=None, email=None):
        username, domain = splitUser(user)
        realm = self._realmFor(domain)
        hashes = _hashes(username, domain, realm, password)
        created = self._clock()

        def add(cursor):
            cursor.execute(
                "SELECT 1 FROM users WHERE username = ? AND domain = ?",
                (username, domain),
            )
            if cursor.fetchone():
                raise KeyError("%s@%s already exists" % (username, domain))
            cursor.execute(
                "INSERT INTO users (username, domain, realm, display_name, "
                "email, ha1_md5, ha1b_md5, ha1_sha256, ha1b_sha256, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (username, domain, realm, displayName, email) + hashes + (created,),
            )
            return User(username, domain, realm, displayName, email, created)

        return self._database.runInteraction(add)

    def importUsers(self, rows, skipBad=False):
        """
        Add many users in one transaction: tens of thousands in seconds.

        @param rows: C{(line, user, password, displayName, email)} tuples.
        @param skipBad: add the good rows even when some are bad.
        @return: a L{Deferred} firing with C{(added, problems)}, problems
            being C{(line, reason)} pairs: invalid names, empty passwords,
            users named twice or already present. Unless C{skipBad}, nothing
            is added when there is a problem.
        """
        problems, prepared, seen = [], [], {}
        created = self._clock()
        for line, user, password, displayName, email in rows:
            try:
                username, domain = splitUser(user)
            except InvalidUser as e:
                problems.append((line, str(e)))
                continue
            if not password:
                problems.append((line, "empty password"))
                continue
            key = (username, domain)
            if key in seen:
                problems.append((line, "%s@%s is also on line %d" % (username, domain, seen[key])))
                continue
            seen[key] = line
            realm = self._realmFor(domain)
            prepared.append((line, (username, domain, realm, displayName or None, email or None)
                             + _hashes(username, domain, realm, password) + (created,)))

        def add(cursor):
            cursor.execute("SELECT username, domain FROM users")
            existing = set(cursor.fetchall())
            for line, values in prepared:
                if values[:2] in existing:
                    problems.append((line, "%s@%s already exists" % values[:2]))
            problems.sort()
            if problems and not skipBad:
                return 0, problems
            good = [values for line, values in prepared if values[:2] not in existing]
            cursor.executemany(
                "INSERT INTO users (username, domain, realm, display_name, "
                "email, ha1_md5, ha1b_md5, ha1_sha256, ha1b_sha256, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                good,
            )
            return len(good), problems

        return self._database.runInteraction(add)

    def removeUser(self, user):
        username, domain = splitUser(user)

        def remove(cursor):
            cursor.execute(
                "DELETE FROM users WHERE username = ? AND domain = ?",
                (username, domain),
            )
            if cursor.rowcount == 0:
                raise KeyError("no user %s@%s" % (username, domain))

        return self._database.runInteraction(remove)

    def setPassword(self, user, password):
        username, domain = splitUser(user)
        realm = self._realmFor(domain)
        hashes = _hashes(username, domain, realm, password)

        def update(cursor):
            cursor.execute(
                "UPDATE users SET realm = ?, ha1_md5 = ?, ha1b_md5 = ?, "
                "ha1_sha256 = ?, ha1b_sha256 = ? "
                "WHERE username = ? AND domain = ?",
                (realm,) + hashes + (username, domain),
            )
            if cursor.rowcount == 0:
                raise KeyError("no user %s@%s" % (username, domain))

        return self._database.runInteraction(update)

    def getUser(self, user):
        username, domain = splitUser(user)

        def get(cursor):
            cursor.execute(
                "SELECT " + _COLUMNS + " FROM users "
                "WHERE username = ? AND domain = ?",
                (username, domain),
            )
            row = cursor.fetchone()
            return _user(row) if row else None

        return self._database.runInteraction(get)

    def listUsers(self, domain=None):
        def list_(cursor):
            if domain is None:
                cursor.execute(
                    "SELECT " + _COLUMNS + " FROM users ORDER BY domain, username"
                )
            else:
                cursor.execute(
                    "SELECT " + _COLUMNS + " FROM users WHERE domain = ? "
                    "ORDER BY username",
                    (domain.lower(),),
                )
            return [_user(row) for row in cursor.fetchall()]

        return self._database.runInteraction(list_)

    def digestHash(self, user, realm, algorithm):
        """
        Return the stored HA1 for the digest C{username} a client sent
        (C{name} or C{name@domain}) in C{realm}. Fires with C{None} for an
        unknown user, another realm or an unknown algorithm, so that callers
        treat all three alike.
        """
        column = {"MD5": "md5", "SHA-256": "sha256"}.get(algorithm)
        try:
            username, domain = splitUser(user)
        except InvalidUser:
            username, domain = user, None
        if column is None or not _USERNAME.match(username):
            return self._database.runInteraction(lambda cursor: None)

        def get(cursor):
            if domain is None:
                cursor.execute(
                    "SELECT ha1_%s FROM users WHERE username = ? AND realm = ?"
                    % (column,),
                    (username, realm),
                )
            else:
                cursor.execute(
                    "SELECT ha1b_%s FROM users WHERE username = ? AND domain = ? "
                    "AND realm = ?" % (column,),
                    (username, domain, realm),
                )
            rows = cursor.fetchall()
            # A bare name that exists in two domains sharing one realm is
            # ambiguous: refuse rather than guess.
            return rows[0][0] if len(rows) == 1 else None

        return self._database.runInteraction(get)

"""
SIP digest authentication, server side (RFC 3261 section 22, RFC 7616, RFC 8760).

L{DigestAuthenticator.authenticate} reads a request's Authorization (Proxy-Authorization with
C{proxy=True}) and fires with an L{AuthResult}: the user, or the status and challenges to answer with:
401 / WWW-Authenticate for registrars and user agents, 407 / Proxy-Authenticate for a proxy (RFC 3261
sections 22.2 and 22.3).  ACK and CANCEL cannot be challenged (section 22.1): callers must not ask.

Decisions:
  - Challenges offer SHA-256 then MD5 with one nonce (RFC 8760 section 2.3, RFC 7616 section 3.7), always
    with C{qop="auth"}.  Responses without qop (RFC 2069 style) are refused ("qop required"): RFC 7616
    section 3.4 and RFC 8760 make qop mandatory, and without nc a response can be replayed.
  - Nonces are stateless: base64url(time || epoch || serial || HMAC-SHA256(secret, time || epoch ||
    serial || realm)[:16]), with a random epoch per instance.  They are not bound to the source address,
    so a phone that changes address keeps its nonce.  A nonce older than C{nonceLifetime}, one of another
    instance (a restart, another front end), or one whose MAC fails (another realm or secret) is answered
    with C{stale=true} when the response is otherwise right (RFC 7616 section 3.3), so the client retries
    without asking the user; when the response is wrong it is an ordinary failure.
  - Nonce counts (RFC 7616 section 3.4): the highest nc accepted is kept per nonce until the nonce
    expires, in a table of at most C{maxNonces} entries; an nc not above it is a replay, answered with a
    fresh nonce and C{stale=true} (the digest was right, only the count is wrong).  When an entry of a
    live nonce is evicted, every nonce issued up to that one and not in the table is treated as stale, so
    neither eviction nor a restart re-opens a replay; nor does this depend on the wall clock.
  - Brute force (per source IP): failures are counted in a window of C{failureWindow} seconds starting
    at the first failure; the C{maxFailures}-th locks the source out for C{lockout} seconds (0 disables
    lockouts), during which it gets 403 without its credentials being looked at.  Counted: wrong
    password or unknown user (indistinguishable: same reason, same headers, a digest computed against a
    dummy HA1), replays, malformed credentials, qop or algorithm not offered.  Not
    counted: no credentials, credentials for another realm only (a downstream proxy's), stale nonces.
    A success forgets the source's failures.  Each failure after the first in a window is answered
    after a delay doubling from C{firstDelay} to C{maxDelay} (0, 0.125, 0.25 ... 2 s by default).
    At most C{maxSources} sources are remembered (the oldest is forgotten first).
"""

import base64
import collections
import hashlib
import hmac
import os
import re

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from appliance import logs
from appliance.sip.message import URI, ParseError

__all__ = ["AuthResult", "DigestAuthenticator", "digestResponse", "parseCredentials"]

_log = Logger(observer=logs.observer)

_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
_HEX_LENGTH = {"MD5": 32, "SHA-256": 64}
_WRONG = "unknown user or wrong password"
_MAX_USERNAME = 256
_MAX_PARAMS = 32

_TOKEN = r"[A-Za-z0-9!#$%&'*+.^_`|~-]++"
_VALUE = r'"[^"\\]*+(?:\\.[^"\\]*+)*+"|[^ \t,"]*+'
# Possessive quantifiers (Python 3.11): linear time on any input.
_PARAM = re.compile(r'[ \t,]*+(%s)[ \t]*+=[ \t]*+(%s)[ \t]*+(?:,|\Z)' % (_TOKEN, _VALUE), re.S)
_CREDENTIALS = re.compile(
    r'[ \t]*+(%s)[ \t]++((?:[ \t,]*+%s[ \t]*+=[ \t]*+(?:%s)[ \t]*+(?:,|\Z))*+)[ \t,]*+\Z'
    % (_TOKEN, _TOKEN, _VALUE), re.S)
_QUOTED_PAIR = re.compile(r"\\(.)", re.S)
_NONCE = re.compile(r"[A-Za-z0-9_-]{43}")
_HEX = re.compile(r"[0-9A-Fa-f]+")


def _encode(text):
    """
    The octets a SIP header string was decoded from (UTF-8 with surrogateescape, see message.py); lone
    surrogates that no decoding produced (a header set by code) are encoded rather than raising.
    """
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def digestResponse(algorithm, ha1, nonce, nc, cnonce, qop, method, uri):
    """
    The request-digest of RFC 7616 section 3.4.1 for qop=auth: C{KD(HA1, nonce:nc:cnonce:qop:HA2)} with
    C{HA2 = H(method:digest-uri)} (section 3.4.3; for SIP the request method, RFC 3261 section 22.4),
    as lower-case hex.  C{algorithm} is C{"MD5"} or C{"SHA-256"}; C{ha1} is hex (section 3.4.2).
    """
    h = _HASHES[algorithm]
    ha2 = h(_encode("%s:%s" % (method, uri))).hexdigest()
    return h(_encode("%s:%s:%s:%s:%s:%s" % (ha1, nonce, nc, cnonce, qop, ha2))).hexdigest()


def parseCredentials(value):
    """
    Parse one Authorization / Proxy-Authorization value (RFC 3261 section 25.1, RFC 7235 section 2.1):
    C{scheme 1*SP auth-param *("," auth-param)}, values tokens or quoted strings (escapes resolved).

    @return: C{(scheme lower-cased, {param name lower-cased: value})}, or C{None} when malformed
        (bad syntax, a parameter given twice, no parameters, more than 32).
    """
    match = _CREDENTIALS.match(value)
    if match is None:
        return None
    found = _PARAM.findall(match.group(2))
    if not found or len(found) > _MAX_PARAMS:
        return None
    params = {}
    for name, text in found:
        if text[:1] == '"':
            text = text[1:-1]
            if "\\" in text:
                text = _QUOTED_PAIR.sub(r"\1", text)
        params[name.lower()] = text
    if len(params) != len(found):
        return None
    return match.group(1).lower(), params


@attrs.frozen
class AuthResult:
    """
    The outcome of L{DigestAuthenticator.authenticate}.

    @ivar user: C{"name@domain"} when authenticated, else C{None}.
    @ivar status: C{None} when authenticated; else 401 (or 407 with C{proxy=True}) to challenge, or 403
        when the source is locked out.
    @ivar headers: C{(name, value)} pairs to add to the response: WWW-Authenticate or Proxy-Authenticate
        challenges, SHA-256 first (empty for a success or a 403).
    @ivar reason: short log-safe text: C{"ok"}, C{"no credentials"}, C{"unknown user or wrong password"},
        C{"stale nonce"}, C{"invalid nonce"}, C{"replayed nonce count"}, C{"locked out"},
        C{"malformed credentials"}, C{"qop required"}, C{"unsupported algorithm"}, C{"wrong realm"}.
    """

    user: str | None
    status: int | None
    headers: tuple = ()
    reason: str = "ok"

    @property
    def authenticated(self):
        """
        Whether the request is authenticated (C{user} is set).
        """
        return self.user is not None


_LOCKED = AuthResult(None, 403, (), "locked out")


_Names = collections.namedtuple("_Names", "credentials challenge status")
_UAS = _Names("Authorization", "WWW-Authenticate", 401)
_PROXY = _Names("Proxy-Authorization", "Proxy-Authenticate", 407)


class _Source:
    """
    Failure record of one source address.
    """

    __slots__ = ("count", "windowStart", "lockedUntil")

    def __init__(self, now):
        self.count = 0
        self.windowStart = now
        self.lockedUntil = 0.0


class DigestAuthenticator:
    """
    Digest authentication of SIP requests against an L{appliance.interfaces.IUserDirectory}.

    @param users: the user directory (C{digestHash}, and C{getUser} for the C{domain} check).
    @param clock: an L{twisted.internet.interfaces.IReactorTime}.
    @param secret: key of the nonce MACs; keep it across restarts to keep nonces valid.
    @param nonceLifetime: seconds a nonce stays fresh (C{[sip] nonce_lifetime}).
    @param maxFailures: failures in C{failureWindow} that lock a source out (C{[sip] auth_max_failures}).
    @param lockout: seconds a source stays locked out (C{[sip] auth_lockout}); 0 never locks out.
    @param algorithms: offered in this order, from C{"SHA-256"} and C{"MD5"}.
    """

    def __init__(self, users, clock, secret, *, nonceLifetime=300, maxFailures=10, lockout=300,
                 algorithms=("SHA-256", "MD5"), failureWindow=300, firstDelay=0.125, maxDelay=2.0,
                 maxSources=10000, maxNonces=100000):
        unknown = [name for name in algorithms if name not in _HASHES]
        if unknown or not algorithms:
            raise ValueError("unsupported digest algorithms: %r" % (algorithms,))
        if nonceLifetime <= 0 or maxFailures < 1:
            raise ValueError("nonceLifetime must be positive and maxFailures at least 1")
        self._users = users
        self._clock = clock
        self._secret = bytes(secret)
        self._lifetime = nonceLifetime
        self._maxFailures = maxFailures
        self._lockout = lockout
        self._algorithms = tuple(algorithms)
        self._window = failureWindow
        self._firstDelay = firstDelay
        self._maxDelay = maxDelay
        self._maxSources = maxSources
        self._maxNonces = maxNonces
        self._dummy = {name: h(self._secret + b"\0dummy HA1").hexdigest() for name, h in _HASHES.items()}
        self._sources = {}
        self._nonces = {}
        # Nonces of this instance are numbered; those numbered up to self._nonceFloor and absent from
        # self._nonces are stale (see the module docstring).  Those of another instance are stale too.
        self._epoch = os.urandom(6)
        self._nonceNumber = 0
        self._nonceFloor = 0
        self._pending = {}
        self._counts = dict.fromkeys(
            ("auth.successes", "auth.failures", "auth.challenges", "auth.lockouts", "auth.stale",
             "auth.refused"), 0)

    def authenticate(self, request, realm, source, *, proxy=False, domain=None):
        """
        Check the digest credentials of C{request} for C{realm} (RFC 3261 section 22.4).

        @param source: C{(host, port)} the request came from; lockouts are per host.
        @param proxy: use Proxy-Authorization, Proxy-Authenticate and 407 (RFC 3261 section 22.3).
        @param domain: the domain of a user who authenticates with a bare name (C{alice}); default
            C{realm}.  When it differs from C{realm} (a shared C{[sip] realm}), the user must exist in that
            domain with that realm.
        @return: a L{Deferred} firing with an L{AuthResult}; it fails only when the user directory fails.
        @raise ValueError: for ACK and CANCEL, which must not be challenged (RFC 3261 section 22.1).
        """
        if request.method == "ACK" or request.method == "CANCEL":
            raise ValueError("%s cannot be challenged (RFC 3261 section 22.1)" % (request.method,))
        now = self._clock.seconds()
        host = source[0]
        state = self._sources.get(host)
        if state is not None and state.lockedUntil > now:
            self._counts["auth.refused"] += 1
            return succeed(_LOCKED)
        names = _PROXY if proxy else _UAS
        values = request.headers.getAll(names.credentials)
        params, reason = _select(values, realm)
        if params is None:
            if reason == "malformed credentials":
                return self._fail(host, realm, names, reason, None)
            return succeed(self._challenge(realm, names, reason))
        reason = self._check(params, request)
        username = params.get("username")
        if reason is not None:
            return self._fail(host, realm, names, reason, username)
        algorithm = params.get("algorithm", "MD5").upper()
        nonce = params["nonce"]
        key, problem = self._checkNonce(nonce, realm, now)
        d = self._users.digestHash(username, realm, algorithm)
        d.addCallback(self._verify, request, params, algorithm, key, problem, host, realm, names, domain)
        return d

    def _check(self, params, request):
        """
        The reason the credentials cannot be verified (before any lookup), or C{None}.
        """
        for name in ("username", "nonce", "uri", "response"):
            if not params.get(name):
                return "malformed credentials"
        if len(params["username"]) > _MAX_USERNAME or params.get("userhash", "false").lower() != "false":
            return "malformed credentials"
        algorithm = params.get("algorithm", "MD5").upper()
        if algorithm not in self._algorithms:
            return "unsupported algorithm"
        qop = params.get("qop")
        if qop is None:
            return "qop required"
        nc = params.get("nc", "")
        response = params["response"]
        if (qop.lower() != "auth" or not params.get("cnonce") or len(nc) != 8 or not _HEX.fullmatch(nc)
                or int(nc, 16) == 0 or len(response) != _HEX_LENGTH[algorithm]
                or not _HEX.fullmatch(response)):
            return "malformed credentials"
        try:
            uri = URI.parse(params["uri"])
        except ParseError:
            return "malformed credentials"
        if not isinstance(uri, URI):
            return "malformed credentials"
        # The digest-uri need not be the Request-URI: a proxy on the way may
        # have rewritten that (RFC 3261 section 22.4), and clients differ in
        # which URI they put there (SIPp uses the address it sends to).
        # The response hashes the uri sent, and nonce counts stop replays.
        return None

    def _checkNonce(self, nonce, realm, now):
        """
        Check the MAC and age of C{nonce} (RFC 7616 section 3.3).

        @return: C{(table key, None)} for a fresh nonce of ours, else C{(None, "stale nonce")} or
            C{(None, "invalid nonce")}.
        """
        if not _NONCE.fullmatch(nonce):
            return None, "invalid nonce"
        raw = base64.urlsafe_b64decode(nonce + "=")
        key = raw[:16]
        if not hmac.compare_digest(self._mac(key, realm), raw[16:]):
            return None, "invalid nonce"
        issued = int.from_bytes(key[:4], "big")
        if not issued <= now <= issued + self._lifetime or key[4:10] != self._epoch:
            return None, "stale nonce"
        if key not in self._nonces and int.from_bytes(key[10:], "big") <= self._nonceFloor:
            return None, "stale nonce"
        return key, None

    def _verify(self, ha1, request, params, algorithm, key, problem, host, realm, names, domain):
        """
        Compare the response with the one computed from the stored HA1 (RFC 7616 section 3.4.1), then
        check nonce freshness and count.
        """
        expected = digestResponse(
            algorithm, self._dummy[algorithm] if ha1 is None else ha1, params["nonce"], params["nc"],
            params["cnonce"], params["qop"], request.method, params["uri"])
        matches = hmac.compare_digest(expected, params["response"].lower())
        username = params["username"]
        if ha1 is None or not matches:
            return self._fail(host, realm, names, _WRONG, username)
        if problem is not None:
            self._counts["auth.stale"] += 1
            return self._challenge(realm, names, problem, stale=True)
        nc = int(params["nc"], 16)
        name, at, userDomain = username.rpartition("@")
        domain = domain and domain.lower()
        if not at:
            name, userDomain = username, domain or realm
        user = "%s@%s" % (name, userDomain.lower())
        if at or not domain or domain == realm:
            return self._succeed(user, key, nc, host, realm, names)
        d = self._users.getUser(user)
        d.addCallback(self._checkDomain, user, key, nc, host, realm, names)
        return d

    def _checkDomain(self, record, user, key, nc, host, realm, names):
        """
        A bare name authenticated in a shared realm: it must be a user of the requested domain.
        """
        if record is None or record.realm != realm:
            return self._fail(host, realm, names, _WRONG, user)
        return self._succeed(user, key, nc, host, realm, names)

    def _succeed(self, user, key, nc, host, realm, names):
        """
        Accept C{nc} for the nonce unless another request took it meanwhile (RFC 7616 section 3.4).
        """
        last = self._nonces.get(key)
        if last is not None and nc <= last:
            return self._fail(host, realm, names, "replayed nonce count", user, stale=True)
        self._recordCount(key, nc)
        self._sources.pop(host, None)
        self._counts["auth.successes"] += 1
        return AuthResult(user, None, (), "ok")

    def _recordCount(self, key, nc):
        """
        Remember the highest nc of a nonce, expiring and evicting the oldest entries.
        """
        nonces = self._nonces
        if key not in nonces:
            now = self._clock.seconds()
            for _ in range(2):
                oldest = next(iter(nonces), None)
                if oldest is None or int.from_bytes(oldest[:4], "big") + self._lifetime >= now:
                    break
                del nonces[oldest]
            if len(nonces) >= self._maxNonces:
                oldest = next(iter(nonces))
                del nonces[oldest]
                self._nonceFloor = max(self._nonceFloor, int.from_bytes(oldest[10:], "big"))
        nonces[key] = nc

    def _mac(self, key, realm):
        """
        The 16-octet MAC of a nonce's first 16 octets in C{realm}.
        """
        return hmac.digest(self._secret, key + _encode(realm), "sha256")[:16]

    def _newNonce(self, realm):
        """
        A fresh nonce for C{realm}, base64url without padding: the time in seconds (4 octets), this
        instance's random epoch (6), a serial number (6), and the MAC of those 16 octets and the realm.
        """
        self._nonceNumber += 1
        key = (int(self._clock.seconds()).to_bytes(4, "big") + self._epoch
               + self._nonceNumber.to_bytes(6, "big"))
        return base64.urlsafe_b64encode(key + self._mac(key, realm)).decode("ascii").rstrip("=")

    def _challenge(self, realm, names, reason, stale=False):
        """
        A 401 / 407 result with one challenge per algorithm, sharing one nonce (RFC 7616 section 3.3).
        """
        self._counts["auth.challenges"] += 1
        quoted = realm.replace("\\", "\\\\").replace('"', '\\"')
        suffix = ', qop="auth", stale=true' if stale else ', qop="auth"'
        nonce = self._newNonce(realm)
        headers = tuple(
            (names.challenge, 'Digest realm="%s", nonce="%s", algorithm=%s%s' % (quoted, nonce, name, suffix))
            for name in self._algorithms)
        return AuthResult(None, names.status, headers, reason)

    def _fail(self, host, realm, names, reason, username, stale=False):
        """
        Count a failure of C{host}, lock it out at the C{maxFailures}-th, and answer with a challenge
        after the slow-down delay.
        """
        now = self._clock.seconds()
        self._counts["auth.failures"] += 1
        _log.debug("digest authentication of {username} from {host} failed: {reason}",
                   username=username, host=host, reason=reason)
        state = self._sources.get(host)
        if state is None or now - state.windowStart >= self._window or 0 < state.lockedUntil <= now:
            state = self._newSource(host, now)
        before = state.count
        state.count += 1
        if state.count >= self._maxFailures and self._lockout > 0:
            state.count = 0
            state.lockedUntil = now + self._lockout
            self._counts["auth.lockouts"] += 1
            _log.info("locking out {host} for {seconds} s after {count} authentication failures",
                      host=host, seconds=self._lockout, count=self._maxFailures)
        result = self._challenge(realm, names, reason, stale)
        if before == 0 or self._maxDelay <= 0:
            return succeed(result)
        return self._later(min(self._maxDelay, self._firstDelay * 2.0 ** min(before - 1, 30)), result)

    def _newSource(self, host, now):
        """
        A new failure record for C{host}, forgetting up to two expired ones and, when full, the oldest.
        """
        sources = self._sources
        sources.pop(host, None)
        for _ in range(2):
            oldest = next(iter(sources.items()), None)
            if oldest is None or oldest[1].lockedUntil > now or now - oldest[1].windowStart < self._window:
                break
            del sources[oldest[0]]
        if len(sources) >= self._maxSources:
            del sources[next(iter(sources))]
        state = sources[host] = _Source(now)
        return state

    def _later(self, delay, result):
        """
        A L{Deferred} firing with C{result} after C{delay} seconds on the clock.
        """
        def cancel(d):
            call, _ = self._pending.pop(d)
            call.cancel()

        d = Deferred(cancel)
        self._pending[d] = (self._clock.callLater(delay, self._release, d), result)
        return d

    def _release(self, d):
        """
        Fire a delayed answer.
        """
        _, result = self._pending.pop(d)
        d.callback(result)

    def statistics(self):
        """
        Counters C{auth.successes}, C{auth.failures}, C{auth.challenges}, C{auth.lockouts},
        C{auth.stale}, C{auth.refused} (403s to locked-out sources) and the gauge
        C{auth.sources.locked}.
        """
        now = self._clock.seconds()
        values = dict(self._counts)
        values["auth.sources.locked"] = sum(1 for state in self._sources.values() if state.lockedUntil > now)
        return values

    def stop(self):
        """
        Answer every failure still waiting for its slow-down delay now, and cancel the delays.
        """
        pending, self._pending = self._pending, {}
        for d, (call, result) in pending.items():
            call.cancel()
            d.callback(result)


def _select(values, realm):
    """
    Pick the Digest credentials for C{realm} among header values (RFC 3261 section 22.3: a request may
    carry credentials for several proxies).

    @return: C{(params, None)}, or C{(None, reason)}: C{"no credentials"} (none, or only other schemes),
        C{"wrong realm"} (Digest credentials for other realms only), C{"malformed credentials"} (an
        unreadable value and none for C{realm}).
    """
    reason = "no credentials"
    for value in values:
        parsed = parseCredentials(value)
        if parsed is None:
            reason = "malformed credentials"
        elif parsed[0] == "digest":
            if parsed[1].get("realm") == realm:
                return parsed[1], None
            if reason == "no credentials":
                reason = "wrong realm"
    return None, reason

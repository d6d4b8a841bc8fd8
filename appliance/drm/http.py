"""
The license server's HTTPS layer: routes, HTTP Digest authentication (RFC
7616, SHA-256 and MD5, against the user directory's HA1, reusing the SIP
authenticator's nonces, replay and lockout logic), the service token for
deposits, rate limiting, CORS on the Clear Key route. All decisions are the
L{appliance.drm.license.LicenseIssuer}'s.

Routes (JSON bodies; docs/drm.md):
  - C{GET /drm/public-key}: the license signing key (no authentication);
  - C{POST /drm/keys}: deposit, C{Authorization: Bearer <service token>};
  - C{POST /drm/license}: C{{"key_id"}} -> signed license;
  - C{POST /drm/clearkey}: W3C EME Clear Key request -> JWK set (CORS);
  - C{POST /drm/keys/<key id>/grants}: delegate;
  - C{GET /drm/keys/<key id>/rights}, C{POST .../revoke}, C{POST .../narrow}.
"""

import hmac
import json
import math
import re
import uuid

from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger
from twisted.web import resource, server

from appliance import logs
from appliance.drm.license import b64decode, keyIdFor, publicKeyPEM, b64encode
from appliance.drm.rights import Rights
from appliance.sip import auth as sipauth
from appliance.storage.users import InvalidUser, splitUser

_log = Logger(observer=logs.observer)

MAX_BODY = 65536
MAX_KIDS = 16
_KEY_ROUTE = re.compile(r"^/drm/keys/([0-9a-f-]{36})/(grants|rights|revoke|narrow)$")


class HTTPDigestAuthenticator(sipauth.DigestAuthenticator):
    """
    The SIP digest authenticator for HTTP (RFC 7616): the digest-uri must
    be the request-target (section 3.4.6) rather than a SIP URI.
    """

    def _check(self, params, request):
        for name in ("username", "nonce", "uri", "response"):
            if not params.get(name):
                return "malformed credentials"
        if len(params["username"]) > 256 or params.get("userhash", "false").lower() != "false":
            return "malformed credentials"
        algorithm = params.get("algorithm", "MD5").upper()
        if algorithm not in self._algorithms:
            return "unsupported algorithm"
        qop = params.get("qop")
        if qop is None:
            return "qop required"
        nc, response = params.get("nc", ""), params["response"]
        hexLength = 64 if algorithm == "SHA-256" else 32
        if (qop.lower() != "auth" or not params.get("cnonce") or len(nc) != 8
                or not re.fullmatch("[0-9A-Fa-f]+", nc) or int(nc, 16) == 0
                or len(response) != hexLength or not re.fullmatch("[0-9A-Fa-f]+", response)):
            return "malformed credentials"
        if params["uri"] != request.uri:
            return "malformed credentials"
        return None

    def challengeAll(self, realms, reason="no credentials"):
        """
        A 401 result with challenges for every realm, SHA-256 first in each.
        """
        headers = ()
        for realm in realms:
            headers += self._challenge(realm, sipauth._UAS, reason).headers
        return sipauth.AuthResult(None, 401, headers, reason)


class _Headers:
    def __init__(self, request):
        self._request = request

    def getAll(self, name):
        return [value.decode("latin-1") for value in
                self._request.requestHeaders.getRawHeaders(name.encode("ascii"), [])]


class _DigestRequest:
    """
    What the digest authenticator reads from an HTTP request.
    """

    def __init__(self, request):
        self.method = request.method.decode("ascii", "replace")
        self.uri = request.uri.decode("latin-1")
        self.headers = _Headers(request)


class RateLimiter:
    """
    Token buckets per key (a user or a source address): C{rate} requests a
    second, bursts of C{burst}; at most C{maxKeys} buckets (oldest dropped).
    """

    def __init__(self, clock, rate, burst, maxKeys=10000):
        self._clock = clock
        self._rate = float(rate)
        self._burst = float(burst)
        self._maxKeys = maxKeys
        self._buckets = {}

    def take(self, key):
        """
        Spend one token of C{key}; return 0 when allowed, else the seconds
        to wait (for Retry-After).
        """
        if self._rate <= 0:
            return 0
        now = self._clock.seconds()
        tokens, last = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if len(self._buckets) >= self._maxKeys:
            del self._buckets[next(iter(self._buckets))]
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return 0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self._rate


class BadRequest(Exception):
    """
    A malformed request: 400 with the message as reason.
    """


def _optional(body, name, kind):
    value = body.get(name)
    if value is None:
        return None
    if kind is float and type(value) is int:
        value = float(value)
    if type(value) is not kind or (kind in (int, float) and value < 0):
        raise BadRequest("%s must be a non-negative %s" % (name, kind.__name__))
    return value


def _holder(value, name="holder"):
    if not isinstance(value, str):
        raise BadRequest("%s must be name@domain" % (name,))
    try:
        user, domain = splitUser(value)
    except InvalidUser:
        raise BadRequest("%s must be name@domain" % (name,))
    return "%s@%s" % (user, domain)


def _keyId(value):
    try:
        if isinstance(value, str) and str(uuid.UUID(value)) == value:
            return value
    except ValueError:
        pass
    raise BadRequest("key_id must be a UUID in lower-case canonical form")


def rightsFromJSON(body):
    """
    A L{Rights}-field dict from a request's JSON (missing fields C{None}).
    """
    fields = {
        "plays": _optional(body, "plays", int),
        "notBefore": _optional(body, "not_before", float),
        "notAfter": _optional(body, "not_after", float),
        "playWindow": _optional(body, "play_window", float),
        "forwardDepth": _optional(body, "forward_depth", int),
        "mayCopy": _optional(body, "may_copy", bool),
        "mayModify": _optional(body, "may_modify", bool),
    }
    return fields


class LicenseResource(resource.Resource):
    """
    The C{/drm/} tree.

    @param issuer: the L{appliance.drm.license.ILicenseIssuer}.
    @param authenticator: an L{HTTPDigestAuthenticator}.
    @param realms: the digest realms of the served domains, in order.
    @param serviceToken: the token deposits must present (str).
    @param limiter: a L{RateLimiter}.
    """

    isLeaf = True

    def __init__(self, issuer, authenticator, realms, serviceToken, limiter, publicKey, stats):
        resource.Resource.__init__(self)
        self._issuer = issuer
        self._authenticator = authenticator
        self._realms = tuple(realms)
        self._token = serviceToken.encode("ascii")
        self._limiter = limiter
        self._publicKey = publicKey
        self._stats = stats

    def render(self, request):
        path = request.path.decode("latin-1")
        method = request.method
        source = getattr(request.getClientAddress(), "host", "unknown")
        request.setHeader(b"cache-control", b"no-store")
        clearKey = path == "/drm/clearkey"
        if clearKey:
            self._cors(request)
            if method == b"OPTIONS":
                request.setResponseCode(204)
                return b""
        if path == "/drm/public-key" and method == b"GET":
            return self._json(request, 200, {
                "algorithm": "Ed25519", "public_key": b64encode(self._publicKey.public_bytes_raw()),
                "pem": publicKeyPEM(self._publicKey).decode("ascii")})
        wait = self._limiter.take(("source", source))
        if wait:
            return self._tooMany(request, wait)
        if path == "/drm/keys" and method == b"POST":
            handler = self._deposit
        elif path == "/drm/license" and method == b"POST":
            handler = self._license
        elif clearKey and method == b"POST":
            handler = self._clearKey
        else:
            match = _KEY_ROUTE.match(path)
            action = match and match.group(2)
            if action is None or (method == b"GET") != (action == "rights") or method not in (b"GET", b"POST"):
                return self._json(request, 404 if action is None else 405,
                                  {"error": "not found" if action is None else "method not allowed"})
            handler = getattr(self, "_" + action)
        length = request.content.seek(0, 2)
        request.content.seek(0)
        if length > MAX_BODY:
            return self._json(request, 413, {"error": "body too large"})
        gone = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        d = maybeDeferred(handler, request, source, path)
        d.addCallbacks(lambda outcome: self._finish(request, outcome, gone),
                       lambda failure: self._failed(request, failure, gone))
        return server.NOT_DONE_YET

    def _cors(self, request):
        # Any origin, but never with the browser's own credentials: a page
        # must set the Authorization header itself, so that another site
        # cannot borrow a logged-in user's digest session to fetch keys.
        request.setHeader(b"access-control-allow-origin", b"*")
        request.setHeader(b"access-control-allow-methods", b"POST, OPTIONS")
        request.setHeader(b"access-control-allow-headers", b"Authorization, Content-Type")
        request.setHeader(b"access-control-expose-headers", b"WWW-Authenticate, Retry-After")
        request.setHeader(b"access-control-max-age", b"600")

    def _json(self, request, status, body):
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(body, sort_keys=True).encode("utf-8")

    def _tooMany(self, request, wait):
        self._stats.increment("requests.rate_limited")
        request.setHeader(b"retry-after", str(max(1, math.ceil(wait))).encode("ascii"))
        return self._json(request, 429, {"error": "too many requests"})

    def _finish(self, request, outcome, gone=()):
        if gone or request.finished:
            return
        status, body, headers = outcome
        for name, value in headers:
            request.responseHeaders.addRawHeader(name.encode("ascii"), value.encode("latin-1"))
        request.write(self._json(request, status, body))
        request.finish()

    def _failed(self, request, failure, gone=()):
        if failure.check(BadRequest):
            return self._finish(
                request, (400, {"error": "bad request", "reason": str(failure.value)}, ()), gone)
        _log.failure("DRM request {path} failed", failure, path=request.path.decode("latin-1"))
        self._finish(request, (500, {"error": "internal error"}, ()), gone)

    def _body(self, request):
        try:
            body = json.loads(request.content.read().decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("the body must be a JSON object")
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        return body

    def _authenticated(self, request, source, then):
        """
        Authenticate with HTTP Digest, rate-limit the user, then call
        C{then(user, body)}, which returns a Deferred L{Outcome}.
        """
        digest = _DigestRequest(request)
        realm = None
        for value in digest.headers.getAll("Authorization"):
            parsed = sipauth.parseCredentials(value)
            if parsed and parsed[0] == "digest" and parsed[1].get("realm") in self._realms:
                realm = parsed[1]["realm"]
                break
        if realm is None:
            d = maybeDeferred(self._authenticator.challengeAll, self._realms)
        else:
            d = self._authenticator.authenticate(digest, realm, (source, 0))

        def authenticated(result):
            if not result.authenticated:
                self._stats.increment("requests.unauthorized")
                return (result.status, {"error": "unauthorized", "reason": result.reason},
                        result.headers)
            wait = self._limiter.take(("user", result.user))
            if wait:
                self._stats.increment("requests.rate_limited")
                return (429, {"error": "too many requests"},
                        (("Retry-After", str(max(1, math.ceil(wait)))),))
            body = self._body(request) if request.method == b"POST" else {}
            d = maybeDeferred(then, result.user, body)
            d.addCallback(lambda outcome: (outcome.status, outcome.body, ()))
            return d

        return d.addCallback(authenticated)

    def _deposit(self, request, source, path):
        supplied = request.getHeader(b"authorization") or b""
        scheme, _, token = supplied.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self._token):
            self._stats.increment("requests.unauthorized")
            return (401, {"error": "unauthorized", "reason": "service token required"},
                    (("WWW-Authenticate", 'Bearer realm="appliance drm"'),))
        body = self._body(request)
        keyId = _keyId(body.get("key_id"))
        contentId = _keyId(body.get("content_id", keyId))
        owner = _holder(body.get("owner"), "owner")
        try:
            key = b64decode(body.get("key"))
        except ValueError:
            raise BadRequest("key must be base64url")
        if len(key) not in (16, 32):
            raise BadRequest("key must be 16 or 32 octets")
        grants = body.get("rights", {})
        if not isinstance(grants, dict) or len(grants) > 1000:
            raise BadRequest("rights must be an object {holder: rights}")
        given = {}
        for holder, fields in grants.items():
            if not isinstance(fields, dict):
                raise BadRequest("rights of %s must be an object" % (holder,))
            values = {k: v for k, v in rightsFromJSON(fields).items() if v is not None}
            if "plays" not in values:
                raise BadRequest("rights need plays")
            given[_holder(holder)] = Rights(**values)
        d = self._issuer.deposit(keyId, contentId, owner, key, given, source)
        return d.addCallback(lambda outcome: (outcome.status, outcome.body, ()))

    def _license(self, request, source, path):
        return self._authenticated(request, source, lambda user, body: self._issuer.issue(
            user, _keyId(body.get("key_id")), source))

    def _clearKey(self, request, source, path):
        def issue(user, body):
            kids = body.get("kids")
            if body.get("type", "temporary") != "temporary":
                raise BadRequest("only temporary sessions are supported")
            if not isinstance(kids, list) or not 0 < len(kids) <= MAX_KIDS:
                raise BadRequest("kids must be a list of 1 to %d key ids" % (MAX_KIDS,))
            pairs = []
            for kid in kids:
                try:
                    pairs.append((kid, keyIdFor(kid)))
                except ValueError:
                    raise BadRequest("kids must be base64url of 16 octets")
            return self._issuer.clearKey(user, pairs, source)

        return self._authenticated(request, source, issue)

    def _keyFromPath(self, path):
        return _KEY_ROUTE.match(path).group(1)

    def _grants(self, request, source, path):
        keyId = self._keyFromPath(path)

        def delegate(user, body):
            requested = {k: v for k, v in rightsFromJSON(body).items() if v is not None}
            return self._issuer.delegate(user, keyId, _holder(body.get("to"), "to"), requested, source)

        return self._authenticated(request, source, delegate)

    def _rights(self, request, source, path):
        keyId = self._keyFromPath(path)
        return self._authenticated(request, source, lambda user, body: self._issuer.view(
            user, keyId, source))

    def _revoke(self, request, source, path):
        keyId = self._keyFromPath(path)

        def revoke(user, body):
            holder = body.get("holder")
            return self._issuer.revoke(user, keyId, None if holder is None else _holder(holder), source)

        return self._authenticated(request, source, revoke)

    def _narrow(self, request, source, path):
        keyId = self._keyFromPath(path)

        def narrow(user, body):
            fields = rightsFromJSON(body)
            limits = {"plays": fields["plays"], "notAfter": fields["notAfter"],
                      "forwardDepth": fields["forwardDepth"]}
            return self._issuer.narrow(user, keyId, _holder(body.get("holder")), limits, source)

        return self._authenticated(request, source, narrow)


class LicenseSite(server.Site):
    """
    The site: no access log lines beyond debug (the audit table records
    every decision; Authorization headers are never logged).
    """

    timeOut = 60
    displayTracebacks = False

    def log(self, request):
        _log.debug("DRM {method} {path} -> {code}", method=request.method.decode("ascii", "replace"),
                   path=request.path.decode("latin-1"), code=request.code)

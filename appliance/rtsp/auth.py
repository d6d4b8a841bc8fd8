"""
RTSP digest authentication (RFC 2326 section 12.5 via RFC 2617 section 3)
against the user directory.

Nonces are stateless: the issue time and an HMAC of it under a secret made
at start-up, so they need no storage and expire after C{nonceLifetime}
seconds (then the challenge says C{stale=true} and players retry without
asking their user again).
"""

import hashlib
import hmac
import os

from twisted.internet.defer import succeed

from appliance.rtsp.message import ParseError, parseAuthorization


def _md5(text):
    return hashlib.md5(text.encode("utf-8")).hexdigest()


class DigestAuthenticator:
    """
    Checks Authorization headers of RTSP requests.

    @param users: an L{appliance.interfaces.IUserDirectory}.
    @param clock: an L{IReactorTime}, for nonce ages.
    """

    def __init__(self, users, clock, nonceLifetime=300, secret=None):
        self._users = users
        self._clock = clock
        self._lifetime = nonceLifetime
        self._secret = secret or os.urandom(16)

    def _nonceFor(self, issued):
        stamp = "%x" % (int(issued),)
        mac = hmac.new(self._secret, stamp.encode("ascii"), hashlib.sha256).hexdigest()[:24]
        return stamp + "." + mac

    def _nonceAge(self, nonce):
        stamp, _, mac = nonce.partition(".")
        try:
            issued = int(stamp, 16)
        except ValueError:
            return None
        if not hmac.compare_digest(self._nonceFor(issued), nonce):
            return None
        return self._clock.seconds() - issued

    def challenge(self, realm, stale=False):
        """
        The C{WWW-Authenticate} header value for C{realm}.
        """
        value = 'Digest realm="%s", nonce="%s", algorithm=MD5, qop="auth"' % (
            realm, self._nonceFor(self._clock.seconds()),
        )
        return value + (", stale=true" if stale else "")

    def authenticate(self, request, realm):
        """
        Check the request's credentials in C{realm}.

        @return: a L{Deferred} firing with C{(username, stale)}: the digest
            username when the response is right (else C{None}), and whether
            the nonce had only expired.
        """
        header = request.headers.get("Authorization")
        if header is None:
            return succeed((None, False))
        try:
            scheme, params = parseAuthorization(header)
        except ParseError:
            return succeed((None, False))
        username = params.get("username")
        nonce = params.get("nonce", "")
        if scheme != "digest" or not username or params.get("realm") != realm:
            return succeed((None, False))
        if params.get("algorithm", "MD5").upper() != "MD5":
            return succeed((None, False))
        age = self._nonceAge(nonce)
        if age is None or age < -5:
            return succeed((None, False))
        stale = age > self._lifetime

        def check(ha1):
            if ha1 is None:
                return None, False
            ha2 = _md5("%s:%s" % (request.method, params.get("uri", "")))
            qop = params.get("qop")
            if qop == "auth":
                expected = _md5(":".join([
                    ha1, nonce, params.get("nc", ""), params.get("cnonce", ""), qop, ha2,
                ]))
            elif qop is None:
                expected = _md5("%s:%s:%s" % (ha1, nonce, ha2))
            else:
                return None, False
            if not hmac.compare_digest(expected, params.get("response", "").lower()):
                return None, False
            if stale:
                return None, True
            return username, False

        d = self._users.digestHash(username, realm, "MD5")
        d.addCallback(check)
        return d


def authorizationFor(challenge, method, uri, username, password, cnonce="0a4f113b", nc=1):
    """
    The client side: an C{Authorization} header value answering a
    C{WWW-Authenticate} digest C{challenge} (RFC 2617 section 3.2.2), for
    our own test and load clients.
    """
    _, params = parseAuthorization(challenge)
    realm, nonce = params["realm"], params["nonce"]
    ha1 = _md5("%s:%s:%s" % (username, realm, password))
    ha2 = _md5("%s:%s" % (method, uri))
    fields = 'Digest username="%s", realm="%s", nonce="%s", uri="%s"' % (username, realm, nonce, uri)
    if "auth" in [q.strip() for q in params.get("qop", "").split(",")]:
        ncValue = "%08x" % (nc,)
        digest = _md5(":".join([ha1, nonce, ncValue, cnonce, "auth", ha2]))
        fields += ', qop=auth, nc=%s, cnonce="%s"' % (ncValue, cnonce)
    else:
        digest = _md5("%s:%s:%s" % (ha1, nonce, ha2))
    return fields + ', response="%s", algorithm=MD5' % (digest,)

"""
A blocking client of the license server, for appliancectl and the tests:
HTTPS with keep-alive, trusting only the given CA file and checking the
server's name both with Python's ssl module and with service_identity; HTTP
Digest (RFC 7616, SHA-256 preferred, MD5) for users, the service token for
deposits; license signatures verified with the server's public key.
"""

import http.client
import ipaddress
import json
import os
import ssl
import tempfile
import urllib.parse

from cryptography import x509
from service_identity import VerificationError
from service_identity.cryptography import verify_certificate_hostname, verify_certificate_ip_address

from appliance.drm.license import LicenseError, loadPublicKey, verifyLicense
from appliance.drm.package import decryptChunks, readHeader
from appliance.sip.auth import digestResponse, parseCredentials

TIMEOUT = 10.0


class ClientError(Exception):
    """
    The server refused, or could not be reached or trusted; C{status} and
    C{reason} when it answered.
    """

    def __init__(self, message, status=None, reason=None):
        super().__init__(message)
        self.status = status
        self.reason = reason


def baseUrlOf(licenseUrl):
    """
    The server's base URL (C{https://host:port}) of a license URL.
    """
    parts = urllib.parse.urlsplit(licenseUrl)
    if parts.scheme != "https" or not parts.hostname:
        raise ClientError("the license URL %r is not https://" % (licenseUrl,))
    return "https://%s" % (parts.netloc,)


def _challenges(values):
    """
    The Digest challenges among WWW-Authenticate values, as parameter dicts.
    Several challenges may share one header line; split before each
    C{Digest }.
    """
    found = []
    for value in values:
        pieces = [piece for piece in value.replace(", Digest ", "\0Digest ").split("\0") if piece]
        for piece in pieces:
            parsed = parseCredentials(piece.strip())
            if parsed and parsed[0] == "digest":
                found.append(parsed[1])
    return found


def digestAuthorization(challenges, method, uri, username, password, cnonce=None, nc=1):
    """
    An Authorization value answering the best challenge (SHA-256 first).
    """
    from appliance.storage.users import digestHA1

    usable = [c for c in challenges if c.get("algorithm", "MD5").upper() in ("SHA-256", "MD5")]
    if not usable:
        raise ClientError("the server offers no usable digest algorithm")
    usable.sort(key=lambda c: c.get("algorithm", "MD5").upper() != "SHA-256")
    challenge = usable[0]
    algorithm = challenge.get("algorithm", "MD5").upper()
    realm, nonce = challenge.get("realm", ""), challenge.get("nonce", "")
    cnonce = cnonce or os.urandom(12).hex()
    ha1 = digestHA1(username, realm, password, algorithm)
    response = digestResponse(algorithm, ha1, nonce, "%08x" % nc, cnonce, "auth", method, uri)
    return ('Digest username="%s", realm="%s", nonce="%s", uri="%s", algorithm=%s, qop=auth, '
            'nc=%08x, cnonce="%s", response="%s"' % (username, realm, nonce, uri, algorithm, nc,
                                                     cnonce, response))


class LicenseClient:
    """
    One keep-alive HTTPS connection to the license server.

    @param baseUrl: C{https://host:port}.
    @param caFile: the certificate(s) to trust (the appliance's own).
    @param user, password: for Digest; C{token} for deposits.
    """

    def __init__(self, baseUrl, caFile, user=None, password=None, token=None, timeout=TIMEOUT):
        parts = urllib.parse.urlsplit(baseUrl)
        if parts.scheme != "https" or not parts.hostname:
            raise ClientError("%r is not an https:// URL" % (baseUrl,))
        self._host = parts.hostname
        self._port = parts.port or 443
        try:
            self._context = ssl.create_default_context(cafile=caFile)
        except (OSError, ssl.SSLError) as e:
            raise ClientError("cannot load the CA file %s: %s" % (caFile, e))
        self._user, self._password, self._token = user, password, token
        self._timeout = timeout
        self._connection = None
        self._challenges = None
        self._nc = 0

    def close(self):
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _connect(self):
        connection = http.client.HTTPSConnection(
            self._host, self._port, context=self._context, timeout=self._timeout)
        try:
            connection.connect()
        except ssl.SSLCertVerificationError as e:
            raise ClientError("the server's certificate is not trusted: %s" % (e.verify_message,))
        except (OSError, ssl.SSLError) as e:
            raise ClientError("cannot connect to https://%s:%d: %s" % (self._host, self._port, e))
        certificate = x509.load_der_x509_certificate(connection.sock.getpeercert(binary_form=True))
        try:
            try:
                verify_certificate_ip_address(certificate, str(ipaddress.ip_address(self._host)))
            except ValueError:
                verify_certificate_hostname(certificate, self._host)
        except VerificationError as e:
            connection.close()
            raise ClientError("the server's certificate is not for %s: %s" % (self._host, e))
        return connection

    def _send(self, method, path, body, headers):
        for attempt in range(2):
            if self._connection is None:
                self._connection = self._connect()
            try:
                self._connection.request(method, path, body, headers)
                response = self._connection.getresponse()
                data = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                return response, data
            except (http.client.HTTPException, ConnectionError, TimeoutError) as e:
                self.close()
                if attempt:
                    raise ClientError("the connection to the server failed: %s" % (e,))

    def request(self, method, path, document=None, auth="digest"):
        """
        Send a JSON request; return C{(status, JSON body)}. C{auth} is
        C{"digest"}, C{"token"} or C{None}.
        """
        body = None if document is None else json.dumps(document).encode("utf-8")
        for attempt in range(3):
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            answered = auth == "digest" and self._challenges is not None
            if auth == "token":
                headers["Authorization"] = "Bearer %s" % (self._token,)
            elif answered:
                self._nc += 1
                headers["Authorization"] = digestAuthorization(
                    self._challenges, method, path, self._user, self._password, nc=self._nc)
            response, data = self._send(method, path, body, headers)
            if response.status == 401 and auth == "digest" and attempt < 2:
                challenges = _challenges(response.headers.get_all("WWW-Authenticate") or [])
                stale = any(c.get("stale", "").lower() == "true" for c in challenges)
                if challenges and (not answered or stale):
                    self._challenges, self._nc = challenges, 0
                    continue
            break
        try:
            parsed = json.loads(data) if data else {}
        except ValueError:
            raise ClientError("the server answered %d with no JSON" % (response.status,), response.status)
        if response.status == 429:
            raise ClientError("rate limited: retry after %s s" % (response.getheader("Retry-After"),),
                              429, "too many requests")
        return response.status, parsed

    def call(self, method, path, document=None, auth="digest", expect=(200, 201)):
        """
        L{request}, raising L{ClientError} with the server's reason unless
        the status is in C{expect}.
        """
        status, body = self.request(method, path, document, auth)
        if status not in expect:
            reason = body.get("reason") or body.get("error") or "status %d" % (status,)
            raise ClientError("refused (%d): %s" % (status, reason), status, reason)
        return body

    def publicKey(self):
        body = self.call("GET", "/drm/public-key", auth=None)
        return loadPublicKey(body["pem"].encode("ascii"))

    def license(self, keyId):
        return self.call("POST", "/drm/license", {"key_id": keyId})


def playPackage(path, output, client, publicKey, now):
    """
    Get a license for the package at C{path}, verify it, and decrypt into
    C{output}, which only appears once every chunk verified.

    @return: the verified license payload (without its key).
    @raise ClientError, LicenseError, PackageError: on refusal, a license
        that does not verify, or an altered package.
    """
    with open(path, "rb") as stream:
        header = readHeader(stream)
        document = client.license(header.keyId)
        payload = verifyLicense(document, publicKey, header.keyId, now)
        key = payload.pop("key")
        directory = os.path.dirname(os.path.abspath(output))
        descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".drm-")
        try:
            with os.fdopen(descriptor, "wb") as out:
                for chunk in decryptChunks(stream, key, header):
                    out.write(chunk)
            os.replace(temporary, output)
        except BaseException:
            os.unlink(temporary)
            raise
    return payload


__all__ = ["ClientError", "LicenseClient", "LicenseError", "baseUrlOf", "playPackage",
           "digestAuthorization"]

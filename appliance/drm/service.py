"""
The DRM license server as a Twisted service: HTTPS on C{[drm] listen} with
the appliance's TLS identity.

Its secrets live in C{<data_dir>/drm/}, each made on first start with mode
0600: C{master.key} (wraps the content keys), C{signing.key} (Ed25519, signs
licenses; C{signing.pub} beside it), C{service.token} (the packager's
credential for deposits) and C{nonce.secret} (digest nonces stay valid
across restarts).
"""

import os
import secrets

from twisted.application import service
from twisted.internet import error as netError
from twisted.logger import Logger

from appliance import logs
from appliance.drm.http import HTTPDigestAuthenticator, LicenseResource, LicenseSite, RateLimiter
from appliance.drm.keystore import KeyStore, ensureSecretFile, loadMasterKey
from appliance.drm.license import LicenseIssuer, loadSigningKey

_log = Logger(observer=logs.observer)


def secretPaths(dataPath):
    """
    The DRM secret files under the data directory (C{dataPath(*segments)}).
    """
    return {name: dataPath("drm", name) for name in
            ("master.key", "signing.key", "signing.pub", "service.token", "nonce.secret")}


def loadServiceToken(path):
    return ensureSecretFile(path, lambda: secrets.token_hex(32).encode("ascii")).decode("ascii").strip()


def licenseUrl(config):
    """
    The license server URL written into packages: C{[drm] url}, or one made
    from the listen address.
    """
    if config.url:
        return config.url.rstrip("/") + "/drm/license"
    host = config.listen.interface or "127.0.0.1"
    if ":" in host:
        host = "[%s]" % (host,)
    return "https://%s:%d/drm/license" % (host, config.listen.port)


class DRMService(service.Service):
    """
    @param config: the C{[drm]} section (L{appliance.config.DRMConfig}).
    @param stats: the service's L{appliance.stats.Statistics}.
    @param database: the shared L{appliance.storage.database.Database}.
    @param users: the L{appliance.interfaces.IUserDirectory}.
    @param tlsOptions: a callable returning the server TLS context options.
    @param dataPath: C{Config.dataPath}.
    @param realms: the digest realms of the served domains.
    @ivar port: the listening port once started.
    @ivar issuer: the L{LicenseIssuer} once started.
    """

    name = "drm"

    def __init__(self, config, reactor, stats, database, users, tlsOptions, dataPath, realms,
                 digestAlgorithms=("SHA-256", "MD5")):
        self.config = config
        self._reactor = reactor
        self.stats = stats
        self._database = database
        self._users = users
        self._tlsOptions = tlsOptions
        self._paths = secretPaths(dataPath)
        self._realms = tuple(dict.fromkeys(realms))
        self._algorithms = digestAlgorithms
        self.port = None
        self.issuer = None
        self.authenticator = None

    def privilegedStartService(self):
        from appliance.sip.service import ListenError

        paths = self._paths
        masterKey = loadMasterKey(paths["master.key"])
        signingKey = loadSigningKey(paths["signing.key"])
        token = loadServiceToken(paths["service.token"])
        nonceSecret = ensureSecretFile(paths["nonce.secret"], lambda: os.urandom(32))
        keyStore = KeyStore(self._database, masterKey, self._reactor)
        self.issuer = LicenseIssuer(self._database, keyStore, signingKey, self._reactor, self.stats)
        self.authenticator = HTTPDigestAuthenticator(
            self._users, self._reactor, nonceSecret, algorithms=self._algorithms)
        self.stats.gauges(self.authenticator.statistics)
        limiter = RateLimiter(self._reactor, self.config.rate_limit, self.config.rate_burst)
        site = LicenseSite(LicenseResource(
            self.issuer, self.authenticator, self._realms, token, limiter,
            signingKey.public_key(), self.stats))
        address = self.config.listen
        privateKey = address.option("privateKey")
        if privateKey:
            from appliance.tls import serverContext

            tlsOptions = serverContext(address.option("certKey", privateKey), privateKey)
        else:
            tlsOptions = self._tlsOptions()
        try:
            self.port = self._reactor.listenSSL(
                address.port, site, tlsOptions, interface=address.interface)
        except netError.CannotListenError as e:
            raise ListenError("[drm] listen %s: %s" % (address, e.socketError or e))
        service.Service.privilegedStartService(self)

    def startService(self):
        service.Service.startService(self)
        host = self.port.getHost()
        _log.info("DRM license server on https://{host}:{port}/drm/", host=host.host, port=host.port)
        d = self.issuer.start()
        d.addErrback(lambda f: _log.failure("cannot count the DRM keys", f))

    def stopService(self):
        service.Service.stopService(self)
        if self.authenticator is not None:
            self.authenticator.stop()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()

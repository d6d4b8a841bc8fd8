"""
The RTSP service: binds the configured TCP address and serves the media
store with L{RTSPServer}; one L{Pacer} paces every outgoing stream.
"""

import gc

from twisted.application import service
from twisted.internet import error as netError
from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger

from appliance import logs
from appliance.media.rtp import Pacer
from appliance.rtsp.auth import DigestAuthenticator
from appliance.rtsp.server import RTSPServer
from appliance.rtsp.session import PortAllocator
from appliance.rtsp.store import MediaStore
from appliance.sip.service import ListenError

_log = Logger(observer=logs.observer)


class RTSPService(service.Service):
    """
    The RTSP media server as a Twisted service.

    @param config: the C{[rtsp]} section (L{appliance.config.RTSPConfig}).
    @param stats: the service's L{appliance.stats.Statistics}.
    @param mediaRoot: C{<data_dir>/media}.
    @param users: the L{appliance.interfaces.IUserDirectory} for digest
        authentication.
    @param domains: the domains served (C{[sip] domains}).
    @param realmFor: the digest realm of a domain's users.
    @ivar port: the listening port once started.
    """

    name = "rtsp"

    def __init__(self, config, reactor, stats, mediaRoot, users, domains, realmFor):
        self.config = config
        self._reactor = reactor
        self.stats = stats
        self.store = MediaStore(mediaRoot)
        authenticator = None
        if config.auth == "digest":
            authenticator = DigestAuthenticator(users, reactor)
        self.pacer = Pacer(reactor)
        self.server = RTSPServer(
            config, reactor, self.store, stats, self.pacer,
            PortAllocator(reactor, config.rtp_ports[0], config.rtp_ports[1], config.listen.interface),
            authenticator=authenticator, domains=domains, realmFor=realmFor,
            baseUrl=config.url or None,
        )
        self.port = None

    def privilegedStartService(self):
        """
        Bind the RTSP port before privileges are dropped.

        @raise ListenError: when it cannot be bound.
        """
        service.Service.privilegedStartService(self)
        address = self.config.listen
        try:
            self.port = self._reactor.listenTCP(address.port, self.server, interface=address.interface)
        except netError.CannotListenError as e:
            reason = getattr(e.socketError, "strerror", None) or e.socketError
            raise ListenError("[rtsp] listen: cannot listen on %s: %s" % (address, reason))
        host = self.port.getHost()
        _log.info("RTSP listening on TCP {host}:{port}", host=host.host, port=host.port)

    def startService(self):
        service.Service.startService(self)
        # Full garbage collections stall the reactor, and with it the RTP
        # pacing, for tens of milliseconds when they walk the whole
        # start-up heap (modules, classes, the other services). Freezing
        # it leaves them only the objects made since: sessions, requests.
        gc.freeze()

    def stopService(self):
        service.Service.stopService(self)
        self.server.stop()
        for connection in list(self.server.connections):
            connection.transport.loseConnection()
        port, self.port = self.port, None
        if port is None:
            return None
        return maybeDeferred(port.stopListening)

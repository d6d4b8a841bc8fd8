"""
The RTSP server (RFC 2326): connections frame bytes into requests and
interleaved packets (L{RTSPConnection}); L{RTSPServer} answers requests
and owns the sessions.

Every request is answered in order on its connection. Malformed input gets
its error (400, 413, 505) and the connection is closed; errors in a
well-formed request (401, 403, 404, 454, 455, 457, 459, 461, 501, 551) are
answered and the connection stays usable. Nothing here raises into the
reactor, and no request disturbs sessions other than its own.
"""

import re
from urllib.parse import urlsplit

from twisted.internet.defer import maybeDeferred, succeed
from twisted.internet import tcp
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from appliance import logs
from appliance.media.audiofile import AudioFormatError
from appliance.rtsp import message
from appliance.rtsp.message import ParseError, Request, response
from appliance.rtsp.session import (
    PLAYING, READY, RECORDING, InterleavedChannel, Session, UDPChannel,
)
from appliance.rtsp.store import InvalidPath, MediaNotFound

_log = Logger(observer=logs.observer)

SERVER = "appliance-rtsp"
METHODS = (
    "OPTIONS", "DESCRIBE", "ANNOUNCE", "SETUP", "PLAY", "PAUSE", "RECORD",
    "TEARDOWN", "GET_PARAMETER", "SET_PARAMETER", "DELETE",
)
_CONTROL = re.compile(r"^[A-Za-z0-9_.-]+=[A-Za-z0-9_.-]*$|^track[A-Za-z0-9_.-]*$")


class RTSPError(Exception):
    """
    A request refused with C{status}; C{headers} go into the answer.
    """

    def __init__(self, status, reason="", headers=()):
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.headers = list(headers)


class RTSPConnection(Protocol):
    """
    One RTSP connection: frames requests and interleaved packets
    (RFC 2326 section 10.12) and answers requests one at a time, in order.
    """

    def __init__(self, server):
        self._server = server
        limits = server.config
        self._parser = message.StreamParser(
            limits.max_header_size, limits.max_headers, limits.max_body_size
        )
        self._queue = succeed(None)
        self._channels = set()
        self.sessions = set()
        self.closed = False
        self._direct = False

    @property
    def peer(self):
        return self.transport.getPeer().host

    def connectionMade(self):
        # Interleaved packets may go straight to a plain TCP socket (see
        # writeFrame); anything else (TLS, test transports) takes write().
        self._direct = isinstance(self.transport, tcp.Server)
        self._server.connectionMade(self)

    def dataReceived(self, data):
        if self.closed:
            return
        try:
            items = self._parser.feed(data)
        except ParseError as e:
            self._server.parseError(self, e)
            items = []
        for item in items:
            if isinstance(item, message.InterleavedFrame):
                self._server.frameReceived(self, item)
            elif isinstance(item, Request):
                self._queue.addCallback(lambda _, request=item: self._answer(request))

    def _answer(self, request):
        if self.closed:
            return None
        d = maybeDeferred(self._server.requestReceived, self, request)
        d.addCallback(self.send)
        d.addErrback(lambda f: _log.failure("answering {method}", f, method=request.method))
        return d

    def send(self, answer):
        if answer is not None and not self.closed:
            answer.headers.set("Server", SERVER)
            self.transport.write(answer.toBytes())

    def writeFrame(self, channel, data):
        """
        Send one interleaved packet (RFC 2326 section 10.12).

        This is the per-packet path of TCP sessions: when nothing is queued
        in the transport, the frame goes to the socket directly, which
        spares the event loop a writer registration and removal (two epoll
        calls) per packet; whatever the socket does not take, and every
        frame behind queued data, goes through C{transport.write} in order.
        """
        if self.closed:
            return
        frame = message.frame(channel, data)
        transport = self.transport
        if self._direct and not transport.dataBuffer and not transport._tempDataBuffer:
            try:
                sent = transport.socket.send(frame)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                return  # the connection is gone; connectionLost follows
            if sent == len(frame):
                return
            frame = frame[sent:]
        transport.write(frame)

    def abort(self, answer=None):
        """
        Answer and close: the stream cannot be framed any more.
        """
        self.send(answer)
        self.closed = True
        self.transport.loseConnection()

    def allocateChannels(self, wanted):
        """
        Reserve an interleaved channel pair, C{wanted} when it is free.
        """
        if wanted is not None and wanted[0] not in self._channels and wanted[1] not in self._channels:
            pair = wanted
        else:
            low = 0
            while low in self._channels or low + 1 in self._channels:
                low += 2
            if low > 254:
                raise RTSPError(461, "no free interleaved channels")
            pair = (low, low + 1)
        self._channels.update(pair)
        return pair

    def releaseChannels(self, pair):
        self._channels.difference_update(pair)

    def connectionLost(self, reason):
        self.closed = True
        self._server.connectionLost(self)


class RTSPServer(Factory):
    """
    The RTSP server's logic over an L{IMediaStore}.

    @param config: the C{[rtsp]} section.
    @param store: the L{appliance.interfaces.IMediaStore}.
    @param authenticator: a L{appliance.rtsp.auth.DigestAuthenticator}, or
        C{None} to serve without authentication.
    @param domains: the SIP domains served (user names are bare with one).
    @param realmFor: a callable from domain to digest realm.
    @param pacer: the shared L{appliance.media.rtp.Pacer}.
    @param ports: a L{appliance.rtsp.session.PortAllocator}.
    """

    def __init__(self, config, reactor, store, stats, pacer, ports,
                 authenticator=None, domains=(), realmFor=lambda d: d, baseUrl=None):
        self.config = config
        self._reactor = reactor
        self.store = store
        self.stats = stats
        self.pacer = pacer
        self.ports = ports
        self._auth = authenticator
        self._domains = tuple(domains)
        self._realmFor = realmFor
        self.baseUrl = baseUrl
        self.sessions = {}
        self.connections = set()
        self._announced = {}
        stats.gauges(self.statistics)
        stats.gauge("pacer.late_ticks", lambda: pacer.lateTicks)
        stats.gauge("rtp.packets.sent", lambda: pacer.packetsSent)
        stats.gauge("rtp.bytes.sent", lambda: pacer.bytesSent)

    noisy = False

    def buildProtocol(self, addr):
        return RTSPConnection(self)

    def connectionMade(self, connection):
        self.connections.add(connection)

    def connectionLost(self, connection):
        self.connections.discard(connection)
        for session in list(connection.sessions):
            if isinstance(session.channel, InterleavedChannel):
                self.endSession(session)

    def parseError(self, connection, error):
        self.stats.increment("errors.parse")
        _log.info("malformed RTSP from {peer}: {reason}", peer=connection.peer, reason=error.reason)
        answer = message.Response(error.status)
        if error.cseq is not None:
            answer.headers.add("CSeq", error.cseq)
        connection.abort(answer)

    def frameReceived(self, connection, frame):
        for session in connection.sessions:
            channel = session.channel
            if isinstance(channel, InterleavedChannel):
                if frame.channel == channel.channels[0]:
                    session.rtpReceived(frame.data)
                elif frame.channel == channel.channels[1]:
                    session.rtcpReceived(frame.data)

    def requestReceived(self, connection, request):
        """
        Answer one request.

        @return: a L{message.Response} or a L{Deferred} firing with one.
        """
        self.stats.increment("requests.in.%s" % (request.method,) if request.method in METHODS
                             else "requests.in.other")
        if request.cseq is None:
            return self._error(request, RTSPError(400, "missing CSeq"))
        d = maybeDeferred(self._dispatch, connection, request)
        d.addErrback(self._failed, request)
        d.addCallback(self._count, connection, request)
        return d

    def _count(self, answer, connection, request):
        _log.debug("RTSP {method} {uri} from {peer}: {status}", method=request.method,
                   uri=request.uri, peer=connection.peer, status=answer.code)
        self.stats.increment("responses.out.%dxx" % (answer.code // 100,))
        # A 401 is the first step of every authenticated exchange.
        if answer.code >= 400 and answer.code != 401:
            self.stats.increment("errors")
        return answer

    def _failed(self, failure, request):
        if failure.check(RTSPError):
            return self._error(request, failure.value)
        if failure.check(ParseError):
            return self._error(request, RTSPError(failure.value.status, failure.value.reason))
        _log.failure("RTSP {method} failed", failure, method=request.method)
        return response(request, 500)

    def _error(self, request, error):
        _log.debug("RTSP {method} refused: {reason}", method=request.method, reason=error.reason)
        return response(request, error.status, error.headers)

    def _dispatch(self, connection, request):
        if request.method not in METHODS:
            raise RTSPError(501, "unknown method", [("Public", ", ".join(METHODS))])
        require = request.headers.get("Require")
        if require:
            raise RTSPError(551, "option not supported", [("Unsupported", require)])
        if request.method == "OPTIONS":
            return response(request, 200, [("Public", ", ".join(METHODS))])
        target = self._target(request.uri)
        session = self._sessionOf(request, required=request.method in (
            "PLAY", "PAUSE", "RECORD", "TEARDOWN"))
        if target is None and session is not None:
            target = (session.media, None)
        if target is None:
            if request.method in ("GET_PARAMETER", "SET_PARAMETER"):
                return self._parameter(request, session)
            raise RTSPError(404, "no such resource")
        media, control = target
        d = self._authorize(connection, request, media)
        d.addCallback(self._perform, connection, request, media, control, session)
        return d

    def _target(self, uri):
        """
        The L{MediaPath} and track control a request URI names, or C{None}
        for C{*}.
        """
        if uri == "*":
            return None
        parts = urlsplit(uri)
        if parts.scheme and parts.scheme.lower() not in ("rtsp", "rtspu"):
            raise RTSPError(400, "not an rtsp URL")
        path = parts.path.rstrip("/")
        control = None
        head, _, last = path.rpartition("/")
        if _CONTROL.match(last) and not last.lower().endswith((".au", ".wav")):
            path, control = head, last
        try:
            return self.store.resolve(path), control
        except InvalidPath as e:
            raise RTSPError(404, str(e))

    def _sessionOf(self, request, required):
        header = request.headers.get("Session")
        if header is None:
            if required:
                raise RTSPError(454, "Session header missing")
            return None
        session = self.sessions.get(message.parseSession(header))
        if session is None:
            raise RTSPError(454, "no such session")
        session.touch()
        return session

    def _owner(self, media):
        """
        The digest username and realm of the owner of C{media}: the user
        part alone when one domain is served, user@domain otherwise.
        """
        name, at, domain = media.owner.rpartition("@")
        if not at:
            if len(self._domains) != 1:
                raise RTSPError(404, "user@domain expected")
            return media.owner, self._realmFor(self._domains[0])
        if domain.lower() not in self._domains:
            raise RTSPError(404, "not a domain of this server")
        return media.owner, self._realmFor(domain.lower())

    def _authorize(self, connection, request, media):
        """
        RFC 2326 section 12.5: a user reads and writes only their own
        mailbox paths; an operator (C{[rtsp] operators}) also reads, but
        does not change, everyone else's.

        @return: a L{Deferred} firing with the user name (C{None} without
            authentication).
        """
        if self._auth is None:
            return succeed(None)
        owner, realm = self._owner(media)

        def checked(result):
            username, stale = result
            if username is None:
                self.stats.increment("auth.challenges")
                raise RTSPError(401, "authentication required", [
                    ("WWW-Authenticate", self._auth.challenge(realm, stale))
                ])
            if username != owner and not (
                username in self.config.operators and _readsOnly(request)
            ):
                self.stats.increment("auth.forbidden")
                raise RTSPError(403, "not your mailbox")
            return username

        return self._auth.authenticate(request, realm).addCallback(checked)

    def _perform(self, user, connection, request, media, control, session):
        if session is not None:
            if session.user != user or session.media != media:
                raise RTSPError(459 if session.user == user else 403, "session is for another resource")
        handler = getattr(self, "_rtsp_" + request.method)
        return handler(request, connection, user, media, control, session)

    # Methods (RFC 2326 section 10).

    def _url(self, request, media):
        if self.baseUrl:
            return self.baseUrl.rstrip("/") + media.path
        parts = urlsplit(request.uri)
        return "rtsp://%s%s" % (parts.netloc.rpartition("@")[2], media.path)

    def _loadForPlay(self, media):
        try:
            with self.store.openForPlay(media) as reader:
                encoding = "PCMA" if reader.encoding == "PCMA" else "PCMU"
                if reader.rate != 8000 or reader.channels != 1:
                    raise RTSPError(415, "only 8 kHz mono is served")
                return reader.readAs(encoding), encoding
        except (MediaNotFound, AudioFormatError, OSError):
            raise RTSPError(404, "no such message")

    def _rtsp_DESCRIBE(self, request, connection, user, media, control, session):
        data, encoding = self._loadForPlay(media)
        url = self._url(request, media)
        host = connection.transport.getHost().host
        body = message.describeAudio(len(data) / 8000.0, encoding, host)
        return response(request, 200, [
            ("Content-Base", url + "/"), ("Content-Type", "application/sdp"),
        ], body)

    def _rtsp_ANNOUNCE(self, request, connection, user, media, control, session):
        contentType = request.headers.get("Content-Type", "application/sdp")
        if contentType.split(";")[0].strip().lower() != "application/sdp":
            raise RTSPError(415, "SDP expected")
        self._announced.pop(media.path, None)
        self._announced[media.path] = message.parseAudioDescription(request.body)
        while len(self._announced) > 1000:
            # ANNOUNCEs never followed by a SETUP: forget the oldest.
            del self._announced[next(iter(self._announced))]
        return response(request, 200)

    def _rtsp_SETUP(self, request, connection, user, media, control, session):
        header = request.headers.get("Transport")
        if header is None:
            raise RTSPError(461, "Transport header missing")
        specs = message.parseTransport(header)
        if session is not None:
            raise RTSPError(455 if session.state != READY else 459, "one stream per session")
        mode = next((s.mode for s in specs), "play")
        if mode not in ("play", "record"):
            raise RTSPError(461, "mode %s not supported" % (mode,))
        client = connection.peer
        if sum(1 for s in self.sessions.values() if s.client == client) >= self.config.max_sessions_per_client:
            raise RTSPError(453, "too many sessions from %s" % (client,))
        data = None
        if mode == "play":
            data, encoding = self._loadForPlay(media)
        session = Session(self._reactor, self.config.session_timeout, self.endSession,
                          user, client, media, mode, self.stats)
        try:
            spec = self._attach(session, specs, connection)
        except BaseException:
            session.close()
            raise
        if mode == "play":
            session.encoding = encoding
            session.data = data
        else:
            announced = self._announced.pop(media.path, None)
            session.payloads = {0: "PCMU", 8: "PCMA"}
            if announced is not None:
                session.payloads[announced.payloadType] = announced.encoding
                session.encoding = announced.encoding
        session.controlUrl = request.uri
        self.sessions[session.id] = session
        connection.sessions.add(session)
        self.stats.increment("sessions.created")
        extra = {"mode": '"%s"' % (mode.upper(),)} if mode == "record" else {}
        return response(request, 200, [
            ("Session", session.headerValue()),
            ("Transport", session.channel.describe(spec, **extra)),
        ])

    def _attach(self, session, specs, connection):
        for spec in specs:
            if not spec.unicast:
                continue
            if spec.protocol == "RTP/AVP" and spec.clientPorts is not None:
                try:
                    session.channel = UDPChannel(self.ports, connection.peer, spec.clientPorts, session)
                except OSError:
                    raise RTSPError(453, "no free RTP ports")
                return spec
            if spec.protocol == "RTP/AVP/TCP":
                channels = connection.allocateChannels(spec.interleaved)
                session.channel = InterleavedChannel(connection, channels)
                return spec
        raise RTSPError(461, "only unicast RTP/AVP over UDP or TCP")

    def _rtsp_PLAY(self, request, connection, user, media, control, session):
        if session.mode != "play":
            raise RTSPError(455, "session is for recording")
        duration = len(session.data) / 8000.0
        start, end = None, None
        rangeHeader = request.headers.get("Range")
        if rangeHeader:
            start, end = message.parseRange(rangeHeader)
            if start is not None and start > duration:
                raise RTSPError(457, "range starts after the end")
        if start is None and session.sender is None:
            start = 0.0

        def finished():
            if session.state == PLAYING:
                session.state = READY

        first, seq, rtptime = session.startPlaying(self.pacer, session.data, start, end, finished)
        stop = duration if end is None else min(end, duration)
        return response(request, 200, [
            ("Session", session.headerValue()),
            ("Range", "npt=%s-%s" % (message.formatNpt(first), message.formatNpt(stop))),
            ("RTP-Info", "url=%s;seq=%d;rtptime=%d" % (session.controlUrl, seq, rtptime)),
        ])

    def _rtsp_PAUSE(self, request, connection, user, media, control, session):
        position = session.sender.position if session.sender is not None else 0.0
        session.pause()
        return response(request, 200, [
            ("Session", session.headerValue()),
            ("Range", "npt=%s-" % (message.formatNpt(position),)),
        ])

    def _rtsp_RECORD(self, request, connection, user, media, control, session):
        if session.mode != "record":
            raise RTSPError(455, "session is for playing")
        if session.state == RECORDING:
            return response(request, 200, [("Session", session.headerValue())])
        if session.writer is None:
            try:
                # .au files of the store are mu-law; .wav keeps the codec.
                encoding = "PCMU" if media.name.lower().endswith(".au") else session.encoding
                writer = self.store.openForRecord(media, encoding)
            except (OSError, InvalidPath) as e:
                _log.warn("cannot record {path}: {error}", path=media.path, error=e)
                raise RTSPError(500, "cannot store")
            self.stats.increment("recordings")
        else:
            writer = session.writer
        session.startRecording(writer)
        return response(request, 200, [("Session", session.headerValue())])

    def _rtsp_TEARDOWN(self, request, connection, user, media, control, session):
        deleted = session.mode == "record" and not session.recorded
        self.endSession(session)
        if deleted and self.store.delete(media):
            # The second deletion path: SETUP for recording, then TEARDOWN.
            self.stats.increment("deletions")
        return response(request, 200)

    def _rtsp_DELETE(self, request, connection, user, media, control, session):
        if not self.store.delete(media):
            raise RTSPError(404, "no such message")
        self.stats.increment("deletions")
        return response(request, 200)

    def _rtsp_GET_PARAMETER(self, request, connection, user, media, control, session):
        return self._parameter(request, session)

    def _rtsp_SET_PARAMETER(self, request, connection, user, media, control, session):
        return self._parameter(request, session)

    def _parameter(self, request, session):
        if request.body.strip():
            raise RTSPError(451, "no parameters are supported")
        headers = [("Session", session.headerValue())] if session is not None else []
        return response(request, 200, headers)

    def endSession(self, session):
        """
        End C{session} (TEARDOWN, timeout or connection lost), keeping what
        it recorded.
        """
        if self.sessions.pop(session.id, None) is None:
            return
        session.close()
        for connection in self.connections:
            connection.sessions.discard(session)

    def stop(self):
        """
        End every session and the pacer (the service is stopping).
        """
        for session in list(self.sessions.values()):
            self.endSession(session)
        self.pacer.stop()

    def statistics(self):
        return {
            "sessions.active": len(self.sessions),
            "streams.playing": sum(
                1 for s in self.sessions.values() if s.sender is not None and s.sender.playing
            ),
            "streams.recording": sum(1 for s in self.sessions.values() if s.state == RECORDING),
            "connections.active": len(self.connections),
        }


def _readsOnly(request):
    """
    Whether a request can only read a message (what an operator may do
    in other users' mailboxes): not ANNOUNCE, RECORD, DELETE, nor a SETUP
    for recording, whose TEARDOWN would delete.
    """
    if request.method == "SETUP":
        try:
            specs = message.parseTransport(request.headers.get("Transport", ""))
        except ParseError:
            return False
        return all(spec.mode == "play" for spec in specs)
    return request.method in ("DESCRIBE", "PLAY", "PAUSE", "TEARDOWN", "GET_PARAMETER", "SET_PARAMETER")

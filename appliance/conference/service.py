"""
The conference service: a SIP user agent on its own port hosting the echo
test and the conference bridge.

The SIP proxy routes C{echo@<domain>} and C{<prefix><room>@<domain>} of its
domains here (L{appliance.sip.routing.ServiceRoute}); calls can also come
straight to C{sip:<user>@<listen address>}.  Each answered call gets an RTP
port pair from C{[conference] rtp_ports}.
"""

from twisted.application import service
from twisted.internet.defer import gatherResults, maybeDeferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from appliance import logs
from appliance.conference.echo import EchoSession
from appliance.conference.leg import MediaLeg
from appliance.conference.room import Room, recordingId
from appliance.media.endpoint import NoPortsAvailable, RTPPortRange
from appliance.media.rtp import RTCP_INTERVAL
from appliance.rtsp.store import MediaStore
from appliance.sip.message import URI, Address
from appliance.sip import thirdparty
from appliance.sip.refer import Transfers
from appliance.sip.proxy import hostTargets, isAddress, transportOf
from appliance.sip.sdp import SDPError
from appliance.sip.service import SIPController
from appliance.sip.stack import TransportSettings, listenSIP
from appliance.sip.transaction import TimerSettings, TransactionLayer
from appliance.sip.useragent import UserAgent

_log = Logger(observer=logs.observer)

_ROOM_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~")


class ConferenceService(service.Service):
    """
    @param config: the C{[conference]} section.
    @param sipConfig: the C{[sip]} section (timers, message size).
    @param mediaRoot: C{<data_dir>/media}, for room recordings.
    @param domain: the domain of the rooms' own addresses
        (C{conf-ROOM@domain}) in the calls they place.
    """

    name = "conference"

    def __init__(self, config, sipConfig, reactor, stats, mediaRoot, domain="example.test"):
        self.config = config
        self.domain = domain
        self._reactor = reactor
        self.stats = stats
        self._settings = TransportSettings(
            sipConfig.max_message_size, sipConfig.tcp_idle_timeout, sipConfig.max_connections)
        self.rooms = {}
        self._legs = set()
        self._rtcp = LoopingCall(self._reportRTCP)
        self._rtcp.clock = reactor
        self.ports = []
        self.transportsByName = {}
        self._store = MediaStore(mediaRoot)
        interface = config.media_address or ""
        self._rtpPorts = RTPPortRange(reactor, config.rtp_ports[0], config.rtp_ports[1], interface)
        self.agent = UserAgent(
            reactor, self.transportsByName, self.resolve, "", self._incoming, stats,
            TimerSettings(T1=sipConfig.t1, T2=sipConfig.t2, T4=sipConfig.t4), accepts=self.accepts,
        )
        self.agent.transfers = Transfers(self.agent, self._referred)
        #: C{proxy()} gives the SIP URI of the outbound proxy for the calls
        #: rooms place, or C{None} to send them straight to their target.
        self.proxy = (lambda: config.proxy) if config.proxy else (lambda: None)
        self.transactions = TransactionLayer(reactor, self.agent, self.agent.timers)
        self.agent.transactions = self.transactions
        self.controller = SIPController(self.transactions, stats)
        stats.gauge("conference.rooms", lambda: len(self.rooms))
        stats.gauge("conference.participants", lambda: sum(len(room) for room in self.rooms.values()))
        stats.gauge("transactions.active", lambda: self.transactions.activeTransactions)

    # Routing -------------------------------------------------------------------

    def roomName(self, user):
        """
        The room a user part names, or C{None}.
        """
        prefix = self.config.prefix
        if not prefix or not user or not user.startswith(prefix):
            return None
        name = user[len(prefix):]
        if not name or len(name) > 64 or not set(name) <= _ROOM_NAME_CHARACTERS:
            return None
        return name

    def accepts(self, uri):
        if not isinstance(uri, URI) or uri.user is None:
            return False
        return uri.user == self.config.echo or self.roomName(uri.user) is not None

    def resolve(self, uri):
        """
        Where requests for C{uri} go: IP addresses only (dialogs come
        through the proxy's Record-Route, which names an address).
        """
        if isinstance(uri, URI) and isAddress(uri.host):
            return succeed(hostTargets(uri, transportOf(uri)))
        return succeed([])

    def addressOf(self, kind):
        """
        The C{(host, port)} of the first listening port of C{kind}.
        """
        for address, port in zip(self.config.listen, self.ports):
            if address.kind == kind:
                host = port.getHost()
                return host.host, host.port
        raise KeyError(kind)

    # Calls ---------------------------------------------------------------------

    def _incoming(self, call):
        user = call.uri.user
        room = None
        if user != self.config.echo:
            name = self.roomName(user)
            room = self.rooms.get(name)
            if room is not None and len(room) >= self.config.max_participants:
                call.reject(486, "Room Full")
                return
        leg = self._newLeg()
        try:
            if call.offer is None:
                # A late offer (RFC 3261 section 13.2.1): ours goes in the
                # 200, the answer comes in the ACK.
                body = leg.offer(towards=call.source[0])
            else:
                body = leg.accept(call.offer)
        except SDPError as e:
            leg.close()
            call.reject(488, e.reason)
            return
        except NoPortsAvailable:
            leg.close()
            call.reject(503, "No media ports")
            return

        def start():
            if user == self.config.echo:
                self.stats.increment("calls.echo")
                EchoSession(call, leg)
                return
            self.stats.increment("calls.conference")
            current = self.rooms.get(name) or self._openRoom(name)
            current.join(call, leg)

        if call.offer is not None:
            call.answer(body)
            start()
            return

        def acked():
            try:
                leg.applyAnswer(call.ackBody or b"")
            except SDPError as e:
                _log.info("call {callId}: unusable answer in the ACK: {reason}", callId=call.callId,
                          reason=e.reason)
                call.hangup()
                return
            start()

        call.onAnswered = acked
        call.onEnded = lambda reason: leg.close()
        call.answer(body)

    def _newLeg(self):
        leg = MediaLeg(self._rtpPorts, self.config.media_address, stats=self.stats,
                       clock=self._reactor, cname=b"conference@appliance")
        self._legs.add(leg)
        return leg

    def _reportRTCP(self):
        """
        One timer for the RTCP reports of every call (RFC 3550 section
        6.2), rather than one per call.
        """
        now = self._reactor.seconds()
        for leg in list(self._legs):
            if leg.closed:
                self._legs.discard(leg)
            else:
                leg.endpoint.report(now)

    def _openRoom(self, name):
        recorder = None
        if self.config.record:
            media = self._store.resolve("/conference/%s/%s.au" % (name, recordingId()))
            recorder = self._store.openForRecord(media, "PCMU")
            _log.info("recording room {room} to {path}", room=name, path=media.filename)
        room = Room(name, self._reactor, self.stats, self.config.mute_digit, recorder,
                    onEmpty=self._roomEmpty)
        self.rooms[name] = room
        self.stats.increment("conference.rooms.opened")
        return room

    def _referred(self, session, target, request):
        """
        A REFER to a room leg: the room invites the referred party (RFC 4579
        section 5.5); the referrer stays.  The echo test declines.
        """
        room = next((room for room in self.rooms.values() if room.hasCall(session)), None)
        if room is None or len(room) >= self.config.max_participants:
            return None
        fromURI = Address.parse(session.dialog.localURI).uri
        try:
            return self.invite(room.name, target.uri, fromURI,
                               request.headers.get("Referred-By") or session.dialog.remoteURI)
        except NoPortsAvailable:
            return None

    def invite(self, name, target, fromURI=None, referredBy=None):
        """
        Call C{target} into room C{name}, opening the room if need be: the
        bridge places the call with its offer through the proxy and joins
        it to the mix once answered (third-party call control as the PSAP
        uses it, and REFER).

        @return: the L{appliance.sip.uac.OutgoingCall}; its C{result}
            fires with the call once it is in the room.
        @raise NoPortsAvailable: no RTP port pair is free.
        @raise ValueError: C{name} is not a room name.
        """
        if self.roomName(self.config.prefix + name) is None:
            raise ValueError("%r is not a room name" % (name,))
        room = self.rooms.get(name) or self._openRoom(name)
        leg = self._newLeg()
        try:
            body = leg.offer()
        except NoPortsAvailable:
            leg.close()
            room.closeIfEmpty()
            raise
        if fromURI is None:
            fromURI = "sip:%s%s@%s" % (self.config.prefix, name, self.domain)
        headers = (("Referred-By", referredBy),) if referredBy else ()
        call = self.agent.invite(target, str(fromURI), body, route=self.proxy(), headers=headers)
        self.stats.increment("conference.invited")

        def answered(call):
            if self.rooms.get(room.name) is not room:
                leg.close()
                call.hangup()
                return call
            try:
                leg.applyAnswer(call.remoteBody or b"")
            except SDPError as e:
                _log.info("room {room}: unusable answer from {target}: {reason}", room=room.name,
                          target=str(target), reason=e.reason)
                leg.close()
                call.hangup()
                room.closeIfEmpty()
                raise
            self.stats.increment("calls.conference")
            room.join(call, leg)
            return call

        def failed(failure):
            leg.close()
            room.closeIfEmpty()
            return failure

        call.result.addCallbacks(answered, failed)
        return call

    def connect(self, a, b):
        """
        Call C{a}, then C{b}, and connect them to each other (click to dial,
        RFC 3725 flow I); see L{appliance.sip.thirdparty.connect}.
        """
        self.stats.increment("calls.connected")
        return thirdparty.connect(self.agent, a, b, route=self.proxy())

    def _roomEmpty(self, room):
        if self.rooms.get(room.name) is room:
            del self.rooms[room.name]

    # Service -------------------------------------------------------------------

    def privilegedStartService(self):
        service.Service.privilegedStartService(self)
        try:
            for address in self.config.listen:
                port, transport = listenSIP(
                    self._reactor, address, self.controller, self._settings, section="conference")
                self.ports.append(port)
                self.transportsByName.setdefault(transport.name, transport)
        except BaseException:
            for port in self.ports:
                port.stopListening()
            self.ports = []
            raise
        host, port = self._contactAddress()
        kind = self.config.listen[0].kind
        params = "" if kind == "udp" else ";transport=%s" % (kind,)
        self.agent.contact = "<sip:conference@%s:%d%s>" % (host, port, params)
        for address, listening in zip(self.config.listen, self.ports):
            bound = listening.getHost()
            _log.info("conference listening on {kind} {host}:{port}",
                      kind=address.kind.upper(), host=bound.host, port=bound.port)

    def _contactAddress(self):
        bound = self.ports[0].getHost()
        host = bound.host
        if host in ("0.0.0.0", "::", ""):
            host = self.config.media_address or "127.0.0.1"
        if ":" in host:
            host = "[%s]" % (host,)
        return host, bound.port

    def startService(self):
        service.Service.startService(self)
        self.controller.ready = True
        self._rtcp.start(RTCP_INTERVAL, now=False)

    def stopService(self):
        service.Service.stopService(self)
        if self._rtcp.running:
            self._rtcp.stop()
        self.agent.stop()
        for room in list(self.rooms.values()):
            room.close()
        self.rooms.clear()
        self.controller.ready = False
        self.transactions.stop()
        for transport in self.transportsByName.values():
            closeAll = getattr(transport, "closeAll", None)
            if closeAll is not None:
                closeAll()
        ports, self.ports = self.ports, []
        return gatherResults([maybeDeferred(port.stopListening) for port in ports])

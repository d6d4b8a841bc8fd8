"""
RTSP sessions (RFC 2326 appendix A, server state machine) and the paths
their media take: RTP over UDP between two ports of the configured range,
or interleaved on the RTSP connection (section 10.12).

A session carries one stream of one stored message: played with an
L{RTPSender} paced by the shared L{Pacer}, or recorded with an
L{RTPReceiver} writing to the store as packets arrive.
"""

import os

from twisted.internet import error as netError
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from appliance import logs
from appliance.media import rtp

_log = Logger(observer=logs.observer)

INIT, READY, PLAYING, RECORDING = "init", "ready", "playing", "recording"


class _Socket(DatagramProtocol):
    noisy = False

    def __init__(self, received):
        self._received = received

    def datagramReceived(self, data, address):
        self._received(data, address)


class PortAllocator:
    """
    Hands out pairs of UDP ports (even RTP port, RTCP port above it) from a
    range, binding both (RFC 3550 section 11).

    @param low: the first port of the range.
    @param high: the last port of the range.
    @param interface: the address to bind, C{''} for all.
    """

    def __init__(self, reactor, low, high, interface=""):
        self._reactor = reactor
        self._low = low + (low & 1)
        self._high = high
        self._interface = interface
        self._next = self._low
        self.inUse = set()

    def allocate(self, rtpReceived, rtcpReceived):
        """
        Bind a free pair.

        @return: C{(rtpPort, rtcpPort)} listening ports, or C{None} when the
            range is exhausted.
        """
        count = (self._high - self._low + 1) // 2
        for _ in range(count):
            port = self._next
            self._next += 2
            if self._next + 1 > self._high:
                self._next = self._low
            if port in self.inUse:
                continue
            try:
                first = self._reactor.listenUDP(port, _Socket(rtpReceived), interface=self._interface)
            except netError.CannotListenError:
                continue
            try:
                second = self._reactor.listenUDP(port + 1, _Socket(rtcpReceived), interface=self._interface)
            except netError.CannotListenError:
                first.stopListening()
                continue
            self.inUse.add(port)
            return first, second
        return None

    def release(self, ports):
        for port in ports:
            port.stopListening()
        self.inUse.discard(ports[0].getHost().port)


class UDPChannel:
    """
    RTP and RTCP over UDP to the client's ports (RFC 2326 section 12.39).
    Packets are only accepted from the client's host, and RTP only from
    the client's RTP port once one was seen.
    """

    def __init__(self, allocator, host, clientPorts, session):
        self._allocator = allocator
        self._host = host
        self._rtpAddress = (host, clientPorts[0])
        self._rtcpAddress = (host, clientPorts[1])
        self._session = session
        self._ports = allocator.allocate(self._rtpReceived, self._rtcpReceived)
        if self._ports is None:
            raise OSError("no free RTP ports")
        self.serverPorts = tuple(p.getHost().port for p in self._ports)
        # The per-packet path goes straight to the socket: Twisted's
        # Port.write re-checks the address of every datagram.
        socket = getattr(self._ports[0], "socket", None)
        self._sendto = socket.sendto if socket is not None else self._ports[0].write

    def _rtpReceived(self, data, address):
        if address[0] == self._host:
            self._session.rtpReceived(data)

    def _rtcpReceived(self, data, address):
        if address[0] == self._host:
            self._session.rtcpReceived(data)

    def sendRTP(self, data):
        try:
            self._sendto(data, self._rtpAddress)
        except OSError:
            pass

    def sendRTCP(self, data):
        try:
            self._ports[1].write(data, self._rtcpAddress)
        except OSError:
            pass

    def describe(self, spec, **extra):
        """
        The Transport header answering C{spec}: the client's ports echoed,
        the server's ports added.
        """
        return spec.format(
            client_port="%d-%d" % (self._rtpAddress[1], self._rtcpAddress[1]),
            server_port="%d-%d" % self.serverPorts, **extra
        )

    def close(self):
        if self._ports is not None:
            self._allocator.release(self._ports)
            self._ports = None


class InterleavedChannel:
    """
    RTP and RTCP framed on the RTSP connection (RFC 2326 section 10.12).
    """

    def __init__(self, connection, channels):
        self.connection = connection
        self.channels = channels

    def sendRTP(self, data):
        self.connection.writeFrame(self.channels[0], data)

    def sendRTCP(self, data):
        self.connection.writeFrame(self.channels[1], data)

    def describe(self, spec, **extra):
        """
        The Transport header answering C{spec}, with the channels used.
        """
        return spec.format(interleaved="%d-%d" % self.channels, **extra)

    def close(self):
        self.connection.releaseChannels(self.channels)


class Session:
    """
    One RTSP session: a single stream of one stored message, played or
    recorded.

    @ivar id: the session identifier (RFC 2326 section 12.37).
    @ivar user: the authenticated user (or C{None} without authentication).
    @ivar client: the client's host, for the per-client session limit.
    @ivar media: the L{appliance.rtsp.store.MediaPath}.
    @ivar mode: C{'play'} or C{'record'}.
    """

    def __init__(self, reactor, timeout, expired, user, client, media, mode, stats):
        self.id = os.urandom(8).hex()
        self._reactor = reactor
        self.timeout = timeout
        self._expired = expired
        self.user = user
        self.client = client
        self.media = media
        self.mode = mode
        self._stats = stats
        self.state = READY
        self.channel = None
        self.data = b""
        self.sender = None
        self.receiver = None
        self.writer = None
        self.recorded = False
        self.controlUrl = None
        self.encoding = "PCMU"
        self.payloadType = 0
        self.payloads = {}
        self._timer = reactor.callLater(timeout, self._timedOut)

    def touch(self):
        """
        Activity on the session: restart its timeout.
        """
        if self._timer is not None and self._timer.active():
            self._timer.reset(self.timeout)

    def _timedOut(self):
        self._timer = None
        _log.info("RTSP session {id} timed out", id=self.id)
        self._stats.increment("sessions.timedout")
        self._expired(self)

    def headerValue(self):
        return "%s;timeout=%d" % (self.id, self.timeout)

    def startPlaying(self, pacer, data, start, end, finished):
        """
        Play from C{start} to C{end} (seconds; C{None} for the current
        position / the end).

        @return: C{(start, seq, rtptime)} of the first packet.
        """
        if self.sender is None:
            self.sender = rtp.RTPSender(
                pacer, data, self.channel.sendRTP, self.channel.sendRTCP,
                encoding=self.encoding, finished=finished,
            )
        else:
            self.sender.pause()
            self.sender.whenFinished(finished)
        self.state = PLAYING
        return self.sender.play(start, end)

    def pause(self):
        if self.sender is not None:
            self.sender.pause()
        if self.state == RECORDING and self.receiver is not None:
            self.receiver.flush()
        self.state = READY

    def startRecording(self, writer):
        """
        Write what arrives to C{writer} from now on.
        """
        if self.writer is None:
            self.writer = writer
            self.receiver = rtp.RTPReceiver(writer.write, self.payloads, writer.encoding)
        self.recorded = True
        self.state = RECORDING

    def rtpReceived(self, data):
        if self._stats is not None:
            self._stats.increment("rtp.packets.received")
            self._stats.increment("rtp.bytes.received", len(data))
        if self.state == RECORDING and self.receiver is not None:
            self.receiver.datagramReceived(data)

    def rtcpReceived(self, data):
        self.touch()

    def close(self):
        """
        End the session: stop sending, keep what was recorded, free the
        ports and the timer.
        """
        if self.sender is not None:
            self.sender.stop()
        if self.receiver is not None:
            self.receiver.flush()
        if self.writer is not None:
            try:
                self.writer.close()
            except OSError as e:
                _log.warn("closing {path}: {error}", path=self.media.path, error=e)
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self.state = INIT

"""
The media endpoint of one call leg: an RTP / RTCP port pair (RFC 3550
section 11: RTP on an even port, RTCP on the next), symmetric (RFC 4961: we
send from the port we receive on), sending to the address and port the
remote session description names.

L{RTPPortRange} hands out port pairs from the configured range; L{RTPEndpoint}
parses what arrives, counts it (packets, octets, losses by sequence gaps) and
passes each RTP packet to its owner, and stamps what its owner sends with its
own SSRC and sequence numbers.  RTCP: what arrives is counted; the owner
has L{RTPEndpoint.report} send an SR (or RR) with our CNAME every few
seconds, and L{RTPEndpoint.close} ends with a BYE (RFC 3550 section 6).
"""

import random
import socket
import struct

from twisted.internet import error as netError
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from appliance import logs

from appliance.media.rtp import (
    RTCP_RR, RTPError, RTPPacket, goodbye, isRTCP, parseRTP, senderReport, sourceDescription,
)

_log = Logger(observer=logs.observer)

MAX_DATAGRAM = 2048


def receiverReport(ssrc):
    """
    An RTCP RR without report blocks (RFC 3550 section 6.4.2).
    """
    return struct.pack("!BBHI", 0x80, RTCP_RR, 1, ssrc)


class NoPortsAvailable(Exception):
    """
    Every port pair of the range is taken.
    """


class RTPPortRange:
    """
    Even / odd port pairs from C{[low, high]} on one interface.

    @param reactor: an L{IReactorUDP}.
    """

    def __init__(self, reactor, low, high, interface=""):
        self._reactor = reactor
        self.low = low + (low % 2)
        self.high = high
        self.interface = interface

    def open(self, protocol, rtcpProtocol):
        """
        Bind C{protocol} to a free even port and C{rtcpProtocol} to the odd
        one above it, trying the pairs from a random start.

        @return: C{(rtpPort, rtcpPort)} listening ports.
        @raise NoPortsAvailable: when no pair could be bound.
        """
        pairs = list(range(self.low, self.high, 2))
        start = random.randrange(len(pairs)) if pairs else 0
        for number in pairs[start:] + pairs[:start]:
            try:
                rtp = self._reactor.listenUDP(
                    number, protocol, interface=self.interface, maxPacketSize=MAX_DATAGRAM)
            except netError.CannotListenError:
                continue
            try:
                rtcp = self._reactor.listenUDP(
                    number + 1, rtcpProtocol, interface=self.interface, maxPacketSize=MAX_DATAGRAM)
            except netError.CannotListenError:
                rtp.stopListening()
                continue
            return rtp, rtcp
        raise NoPortsAvailable("no free RTP port pair in %d-%d" % (self.low, self.high))


class _RTCPReceiver(DatagramProtocol):
    noisy = False

    def __init__(self, endpoint):
        self._endpoint = endpoint

    def datagramReceived(self, data, address):
        if isRTCP(data):
            self._endpoint.rtcpReceived += 1


class RTPEndpoint(DatagramProtocol):
    """
    One RTP session of a call leg.

    @ivar remote: C{(host, port)} RTP is sent to, or C{None} (on hold / not
        yet known): nothing is sent.
    @ivar onPacket: C{onPacket(packet)} for each RTP packet received.
    """

    noisy = False

    def __init__(self, onPacket=None, ssrc=None, clock=None, cname=b"appliance"):
        self.onPacket = onPacket
        self._clock = clock
        self.cname = cname
        self._lastTimestamp = 0
        self.ssrc = ssrc if ssrc is not None else random.getrandbits(32)
        self._sequence = random.getrandbits(16)
        self.remote = None
        self.rtcpRemote = None
        self.port = self._rtcpPort = None
        self.packetsIn = self.packetsOut = self.octetsIn = self.octetsOut = 0
        self.lost = self.malformed = self.rtcpReceived = 0
        self._lastSequence = None

    def open(self, ports):
        """
        Bind a port pair from C{ports}, an L{RTPPortRange}; return the RTP port number.
        """
        self.port, self._rtcpPort = ports.open(self, _RTCPReceiver(self))
        return self.port.getHost().port

    @property
    def localPort(self):
        return self.port.getHost().port if self.port is not None else None

    def setRemote(self, host, port):
        """
        Send to C{host}, C{port} (RTCP to C{port + 1}); a port of 0 or an
        unspecified address (RFC 3264 section 8.4) stops sending.
        """
        if not port or host in ("0.0.0.0", "::"):
            self.remote = self.rtcpRemote = None
        else:
            self.remote, self.rtcpRemote = (host, port), (host, port + 1)

    def datagramReceived(self, data, address):
        try:
            packet = parseRTP(data)
        except RTPError:
            self.malformed += 1
            return
        self.packetsIn += 1
        self.octetsIn += len(packet.payload)
        if self._lastSequence is not None:
            gap = (packet.sequence - self._lastSequence) & 0xFFFF
            if 1 < gap < 0x8000:
                self.lost += gap - 1
            if gap < 0x8000:
                self._lastSequence = packet.sequence
        else:
            self._lastSequence = packet.sequence
        if self.onPacket is not None:
            self.onPacket(packet)

    def send(self, payloadType, payload, timestamp, marker=False):
        """
        Send one RTP packet with our SSRC and the next sequence number.
        """
        self._sequence = (self._sequence + 1) & 0xFFFF
        if self.remote is None or self.transport is None:
            return
        self._lastTimestamp = timestamp & 0xFFFFFFFF
        packet = RTPPacket(payloadType, self._sequence, self._lastTimestamp, self.ssrc, payload, marker)
        try:
            self.transport.write(packet.toBytes(), self.remote)
        except (OSError, netError.MessageLengthError) as e:
            _log.debug("RTP send to {remote} failed: {error}", remote=self.remote, error=e)
            return
        self.packetsOut += 1
        self.octetsOut += len(payload)

    def _compound(self, now):
        """
        The first packets of every compound RTCP packet (RFC 3550 section
        6.1): an SR once we have sent, else an RR, and our CNAME.
        """
        if self.packetsOut:
            report = senderReport(self.ssrc, now, self._lastTimestamp, self.packetsOut, self.octetsOut)
        else:
            report = receiverReport(self.ssrc)
        return report + sourceDescription(self.ssrc, self.cname)

    def _sendRTCP(self, data):
        if self._rtcpPort is None or self.rtcpRemote is None:
            return
        try:
            self._rtcpPort.write(data, self.rtcpRemote)
        except (OSError, netError.MessageLengthError) as e:
            _log.debug("RTCP send to {remote} failed: {error}", remote=self.rtcpRemote, error=e)

    def report(self, now):
        """
        Send a compound RTCP report (the owner calls this every few
        seconds, RFC 3550 section 6.2).
        """
        self._sendRTCP(self._compound(now))

    def close(self):
        """
        Send an RTCP BYE in a compound packet (RFC 3550 section 6.6) and
        release the ports.
        """
        if self._rtcpPort is not None:
            now = self._clock.seconds() if self._clock is not None else 0.0
            self._sendRTCP(self._compound(now) + goodbye(self.ssrc))
            self._rtcpPort.stopListening()
            self._rtcpPort = None
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()


def localAddressTowards(host, fallback="127.0.0.1"):
    """
    The local address the system would send from to reach C{host}: the
    address to put in our session description when none is configured.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_DGRAM)
    try:
        probe.connect((host, 9))
        return probe.getsockname()[0]
    except OSError:
        return fallback
    finally:
        probe.close()

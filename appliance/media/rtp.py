"""
RTP and RTCP (RFC 3550) for G.711 audio (RFC 3551): packets, one shared
pacing clock, senders and a receiver.

Sending: L{Pacer} is the single timer of the whole process. Every
L{RTPSender} registered with it computes the due time of its packet C{n}
as C{start + n * 20 ms} (no accumulated delays, so no drift), and on every
tick of the pacer sends whatever is due. Start times are aligned to the
pacer's tick grid, so packets leave exactly on ticks.

Receiving: L{RTPReceiver} orders packets by sequence number in a small
window, places each payload by its timestamp (filling losses with silence,
so the recording keeps its timing), and writes to its sink as soon as the
order is settled, so a dropped connection loses nothing already received.
"""

import os
import struct

import attrs
from twisted.logger import Logger

from appliance import logs
from appliance.media import g711

_log = Logger(observer=logs.observer)

RTP_VERSION = 2
PACKET_TIME = 0.02
SAMPLE_RATE = 8000
SAMPLES_PER_PACKET = int(SAMPLE_RATE * PACKET_TIME)
PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8}
NTP_OFFSET = 2208988800
RTCP_INTERVAL = 5.0
BYE_DELAY = 0.2

RTCP_SR, RTCP_RR, RTCP_SDES, RTCP_BYE = 200, 201, 202, 203

_HEADER = struct.Struct("!BBHII")


class RTPError(ValueError):
    """
    A packet that is not RTP version 2.
    """


@attrs.frozen
class RTPPacket:
    """
    One RTP packet (RFC 3550 section 5.1), CSRCs and extension dropped.
    """

    payloadType: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False

    def toBytes(self):
        return struct.pack(
            "!BBHII", RTP_VERSION << 6,
            (0x80 if self.marker else 0) | self.payloadType,
            self.sequence & 0xFFFF, self.timestamp & 0xFFFFFFFF, self.ssrc,
        ) + self.payload


def parseRTP(data):
    """
    Parse an RTP packet.

    @raise RTPError: when it is not one.
    """
    if len(data) < 12 or data[0] >> 6 != RTP_VERSION:
        raise RTPError("not an RTP packet")
    first, second, sequence, timestamp, ssrc = struct.unpack("!BBHII", data[:12])
    offset = 12 + 4 * (first & 0x0F)
    if first & 0x10:
        if len(data) < offset + 4:
            raise RTPError("truncated header extension")
        offset += 4 + 4 * struct.unpack("!H", data[offset + 2 : offset + 4])[0]
    end = len(data)
    if first & 0x20:
        end -= data[-1] if data else 0
    if offset > end:
        raise RTPError("truncated RTP packet")
    return RTPPacket(second & 0x7F, sequence, timestamp, ssrc, bytes(data[offset:end]), bool(second & 0x80))


def isRTCP(data):
    """
    Whether C{data} looks like RTCP (RFC 5761 section 4: packet types 200-204).
    """
    return len(data) >= 8 and data[0] >> 6 == RTP_VERSION and 192 <= data[1] <= 223


def ntpTimestamp(seconds):
    """
    A 64-bit NTP timestamp for a POSIX time.
    """
    whole = int(seconds)
    return (whole + NTP_OFFSET) & 0xFFFFFFFF, int((seconds - whole) * 2**32) & 0xFFFFFFFF


def senderReport(ssrc, now, rtpTime, packets, octets):
    """
    An RTCP SR without report blocks (RFC 3550 section 6.4.1).
    """
    ntpHigh, ntpLow = ntpTimestamp(now)
    return struct.pack(
        "!BBHIIIIII", 0x80, RTCP_SR, 6, ssrc, ntpHigh, ntpLow,
        rtpTime & 0xFFFFFFFF, packets & 0xFFFFFFFF, octets & 0xFFFFFFFF,
    )


def sourceDescription(ssrc, cname):
    """
    An RTCP SDES with one CNAME item (RFC 3550 section 6.5).
    """
    item = bytes([1, len(cname)]) + cname + b"\0"
    item += b"\0" * (-len(item) % 4)
    return struct.pack("!BBHI", 0x81, RTCP_SDES, (len(item) + 4) // 4, ssrc) + item


def goodbye(ssrc):
    """
    An RTCP BYE for one source (RFC 3550 section 6.6).
    """
    return struct.pack("!BBHI", 0x81, RTCP_BYE, 1, ssrc)


def rtcpTypes(data):
    """
    The packet types in a compound RTCP packet.
    """
    types, offset = [], 0
    while offset + 4 <= len(data):
        types.append(data[offset + 1])
        offset += 4 * (struct.unpack("!H", data[offset + 2 : offset + 4])[0] + 1)
    return types


def _random32():
    return int.from_bytes(os.urandom(4), "big")


class Pacer:
    """
    The one clock that paces every outgoing RTP stream.

    @param reactor: an L{IReactorTime}.
    @param interval: the tick, the packet time of the streams.
    """

    def __init__(self, reactor, interval=PACKET_TIME):
        self._reactor = reactor
        self.interval = interval
        self._streams = []
        self._call = None
        self._epoch = None
        self._tick = 0
        self.lateTicks = 0
        self.packetsSent = 0
        self.bytesSent = 0

    @property
    def streams(self):
        return len(self._streams)

    def nextTick(self):
        """
        The time of the next tick (now, when idle).
        """
        if self._call is None:
            return self._reactor.seconds()
        return self._epoch + self._tick * self.interval

    def add(self, stream):
        """
        Pace C{stream} (anything with C{pump(now)} returning whether it wants
        more ticks); return the time its first packet is due.
        """
        start = self.nextTick()
        self._streams.append(stream)
        if self._call is None:
            self._epoch = start
            self._tick = 0
            self._call = self._reactor.callLater(0, self._run)
        return start

    def remove(self, stream):
        if stream in self._streams:
            self._streams.remove(stream)

    def _run(self):
        now = self._reactor.seconds()
        for stream in list(self._streams):
            try:
                wanted = stream.pump(now)
            except Exception:
                _log.failure("RTP stream failed")
                wanted = False
            if not wanted:
                self.remove(stream)
        due = int((now - self._epoch) / self.interval + 1e-9) + 1
        if due > self._tick + 1:
            self.lateTicks += due - self._tick - 1
            late = now - (self._epoch + self._tick * self.interval)
            if late > 0.06:
                _log.warn("RTP pacing ran {late:.0f} ms late ({streams} streams)",
                          late=late * 1000, streams=len(self._streams))
        self._tick = max(self._tick + 1, due)
        if self._streams:
            delay = self._epoch + self._tick * self.interval - self._reactor.seconds()
            self._call = self._reactor.callLater(max(0.0, delay), self._run)
        else:
            self._call = None

    def stop(self):
        """
        Forget every stream and cancel the timer.
        """
        self._streams = []
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None


class RTPSender:
    """
    Sends one G.711 message as 20 ms RTP packets, with RTCP sender reports
    and a BYE at the end (RFC 3550 sections 6.4.1 and 6.6).

    @param data: the whole message in C{encoding}.
    @param sendRTP: called with each RTP packet's bytes.
    @param sendRTCP: called with each compound RTCP packet's bytes.
    @param finished: called once the last packet and the BYE went out.
    """

    def __init__(self, pacer, data, sendRTP, sendRTCP, encoding="PCMU", finished=None,
                 cname=b"appliance"):
        self._pacer = pacer
        self.data = data
        self._sendRTP = sendRTP
        self._sendRTCP = sendRTCP
        self._finished = finished
        self._cname = cname
        self.payloadType = PAYLOAD_TYPES[encoding]
        self.encoding = encoding
        self.ssrc = _random32()
        self.nextSequence = _random32() & 0xFFFF
        self.timestampBase = _random32()
        self.packets = 0
        self.octets = 0
        self.playing = False
        self._position = 0
        self._lastReport = None

    @property
    def duration(self):
        return len(self.data) / float(SAMPLE_RATE)

    @property
    def position(self):
        """
        The media time (seconds) of the next packet.
        """
        return self._position / float(SAMPLE_RATE)

    def rtpTimeAt(self, seconds):
        """
        The RTP timestamp of media time C{seconds}.
        """
        return (self.timestampBase + int(round(seconds * SAMPLE_RATE))) & 0xFFFFFFFF

    def play(self, start=None, end=None):
        """
        Start (or resume) sending at media time C{start} (the current
        position when C{None}) until C{end} (the end when C{None}).

        @return: C{(start, sequence, rtptime)} of the first packet, for
            RTP-Info (RFC 2326 section 12.33).
        """
        if start is not None:
            self._position = min(len(self.data), int(round(start * SAMPLE_RATE)))
        self._end = len(self.data) if end is None else min(len(self.data), int(round(end * SAMPLE_RATE)))
        first = (self.position, self.nextSequence, self.rtpTimeAt(self.position))
        if not self.playing:
            self.playing = True
            self._startPosition = self._position
            self._start = self._pacer.add(self)
            self._lastReport = None
        return first

    def whenFinished(self, finished):
        """
        Call C{finished} (instead of the callable given before) once the
        end of the message and the BYE have gone out.
        """
        self._finished = finished

    def pause(self):
        """
        Stop sending; L{play} resumes where it stopped.
        """
        if self.playing:
            self.playing = False
            self._pacer.remove(self)

    def stop(self):
        """
        Stop for good, without a BYE (the session is being torn down).
        """
        self.pause()
        self._finished = None

    def pump(self, now):
        """
        Send every packet due at C{now}; called by the L{Pacer}.

        @return: whether more packets remain.
        """
        if not self.playing:
            return False
        if self._lastReport is None or now - self._lastReport >= RTCP_INTERVAL:
            self._lastReport = now
            self._report(now)
        # The hot path of the server: kept to plain arithmetic and one
        # struct.pack per packet.
        position, end, data = self._position, self._end, self.data
        sent = octets = 0
        while position < end:
            index = (position - self._startPosition) // SAMPLES_PER_PACKET
            if self._start + index * PACKET_TIME > now + 1e-6:
                break
            payload = data[position : position + SAMPLES_PER_PACKET]
            packet = _HEADER.pack(
                0x80, self.payloadType | (0x80 if self.packets == 0 else 0), self.nextSequence,
                (self.timestampBase + position) & 0xFFFFFFFF, self.ssrc,
            ) + payload
            position += len(payload)
            self.nextSequence = (self.nextSequence + 1) & 0xFFFF
            self.packets += 1
            sent += 1
            octets += len(packet)
            self._sendRTP(packet)
        self._position = position
        self.octets += octets - 12 * sent
        self._pacer.packetsSent += sent
        self._pacer.bytesSent += octets
        if position < end:
            return True
        if self._end >= len(self.data):
            # The BYE leaves once the last packet has played out, plus a
            # margin: players stop reading at the BYE (FFmpeg drops what
            # its UDP thread has queued but not yet handed on).
            index = (self._end - self._startPosition + SAMPLES_PER_PACKET - 1) // SAMPLES_PER_PACKET
            if now + 1e-6 < self._start + index * PACKET_TIME + BYE_DELAY:
                return True
            self.playing = False
            self._sendRTCP(self._report(now, bye=True))
            finished, self._finished = self._finished, None
            if finished is not None:
                finished()
        self.playing = False
        return False

    def _report(self, now, bye=False):
        packet = senderReport(self.ssrc, now, self.rtpTimeAt(self.position), self.packets, self.octets)
        packet += sourceDescription(self.ssrc, self._cname)
        if bye:
            return packet + goodbye(self.ssrc)
        self._sendRTCP(packet)
        return packet


class RTPReceiver:
    """
    Writes received G.711 RTP to a sink in order, with losses filled by
    silence (RFC 3550 section A.1 sequence handling, simplified).

    @param write: called with sample data in C{targetEncoding}.
    @param payloads: C{{payload type: encoding}} accepted.
    @param window: how many packets may wait for a missing one.
    @param maxGap: the longest silence (in samples) filled for a loss or
        timestamp jump; longer jumps restart the timeline there.
    """

    def __init__(self, write, payloads, targetEncoding="PCMU", window=10, maxGap=5 * SAMPLE_RATE):
        self._write = write
        self._payloads = payloads
        self._target = targetEncoding
        self._window = window
        self._maxGap = maxGap
        self._pending = {}
        self._expected = None
        self._ssrc = None
        self._position = None
        self.packets = 0
        self.lost = 0
        self.late = 0
        self.bytes = 0

    def datagramReceived(self, data):
        """
        Take one RTP packet; RTCP and foreign packets are ignored.
        """
        if isRTCP(data):
            return
        try:
            packet = parseRTP(data)
        except RTPError:
            return
        if packet.payloadType not in self._payloads:
            return
        if self._ssrc is None:
            self._ssrc = packet.ssrc
            self._expected = packet.sequence
        elif packet.ssrc != self._ssrc:
            return
        distance = (packet.sequence - self._expected) & 0xFFFF
        if distance >= 0x8000:
            self.late += 1
            return
        self.packets += 1
        self._pending[packet.sequence] = packet
        self._drain(force=False)

    def _drain(self, force):
        while self._pending:
            packet = self._pending.pop(self._expected, None)
            if packet is None:
                if not force and len(self._pending) < self._window:
                    return
                # Give up on the missing packet: skip to the oldest waiting.
                nearest = min(self._pending, key=lambda s: (s - self._expected) & 0xFFFF)
                self.lost += (nearest - self._expected) & 0xFFFF
                self._expected = nearest
                continue
            self._expected = (self._expected + 1) & 0xFFFF
            self._emit(packet)

    def _emit(self, packet):
        payload = g711.transcode(packet.payload, self._payloads[packet.payloadType], self._target)
        if self._position is not None:
            gap = (packet.timestamp - self._position) & 0xFFFFFFFF
            if 0 < gap <= self._maxGap:
                self._write(g711.silence(self._target, gap))
            elif gap and gap < 0x80000000:
                pass  # a jump: continue from here
            elif gap:
                # Overlap with what was written (timestamp went back).
                overlap = 0x100000000 - gap
                payload = payload[overlap:]
                if not payload:
                    return
                packet = attrs.evolve(packet, timestamp=packet.timestamp + overlap)
        self._position = (packet.timestamp + len(payload)) & 0xFFFFFFFF
        self.bytes += len(payload)
        self._write(payload)

    def flush(self):
        """
        Write everything still waiting (the stream ended).
        """
        self._drain(force=True)

"""
Media helpers for the user-agent integration tests: G.711 tones, a pcap
file of RTP packets for SIPp's C{play_pcap_audio}, a UDP socket that
captures the RTP the appliance sends, and a Goertzel tone detector.

Independent of the appliance's code on purpose (struct, math, socket only),
so a test compares the appliance against arithmetic, not against itself.
"""

import math
import socket
import struct
import time

from tests.integration.harness import LOOPBACK

RATE = 8000
FRAME = 160


def _linearToUlaw(sample):
    # ITU-T G.711 mu-law, the textbook algorithm (bias 0x84, clip 32635).
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(0, (magnitude >> 7).bit_length() - 1)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def _ulawToLinear(code):
    code = ~code & 0xFF
    magnitude = ((((code & 0x0F) << 3) + 0x84) << ((code >> 4) & 0x07)) - 0x84
    return -magnitude if code & 0x80 else magnitude


def toneFrames(frequency, seconds, amplitude=8000):
    """
    A sine tone as mu-law frames of 20 ms (a phase-continuous tone, so each
    frame differs from the next).
    """
    total = int(seconds * RATE)
    samples = [int(amplitude * math.sin(2 * math.pi * frequency * n / RATE)) for n in range(total)]
    data = bytes(_linearToUlaw(s) for s in samples)
    return [data[i:i + FRAME] for i in range(0, total - FRAME + 1, FRAME)]


def rtpPacket(payloadType, sequence, timestamp, ssrc, payload, marker=False):
    return struct.pack(
        "!BBHII", 0x80, (0x80 if marker else 0) | payloadType, sequence & 0xFFFF,
        timestamp & 0xFFFFFFFF, ssrc,
    ) + payload


def parseRTP(data):
    """
    C{(payloadType, sequence, timestamp, ssrc, marker, payload)} of an RTP
    packet without CSRCs or extension.
    """
    first, second, sequence, timestamp, ssrc = struct.unpack("!BBHII", data[:12])
    assert first >> 6 == 2, "not RTP version 2"
    offset = 12 + 4 * (first & 0x0F)
    return second & 0x7F, sequence, timestamp, ssrc, bool(second & 0x80), data[offset:]


def _checksum(header):
    total = sum(struct.unpack("!%dH" % (len(header) // 2), header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def writePcap(path, payloads, sourcePort=40000, destinationPort=40002, interval=0.02):
    """
    Write a pcap file (Ethernet link type) of UDP datagrams carrying
    C{payloads} on 127.0.0.1, C{interval} seconds apart.
    """
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        start = 1700000000.0
        for index, payload in enumerate(payloads):
            udp = struct.pack("!HHHH", sourcePort, destinationPort, 8 + len(payload), 0) + payload
            header = struct.pack(
                "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), index & 0xFFFF, 0, 64, 17, 0,
                socket.inet_aton(LOOPBACK), socket.inet_aton(LOOPBACK),
            )
            header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
            frame = b"\x00" * 12 + b"\x08\x00" + header + udp
            when = start + index * interval
            f.write(struct.pack("<IIII", int(when), int((when % 1) * 1e6), len(frame), len(frame)))
            f.write(frame)


class Capture:
    """
    A UDP socket on 127.0.0.1 keeping every datagram it receives, with the
    time it arrived.
    """

    def __init__(self, port=0):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind((LOOPBACK, port))
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.port = self.socket.getsockname()[1]
        self.datagrams = []

    def collect(self, seconds, quiet=None):
        """
        Read for up to C{seconds}; with C{quiet}, stop once nothing arrived
        for that long after the first datagram.
        """
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return self.datagrams
            wait = left if quiet is None or not self.datagrams else min(left, quiet)
            self.socket.settimeout(wait)
            try:
                data, source = self.socket.recvfrom(4096)
            except socket.timeout:
                if quiet is not None and self.datagrams:
                    return self.datagrams
                continue
            self.datagrams.append((time.monotonic(), source, data))

    def close(self):
        self.socket.close()


def goertzel(ulaw, frequency):
    """
    The power of C{frequency} in mu-law audio, normalised by length.
    """
    coefficient = 2 * math.cos(2 * math.pi * frequency / RATE)
    s1 = s2 = 0.0
    for code in ulaw:
        s0 = _ulawToLinear(code) + coefficient * s1 - s2
        s2, s1 = s1, s0
    return (s1 * s1 + s2 * s2 - coefficient * s1 * s2) / max(len(ulaw), 1) ** 2

"""
The echo test: a call to C{echo@<domain>} is answered at once and every RTP
packet it receives (audio and telephone-events) goes straight back, from the
port it arrived on, so a user hears their own voice after one round trip.
"""

import random


class EchoSession:
    """
    One echo call.

    Packets keep their payload type, marker and timing: the timestamps are
    the caller's shifted by a random offset of our own (RFC 3550 section
    5.1), the SSRC and sequence numbers are ours.
    """

    def __init__(self, call, leg):
        self._call = call
        self._leg = leg
        self._offset = random.getrandbits(32)
        leg.onPacket = self._packet
        call.onReinvite = leg.accept
        call.onEnded = self._ended

    def _packet(self, packet):
        if packet.payloadType in (self._leg.payloadType, self._leg.dtmfPayloadType):
            self._leg.send(packet.payload, packet.timestamp + self._offset, packet.marker,
                           packet.payloadType)

    def _ended(self, reason):
        self._leg.close()

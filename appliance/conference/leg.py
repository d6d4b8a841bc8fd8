"""
One call leg's media as a user agent sees it: the RFC 3264 offer / answer
that sets it up and changes it (hold, resume, a new address), and the RTP
endpoint it drives.

A L{MediaLeg} answers the INVITE's offer with G.711 (the offerer's
preference between PCMU and PCMA) and RFC 4733 telephone-event, sends to
the address and port the offer names when the direction lets it, sorts
incoming RTP into audio and DTMF, and answers later offers (re-INVITE) with
the same session id and the next version (RFC 3264 section 8).
"""

import random

from twisted.internet.defer import Deferred

from appliance.media import g711
from appliance.media.dtmf import DTMFReceiver, eventPackets
from appliance.media.rtp import PACKET_TIME, SAMPLES_PER_PACKET, RTPReceiver
from appliance.media.endpoint import RTPEndpoint, localAddressTowards
from appliance.sip import sdp

AUDIO_CODECS = ("PCMU", "PCMA")


class MediaLeg:
    """
    @param ports: the L{appliance.media.endpoint.RTPPortRange}.
    @param address: the address to announce and receive on (C{""}: the
        local address that routes towards the offerer).
    @param onAudio: C{onAudio(packet)} for each audio RTP packet.
    @param onDigit: C{onDigit(digit)} for each RFC 4733 key press.
    @ivar encoding: the negotiated G.711 law (C{"PCMU"} or C{"PCMA"}).
    @ivar payloadType: its RTP payload type; C{dtmfPayloadType} that of
        telephone-event, or C{None}.
    @ivar sending: whether the current direction lets us send.
    @param stats: the service's L{appliance.stats.Statistics}, which gets
        the leg's C{rtp.packets.received}, C{.sent} and C{.lost} when it
        closes.
    """

    def __init__(self, ports, address="", onAudio=None, onDigit=None, onPacket=None, stats=None,
                 clock=None, cname=b"appliance"):
        self._ports = ports
        self._stats = stats
        self._closed = False
        self._address = address
        self.onAudio = onAudio
        self.onDigit = onDigit
        self.onPacket = onPacket
        self.endpoint = RTPEndpoint(self._received, clock=clock, cname=cname)
        self._dtmf = DTMFReceiver(self._digit)
        self._sessionId = random.randrange(1, 2 ** 31)
        self._version = 0
        self.encoding = self.payloadType = self.dtmfPayloadType = None
        self.sending = False
        self.localAddress = None
        self._clock = clock
        self._timestamp = random.getrandbits(32)
        self._playback = None
        self._recorder = None

    def accept(self, offer):
        """
        Answer C{offer} (a L{appliance.sip.sdp.SessionDescription}) and
        apply it; return the answer's bytes.

        @raise sdp.SDPError: nothing acceptable offered (answer 488).
        """
        if offer is None:
            raise sdp.SDPError("no session description offered")
        media, connection = self._audioSection(offer)
        if self.localAddress is None:
            host = connection.address.split("/")[0] if connection is not None else "127.0.0.1"
            self.localAddress = self._address or localAddressTowards(
                "127.0.0.1" if host in ("0.0.0.0", "::") else host)
        if self.endpoint.port is None:
            self.endpoint.open(self._ports)
        answer = sdp.answer(
            offer, self.localAddress, self.endpoint.localPort,
            supportedCodecs=sdp.DEFAULT_CODECS,
            sessionId=self._sessionId, sessionVersion=self._version,
        )
        self._version += 1
        accepted = [section for section in answer.media if section.port]
        if not accepted:
            raise sdp.SDPError("no acceptable audio stream (G.711 over RTP/AVP)")
        ours = accepted[0]
        self._apply(offer, media, connection, ours, sdp.direction(answer, ours))
        return answer.toBytes()

    def offer(self, towards="127.0.0.1"):
        """
        Our offer for a call we place (G.711 and telephone-event, RFC 3264
        section 5), received on a new port pair; its answer goes to
        L{applyAnswer}.
        """
        if self.localAddress is None:
            self.localAddress = self._address or localAddressTowards(towards)
        if self.endpoint.port is None:
            self.endpoint.open(self._ports)
        offer = sdp.makeOffer(self.localAddress, self.endpoint.localPort,
                              sessionId=self._sessionId, sessionVersion=self._version)
        self._version += 1
        return offer.toBytes()

    def applyAnswer(self, body):
        """
        Apply the answer to L{offer} (RFC 3264 section 6): the codecs it
        kept, its address and port, its direction mirrored.

        @raise sdp.SDPError: no usable audio stream in the answer.
        """
        answer = sdp.parseSDP(body)
        media, connection = self._audioSection(answer)
        theirs = sdp.direction(answer, media)
        ours = {"recvonly": "sendonly", "sendonly": "recvonly"}.get(theirs, theirs)
        self._apply(answer, media, connection, media, ours)
        if self.payloadType is None:
            raise sdp.SDPError("the answer keeps no G.711 codec")

    def _audioSection(self, offer):
        for media in offer.media:
            if media.media == "audio" and media.port and media.proto.upper() == "RTP/AVP":
                return media, offer.connectionFor(media)
        raise sdp.SDPError("no RTP/AVP audio stream offered")

    def _apply(self, offer, media, connection, ours, direction):
        self.payloadType = self.dtmfPayloadType = None
        for rtpmap in ours.codecs():
            name = rtpmap.key()[0]
            if name in AUDIO_CODECS and self.payloadType is None:
                self.encoding, self.payloadType = name, rtpmap.payloadType
            elif name == "TELEPHONE-EVENT" and self.dtmfPayloadType is None:
                self.dtmfPayloadType = rtpmap.payloadType
        self.sending = direction in ("sendrecv", "sendonly")
        host = connection.address.split("/")[0] if connection is not None else "0.0.0.0"
        self.endpoint.setRemote(host, media.port if self.sending else 0)

    def _received(self, packet):
        if self.onPacket is not None:
            self.onPacket(packet)
        if self._recorder is not None and packet.payloadType == self.payloadType:
            self._recorder.datagramReceived(packet.toBytes())
        if packet.payloadType == self.payloadType:
            if self.onAudio is not None:
                self.onAudio(packet)
        elif packet.payloadType == self.dtmfPayloadType and self.dtmfPayloadType is not None:
            self._dtmf.packetReceived(packet)

    def _digit(self, digit, duration):
        if self.onDigit is not None:
            self.onDigit(digit)

    @property
    def closed(self):
        return self._closed

    @property
    def digits(self):
        """
        The number of key presses received.
        """
        return self._dtmf.events

    def send(self, payload, timestamp, marker=False, payloadType=None):
        """
        Send one packet in the negotiated audio payload type (or another).
        """
        if self.sending:
            self.endpoint.send(self.payloadType if payloadType is None else payloadType,
                               payload, timestamp, marker)

    # Media into and out of the call -------------------------------------------

    def play(self, data, pacer, encoding="PCMU"):
        """
        Play G.711 audio into the call, 20 ms a packet on the service's
        L{appliance.media.rtp.Pacer} (converted to the call's law); the
        L{Deferred} fires when the last packet has gone, or at L{stopPlaying}.
        """
        self.stopPlaying()
        if encoding != self.encoding:
            data = g711.transcode(data, encoding, self.encoding)
        playback = self._playback = _Playback(self, data, pacer)
        return playback.finished

    def stopPlaying(self):
        if self._playback is not None:
            playback, self._playback = self._playback, None
            playback.stop()

    def _nextFrame(self, frame, marker):
        self.send(frame, self._timestamp, marker)
        self._timestamp = (self._timestamp + SAMPLES_PER_PACKET) & 0xFFFFFFFF

    def record(self, writer):
        """
        Write the audio the call sends us to C{writer} (an
        L{appliance.media.audiofile.AudioWriter}, or anything with
        C{write}), in order, losses filled with silence, in the writer's
        law; each packet reaches it as soon as its order is settled.
        """
        encoding = getattr(writer, "encoding", "PCMU")
        self._recorder = RTPReceiver(writer.write, {self.payloadType: self.encoding},
                                     targetEncoding=encoding)

    def stopRecording(self):
        """
        Write what is still waiting for a missing packet, and stop.
        """
        if self._recorder is not None:
            recorder, self._recorder = self._recorder, None
            recorder.flush()

    def sendDigit(self, digit, duration=0.1):
        """
        Send a key press as RFC 4733 telephone-events: the packets of one
        event share an RTP timestamp, the end packet goes three times.

        @raise ValueError: the call did not negotiate telephone-event.
        """
        if self.dtmfPayloadType is None:
            raise ValueError("no telephone-event in this call")
        timestamp = self._timestamp
        for offset, marker, payload in eventPackets(digit, duration):
            self._clock.callLater(offset, self.send, payload, timestamp, marker, self.dtmfPayloadType)
        self._timestamp = (self._timestamp + int(duration * 8000)) & 0xFFFFFFFF

    def close(self):
        """
        Release the ports (after an RTCP BYE) and add this leg's RTP figures
        to the service's statistics, once.
        """
        if self._closed:
            return None
        self._closed = True
        self.stopPlaying()
        self.stopRecording()
        if self._stats is not None:
            endpoint = self.endpoint
            self._stats.increment("rtp.packets.received", endpoint.packetsIn)
            self._stats.increment("rtp.packets.sent", endpoint.packetsOut)
            self._stats.increment("rtp.packets.lost", endpoint.lost)
        return self.endpoint.close()


class _Playback:
    """
    Audio played into a call, paced by a L{appliance.media.rtp.Pacer}:
    frame C{n} is due at C{start + n * 20 ms}.
    """

    def __init__(self, leg, data, pacer):
        self._leg = leg
        self._data = data
        self._pacer = pacer
        self._position = 0
        self._frames = 0
        self.finished = Deferred()
        self._start = pacer.add(self)

    def pump(self, now):
        data = self._data
        while self._position < len(data) and self._start + self._frames * PACKET_TIME <= now + 1e-6:
            frame = data[self._position:self._position + SAMPLES_PER_PACKET]
            if len(frame) < SAMPLES_PER_PACKET:
                frame += g711.silence(self._leg.encoding, SAMPLES_PER_PACKET - len(frame))
            self._leg._nextFrame(frame, self._frames == 0)
            self._position += SAMPLES_PER_PACKET
            self._frames += 1
        if self._position < len(data):
            return True
        self._finish()
        return False

    def stop(self):
        self._pacer.remove(self)
        self._finish()

    def _finish(self):
        if not self.finished.called:
            self.finished.callback(self._frames)

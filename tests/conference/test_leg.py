"""
Tests for L{appliance.conference.leg} and L{appliance.media.endpoint}: offer /
answer for one call leg, on real UDP sockets of 127.0.0.1.
"""

import socket
import struct

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from appliance.conference.leg import MediaLeg
from appliance.media.dtmf import eventPackets
from appliance.media.endpoint import NoPortsAvailable, RTPPortRange
from appliance.media.rtp import Pacer, rtcpTypes
from appliance.sip import sdp
from appliance.stats import Statistics


def offer(port=40000, codecs=("PCMA", "PCMU", "telephone-event"), direction="sendrecv",
          address="127.0.0.1"):
    return sdp.parseSDP(sdp.makeOffer(address, port, codecs=codecs, direction=direction).toBytes())


def freePortPair():
    """
    An even port whose pair is free now, for a range of exactly one pair.
    """
    for _ in range(50):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        port -= port % 2
        try:
            sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
            sockets[0].bind(("127.0.0.1", port))
            sockets[1].bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
        return port
    raise AssertionError("no free port pair")


class MediaLegTests(TestCase):
    """
    A leg negotiates G.711 and telephone-event and moves RTP.
    """

    def setUp(self):
        self.stats = Statistics("conference")
        self.ports = RTPPortRange(reactor, 41000, 41999, "127.0.0.1")

    def leg(self, **kwargs):
        leg = MediaLeg(self.ports, "127.0.0.1", stats=self.stats, **kwargs)
        self.addCleanup(leg.close)
        return leg

    def test_answerKeepsTheOfferersPreference(self):
        """
        An offer of PCMA before PCMU gets PCMA, telephone-event keeps its
        payload type, and RTP goes to the offer's address and port.
        """
        leg = self.leg()
        answer = sdp.parseSDP(leg.accept(offer()))
        self.assertEqual((leg.encoding, leg.payloadType, leg.dtmfPayloadType), ("PCMA", 8, 101))
        self.assertEqual(answer.media[0].port, leg.endpoint.localPort)
        self.assertEqual(leg.endpoint.remote, ("127.0.0.1", 40000))
        self.assertTrue(leg.sending)
        self.assertEqual(sdp.direction(answer, answer.media[0]), "sendrecv")

    def test_holdAndResume(self):
        """
        A sendonly re-offer (hold) is answered recvonly and stops our
        sending; a sendrecv one resumes it, with the origin version grown.
        """
        leg = self.leg()
        first = sdp.parseSDP(leg.accept(offer()))
        held = sdp.parseSDP(leg.accept(offer(direction="sendonly")))
        self.assertEqual(sdp.direction(held, held.media[0]), "recvonly")
        self.assertFalse(leg.sending)
        self.assertIsNone(leg.endpoint.remote)
        resumed = sdp.parseSDP(leg.accept(offer()))
        self.assertTrue(leg.sending)
        self.assertEqual([d.origin.sessionVersion for d in (first, held, resumed)], [0, 1, 2])
        self.assertEqual(len({d.origin.sessionId for d in (first, held, resumed)}), 1)

    def test_noG711(self):
        """
        An offer without PCMU or PCMA is refused (the UA answers 488).
        """
        leg = self.leg()
        self.assertRaises(sdp.SDPError, leg.accept, offer(codecs=("G722", "telephone-event")))
        self.assertRaises(sdp.SDPError, leg.accept, None)

    def test_offerAndAnswer(self):
        """
        Our offer lists PCMU, PCMA and telephone-event; an answer choosing
        PCMA and recvonly makes us send PCMA (sendonly).
        """
        leg = self.leg()
        ours = sdp.parseSDP(leg.offer())
        self.assertEqual([r.key()[0] for r in ours.media[0].codecs()], ["PCMU", "PCMA", "TELEPHONE-EVENT"])
        answer = sdp.makeOffer("127.0.0.1", 40010, codecs=("PCMA",), direction="recvonly").toBytes()
        leg.applyAnswer(answer)
        self.assertEqual((leg.encoding, leg.sending, leg.endpoint.remote),
                         ("PCMA", True, ("127.0.0.1", 40010)))
        self.assertRaises(sdp.SDPError, leg.applyAnswer,
                          sdp.makeOffer("127.0.0.1", 40012, codecs=("G722",)).toBytes())

    def test_rtpBetweenTwoLegs(self):
        """
        Two legs that answered each other exchange audio and key presses
        over UDP; closing counts the packets in the statistics.
        """
        audio, digits, done = [], [], Deferred()
        a = self.leg(onAudio=lambda packet: audio.append(packet.payload))
        b = self.leg(onDigit=digits.append)
        offerA = sdp.parseSDP(a.offer())
        b.accept(offerA)
        a.applyAnswer(sdp.makeOffer("127.0.0.1", b.endpoint.localPort).toBytes())
        b.send(b"\xff" * 160, 1000, marker=True)
        b.send(b"\x7f" * 160, 1160)
        for offset, marker, payload in eventPackets("5"):
            a.send(payload, 5000, marker, payloadType=101)

        def check():
            if len(audio) < 2 or not digits:
                reactor.callLater(0.01, check)
                return
            done.callback(None)

        check()

        def finished(_):
            self.assertEqual(audio, [b"\xff" * 160, b"\x7f" * 160])
            self.assertEqual(digits, ["5"])
            a.close()
            b.close()
            self.assertEqual(self.stats.get("rtp.packets.received"), 2 + len(eventPackets("5")))
            self.assertEqual(self.stats.get("rtp.packets.lost"), 0)

        return done.addCallback(finished)

    def test_rangeExhausted(self):
        """
        A range with its only pair taken gives L{NoPortsAvailable}.
        """
        port = freePortPair()
        ports = RTPPortRange(reactor, port, port + 1, "127.0.0.1")
        first = MediaLeg(ports, "127.0.0.1")
        self.addCleanup(first.close)
        first.offer()
        second = MediaLeg(ports, "127.0.0.1")
        self.assertRaises(NoPortsAvailable, second.offer)

    def test_rtcpReports(self):
        """
        A report is an RR before we have sent and an SR after, each with
        our CNAME; closing sends SR, CNAME and BYE in one compound packet,
        to the RTCP port above the remote RTP port.
        """
        port = freePortPair()
        rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtcp.bind(("127.0.0.1", port + 1))
        rtcp.settimeout(2)
        self.addCleanup(rtcp.close)
        leg = self.leg()
        leg.accept(offer(port=port))
        leg.endpoint.report(1000.0)
        leg.send(b"\xff" * 160, 1234)
        leg.endpoint.report(1005.0)
        leg.close()
        packets = [rtcp.recvfrom(2048)[0] for _ in range(3)]
        self.assertEqual([rtcpTypes(p) for p in packets], [[201, 202], [200, 202], [200, 202, 203]])
        self.assertIn(b"appliance", packets[0])
        self.assertEqual(struct.unpack("!I", packets[1][20:24])[0], 1, "SR sender's packet count")

    def connected(self, **kwargs):
        """
        Two legs on 127.0.0.1 that negotiated PCMU and telephone-event with
        each other.
        """
        a = self.leg(clock=reactor)
        b = self.leg(clock=reactor, **kwargs)
        b.accept(sdp.parseSDP(a.offer()))
        a.applyAnswer(sdp.makeOffer("127.0.0.1", b.endpoint.localPort).toBytes())
        return a, b

    def test_playAndRecord(self):
        """
        A second of audio played into one leg on the pacer arrives in order,
        whole and unchanged in the other's recording.
        """
        a, b = self.connected()
        recorded = []

        class Writer:
            encoding = "PCMU"
            write = recorded.append

        b.record(Writer())
        pacer = Pacer(reactor)
        self.addCleanup(pacer.stop)
        data = bytes(range(256)) * 31 + bytes(range(64))  # 50 frames
        finished = a.play(data, pacer)

        def played(frames):
            self.assertEqual(frames, 50)
            settled = Deferred()
            reactor.callLater(0.2, settled.callback, None)
            return settled

        def check(_):
            b.stopRecording()
            self.assertEqual(b"".join(recorded), data)

        return finished.addCallback(played).addCallback(check)

    def test_sendDigit(self):
        """
        A key press sent as RFC 4733 events is reported once by the other
        leg, whatever the redundant end packets.
        """
        digits = []
        done = Deferred()

        def onDigit(digit):
            digits.append(digit)
            if len(digits) == 1:
                # Let the redundant end packets arrive too.
                reactor.callLater(0.2, done.callback, None)

        a, b = self.connected(onDigit=onDigit)
        a.sendDigit("7")

        def check(_):
            self.assertEqual(digits, ["7"])
            self.assertEqual(b.digits, 1)

        return done.addCallback(check)

    def test_sendDigitNeedsTelephoneEvent(self):
        """
        Without telephone-event negotiated, sending a key press is an error.
        """
        leg = self.leg(clock=reactor)
        leg.accept(offer(codecs=("PCMU",)))
        self.assertRaises(ValueError, leg.sendDigit, "1")

"""
Tests for L{appliance.media.rtp}.
"""

import struct

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from appliance.media import g711, rtp


class PacketTests(SynchronousTestCase):
    """
    RTP and RTCP packet formats (RFC 3550 sections 5.1 and 6).
    """

    def test_roundTrip(self):
        """
        A packet serialises to a 12-byte header plus payload and parses back.
        """
        packet = rtp.RTPPacket(0, 65535, 2**32 - 1, 1234, b"\xff" * 160, marker=True)
        data = packet.toBytes()
        self.assertEqual(len(data), 172)
        self.assertEqual(data[:2], b"\x80\x80")
        self.assertEqual(rtp.parseRTP(data), packet)

    def test_csrcExtensionPadding(self):
        """
        CSRCs, a header extension and padding are skipped.
        """
        header = struct.pack("!BBHII", 0xB1, 8, 1, 2, 3) + b"\0\0\0\x09"
        extension = struct.pack("!HH", 0xBEDE, 1) + b"\0\0\0\0"
        packet = rtp.parseRTP(header + extension + b"abc" + b"\0\x02")
        self.assertEqual((packet.payloadType, packet.payload), (8, b"abc"))

    def test_notRTP(self):
        """
        Short packets and other versions raise L{RTPError}.
        """
        self.assertRaises(rtp.RTPError, rtp.parseRTP, b"\x80\x00")
        self.assertRaises(rtp.RTPError, rtp.parseRTP, b"\x40" + b"\0" * 20)
        self.assertRaises(rtp.RTPError, rtp.parseRTP, b"\x90" + b"\0" * 11)

    def test_rtcp(self):
        """
        SR, SDES and BYE are well-formed compound parts.
        """
        compound = rtp.senderReport(7, 0.0, 160, 1, 160) + rtp.sourceDescription(7, b"x") + rtp.goodbye(7)
        self.assertEqual(rtp.rtcpTypes(compound), [rtp.RTCP_SR, rtp.RTCP_SDES, rtp.RTCP_BYE])
        self.assertTrue(rtp.isRTCP(compound))
        self.assertEqual(len(compound) % 4, 0)
        self.assertEqual(rtp.ntpTimestamp(0.5), (rtp.NTP_OFFSET, 2**31))


class SenderTests(SynchronousTestCase):
    """
    Paced sending from one shared clock.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.pacer = rtp.Pacer(self.clock)

    def tickTo(self, *ticks):
        """
        Advance the clock to each of the given tick numbers of the pacer's
        grid exactly (no accumulated rounding).
        """
        for tick in ticks:
            self.clock.advance(max(0, 1000 + tick * 0.02 - self.clock.seconds()))

    def makeSender(self, length=800):
        sent, rtcp, done = [], [], []
        sender = rtp.RTPSender(
            self.pacer, bytes(range(256)) * (length // 256) + bytes(length % 256),
            lambda data: sent.append((self.clock.seconds(), rtp.parseRTP(data))),
            rtcp.append, finished=lambda: done.append(self.clock.seconds()),
        )
        return sender, sent, rtcp, done

    def test_pacedPackets(self):
        """
        Packets of 160 bytes leave every 20 ms, with consecutive sequence
        numbers and timestamps, then an SR + BYE, and the timer stops.
        """
        sender, sent, rtcp, done = self.makeSender(800)
        start, seq, rtptime = sender.play()
        self.tickTo(*range(20))
        self.assertEqual([len(p.payload) for _, p in sent], [160] * 5)
        self.assertEqual([round(t - 1000, 3) for t, _ in sent], [0.0, 0.02, 0.04, 0.06, 0.08])
        self.assertEqual([p.sequence for _, p in sent], [(seq + i) & 0xFFFF for i in range(5)])
        self.assertEqual([p.timestamp for _, p in sent], [(rtptime + 160 * i) & 0xFFFFFFFF for i in range(5)])
        self.assertEqual(start, 0.0)
        self.assertEqual(rtp.rtcpTypes(rtcp[-1]), [rtp.RTCP_SR, rtp.RTCP_SDES, rtp.RTCP_BYE])
        self.assertEqual(len(done), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_noDrift(self):
        """
        Late ticks are caught up: after a stall, the due packets go at once
        and later ones return to the original grid.
        """
        sender, sent, rtcp, done = self.makeSender(8000)
        sender.play()
        self.clock.advance(0)
        self.clock.advance(0.137)
        self.assertEqual(len(sent), 7)
        self.clock.pump([0.02] * 10)
        self.assertEqual(len(sent), 17)
        self.assertEqual(self.pacer.streams, 1)
        sender.stop()
        self.clock.advance(1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_sharedClock(self):
        """
        Many streams share one timer.
        """
        senders = [self.makeSender(1600)[0] for _ in range(50)]
        for sender in senders:
            sender.play()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.tickTo(*range(30))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_pauseSeekResume(self):
        """
        Pausing stops the packets; playing again from a new position keeps
        the sequence numbers going and gives the timestamp of that position.
        """
        sender, sent, rtcp, done = self.makeSender(8000)
        sender.play()
        self.clock.pump([0.02] * 3)
        sender.pause()
        self.clock.pump([0.02] * 3)
        count = len(sent)
        lastSeq = sent[-1][1].sequence
        start, seq, rtptime = sender.play(0.5)
        self.assertEqual(seq, (lastSeq + 1) & 0xFFFF)
        self.assertEqual(rtptime, (sender.timestampBase + 4000) & 0xFFFFFFFF)
        self.clock.pump([0.02])
        self.assertEqual(sent[count][1].timestamp, rtptime)
        sender.stop()
        self.clock.advance(1)


class ReceiverTests(SynchronousTestCase):
    """
    Ordering, loss filling and transcoding of received RTP.
    """

    def setUp(self):
        self.written = []
        self.receiver = rtp.RTPReceiver(self.written.append, {0: "PCMU", 8: "PCMA"}, window=3)

    def send(self, seq, ts, payload, pt=0, ssrc=5):
        self.receiver.datagramReceived(rtp.RTPPacket(pt, seq, ts, ssrc, payload).toBytes())

    def test_reorder(self):
        """
        Packets arriving out of order are written in order.
        """
        self.send(65535, 100, b"a" * 2)
        self.send(1, 104, b"c" * 2)
        self.send(0, 102, b"b" * 2)
        self.assertEqual(b"".join(self.written), b"aabbcc")

    def test_lossFilledWithSilence(self):
        """
        A lost packet becomes silence of its length once the window is full,
        and duplicates / late packets are dropped.
        """
        self.send(10, 0, b"a" * 4)
        for seq in (12, 13, 14):
            self.send(seq, (seq - 10) * 4, b"x" * 4)
        self.send(11, 4, b"late")
        self.send(12, 8, b"dupe")
        self.assertEqual(b"".join(self.written), b"aaaa" + b"\xff" * 4 + b"x" * 12)
        self.assertEqual((self.receiver.lost, self.receiver.late), (1, 2))

    def test_flushAndTranscode(self):
        """
        A flush writes what waits behind a gap; PCMA is transcoded; RTCP,
        other sources and unknown payload types are ignored.
        """
        self.send(1, 0, b"\xd5", pt=8)
        self.send(3, 2, b"\xd5", pt=8)
        self.send(4, 3, b"\xd5", pt=97)
        self.send(5, 3, b"\xd5", ssrc=9)
        self.receiver.datagramReceived(rtp.goodbye(5))
        self.receiver.flush()
        alawZero = g711.transcode(b"\xd5", "PCMA", "PCMU")
        self.assertEqual(b"".join(self.written), alawZero + b"\xff" + alawZero)

"""
Tests for L{appliance.conference.room}.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from appliance.conference.room import Room, recordingId
from appliance.media import g711
from appliance.sip.message import parseMessage
from appliance.stats import Statistics


class FakeDialog:
    def __init__(self, tag):
        self.localTag = tag


class FakeCall:
    """
    The part of L{appliance.sip.useragent.Call} a room uses.
    """

    onReinvite = onEnded = None

    def __init__(self, tag):
        self.callId = "call-" + tag
        self.dialog = FakeDialog(tag)


class FakeLeg:
    """
    The part of L{appliance.conference.leg.MediaLeg} a room uses.
    """

    onAudio = onDigit = None

    def __init__(self, encoding="PCMU"):
        self.encoding = encoding
        self.sent = []
        self.closed = False

    def send(self, payload, timestamp, marker=False):
        self.sent.append((payload, timestamp, marker))

    def accept(self, offer):
        return b"answer"

    def close(self):
        self.closed = True


class Packet:
    def __init__(self, payload):
        self.payload = payload


class FakeRecorder:
    def __init__(self):
        self.data = []
        self.closed = False

    def write(self, data):
        self.data.append(data)

    def close(self):
        self.closed = True


def level(frame, encoding="PCMU"):
    pcm = g711.decode(frame, encoding)
    return int.from_bytes(pcm[:2], "little", signed=True)


class RoomTests(SynchronousTestCase):
    """
    A room joins answered calls into its mixer and lets them go.
    """

    def assertNear(self, value, expected, tolerance):
        self.assertTrue(abs(value - expected) <= tolerance, "%r is not %r +- %r" % (value, expected, tolerance))

    def setUp(self):
        self.clock = Clock()
        self.stats = Statistics("conference")
        self.emptied = []
        self.room = Room("sales", self.clock, self.stats, muteDigit="*", onEmpty=self.emptied.append)

    def join(self, tag, encoding="PCMU"):
        call, leg = FakeCall(tag), FakeLeg(encoding)
        self.room.join(call, leg)
        return call, leg

    def test_othersAreHeardWithRTPTiming(self):
        """
        What one participant sends reaches the other, 160 samples a packet
        apart, with the marker bit on the first packet only.
        """
        _, a = self.join("a")
        _, b = self.join("b", "PCMA")
        a.onAudio(Packet(g711.encode((1000).to_bytes(2, "little", signed=True) * 160, "PCMU")))
        self.clock.advance(0.02)
        self.clock.advance(0.02)
        self.assertEqual(len(b.sent), 2)
        self.assertNear(level(b.sent[0][0], "PCMA"), 1000, 40)
        self.assertEqual((b.sent[1][1] - b.sent[0][1]) & 0xFFFFFFFF, 160)
        self.assertEqual([marker for _, _, marker in b.sent], [True, False])
        self.assertEqual(level(a.sent[0][0]), 0)
        self.assertEqual(len(self.room), 2)

    def test_muteDigitToggles(self):
        """
        The mute digit silences a participant for the others, and a second
        press brings them back; other digits change nothing.
        """
        _, a = self.join("a")
        _, b = self.join("b")
        frame = g711.encode((2000).to_bytes(2, "little", signed=True) * 160, "PCMU")
        a.onDigit("*")
        a.onDigit("5")
        a.onAudio(Packet(frame))
        self.clock.advance(0.02)
        self.assertEqual(level(b.sent[-1][0]), 0)
        a.onDigit("*")
        a.onAudio(Packet(frame))
        self.clock.advance(0.02)
        self.assertNear(level(b.sent[-1][0]), 2000, 80)
        self.assertEqual(self.stats.get("dtmf.events"), 3)

    def test_lastLeaverClosesTheRoom(self):
        """
        A call that ends leaves the room and releases its media; when the
        last one leaves, the room closes, tells its owner and stops its clock.
        """
        callA, a = self.join("a")
        callB, b = self.join("b")
        callA.onEnded("bye")
        self.assertTrue(a.closed)
        self.assertEqual((len(self.room), self.emptied), (1, []))
        callB.onEnded("bye")
        self.assertEqual(self.emptied, [self.room])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_recording(self):
        """
        A recording room writes the whole mix each tick and closes the
        recording with the room.
        """
        recorder = FakeRecorder()
        room = Room("rec", self.clock, self.stats, recorder=recorder)
        call, leg = FakeCall("a"), FakeLeg()
        room.join(call, leg)
        leg.onAudio(Packet(g711.encode((1500).to_bytes(2, "little", signed=True) * 160, "PCMU")))
        self.clock.advance(0.02)
        self.assertNear(level(recorder.data[0]), 1500, 60)
        call.onEnded("bye")
        self.assertTrue(recorder.closed)

    def test_reinviteChangesTheLaw(self):
        """
        A re-INVITE answered by the leg switches the participant to the
        leg's new encoding.
        """
        call, leg = self.join("a")
        _, other = self.join("b")
        leg.encoding = "PCMA"
        self.assertEqual(call.onReinvite(None), b"answer")
        other.onAudio(Packet(g711.encode((1200).to_bytes(2, "little", signed=True) * 160, "PCMU")))
        self.clock.advance(0.02)
        self.assertNear(level(leg.sent[-1][0], "PCMA"), 1200, 60)

    def test_recordingId(self):
        """
        Recording ids sort by time and are valid media store names.
        """
        first = recordingId(lambda: 1764670000.0)
        self.assertRegex(first, r"^20251202T\d{6}Z-[0-9a-f]{4}$")
        self.assertLess(first, recordingId(lambda: 1764670001.0))

    def test_infoKeyPress(self):
        """
        A key press in an INFO (application/dtmf-relay) works like one in
        RTP; an INFO of another type is refused with 415.
        """
        call, leg = self.join("a")
        info = parseMessage(
            b"INFO sip:conf-sales@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKi\r\n"
            b"From: <sip:a@example.test>;tag=x\r\nTo: <sip:conf-sales@example.test>;tag=y\r\n"
            b"Call-ID: c\r\nCSeq: 2 INFO\r\nContent-Type: application/dtmf-relay\r\n"
            b"Content-Length: 24\r\n\r\nSignal=*\r\nDuration=160\r\n")
        self.assertEqual(call.onInfo(info), 200)
        self.assertEqual(self.stats.get("dtmf.events"), 1)
        info.headers.set("Content-Type", "text/plain")
        self.assertEqual(call.onInfo(info), 415)
        call.onEnded("bye")

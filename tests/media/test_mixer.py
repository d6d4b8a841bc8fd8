"""
Tests for L{appliance.media.mixer}.
"""

import cmath
import math
import struct

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from appliance.media import g711
from appliance.media.mixer import ConferenceMixer

START = 1000.0
INTERVAL = 0.02
FRAME = 160
ULAW_MAX = 32124
ALAW_MAX = 32256


def pcm(samples):
    """
    16-bit little-endian PCM bytes for a list of samples.
    """
    return struct.pack("<%dh" % len(samples), *samples)


def constant(level, encoding, length=FRAME):
    """
    A G.711 frame of one constant level.
    """
    return g711.encode(pcm([level] * length), encoding)


def tone(frequency, amplitude, encoding, length=FRAME):
    """
    A G.711 frame of a sine tone at C{frequency} Hz.
    """
    return g711.encode(pcm([
        int(round(amplitude * math.sin(2 * math.pi * frequency * n / 8000.0))) for n in range(length)
    ]), encoding)


def samples(payload, encoding):
    """
    The linear samples of a G.711 payload.
    """
    data = g711.decode(payload, encoding)
    return list(struct.unpack("<%dh" % (len(data) // 2), data))


def quantised(level, encoding):
    """
    What C{level} becomes after G.711 encoding (clipped to 16 bits first).
    """
    return samples(constant(max(-32768, min(32767, level)), encoding, 1), encoding)[0]


def magnitude(values, frequency):
    """
    The amplitude of the C{frequency} component of C{values}: one bin of a
    discrete Fourier transform.
    """
    total = sum(v * cmath.exp(-2j * math.pi * frequency * n / 8000.0) for n, v in enumerate(values))
    return 2 * abs(total) / len(values)


class MixerTestCase(SynchronousTestCase):
    """
    A mixer on a L{Clock} whose room starts at C{START}.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(START)
        self.mixer = ConferenceMixer(self.clock)
        self.heard = {}

    def join(self, key, encoding="PCMU", send=None):
        """
        Add a participant whose mixes are collected in C{self.heard[key]}.
        """
        self.heard[key] = heard = []
        return self.mixer.addParticipant(key, encoding, send or heard.append)

    def tickTo(self, tick):
        """
        Advance the clock just past tick C{tick} of a room started at
        C{START} (no accumulated rounding).
        """
        self.clock.advance(max(0.0, START + tick * INTERVAL + 1e-6 - self.clock.seconds()))

    def tickWith(self, tick, frames):
        """
        Give each participant its frame, then run tick C{tick}.
        """
        for participant, frame in frames.items():
            participant.receive(frame)
        self.tickTo(tick)

    def assertClose(self, value, expected, tolerance):
        """
        Fail unless C{value} is within C{tolerance} of C{expected}.
        """
        if abs(value - expected) > tolerance:
            self.fail("%r is not within %r of %r" % (value, tolerance, expected))

    def leaveAll(self):
        """
        Remove every participant and check the room's clock stopped.
        """
        for key in list(self.heard):
            self.mixer.removeParticipant(key)
        self.assertEqual(self.mixer.participants, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class MixMinusTests(MixerTestCase):
    """
    Each participant hears the sum of everybody else, never itself.
    """

    def test_constantLevels(self):
        """
        With three constant levels, each participant hears the other two
        added up, within G.711 quantisation of the nominal sum.
        """
        levels = {"a": 1000, "b": 2000, "c": -3000}
        parts = {key: self.join(key) for key in levels}
        self.tickWith(1, {parts[key]: constant(level, "PCMU") for key, level in levels.items()})
        for key in levels:
            others = [quantised(v, "PCMU") for k, v in levels.items() if k != key]
            nominal = sum(v for k, v in levels.items() if k != key)
            [payload] = self.heard[key]
            self.assertEqual(len(payload), FRAME)
            heard = samples(payload, "PCMU")
            self.assertEqual(set(heard), {quantised(sum(others), "PCMU")})
            self.assertClose(heard[0], nominal, 0.04 * abs(nominal) + 16)
        self.leaveAll()

    def test_toneSpectrum(self):
        """
        With three tones at different frequencies, each participant's mix
        holds the other two tones at full amplitude and not its own.
        """
        frequencies = {"a": 400, "b": 1000, "c": 2600}
        parts = {key: self.join(key) for key in frequencies}
        for tick in range(1, 4):
            self.tickWith(tick, {parts[k]: tone(f, 8000, "PCMU") for k, f in frequencies.items()})
        for key, own in frequencies.items():
            heard = [s for payload in self.heard[key] for s in samples(payload, "PCMU")]
            self.assertEqual(len(heard), 3 * FRAME)
            for other, frequency in frequencies.items():
                if other == key:
                    self.assertLess(magnitude(heard, own), 200)
                else:
                    self.assertClose(magnitude(heard, frequency), 8000, 300)
        self.leaveAll()

    def test_mixedEncodings(self):
        """
        PCMU and PCMA participants share a room; each hears the mix in its
        own encoding.
        """
        a, b, c = self.join("a", "PCMU"), self.join("b", "PCMA"), self.join("c", "PCMU")
        self.tickWith(1, {a: constant(1000, "PCMU"), b: constant(2000, "PCMA"), c: constant(-3000, "PCMU")})
        qa, qb, qc = quantised(1000, "PCMU"), quantised(2000, "PCMA"), quantised(-3000, "PCMU")
        self.assertEqual(set(samples(self.heard["a"][0], "PCMU")), {quantised(qb + qc, "PCMU")})
        self.assertEqual(set(samples(self.heard["b"][0], "PCMA")), {quantised(qa + qc, "PCMA")})
        self.assertEqual(set(samples(self.heard["c"][0], "PCMU")), {quantised(qa + qb, "PCMU")})
        self.leaveAll()

    def test_clippingDoesNotWrap(self):
        """
        Sums beyond full scale clip to the largest code of the right sign
        instead of wrapping around.
        """
        parts = [self.join(key, encoding) for key, encoding in [("a", "PCMU"), ("b", "PCMA"), ("c", "PCMU")]]
        self.tickWith(1, {p: constant(30000, p.encoding) for p in parts})
        self.tickWith(2, {p: constant(-30000, p.encoding) for p in parts})
        for key, encoding, top in [("a", "PCMU", ULAW_MAX), ("b", "PCMA", ALAW_MAX), ("c", "PCMU", ULAW_MAX)]:
            loud, quiet = self.heard[key]
            self.assertEqual(set(samples(loud, encoding)), {top})
            self.assertEqual(set(samples(quiet, encoding)), {-top})
        self.leaveAll()

    def test_manyTalkers(self):
        """
        With more talkers than the clipping tables cover, mixes are still
        exact and still clip without wrapping.
        """
        keys = range(40)
        parts = [self.join(key) for key in keys]
        self.tickWith(1, {p: constant(1000 if p.key % 2 else -1000, "PCMU") for p in parts})
        self.tickWith(2, {p: constant(30000, "PCMU") for p in parts})
        high, low = quantised(1000, "PCMU"), quantised(-1000, "PCMU")
        for key in keys:
            balanced, loud = self.heard[key]
            expected = -high if key % 2 else -low
            self.assertEqual(set(samples(balanced, "PCMU")), {quantised(expected + high + low, "PCMU")})
            self.assertEqual(set(samples(loud, "PCMU")), {ULAW_MAX})
        self.leaveAll()

    def test_twoParticipants(self):
        """
        Two participants hear exactly each other's frames, transcoded when
        their laws differ.
        """
        a, b = self.join("a", "PCMU"), self.join("b", "PCMA")
        frameA, frameB = tone(1000, 5000, "PCMU"), tone(700, 9000, "PCMA")
        self.tickWith(1, {a: frameA, b: frameB})
        self.assertEqual(self.heard["a"], [g711.transcode(frameB, "PCMA", "PCMU")])
        self.assertEqual(self.heard["b"], [g711.transcode(frameA, "PCMU", "PCMA")])
        self.leaveAll()

    def test_aloneHearsSilence(self):
        """
        A participant alone in the room hears silence in its encoding.
        """
        a = self.join("a", "PCMA")
        self.tickWith(1, {a: tone(1000, 5000, "PCMA")})
        self.assertEqual(self.heard["a"], [g711.silence("PCMA", FRAME)])
        self.leaveAll()

    def test_mute(self):
        """
        A muted participant still hears the others but adds nothing to
        their mixes, until it is unmuted.
        """
        a, b, c = self.join("a"), self.join("b"), self.join("c")
        frames = {a: constant(1000, "PCMU"), b: constant(2000, "PCMU"), c: constant(4000, "PCMU")}
        c.muted = True
        self.tickWith(1, frames)
        qa, qb, qc = (quantised(level, "PCMU") for level in (1000, 2000, 4000))
        self.assertEqual(set(samples(self.heard["a"][-1], "PCMU")), {qb})
        self.assertEqual(set(samples(self.heard["c"][-1], "PCMU")), {quantised(qa + qb, "PCMU")})
        c.muted = False
        self.tickWith(2, frames)
        self.assertEqual(set(samples(self.heard["a"][-1], "PCMU")), {quantised(qb + qc, "PCMU")})
        self.assertEqual(c.framesIn, 2)
        self.leaveAll()


class MembershipTests(MixerTestCase):
    """
    Participants join and leave at any time, even from a send callback.
    """

    def test_joinAndLeaveMidCall(self):
        """
        A participant joining mid-call is heard and hears from the next
        tick on; one who leaves is heard no more and gets nothing more.
        """
        a, b = self.join("a"), self.join("b")
        self.tickWith(1, {a: constant(1000, "PCMU"), b: constant(2000, "PCMU")})
        c = self.join("c")
        self.assertEqual(self.heard["c"], [])
        self.tickWith(2, {a: constant(1000, "PCMU"), b: constant(2000, "PCMU"), c: constant(-500, "PCMU")})
        qa, qb, qc = (quantised(level, "PCMU") for level in (1000, 2000, -500))
        self.assertEqual(set(samples(self.heard["a"][-1], "PCMU")), {quantised(qb + qc, "PCMU")})
        self.assertEqual(len(self.heard["c"]), 1)
        self.assertIs(self.mixer.removeParticipant("b"), b)
        self.tickWith(3, {a: constant(1000, "PCMU"), b: constant(2000, "PCMU"), c: constant(-500, "PCMU")})
        self.assertEqual(set(samples(self.heard["a"][-1], "PCMU")), {qc})
        self.assertEqual((len(self.heard["b"]), b.framesOut), (2, 2))
        self.assertEqual(self.mixer.participants, 2)
        self.assertIsNone(self.mixer.removeParticipant("b"))
        self.leaveAll()

    def test_leaveInsideSend(self):
        """
        A send callback may remove its own participant and one not yet
        served this tick, who then gets nothing; a participant added from a
        callback is served from the next tick.
        """
        def leave(payload):
            self.heard["a"].append(payload)
            self.mixer.removeParticipant("a")
            self.mixer.removeParticipant("b")
            self.join("d")

        self.join("a", send=leave)
        self.join("b")
        self.join("c")
        self.tickTo(1)
        self.assertEqual([len(self.heard[k]) for k in "abcd"], [1, 0, 1, 0])
        self.tickTo(2)
        self.assertEqual([len(self.heard[k]) for k in "abcd"], [1, 0, 2, 1])
        self.leaveAll()

    def test_lastLeavesInsideSend(self):
        """
        When the last participant leaves from its send callback, the clock
        stops.
        """
        self.join("a", send=lambda payload: self.mixer.removeParticipant("a"))
        self.tickTo(1)
        self.assertEqual(self.mixer.participants, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_closeInsideSend(self):
        """
        Closing the mixer from a send callback stops the tick at once and
        leaves no timer behind.
        """
        self.join("a", send=lambda payload: self.mixer.close())
        self.join("b")
        self.mixer.record(self.fail)
        self.tickTo(1)
        self.assertEqual(self.heard["b"], [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_sendFailure(self):
        """
        A send callback that raises is logged and the others are still
        served, on the same clock.
        """
        self.join("a", send=lambda payload: 1 / 0)
        self.join("b")
        self.tickTo(1)
        self.tickTo(2)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)
        self.assertEqual(len(self.heard["b"]), 2)
        self.leaveAll()

    def test_switchEncoding(self):
        """
        A participant whose law changes mid-call (a re-INVITE) has its
        queued audio transcoded and hears the mix in its new law.
        """
        a, b = self.join("a", "PCMU"), self.join("b", "PCMU")
        frame = tone(1000, 5000, "PCMU")
        a.receive(frame + frame[:10])
        a.encoding = "PCMA"
        a.receive(g711.transcode(frame[10:], "PCMU", "PCMA"))
        b.receive(constant(2000, "PCMU"))
        self.tickTo(2)
        throughALaw = g711.transcode(g711.transcode(frame, "PCMU", "PCMA"), "PCMA", "PCMU")
        self.assertEqual(self.heard["b"], [throughALaw, throughALaw])
        self.assertEqual(self.heard["a"], [g711.transcode(constant(2000, "PCMU"), "PCMU", "PCMA"),
                                           g711.silence("PCMA", FRAME)])
        self.assertRaises(ValueError, setattr, a, "encoding", "L16")
        self.leaveAll()

    def test_rejects(self):
        """
        Unknown encodings and keys already in the room are refused.
        """
        self.join("a")
        self.assertRaises(ValueError, self.mixer.addParticipant, "b", "G722", self.fail)
        self.assertRaises(ValueError, self.mixer.addParticipant, "a", "PCMU", self.fail)
        self.assertEqual(self.mixer.participants, 1)
        self.leaveAll()


class QueueTests(MixerTestCase):
    """
    Each participant's small jitter queue.
    """

    def test_underrunIsSilence(self):
        """
        An empty queue contributes silence and counts an underrun.
        """
        a, b = self.join("a", "PCMU"), self.join("b", "PCMA")
        self.tickTo(1)
        self.assertEqual(self.heard["a"], [g711.silence("PCMU", FRAME)])
        self.assertEqual(self.heard["b"], [g711.silence("PCMA", FRAME)])
        self.assertEqual((a.underruns, b.underruns, a.framesOut), (1, 1, 1))
        self.leaveAll()

    def test_overflowDropsOldest(self):
        """
        A full queue drops its oldest frame to take a new one, and counts it.
        """
        a = self.join("a")
        self.join("b")
        frames = [constant(100 * n, "PCMU") for n in range(1, 8)]
        for frame in frames:
            a.receive(frame)
        self.assertEqual((a.framesIn, a.dropped, a.queued), (7, 2, 5))
        for tick in range(1, 7):
            self.tickTo(tick)
        self.assertEqual(self.heard["b"], frames[2:] + [g711.silence("PCMU", FRAME)])
        self.assertEqual(a.underruns, 1)
        self.leaveAll()

    def test_receiveSplitsFrames(self):
        """
        Payloads of any length are cut into whole frames, a remainder
        waiting for the next payload.
        """
        a = self.join("a")
        self.join("b")
        data = bytes(range(256)) * 2
        a.receive(data[:100])
        self.assertEqual(a.queued, 0)
        a.receive(data[100:400])
        self.assertEqual((a.queued, a.framesIn), (2, 2))
        a.receive(data[400:480])
        self.tickTo(3)
        self.assertEqual(self.heard["b"], [data[0:160], data[160:320], data[320:480]])
        self.leaveAll()


class ClockTests(MixerTestCase):
    """
    One drift-free clock per room, running only while it has participants.
    """

    def test_driftFree(self):
        """
        However irregularly the reactor runs, the number of ticks mixed is
        the whole number of intervals elapsed since the first join.
        """
        self.join("a")
        for step in [0.0073, 0.0131, 0.0311, 0.0029, 0.0457, 0.019, 0.0613, 0.0011, 0.0251] * 5:
            self.clock.advance(step)
            elapsed = self.clock.seconds() - START
            self.assertEqual(self.mixer.ticks, math.floor(elapsed / INTERVAL))
            [call] = self.clock.getDelayedCalls()
            self.assertAlmostEqual(call.getTime(), START + (self.mixer.ticks + 1) * INTERVAL, places=9)
        self.assertEqual(self.mixer.skippedTicks, 0)
        self.assertEqual(len(self.heard["a"]), self.mixer.ticks)
        self.assertGreater(self.mixer.lateTicks, 0)
        self.leaveAll()

    def test_stallCatchUpBounded(self):
        """
        After a long stall at most C{maxCatchUp} ticks are mixed at once, the
        rest are skipped, and ticks return to the original grid.
        """
        self.join("a")
        self.tickTo(1)
        self.clock.advance(1.0)
        self.assertEqual(self.mixer.ticks, 1 + self.mixer.maxCatchUp)
        self.assertEqual(self.mixer.lateTicks, self.mixer.maxCatchUp - 1)
        self.assertEqual(self.mixer.skippedTicks, 50 - self.mixer.maxCatchUp)
        [call] = self.clock.getDelayedCalls()
        self.assertAlmostEqual(call.getTime(), START + 52 * INTERVAL, places=9)
        self.tickTo(52)
        self.assertEqual(self.mixer.ticks, 2 + self.mixer.maxCatchUp)
        self.leaveAll()

    def test_leaveDuringCatchUp(self):
        """
        A participant leaving from a send callback during a catch-up stops
        the remaining late ticks and the clock.
        """
        self.join("a", send=lambda payload: self.heard["a"].append(payload) or
                  len(self.heard["a"]) < 2 or self.mixer.removeParticipant("a"))
        self.clock.advance(0.5)
        self.assertEqual((self.mixer.ticks, len(self.heard["a"])), (2, 2))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_frameSize(self):
        """
        Frames hold C{rate * interval} samples and ticks come every
        C{interval}.
        """
        mixer = ConferenceMixer(self.clock, interval=0.03)
        heard = []
        mixer.addParticipant("a", "PCMU", heard.append)
        mixer.addParticipant("b", "PCMU", [].append)
        self.clock.advance(0.1)
        self.assertEqual([len(frame) for frame in heard], [240] * 3)
        mixer.removeParticipant("a")
        mixer.removeParticipant("b")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_runsOnlyWithParticipants(self):
        """
        The clock starts with the first participant, stops with the last,
        and starts afresh on the next join.
        """
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.join("a")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.tickTo(3)
        self.mixer.removeParticipant("a")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(0.005)
        self.join("b")
        [call] = self.clock.getDelayedCalls()
        self.assertAlmostEqual(call.getTime(), self.clock.seconds() + INTERVAL, places=9)
        self.leaveAll()

    def test_close(self):
        """
        Closing drops every participant and stops the clock and recording.
        """
        a = self.join("a")
        self.join("b")
        self.mixer.record(self.fail)
        self.mixer.close()
        a.receive(constant(1000, "PCMU"))
        self.clock.advance(1)
        self.assertEqual((self.mixer.participants, self.mixer.ticks), (0, 0))
        self.assertEqual(self.heard, {"a": [], "b": []})
        self.assertEqual(self.clock.getDelayedCalls(), [])


class RecordingTests(MixerTestCase):
    """
    The full mix of the room, recorded as PCMU.
    """

    def test_fullMix(self):
        """
        The recording gets every tick's mix of all unmuted participants as
        one PCMU frame, whatever their encodings, until recording stops.
        """
        written = []
        self.mixer.record(written.append)
        a, b, c, d = self.join("a", "PCMU"), self.join("b", "PCMA"), self.join("c", "PCMU"), self.join("d")
        d.muted = True
        frames = {a: constant(1000, "PCMU"), b: constant(2000, "PCMA"), c: constant(-4000, "PCMU"),
                  d: constant(8000, "PCMU")}
        self.tickWith(1, frames)
        self.tickWith(2, {a: frames[a]})
        self.tickTo(3)
        self.tickWith(4, {p: constant(20000, p.encoding) for p in (a, b, c)})
        self.mixer.stopRecording()
        self.tickWith(5, frames)
        qa, qb, qc = quantised(1000, "PCMU"), quantised(2000, "PCMA"), quantised(-4000, "PCMU")
        self.assertEqual(
            [set(samples(frame, "PCMU")) for frame in written],
            [{quantised(qa + qb + qc, "PCMU")}, {qa}, {0}, {ULAW_MAX}],
        )
        self.assertEqual([len(frame) for frame in written], [FRAME] * 4)
        self.leaveAll()

    def test_alawRoom(self):
        """
        A room of PCMA participants is still recorded as PCMU.
        """
        written = []
        self.mixer.record(written.append)
        a, b = self.join("a", "PCMA"), self.join("b", "PCMA")
        self.tickWith(1, {a: constant(1000, "PCMA"), b: constant(-3000, "PCMA")})
        qa, qb = quantised(1000, "PCMA"), quantised(-3000, "PCMA")
        self.assertEqual([set(samples(frame, "PCMU")) for frame in written], [{quantised(qa + qb, "PCMU")}])
        self.leaveAll()

    def test_writeFailure(self):
        """
        A recording write that raises is logged and mixing goes on.
        """
        self.mixer.record(lambda data: 1 / 0)
        self.join("a")
        self.tickTo(2)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)
        self.assertEqual(len(self.heard["a"]), 2)
        self.leaveAll()

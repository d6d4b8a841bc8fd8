"""
Tests for L{appliance.media.dtmf}.
"""

import random

from twisted.trial.unittest import SynchronousTestCase

from appliance.media import dtmf, rtp

_EVENT_PT = 101


def _packet(payload, timestamp, ssrc=0x1234, sequence=0, marker=False):
    return rtp.RTPPacket(_EVENT_PT, sequence, timestamp, ssrc, payload, marker)


def _press(digit, timestamp, ssrc=0x1234, sequence=0, **kwargs):
    """
    The RTP packets of one key press, as L{dtmf.eventPackets} lays it out.
    """
    return [
        _packet(payload, timestamp, ssrc, (sequence + index) & 0xFFFF, marker)
        for index, (offset, marker, payload) in enumerate(dtmf.eventPackets(digit, **kwargs))
    ]


class Recorder:
    """
    Collects what a L{dtmf.DTMFReceiver} reports.
    """

    def __init__(self):
        self.digits = []
        self.receiver = dtmf.DTMFReceiver(self.onDigit)

    def onDigit(self, digit, duration):
        self.digits.append((digit, duration))

    def feed(self, packets):
        for packet in packets:
            self.receiver.packetReceived(packet)
        return self

    @property
    def keys(self):
        return "".join(digit for digit, duration in self.digits)


class TelephoneEventTests(SynchronousTestCase):
    """
    The RFC 4733 section 2.3 payload format.
    """

    def test_endEventBytes(self):
        """
        Event 5 with E set, volume 10 and duration 800 is C{05 8a 03 20}, and parses back.
        """
        event = dtmf.TelephoneEvent(5, True, 10, 800)
        self.assertEqual(event.toBytes(), b"\x05\x8a\x03\x20")
        self.assertEqual(dtmf.parseEvent(b"\x05\x8a\x03\x20"), event)
        self.assertEqual(event.digit, "5")

    def test_startEventBytes(self):
        """
        A first packet of C{#} (event 11) at volume 63 and duration 0 has the E bit clear.
        """
        event = dtmf.parseEvent(b"\x0b\x3f\x00\x00")
        self.assertEqual(event, dtmf.TelephoneEvent(11, False, 63, 0))
        self.assertEqual((event.digit, event.end), ("#", False))

    def test_largestDuration(self):
        """
        The 16-bit duration field reaches 0xFFFF.
        """
        event = dtmf.TelephoneEvent(0, False, 0, 0xFFFF)
        self.assertEqual(event.toBytes(), b"\x00\x00\xff\xff")
        self.assertEqual(dtmf.parseEvent(b"\x00\x00\xff\xff").duration, 0xFFFF)

    def test_reservedBitIgnored(self):
        """
        The R bit is ignored on receipt and sent clear (RFC 4733 section 2.3).
        """
        event = dtmf.parseEvent(b"\x05\xca\x03\x20")
        self.assertEqual(event, dtmf.TelephoneEvent(5, True, 10, 800))
        self.assertEqual(event.toBytes(), b"\x05\x8a\x03\x20")

    def test_digitsOfEventCodes(self):
        """
        Events 0-15 are C{0123456789*#ABCD}, in that order (RFC 4733 section 3.2).
        """
        digits = "".join(dtmf.parseEvent(bytes([code, 0, 0, 0])).digit for code in range(16))
        self.assertEqual(digits, "0123456789*#ABCD")
        self.assertEqual(dtmf.DIGITS, digits)

    def test_flashAndOtherEvents(self):
        """
        Event 16 is the hook flash, named but not a digit; any other code parses with neither.
        """
        flash = dtmf.parseEvent(b"\x10\x0a\x00\xa0")
        self.assertEqual((flash.digit, flash.name), (None, "flash"))
        self.assertEqual(dtmf.parseEvent(b"\x05\x0a\x00\xa0").name, "5")
        for code in range(17, 256):
            event = dtmf.parseEvent(bytes([code, 0x8a, 0, 0xa0]))
            self.assertEqual((event.event, event.digit, event.name), (code, None, None))

    def test_shortPayload(self):
        """
        A payload shorter than 4 octets raises L{dtmf.DTMFError} with a reason.
        """
        for payload in [b"", b"\x05", b"\x05\x8a", b"\x05\x8a\x03"]:
            error = self.assertRaises(dtmf.DTMFError, dtmf.parseEvent, payload)
            self.assertIn("4 octets", error.reason)
            self.assertIsInstance(error, ValueError)

    def test_packedEvents(self):
        """
        A payload of several 4-octet events (RFC 4733 section 2.5.1.5) parses as its first.
        """
        event = dtmf.parseEvent(b"\x01\x8a\x03\x20" + b"\x02\x8a\x03\x20")
        self.assertEqual(event, dtmf.TelephoneEvent(1, True, 10, 800))

    def test_fieldRanges(self):
        """
        Event, volume and duration beyond their 8, 6 and 16 bits are rejected on construction.
        """
        for fields in [(256, False, 0, 0), (-1, False, 0, 0), (0, False, 64, 0), (0, False, 0, 0x10000),
                       (0, False, 0, -1), (0, False, 1.5, 0)]:
            self.assertRaises(dtmf.DTMFError, dtmf.TelephoneEvent, *fields)

    def test_fromRTPDatagram(self):
        """
        The payload of a parsed telephone-event RTP datagram parses as its event.
        """
        datagram = rtp.RTPPacket(_EVENT_PT, 7, 1600, 9, b"\x09\x8a\x06\x40", marker=True).toBytes()
        event = dtmf.parseEvent(rtp.parseRTP(datagram).payload)
        self.assertEqual((event.digit, event.end, event.duration), ("9", True, 1600))


class ReceiverTests(SynchronousTestCase):
    """
    L{dtmf.DTMFReceiver} reports each key press once (RFC 4733 section 2.5.2).
    """

    def test_reportedAtFirstPacket(self):
        """
        A key press is reported as soon as its first packet arrives, with that packet's duration.
        """
        packets = _press("5", 1000)
        recorder = Recorder().feed(packets[:1])
        self.assertEqual(recorder.digits, [("5", 160)])
        recorder.feed(packets[1:])
        self.assertEqual(recorder.digits, [("5", 160)])
        self.assertEqual(recorder.receiver.events, 1)

    def test_redundantEndPackets(self):
        """
        The three end packets of an event (RFC 4733 section 2.5.1.4) do not report it again.
        """
        end = dtmf.TelephoneEvent(3, True, 10, 800).toBytes()
        recorder = Recorder().feed([_packet(b"\x03\x0a\x00\xa0", 80, marker=True)])
        recorder.feed([_packet(end, 80, sequence=n) for n in range(1, 4)])
        self.assertEqual(recorder.digits, [("3", 160)])

    def test_retransmissions(self):
        """
        Every packet of a key press arriving twice still makes one digit.
        """
        packets = _press("8", 5000)
        recorder = Recorder().feed(packets + packets)
        self.assertEqual(recorder.keys, "8")

    def test_reordered(self):
        """
        Packets of one event in any order make one digit, with the duration of the first to arrive.
        """
        packets = _press("#", 5000)
        recorder = Recorder().feed(reversed(packets))
        self.assertEqual(recorder.digits, [("#", 800)])

    def test_lateFromPreviousEvent(self):
        """
        A packet of the previous event arriving after the next event started is ignored and counted.
        """
        first, second = _press("1", 8000), _press("2", 9600, sequence=10)
        recorder = Recorder().feed(first[:-1] + second[:2] + first[-1:] + second[2:])
        self.assertEqual(recorder.keys, "12")
        self.assertEqual(recorder.receiver.late, 1)

    def test_olderEventIgnored(self):
        """
        An event whose timestamp is earlier than the last reported one is not reported.
        """
        recorder = Recorder().feed(_press("4", 3000) + _press("6", 2000))
        self.assertEqual(recorder.keys, "4")
        self.assertEqual(recorder.receiver.late, 7)

    def test_lostEndThenNewEvent(self):
        """
        A new timestamp starts a new event even though the previous event's end packets were lost.
        """
        first = [p for p in _press("1", 8000) if not dtmf.parseEvent(p.payload).end]
        recorder = Recorder().feed(first + _press("2", 9600))
        self.assertEqual(recorder.keys, "12")

    def test_lostEndSameDigit(self):
        """
        The same digit at a new timestamp after a lost end is a second key press.
        """
        first = [p for p in _press("5", 8000) if not dtmf.parseEvent(p.payload).end]
        recorder = Recorder().feed(first + _press("5", 9600))
        self.assertEqual(recorder.keys, "55")

    def test_lostFirstPacket(self):
        """
        When the marked first packet is lost, the event is reported from its first update.
        """
        recorder = Recorder().feed(_press("7", 400)[1:])
        self.assertEqual(recorder.digits, [("7", 320)])

    def test_onlyEndPacketArrives(self):
        """
        An event of which only an end packet arrives is still reported, with its final duration.
        """
        recorder = Recorder().feed(_press("0", 400)[-1:])
        self.assertEqual(recorder.digits, [("0", 800)])

    def test_sameDigitTwice(self):
        """
        The same digit pressed twice in a row, at two timestamps, is reported twice.
        """
        recorder = Recorder().feed(_press("9", 0) + _press("9", 1600, sequence=7))
        self.assertEqual(recorder.keys, "99")
        self.assertEqual(recorder.receiver.events, 2)

    def test_timestampWrapAround(self):
        """
        Timestamps compare by serial-number arithmetic across the 2**32 wrap.
        """
        before, after = _press("1", 2**32 - 400), _press("2", 1200)
        recorder = Recorder().feed(before + after + before[-1:])
        self.assertEqual(recorder.keys, "12")
        self.assertEqual(recorder.receiver.late, 1)

    def test_timestampJumpBack(self):
        """
        An event far earlier than the last (more than C{lateWindow}) means the sender's timestamps
        restarted, and is reported.
        """
        recorder = Recorder()
        recorder.receiver = dtmf.DTMFReceiver(recorder.onDigit, lateWindow=80000)
        recorder.feed(_press("1", 10**9) + _press("2", 10**9 - 80000) + _press("3", 10**9 - 500000))
        self.assertEqual(recorder.keys, "13")

    def test_twoSources(self):
        """
        Events are keyed by SSRC too: two sources with the same timestamps each report their presses.
        """
        first, second = _press("1", 800, ssrc=1), _press("2", 800, ssrc=2)
        interleaved = [packet for pair in zip(first, second) for packet in pair]
        recorder = Recorder().feed(interleaved + _press("3", 2400, ssrc=1) + first)
        self.assertEqual(recorder.keys, "123")

    def test_sourcesBounded(self):
        """
        Only C{maxSources} SSRCs are remembered; the least recently heard is forgotten first.
        """
        recorder = Recorder()
        recorder.receiver = dtmf.DTMFReceiver(recorder.onDigit, maxSources=2)
        presses = {ssrc: _press("1", 800, ssrc=ssrc) for ssrc in range(1, 4)}
        recorder.feed(presses[1] + presses[2] + presses[1][-1:] + presses[3])
        self.assertEqual(len(recorder.receiver._sources), 2)
        recorder.feed(presses[1][-1:] + presses[3][-1:])
        self.assertEqual(recorder.keys, "111")
        recorder.feed(presses[2][-1:])
        self.assertEqual(recorder.keys, "1111")

    def test_malformedCounted(self):
        """
        A payload shorter than an event is counted in C{malformed} and changes nothing.
        """
        recorder = Recorder().feed([_packet(b"\x05\x8a", 800, marker=True)] + _press("6", 800))
        self.assertEqual(recorder.keys, "6")
        self.assertEqual(recorder.receiver.malformed, 1)

    def test_nonDigitEventsIgnored(self):
        """
        A hook flash or other non-digit event is counted once in C{ignored}, never reported.
        """
        flash = [_packet(dtmf.TelephoneEvent(16, end, 10, 800).toBytes(), 800) for end in (0, 1, 1, 1)]
        tone = [_packet(dtmf.TelephoneEvent(70, 1, 10, 800).toBytes(), 2400)]
        recorder = Recorder().feed(flash + tone + _press("2", 4000))
        self.assertEqual(recorder.keys, "2")
        self.assertEqual((recorder.receiver.ignored, recorder.receiver.events), (2, 1))

    def test_longEventSegments(self):
        """
        The next segment of an event longer than 0xFFFF units (RFC 4733 section 2.5.1.3) is not a
        new key press.
        """
        segment = [_packet(dtmf.TelephoneEvent(1, False, 10, d).toBytes(), 100, marker=(d == 160))
                   for d in (160, 32000, 0xFFFF)]
        following = [_packet(dtmf.TelephoneEvent(1, e, 10, d).toBytes(), 100 + 0xFFFF)
                     for e, d in [(False, 160), (True, 800), (True, 800)]]
        recorder = Recorder().feed(segment + following + _press("1", 100 + 0xFFFF + 2000))
        self.assertEqual(recorder.keys, "11")

    def test_markedPacketStartsEvent(self):
        """
        A marked packet at a new timestamp is a new key press even inside the span of an unfinished
        event of the same digit.
        """
        update = _packet(dtmf.TelephoneEvent(4, False, 10, 1600).toBytes(), 800, marker=True)
        overlapping = _packet(dtmf.TelephoneEvent(4, False, 10, 160).toBytes(), 1600, marker=True)
        recorder = Recorder().feed([update, overlapping])
        self.assertEqual(recorder.keys, "44")

    def test_everyDigit(self):
        """
        The packets of L{dtmf.eventPackets} for every digit come out as the digits, in order.
        """
        recorder = Recorder()
        for index, digit in enumerate(dtmf.DIGITS):
            recorder.feed(_press(digit, index * 1600, sequence=index * 7))
        self.assertEqual(recorder.keys, dtmf.DIGITS)


class EventPacketsTests(SynchronousTestCase):
    """
    L{dtmf.eventPackets} lays out one key press as a sender emits it (RFC 4733 section 2.5.1).
    """

    def test_shape(self):
        """
        A 100 ms press has updates every 20 ms with growing durations, then its end sent three times.
        """
        packets = dtmf.eventPackets("5")
        events = [dtmf.parseEvent(payload) for offset, marker, payload in packets]
        self.assertEqual([marker for offset, marker, payload in packets], [True] + [False] * 6)
        self.assertEqual([e.duration for e in events], [160, 320, 480, 640, 800, 800, 800])
        self.assertEqual([e.end for e in events], [False] * 4 + [True] * 3)
        self.assertEqual({e.event for e in events}, {5})
        self.assertEqual({e.volume for e in events}, {10})
        offsets = [offset for offset, marker, payload in packets]
        for offset, expected in zip(offsets, [0.0, 0.02, 0.04, 0.06, 0.08, 0.10, 0.12]):
            self.assertAlmostEqual(offset, expected)

    def test_payloadBytes(self):
        """
        The first and end payloads of C{5} are the RFC 4733 section 2.3 layout.
        """
        packets = dtmf.eventPackets("5")
        self.assertEqual(packets[0][2], b"\x05\x0a\x00\xa0")
        self.assertEqual([payload for offset, marker, payload in packets[-3:]], [b"\x05\x8a\x03\x20"] * 3)

    def test_durationNotMultipleOfInterval(self):
        """
        A duration ending inside an interval has its end packets carry the exact duration.
        """
        durations = [dtmf.parseEvent(payload).duration for offset, m, payload in dtmf.eventPackets("1", 0.05)]
        self.assertEqual(durations, [160, 320, 400, 400, 400])

    def test_shortPress(self):
        """
        A press shorter than an interval is one marked end packet, repeated unmarked.
        """
        packets = dtmf.eventPackets("#", duration=0.01)
        end = b"\x0b\x8a\x00\x50"
        self.assertEqual([(m, p) for o, m, p in packets], [(True, end), (False, end), (False, end)])

    def test_options(self):
        """
        Volume, interval and clock rate shape the payloads and offsets.
        """
        packets = dtmf.eventPackets("a", duration=0.1, volume=3, interval=0.05, rate=16000)
        events = [dtmf.parseEvent(payload) for offset, marker, payload in packets]
        self.assertEqual([e.duration for e in events], [800, 1600, 1600, 1600])
        self.assertEqual({(e.event, e.volume) for e in events}, {(12, 3)})
        self.assertEqual([round(offset, 6) for offset, m, p in packets], [0.0, 0.05, 0.1, 0.15])

    def test_unknownDigit(self):
        """
        Anything but one of C{0123456789*#ABCD} raises L{dtmf.DTMFError}.
        """
        for digit in ["E", "", "55", "!", " ", 5, None, b"5"]:
            self.assertRaises(dtmf.DTMFError, dtmf.eventPackets, digit)

    def test_outOfRange(self):
        """
        A duration of no sample or beyond 0xFFFF samples, an empty interval and a volume over 63 are
        rejected.
        """
        self.assertRaises(dtmf.DTMFError, dtmf.eventPackets, "1", duration=0)
        self.assertRaises(dtmf.DTMFError, dtmf.eventPackets, "1", duration=10)
        self.assertRaises(dtmf.DTMFError, dtmf.eventPackets, "1", interval=0)
        self.assertRaises(dtmf.DTMFError, dtmf.eventPackets, "1", volume=64)

    def test_reasonIsSafe(self):
        """
        An error's reason has control characters replaced and is cut to 200 characters.
        """
        reason = dtmf.DTMFError("bad\r\nX-Injected: 1\x00" + "x" * 300).reason
        self.assertEqual(reason[:21], "bad??X-Injected: 1?xx")
        self.assertEqual(len(reason), 200)


class DTMFRelayTests(SynchronousTestCase):
    """
    C{application/dtmf-relay} SIP INFO bodies.
    """

    def test_cisco(self):
        """
        The usual body gives its digit and its duration in milliseconds.
        """
        self.assertEqual(dtmf.parseDTMFRelay(b"Signal=5\r\nDuration=160\r\n"), ("5", 160))

    def test_variants(self):
        """
        Keys in any case, LF or CR line ends, blanks around C{=}, blank lines and other keys are
        accepted.
        """
        for body, expected in [
            (b"signal=#\nDURATION=100\n", ("#", 100)),
            (b"Signal = * \r\nDuration= 250", ("*", 250)),
            (b"\r\nSignal=\t0\t\r\n\r\nDuration =80\r\n\r\n", ("0", 80)),
            (b"Signal=1\rDuration=90\r", ("1", 90)),
            (b"Signal=9\r\nVolume=10\r\nDuration=160\r\n", ("9", 160)),
            (b"Signal=d\r\n", ("D", 250)),
        ]:
            self.assertEqual(dtmf.parseDTMFRelay(body), expected, body)

    def test_durationOptional(self):
        """
        Without a C{Duration} the press lasts 250 ms.
        """
        self.assertEqual(dtmf.parseDTMFRelay(b"Signal=1"), ("1", 250))

    def test_numericSignal(self):
        """
        Event codes 10-15 as C{Signal} mean C{*#ABCD}, as Asterisk reads them.
        """
        signals = [dtmf.parseDTMFRelay(b"Signal=%d" % code)[0] for code in range(16)]
        self.assertEqual("".join(signals), dtmf.DIGITS)

    def test_rejected(self):
        """
        Bodies without a readable digit or with a malformed line or duration raise L{dtmf.DTMFError}.
        """
        for body in [
            b"", b"\r\n", b"garbage", b"Duration=100\r\n", b"Signal=\r\n", b"Signal=E", b"Signal=55",
            b"Signal=!", b"Signal=16", b"=5", b"Signal=5\r\n = 3",
            b"Signal=1\r\nDuration=abc", b"Signal=1\r\nDuration=-5",
            b"Signal=1\r\nDuration=", b"Signal=1\r\nDuration=1234567890", b"Signal=1\r\nSignal=2",
            b"Signal=\xff", b"Signal=1\r\nDuration=1\xd9\xa0", b"Signal=1\x00",
        ]:
            self.assertRaises(dtmf.DTMFError, dtmf.parseDTMFRelay, body)

    def test_oversized(self):
        """
        Bodies up to 1024 octets are read; longer ones are rejected unread.
        """
        body = b"Signal=3\r\nDuration=100\r\n"
        padded = body + b"\r\n" * ((1024 - len(body)) // 2)
        self.assertEqual(len(padded), 1024)
        self.assertEqual(dtmf.parseDTMFRelay(padded), ("3", 100))
        error = self.assertRaises(dtmf.DTMFError, dtmf.parseDTMFRelay, padded + b"\n")
        self.assertIn("1024", error.reason)

    def test_format(self):
        """
        L{dtmf.formatDTMFRelay} writes the Cisco layout, 250 ms by default.
        """
        self.assertEqual(dtmf.formatDTMFRelay("5", 160), b"Signal=5\r\nDuration=160\r\n")
        self.assertEqual(dtmf.formatDTMFRelay("b"), b"Signal=B\r\nDuration=250\r\n")

    def test_formatRoundTrip(self):
        """
        Every digit survives formatting and parsing.
        """
        for digit in dtmf.DIGITS:
            self.assertEqual(dtmf.parseDTMFRelay(dtmf.formatDTMFRelay(digit, 120)), (digit, 120))

    def test_formatRejects(self):
        """
        Unknown digits and durations that are not whole non-negative milliseconds are rejected.
        """
        self.assertRaises(dtmf.DTMFError, dtmf.formatDTMFRelay, "E")
        self.assertRaises(dtmf.DTMFError, dtmf.formatDTMFRelay, "1", -1)
        self.assertRaises(dtmf.DTMFError, dtmf.formatDTMFRelay, "1", 1.5)


class DTMFBodyTests(SynchronousTestCase):
    """
    L{dtmf.parseDTMFBody} picks the parser by content type.
    """

    def test_relay(self):
        """
        C{application/dtmf-relay}, in any case and with parameters, is parsed for its digit.
        """
        self.assertEqual(dtmf.parseDTMFBody("application/dtmf-relay", b"Signal=9\r\n"), "9")
        self.assertEqual(dtmf.parseDTMFBody(b"Application/DTMF-Relay ; x=y", b"Signal=*\r\n"), "*")

    def test_dtmf(self):
        """
        C{application/dtmf} carries the digit alone (or its event code).
        """
        self.assertEqual(dtmf.parseDTMFBody("application/dtmf", b"5"), "5")
        self.assertEqual(dtmf.parseDTMFBody("application/dtmf", b"#\r\n"), "#")
        self.assertEqual(dtmf.parseDTMFBody("APPLICATION/DTMF", b"11"), "#")

    def test_rejected(self):
        """
        Other content types and malformed bodies raise L{dtmf.DTMFError}.
        """
        for contentType, body in [
            ("text/plain", b"5"), ("application/dtmfx", b"5"), ("", b"5"), ("application/dtmf", b""),
            ("application/dtmf", b"55"), ("application/dtmf", b"Signal=5"), ("application/dtmf", b"5" * 2000),
            ("application/dtmf-relay", b"5"),
        ]:
            self.assertRaises(dtmf.DTMFError, dtmf.parseDTMFBody, contentType, body)


class FuzzTests(SynchronousTestCase):
    """
    The parsers and the receiver meet arbitrary input with L{dtmf.DTMFError} only.
    """

    def _inputs(self, seed, alphabet, seeds):
        rng = random.Random(seed)
        for _ in range(3000):
            if rng.random() < 0.5:
                yield bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 48)))
            else:
                data = bytearray(rng.choice(seeds))
                for _ in range(rng.randrange(1, 4)):
                    position = rng.randrange(len(data) + 1)
                    data[position:position + rng.randrange(0, 3)] = bytes([rng.choice(alphabet)])
                yield bytes(data)

    def test_parseEvent(self):
        """
        L{dtmf.parseEvent} returns an in-range event or raises L{dtmf.DTMFError}, whatever the bytes.
        """
        for data in self._inputs(4733, range(256), [b"\x05\x8a\x03\x20"]):
            try:
                event = dtmf.parseEvent(data)
            except dtmf.DTMFError:
                self.assertLess(len(data), 4)
            else:
                self.assertEqual(event.toBytes()[0], data[0])
                self.assertEqual(event.toBytes()[2:], data[2:4])

    def test_parseDTMFRelay(self):
        """
        L{dtmf.parseDTMFRelay} and L{dtmf.parseDTMFBody} return a digit or raise L{dtmf.DTMFError}.
        """
        alphabet = list(b"Signal=Duration \t\r\n0123456789*#ABCDabcd!-+\x00\xff")
        seeds = [b"Signal=5\r\nDuration=160\r\n", b"signal = # \n", b"Signal=11\r\n"]
        for data in self._inputs(2976, alphabet, seeds):
            for parse in [dtmf.parseDTMFRelay, lambda body: dtmf.parseDTMFBody("application/dtmf", body)]:
                try:
                    result = parse(data)
                except dtmf.DTMFError:
                    continue
                digit = result[0] if isinstance(result, tuple) else result
                self.assertIn(digit, dtmf.DIGITS)
                self.assertEqual(len(digit), 1)

    def test_receiver(self):
        """
        A receiver fed random packets reports only digits, at most one per distinct event seen.
        """
        rng = random.Random(3550)
        recorder = Recorder()
        recorder.receiver = dtmf.DTMFReceiver(recorder.onDigit, maxSources=3)
        packets = [
            _packet(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 9))),
                    rng.choice([0, 160, 2**32 - 160]), ssrc=rng.randrange(5), marker=rng.random() < 0.2)
            for _ in range(3000)
        ]
        recorder.feed(packets)
        for digit, duration in recorder.digits:
            self.assertIn(digit, dtmf.DIGITS)
            self.assertLessEqual(duration, 0xFFFF)
        receiver = recorder.receiver
        self.assertEqual(receiver.events, len(recorder.digits))
        self.assertEqual(receiver.malformed, sum(len(p.payload) < 4 for p in packets))
        self.assertLessEqual(len(receiver._sources), 3)

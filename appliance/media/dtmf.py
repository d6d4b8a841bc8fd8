"""
DTMF: RFC 4733 telephone-events carried in RTP, and the SIP INFO bodies
that carry key presses out of band (C{application/dtmf-relay}, as sent by
Cisco, Asterisk and most phones, and the bare C{application/dtmf}).

Pure code: bytes in, digits or a L{DTMFError} out; L{DTMFReceiver} keeps the
per-source state that turns the several packets of each key press into one
digit, and L{eventPackets} lists what a sender emits for one. Timing (the
RTP timestamp, when each packet leaves) belongs to the caller.
"""

import re
import struct

import attrs

#: The digits of event codes 0-15 (RFC 4733 section 3.2).
DIGITS = "0123456789*#ABCD"

#: Event code 16, hook flash (RFC 4733 section 3.2).
FLASH = 16

#: The largest SIP INFO DTMF body accepted.
MAX_BODY = 1024

#: The duration of a C{dtmf-relay} key press without a C{Duration} line.
DEFAULT_DURATION_MS = 250

_EVENT = struct.Struct("!BBH")
_UNSAFE_REASON = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_DECIMAL = re.compile(r"[0-9]{1,9}\Z")
_LINE_END = re.compile("\r\n|\r|\n")


class DTMFError(ValueError):
    """
    A malformed telephone-event payload or DTMF body, or an unknown digit.

    @ivar reason: short human-readable text without control characters (at
        most 200 characters), fit for a log line or a SIP reason phrase.
    """

    def __init__(self, reason):
        reason = _UNSAFE_REASON.sub("?", str(reason))[:200]
        ValueError.__init__(self, reason)
        self.reason = reason


def _inRange(maximum):
    def check(instance, attribute, value):
        if type(value) is not int or not 0 <= value <= maximum:
            raise DTMFError(f"{attribute.name} must be an integer from 0 to {maximum}")

    return check


@attrs.frozen
class TelephoneEvent:
    """
    One RFC 4733 section 2.3 event payload: event code (8 bits), E (end)
    bit, R (reserved) bit, volume (6 bits, -dBm0) and duration (16 bits, in
    RTP timestamp units since the event's RTP timestamp).

    @raise DTMFError: when a field is out of its range.
    """

    event: int = attrs.field(validator=_inRange(0xFF))
    end: bool = attrs.field(converter=bool)
    volume: int = attrs.field(validator=_inRange(0x3F))
    duration: int = attrs.field(validator=_inRange(0xFFFF))

    @property
    def digit(self):
        """
        The DTMF digit of events 0-15, C{None} for any other event.
        """
        return DIGITS[self.event] if self.event < len(DIGITS) else None

    @property
    def name(self):
        """
        The digit, C{"flash"} for event 16, C{None} for other events.
        """
        return "flash" if self.event == FLASH else self.digit

    def toBytes(self):
        """
        The 4-octet payload, R bit clear (RFC 4733 section 2.3).
        """
        return _EVENT.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)


def parseEvent(payload):
    """
    Parse a telephone-event payload (RFC 4733 section 2.3), ignoring the R
    bit. A payload packing several 4-octet events (RFC 4733 section
    2.5.1.5) yields its first, the one the RTP timestamp refers to.

    @raise DTMFError: when the payload is shorter than 4 octets.
    """
    if len(payload) < 4:
        raise DTMFError("telephone-event payload shorter than 4 octets")
    event, flags, duration = _EVENT.unpack(bytes(payload[:4]))
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


def _eventCode(digit):
    if not isinstance(digit, str) or len(digit) != 1 or digit.upper() not in DIGITS:
        raise DTMFError(f"not a DTMF digit: {digit!r}")
    return DIGITS.index(digit.upper())


@attrs.define
class _LastEvent:
    timestamp: int
    event: int
    ended: bool
    duration: int


class DTMFReceiver:
    """
    Turns telephone-event RTP packets into key presses, one per event.

    An event is identified by its SSRC and RTP timestamp (RFC 4733 section
    2.5.2): the first packet seen with a new timestamp is reported at
    once, and its updates, its three end packets (RFC 4733 section 2.5.1.4)
    and any retransmission or late copy are ignored. A new timestamp starts
    a new event even when the previous one never ended; a packet of an
    event older than the last one is ignored, unless it is more than
    C{lateWindow} units older, which is taken as the sender's timestamps
    jumping back. The next segment of an event longer than 0xFFFF units
    (RFC 4733 section 2.5.1.3: a new timestamp within the span the event
    already covered, same code, no end seen) is not reported again.

    @param onDigit: called with C{(digit, durationSamples)}, the duration as
        known from the first packet seen of the event.
    @param maxSources: how many SSRCs are remembered (least recently heard
        forgotten first), so memory is bounded whatever arrives.

    @ivar events: how many digits were reported.
    @ivar ignored: how many events were not digits (hook flash, tones).
    @ivar late: how many packets belonged to an event older than the last.
    @ivar malformed: how many packets had an unreadable payload.
    """

    def __init__(self, onDigit, maxSources=8, lateWindow=2**22):
        self._onDigit = onDigit
        self._maxSources = maxSources
        self._lateWindow = lateWindow
        self._sources = {}
        self.events = 0
        self.ignored = 0
        self.late = 0
        self.malformed = 0

    def packetReceived(self, packet):
        """
        Take one RTP packet (an L{appliance.media.rtp.RTPPacket}) whose
        payload type was negotiated for telephone-event.
        """
        try:
            event = parseEvent(packet.payload)
        except DTMFError:
            self.malformed += 1
            return
        timestamp = packet.timestamp & 0xFFFFFFFF
        # Re-inserted on every packet: the dict's order is least recently heard first.
        last = self._sources.pop(packet.ssrc, None)
        if last is not None:
            self._sources[packet.ssrc] = last
            distance = (timestamp - last.timestamp) & 0xFFFFFFFF
            if distance == 0:
                last.ended = last.ended or event.end
                last.duration = max(last.duration, event.duration)
                return
            if distance >= 0x80000000 and 0x100000000 - distance <= self._lateWindow:
                self.late += 1
                return
            if (distance <= last.duration and event.event == last.event and not last.ended
                    and not packet.marker):
                last.timestamp, last.ended, last.duration = timestamp, event.end, event.duration
                return
        elif len(self._sources) >= self._maxSources:
            del self._sources[next(iter(self._sources))]
        self._sources[packet.ssrc] = _LastEvent(timestamp, event.event, event.end, event.duration)
        if event.digit is None:
            self.ignored += 1
            return
        self.events += 1
        self._onDigit(event.digit, event.duration)


def eventPackets(digit, duration=0.1, volume=10, interval=0.02, rate=8000):
    """
    The packets a sender emits for one key press (RFC 4733 section 2.5.1):
    the first with the marker bit, an update every C{interval} carrying the
    duration up to the end of its interval, and the end packet three times
    at the same interval with the final duration (section 2.5.1.4). All
    share the event's RTP timestamp, which is the caller's to choose.

    @param duration: the key press, in seconds (at most 0xFFFF samples).
    @param volume: the power level, 0 to 63 (-dBm0).
    @return: a list of C{(offsetSeconds, marker, payloadBytes)}.
    @raise DTMFError: for an unknown digit or a duration, volume or
        interval out of range.
    """
    code = _eventCode(digit)
    total = int(round(duration * rate))
    step = int(round(interval * rate))
    if not 0 < total <= 0xFFFF:
        raise DTMFError("duration must be from one sample to 0xFFFF samples")
    if step <= 0:
        raise DTMFError("interval must be at least one sample")
    updates = -(-total // step)
    packets = []
    for index in range(updates - 1):
        payload = TelephoneEvent(code, False, volume, (index + 1) * step).toBytes()
        packets.append((index * interval, index == 0, payload))
    end = TelephoneEvent(code, True, volume, total).toBytes()
    for index in range(updates - 1, updates + 2):
        packets.append((index * interval, index == 0, end))
    return packets


def _signal(text):
    """
    A C{Signal} value: a digit, or an event code from 0 to 15 (Asterisk
    also sends C{10} for C{*} and C{11} for C{#}).
    """
    if _DECIMAL.match(text) and len(text) <= 2:
        code = int(text)
        if code < len(DIGITS):
            return DIGITS[code]
    if text in ("!", "16"):
        raise DTMFError("hook flash is not a DTMF digit")
    return DIGITS[_eventCode(text)]


def _checkBody(body):
    if len(body) > MAX_BODY:
        raise DTMFError(f"DTMF body longer than {MAX_BODY} octets")
    try:
        return bytes(body).decode("ascii")
    except UnicodeDecodeError:
        raise DTMFError("DTMF body is not ASCII")


def parseDTMFRelay(body):
    """
    Parse an C{application/dtmf-relay} SIP INFO body, such as
    C{b"Signal=5\\r\\nDuration=160\\r\\n"}: C{Signal} and the optional
    C{Duration} (milliseconds), keys in any case, lines ended by CRLF or LF,
    blanks around C{=}; other keys are ignored.

    @return: C{(digit, durationMs)}, C{durationMs} defaulting to 250.
    @raise DTMFError: for an oversized, unreadable or digitless body.
    """
    fields = {}
    for line in _LINE_END.split(_checkBody(body)):
        line = line.strip(" \t")
        if not line:
            continue
        key, equals, value = line.partition("=")
        key = key.strip(" \t").lower()
        if not equals or not key:
            raise DTMFError("dtmf-relay line is not key=value")
        if key in fields:
            raise DTMFError(f"repeated dtmf-relay key {key}")
        fields[key] = value.strip(" \t")
    if "signal" not in fields:
        raise DTMFError("dtmf-relay body without Signal")
    durationMs = DEFAULT_DURATION_MS
    if "duration" in fields:
        if not _DECIMAL.match(fields["duration"]):
            raise DTMFError("dtmf-relay Duration is not a number of milliseconds")
        durationMs = int(fields["duration"])
    return _signal(fields["signal"]), durationMs


def formatDTMFRelay(digit, durationMs=DEFAULT_DURATION_MS):
    """
    An C{application/dtmf-relay} body for one key press.

    @raise DTMFError: for an unknown digit or a negative duration.
    """
    code = _eventCode(digit)
    if type(durationMs) is not int or not 0 <= durationMs <= 999999999:
        raise DTMFError("duration must be a whole number of milliseconds")
    return b"Signal=%s\r\nDuration=%d\r\n" % (DIGITS[code].encode("ascii"), durationMs)


def parseDTMFBody(contentType, body):
    """
    The digit of a SIP INFO key press: C{application/dtmf-relay}, or
    C{application/dtmf} whose body is the digit alone (the RFC 2976 INFO
    usage common among phones). Media type parameters are ignored.

    @param contentType: the Content-Type value, C{str} or C{bytes}.
    @raise DTMFError: for another content type or a malformed body.
    """
    if isinstance(contentType, bytes):
        contentType = contentType.decode("latin-1")
    mediaType = contentType.split(";", 1)[0].strip(" \t").lower()
    if mediaType == "application/dtmf-relay":
        return parseDTMFRelay(body)[0]
    if mediaType == "application/dtmf":
        return _signal(_checkBody(body).strip(" \t\r\n"))
    raise DTMFError("not a DTMF content type")

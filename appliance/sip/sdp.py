"""
SDP session descriptions (RFC 4566), the RFC 3264 offer / answer model for audio, and the C{a=drm}
attribute of the secure SIP media server design.

Pure code: stdlib and attrs only.  L{parseSDP} takes bytes (or str) and gives a frozen
L{SessionDescription} or raises L{SDPError}, and nothing else, whatever the input;
L{SessionDescription.toBytes} writes it back with CRLF line ends in the order of RFC 4566 section 5,
so C{parseSDP(d.toBytes()) == d} for every parsed C{d}.

Strict where it matters: C{v=0}, C{o=}, C{s=} come first in that order, C{m=} sections follow every
session-level line, single-valued lines appear once, unknown line types are refused (RFC 4566 section 5),
and every stream has a C{c=} line (section 5.7).  Tolerant of LF-only line ends, trailing blanks, blank
lines, runs of spaces between fields, and a missing C{t=} line (read as C{t=0 0}).

C{a=drm:<type> <address> <port> <transport>} names a DRM scheme and the license server to use with it.
An offer lists the schemes its sender can use, most preferred first; an offerer that has no license server
of its own (a phone retrieving protected messages) writes C{0.0.0.0 0}.  The answer carries exactly one
C{a=drm} line: the first offered scheme the answerer supports (same type and transport), with the
answerer's license server.  If none is supported the answer is the I{refusal form}: the first offered type
and transport with address C{0.0.0.0} and port 0, as RFC 3264 section 6 rejects a stream with port 0.
"""

import ipaddress
import re
import time

import attrs

__all__ = [
    "MAX_SIZE", "MAX_MEDIA", "DIRECTIONS", "STATIC_PAYLOAD_TYPES", "DEFAULT_CODECS", "SDPError",
    "Origin", "Connection", "Timing", "RTPMap", "MediaDescription", "SessionDescription", "parseSDP",
    "direction", "DRMOffer", "parseDRM", "formatDRM", "drmOffers", "answerDRM", "withDRM",
    "makeOffer", "answer",
]

MAX_SIZE = 65536  # largest session description accepted, in octets
MAX_MEDIA = 64  # most media sections accepted
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")  # RFC 3264 section 5.1; sendrecv by default
# Audio payload types of RFC 3551 section 6 (table 4), known without an a=rtpmap.
STATIC_PAYLOAD_TYPES = {
    0: ("PCMU", 8000, 1), 3: ("GSM", 8000, 1), 4: ("G723", 8000, 1), 5: ("DVI4", 8000, 1),
    6: ("DVI4", 16000, 1), 7: ("LPC", 8000, 1), 8: ("PCMA", 8000, 1), 9: ("G722", 8000, 1),
    10: ("L16", 44100, 2), 11: ("L16", 44100, 1), 12: ("QCELP", 8000, 1), 13: ("CN", 8000, 1),
    14: ("MPA", 90000, 1), 15: ("G728", 8000, 1), 16: ("DVI4", 11025, 1), 17: ("DVI4", 22050, 1),
    18: ("G729", 8000, 1),
}
# What the appliance's user agents send and receive: G.711 and RFC 4733 DTMF events, all at 8 kHz.
DEFAULT_CODECS = ("PCMU", "PCMA", "telephone-event")
# Preferred dynamic payload type and fmtp of codecs without a static one (RFC 4733 section 7.1.1).
_DYNAMIC = {"TELEPHONE-EVENT": (101, "0-16")}

_TYPES = frozenset("vosiuepcbtrzkam")
_SINGLE = frozenset("iuczk")
_MEDIA_TYPES = frozenset("icbka")
# token-char of RFC 4566 section 9.
_TOKEN = re.compile(r"[!#-'*+\-.0-9A-Z^-~]+\Z")
_PROTO = re.compile(r"[!#-'*+\-.0-9A-Z^-~]+(?:/[!#-'*+\-.0-9A-Z^-~]+)*\Z")
_VISIBLE = re.compile(r"[^\x00-\x20\x7f]+\Z")
_HOST = re.compile(r"[A-Za-z0-9\-._:]+\Z")
_UNSAFE_REASON = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


class SDPError(ValueError):
    """
    A malformed session description, attribute or offer.

    @ivar reason: short human-readable text without control characters (at most 200 characters), fit for a
        SIP Warning header (a UA answers such an offer with 488 or 400).
    """

    def __init__(self, reason):
        reason = _UNSAFE_REASON.sub("?", str(reason))[:200]
        ValueError.__init__(self, reason)
        self.reason = reason


def _decimal(text, what, maximum):
    """
    Parse C{1*DIGIT} no greater than C{maximum}, never converting an overlong string.
    """
    if not text.isascii() or not text.isdigit() or len(text.lstrip("0")) > len(str(maximum)):
        raise SDPError("bad %s: %r" % (what, text[:40]))
    value = int(text)
    if value > maximum:
        raise SDPError("%s out of range: %r" % (what, text[:40]))
    return value


def _match(pattern, text, what):
    if not pattern.match(text):
        raise SDPError("bad %s: %r" % (what, text[:40]))
    return text


@attrs.frozen
class Origin:
    """
    The C{o=} line (RFC 4566 section 5.2): who made the description, its session id and version.
    """

    username: str
    sessionId: int
    sessionVersion: int
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"

    def __str__(self):
        return "%s %d %d %s %s %s" % (
            self.username, self.sessionId, self.sessionVersion, self.nettype, self.addrtype, self.address)


@attrs.frozen
class Connection:
    """
    A C{c=} line (RFC 4566 section 5.7); C{address} keeps any multicast C{/ttl/count} suffix.
    """

    nettype: str
    addrtype: str
    address: str

    @classmethod
    def forAddress(cls, address):
        """
        The C{IN IP4} or C{IN IP6} connection for an address (a host name counts as IP4).
        """
        try:
            family = "IP%d" % (ipaddress.ip_address(address).version,)
        except ValueError:
            family = "IP4"
        return cls("IN", family, address)

    def __str__(self):
        return "%s %s %s" % (self.nettype, self.addrtype, self.address)


@attrs.frozen
class Timing:
    """
    A C{t=} line and the C{r=} lines after it (RFC 4566 sections 5.9 and 5.10), repeats kept as text.
    """

    start: int = 0
    stop: int = 0
    repeats: tuple = attrs.field(default=(), converter=tuple)


@attrs.frozen
class RTPMap:
    """
    An RTP payload type's encoding (RFC 4566 section 6 C{a=rtpmap}; RFC 3551 section 6 static types).
    """

    payloadType: int
    encoding: str
    clockRate: int
    channels: int = 1

    def __str__(self):
        suffix = "/%d" % (self.channels,) if self.channels != 1 else ""
        return "%d %s/%d%s" % (self.payloadType, self.encoding, self.clockRate, suffix)

    def key(self):
        """
        What identifies the codec regardless of payload type: upper-case name, clock rate, channels.
        """
        return (self.encoding.upper(), self.clockRate, self.channels)


def _parseRTPMap(value):
    number, _, rest = value.partition(" ")
    parts = rest.strip().split("/")
    if len(parts) not in (2, 3) or not _TOKEN.match(parts[0]):
        raise SDPError("bad rtpmap: %r" % (value[:40],))
    channels = _decimal(parts[2], "rtpmap channels", 255) if len(parts) == 3 else 1
    return RTPMap(_decimal(number, "payload type", 127), parts[0],
                  _decimal(parts[1], "clock rate", 10 ** 9), channels)


def _optional(*lines):
    return ["%s%s" % (prefix, value) for prefix, value in lines if value is not None]


class _Attributes:
    """
    Look-ups shared by sessions and media over C{attributes}, a tuple of C{(name, value or None)}.
    """

    def attributeValues(self, name):
        """
        The values of every C{a=name} line, in order (C{None} for a property attribute).
        """
        return tuple(value for key, value in self.attributes if key == name)

    def hasAttribute(self, name):
        """
        Whether there is an C{a=name} line.
        """
        return any(key == name for key, _ in self.attributes)

    def _lines(self):
        for name, value in self.attributes:
            yield "a=" + name if value is None else "a=%s:%s" % (name, value)


@attrs.frozen
class MediaDescription(_Attributes):
    """
    An C{m=} section (RFC 4566 section 5.14): media type, port (and port count), protocol, formats and the
    section's C{i=}, C{c=}, C{b=}, C{k=} and C{a=} lines.
    """

    media: str
    port: int
    proto: str
    formats: tuple = attrs.field(converter=tuple)
    portCount: int = None
    information: str = None
    connection: Connection = None
    bandwidths: tuple = attrs.field(default=(), converter=tuple)
    key: str = None
    attributes: tuple = attrs.field(default=(), converter=tuple)

    def rtpmap(self, payloadType):
        """
        The encoding of a payload type: its C{a=rtpmap}, else the RFC 3551 static one, else C{None}.

        @raise SDPError: for a malformed rtpmap of that payload type.
        """
        prefix = "%d " % (payloadType,)
        for value in self.attributeValues("rtpmap"):
            if value is not None and value.startswith(prefix):
                return _parseRTPMap(value)
        static = STATIC_PAYLOAD_TYPES.get(payloadType)
        return RTPMap(payloadType, *static) if static else None

    def fmtp(self, payloadType):
        """
        The format parameters of a payload type (its C{a=fmtp} value after the number), or C{None}.
        """
        prefix = "%d " % (payloadType,)
        for value in self.attributeValues("fmtp"):
            if value is not None and value.startswith(prefix):
                return value[len(prefix):].strip()
        return None

    def codecs(self):
        """
        The L{RTPMap} of each format in offer order, skipping formats that are not known payload types.
        """
        found = []
        for fmt in self.formats:
            if fmt.isascii() and fmt.isdigit() and len(fmt) <= 3 and int(fmt) <= 127:
                rtpmap = self.rtpmap(int(fmt))
                if rtpmap is not None:
                    found.append(rtpmap)
        return tuple(found)

    def _lines(self):
        port = "%d/%d" % (self.port, self.portCount) if self.portCount is not None else str(self.port)
        yield "m=%s %s %s %s" % (self.media, port, self.proto, " ".join(self.formats))
        yield from _optional(("i=", self.information), ("c=", self.connection))
        for bandwidth in self.bandwidths:
            yield "b=%s:%d" % bandwidth
        yield from _optional(("k=", self.key))
        yield from _Attributes._lines(self)


@attrs.frozen
class SessionDescription(_Attributes):
    """
    A whole session description (RFC 4566 section 5): session-level lines and the media sections.
    """

    origin: Origin
    name: str = ""
    version: int = 0
    information: str = None
    uri: str = None
    emails: tuple = attrs.field(default=(), converter=tuple)
    phones: tuple = attrs.field(default=(), converter=tuple)
    connection: Connection = None
    bandwidths: tuple = attrs.field(default=(), converter=tuple)
    times: tuple = attrs.field(default=(Timing(),), converter=tuple)
    timeZones: str = None
    key: str = None
    attributes: tuple = attrs.field(default=(), converter=tuple)
    media: tuple = attrs.field(default=(), converter=tuple)

    def connectionFor(self, media):
        """
        The connection of a media section: its own C{c=}, else the session's (RFC 4566 section 5.7).
        """
        return media.connection or self.connection

    def toBytes(self):
        """
        The description as UTF-8 with CRLF line ends, lines in the order of RFC 4566 section 5.

        @raise SDPError: if a value would break the line structure (CR, LF or NUL).
        """
        lines = ["v=%d" % (self.version,), "o=%s" % (self.origin,), "s=" + (self.name or " ")]
        lines.extend(_optional(("i=", self.information), ("u=", self.uri)))
        lines.extend("e=" + email for email in self.emails)
        lines.extend("p=" + phone for phone in self.phones)
        lines.extend(_optional(("c=", self.connection)))
        lines.extend("b=%s:%d" % bandwidth for bandwidth in self.bandwidths)
        for timing in self.times or (Timing(),):
            lines.append("t=%d %d" % (timing.start, timing.stop))
            lines.extend("r=" + repeat for repeat in timing.repeats)
        lines.extend(_optional(("z=", self.timeZones), ("k=", self.key)))
        lines.extend(_Attributes._lines(self))
        for media in self.media:
            lines.extend(media._lines())
        text = "\r\n".join(lines) + "\r\n"
        if "\0" in text or text.count("\n") != len(lines) or text.count("\r") != len(lines):
            raise SDPError("a value contains CR, LF or NUL")
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            raise SDPError("a value is not encodable as UTF-8")


def _fields(value, what, count=None, least=None):
    fields = value.split()
    if (count is not None and len(fields) != count) or (least is not None and len(fields) < least):
        raise SDPError("bad %s line: %r" % (what, value[:40]))
    return fields


def _parseOrigin(value):
    username, sessionId, sessionVersion, nettype, addrtype, address = _fields(value, "o=", 6)
    return Origin(_match(_VISIBLE, username, "o= username"),
                  _decimal(sessionId, "session id", 10 ** 20 - 1),
                  _decimal(sessionVersion, "session version", 10 ** 20 - 1),
                  _match(_TOKEN, nettype, "nettype"), _match(_TOKEN, addrtype, "addrtype"),
                  _match(_VISIBLE, address, "o= address"))


def _parseConnection(value):
    nettype, addrtype, address = _fields(value, "c=", 3)
    return Connection(_match(_TOKEN, nettype, "nettype"), _match(_TOKEN, addrtype, "addrtype"),
                      _match(_VISIBLE, address, "connection address"))


def _parseBandwidth(value):
    bwtype, colon, number = value.partition(":")
    if not colon:
        raise SDPError("bad b= line: %r" % (value[:40],))
    return (_match(_TOKEN, bwtype, "bwtype"), _decimal(number.strip(), "bandwidth", 10 ** 12))


def _parseAttribute(value):
    name, colon, rest = value.partition(":")
    return (_match(_TOKEN, name, "attribute name"), rest if colon else None)


def _parseMedia(value):
    fields = _fields(value, "m=", least=4)
    port, slash, count = fields[1].partition("/")
    return MediaDescription(
        media=_match(_TOKEN, fields[0], "media type"), port=_decimal(port, "port", 65535),
        portCount=_decimal(count, "port count", 65535) if slash else None,
        proto=_match(_PROTO, fields[2], "proto"),
        formats=[_match(_TOKEN, fmt, "format") for fmt in fields[3:]])


def _splitLines(data):
    if len(data) > MAX_SIZE:
        raise SDPError("session description larger than %d octets" % (MAX_SIZE,))
    try:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8")
        text.encode("utf-8")
    except UnicodeError:
        raise SDPError("session description is not UTF-8")
    if "\0" in text:
        raise SDPError("NUL in the session description")
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        if "\r" in line:
            raise SDPError("bare CR in the session description")
        line = line.rstrip(" \t")
        if line:
            yield line


def parseSDP(data):
    """
    Parse a session description (RFC 4566 section 5).

    @param data: C{bytes} (UTF-8) or C{str}.
    @rtype: L{SessionDescription}
    @raise SDPError: for anything malformed, too large (over L{MAX_SIZE} octets or L{MAX_MEDIA} media
        sections), out of order or of an unknown line type.
    """
    session = {"emails": [], "phones": [], "bandwidths": [], "times": [], "attributes": []}
    mediaList = []
    current = session
    previous = None
    for index, line in enumerate(_splitLines(data)):
        kind, value = line[0], line[2:]
        if line[1:2] != "=" or kind not in _TYPES:
            raise SDPError("malformed or unknown line: %r" % (line[:20],))
        expected = "vos"[index] if index < 3 else None
        if expected is not None and kind != expected:
            raise SDPError("%s= line where %s= is expected (RFC 4566 section 5)" % (kind, expected))
        if expected is None and kind in "vos":
            raise SDPError("more than one %s= line" % (kind,))
        if kind == "v":
            if value != "0":
                raise SDPError("unsupported SDP version %r" % (value[:20],))
        elif kind == "o":
            session["origin"] = _parseOrigin(value)
        elif kind == "s":
            session["name"] = value
        elif kind == "m":
            if len(mediaList) >= MAX_MEDIA:
                raise SDPError("more than %d media sections" % (MAX_MEDIA,))
            current = {"first": _parseMedia(value), "bandwidths": [], "attributes": []}
            mediaList.append(current)
        elif current is not session and kind not in _MEDIA_TYPES:
            raise SDPError("%s= line in a media section (RFC 4566 section 5)" % (kind,))
        elif kind in _SINGLE and kind in current:
            raise SDPError("more than one %s= line" % (kind,))
        elif kind == "r" and previous not in ("t", "r"):
            raise SDPError("r= line not after a t= line")
        elif kind in "iuzk":
            current[kind] = value
        elif kind in "ep":
            current["emails" if kind == "e" else "phones"].append(value)
        elif kind == "c":
            current[kind] = _parseConnection(value)
        elif kind == "b":
            current["bandwidths"].append(_parseBandwidth(value))
        elif kind == "t":
            start, stop = _fields(value, "t=", 2)
            session["times"].append(Timing(_decimal(start, "start time", 10 ** 20 - 1),
                                           _decimal(stop, "stop time", 10 ** 20 - 1)))
        elif kind == "r":
            last = session["times"][-1]
            session["times"][-1] = attrs.evolve(last, repeats=last.repeats + (value,))
        else:
            current["attributes"].append(_parseAttribute(value))
        previous = kind
    if "name" not in session:
        raise SDPError("missing v=, o= or s= line")
    media = []
    for number, section in enumerate(mediaList):
        if "c" not in section and "c" not in session:
            raise SDPError("no c= line for media section %d (RFC 4566 section 5.7)" % (number + 1,))
        media.append(attrs.evolve(
            section["first"], information=section.get("i"), connection=section.get("c"),
            bandwidths=section["bandwidths"], key=section.get("k"), attributes=section["attributes"]))
    return SessionDescription(
        origin=session["origin"], name=session["name"], information=session.get("i"),
        uri=session.get("u"), emails=session["emails"], phones=session["phones"],
        connection=session.get("c"), bandwidths=session["bandwidths"],
        times=session["times"] or [Timing()], timeZones=session.get("z"), key=session.get("k"),
        attributes=session["attributes"], media=media)


def direction(description, media=None):
    """
    The direction of a media section (RFC 3264 section 5.1): its own attribute, else the session's, else
    C{"sendrecv"}.  With no C{media}, the session-level direction.
    """
    for holder in (media, description):
        if holder is not None:
            for name, value in holder.attributes:
                if value is None and name in DIRECTIONS:
                    return name
    return "sendrecv"


_direction = direction


# The a=drm attribute.

@attrs.frozen
class DRMOffer:
    """
    One C{a=drm} line: a DRM scheme, the license server's address and port, and the transport to reach it.
    """

    type: str
    address: str = "0.0.0.0"
    port: int = 0
    transport: str = "TLS"

    @property
    def hasServer(self):
        """
        Whether a license server is named, that is neither the address nor the port is zero; in an answer,
        C{False} is the refusal form.
        """
        try:
            return self.port != 0 and not ipaddress.ip_address(self.address).is_unspecified
        except ValueError:
            return self.port != 0


def parseDRM(value):
    """
    Parse the value of an C{a=drm} attribute: C{<type> <address> <port> <transport>}.

    @raise SDPError: if malformed.
    """
    if value is None:
        raise SDPError("a=drm without a value")
    drmType, address, port, transport = _fields(value, "a=drm", 4)
    return DRMOffer(_match(_TOKEN, drmType, "drm type"), _match(_HOST, address, "drm address"),
                    _decimal(port, "drm port", 65535), _match(_PROTO, transport, "drm transport"))


def formatDRM(offer):
    """
    The C{a=drm} attribute value of a L{DRMOffer}.

    @raise SDPError: if a field would not parse back to the same offer.
    """
    value = "%s %s %s %s" % (offer.type, offer.address, offer.port, offer.transport)
    if not isinstance(offer.port, int) or parseDRM(value) != offer:
        raise SDPError("not a valid a=drm offer: %r" % (value[:60],))
    return value


def drmOffers(description, media=None):
    """
    The C{a=drm} offers that apply, in preference order: for a media section its own lines, else the
    session's; with no C{media}, the session's and then every section's, without repeats.

    @raise SDPError: for a malformed C{a=drm} line.
    """
    if media is not None:
        values = media.attributeValues("drm") or description.attributeValues("drm")
    else:
        values = description.attributeValues("drm")
        for section in description.media:
            values += section.attributeValues("drm")
    offers = []
    for value in values:
        offer = parseDRM(value)
        if offer not in offers:
            offers.append(offer)
    return tuple(offers)


def answerDRM(offers, supported):
    """
    Choose the C{a=drm} answer: the first offer whose type (and transport, for a L{DRMOffer} in
    C{supported}) the answerer supports, case-insensitively.

    @param supported: type names and / or L{DRMOffer}s naming the answerer's own license server.
    @return: the supported L{DRMOffer} when it names a server, else the chosen offer as offered; the refusal
        form (first offered type and transport, C{0.0.0.0}, port 0) when none is supported; C{None} when
        nothing was offered.
    """
    offers = list(offers)
    supported = [supported] if isinstance(supported, str) else list(supported)
    for offer in offers:
        for entry in supported:
            if isinstance(entry, str):
                if entry.lower() == offer.type.lower():
                    return offer
            elif (entry.type.lower(), entry.transport.lower()) == (offer.type.lower(),
                                                                     offer.transport.lower()):
                return entry if entry.hasServer else offer
    if not offers:
        return None
    return DRMOffer(offers[0].type, "0.0.0.0", 0, offers[0].transport)


def withDRM(description, offers, media=None):
    """
    A copy of C{description} whose C{a=drm} lines (at session level, or of the media section at index
    C{media}) are replaced by C{offers}, in order.
    """
    def replace(holder):
        kept = [item for item in holder.attributes if item[0] != "drm"]
        return attrs.evolve(holder, attributes=kept + [("drm", formatDRM(offer)) for offer in offers])
    if media is None:
        return replace(description)
    sections = list(description.media)
    sections[media] = replace(sections[media])
    return attrs.evolve(description, media=sections)


# RFC 3264 offer / answer for one audio stream.

def _codecKey(spec):
    """
    C{"PCMU"} or C{"opus/48000/2"} as an L{RTPMap.key} (8000 Hz and one channel by default).
    """
    parts = spec.split("/")
    rate = int(parts[1]) if len(parts) > 1 else 8000
    return (parts[0].upper(), rate, int(parts[2]) if len(parts) > 2 else 1)


def _newOrigin(address, sessionId, sessionVersion, username):
    if sessionId is None:
        sessionId = int(time.time()) + 2208988800  # an NTP timestamp, RFC 4566 section 5.2
    connection = Connection.forAddress(address)
    return Origin(username, sessionId, sessionVersion, connection.nettype, connection.addrtype, address)


def makeOffer(address, port, codecs=DEFAULT_CODECS, direction="sendrecv", drm=(), sessionId=None,
              sessionVersion=0, username="-", ptime=None):
    """
    An offer of one RTP/AVP audio stream (RFC 3264 section 5): static payload types where RFC 3551 has one,
    101 for telephone-event (with C{fmtp 0-16}), 96 upwards for other codecs, an rtpmap for each; the
    direction attribute; the C{drm} offers at session level.
    """
    if direction not in DIRECTIONS:
        raise ValueError("unknown direction %r" % (direction,))
    static = {value: number for number, value in STATIC_PAYLOAD_TYPES.items()}
    maps, attributes, used = [], [], set()
    for spec in codecs:
        key = _codecKey(spec)
        number, fmtp = static.get(key), None
        if number is None:
            number, fmtp = _DYNAMIC.get(key[0], (96, None))
            while number in used:
                number = number + 1 if number < 127 else 96
        used.add(number)
        maps.append(RTPMap(number, spec.split("/")[0], key[1], key[2]))
        attributes.append(("rtpmap", str(maps[-1])))
        if fmtp:
            attributes.append(("fmtp", "%d %s" % (number, fmtp)))
    if ptime:
        attributes.append(("ptime", str(ptime)))
    attributes.append((direction, None))
    media = MediaDescription("audio", port, "RTP/AVP", [str(rtpmap.payloadType) for rtpmap in maps],
                             attributes=attributes)
    offer = SessionDescription(origin=_newOrigin(address, sessionId, sessionVersion, username), name="-",
                               connection=Connection.forAddress(address), media=[media])
    return withDRM(offer, drm) if drm else offer


def _answerDirection(offered, ours, offererReceives=True):
    send = ours in ("sendrecv", "sendonly") and offered in ("sendrecv", "recvonly") and offererReceives
    receive = ours in ("sendrecv", "recvonly") and offered in ("sendrecv", "sendonly")
    return {(True, True): "sendrecv", (True, False): "sendonly",
            (False, True): "recvonly", (False, False): "inactive"}[send, receive]


def answer(offer, address, port, supportedCodecs=DEFAULT_CODECS, direction="sendrecv", drm=None,
           sessionId=None, sessionVersion=0, username="-"):
    """
    Answer an offer (RFC 3264 section 6) for a user agent with one RTP endpoint at C{address}, C{port}.

    The answer has as many C{m=} lines as the offer, in the same order.  The first RTP/AVP audio stream with
    a port and at least one supported codec besides telephone-event is accepted with the common codecs in
    the offerer's order and payload types, their rtpmap and fmtp; its direction mirrors the offer's
    (C{sendonly} gets C{recvonly}...) within C{direction}, and an offered C{c=0.0.0.0} (RFC 3264 section
    8.4 hold) counts as not receiving.  Every other stream is rejected with port 0.  The C{t=} lines are the
    offer's.  With C{drm} (type names or L{DRMOffer}s, see L{answerDRM}) and C{a=drm} offers, the answer
    carries one C{a=drm} line where the offer had them.

    @param offer: a L{SessionDescription}.
    @raise SDPError: for a malformed rtpmap or C{a=drm} in the offer.
    """
    if direction not in DIRECTIONS:
        raise ValueError("unknown direction %r" % (direction,))
    supported = {_codecKey(spec) for spec in supportedCodecs}
    sessionAttributes = []
    if drm is not None and offer.attributeValues("drm"):
        offers = [parseDRM(value) for value in offer.attributeValues("drm")]
        sessionAttributes.append(("drm", formatDRM(answerDRM(offers, drm))))
    sections, accepted = [], False
    for media in offer.media:
        common = ()
        if not accepted and media.media == "audio" and media.proto.upper() == "RTP/AVP" and media.port:
            common = [rtpmap for rtpmap in media.codecs() if rtpmap.key() in supported]
        if not any(rtpmap.key()[0] != "TELEPHONE-EVENT" for rtpmap in common):
            sections.append(MediaDescription(media.media, 0, media.proto, media.formats))
            continue
        accepted = True
        attributes = []
        for rtpmap in common:
            attributes.append(("rtpmap", str(rtpmap)))
            fmtp = media.fmtp(rtpmap.payloadType)
            if fmtp is not None:
                attributes.append(("fmtp", "%d %s" % (rtpmap.payloadType, fmtp)))
        connection = offer.connectionFor(media)
        receives = connection is None or connection.address.split("/")[0] not in ("0.0.0.0", "::")
        attributes.append((_answerDirection(_direction(offer, media), direction, receives), None))
        if drm is not None and media.attributeValues("drm"):
            attributes.append(("drm", formatDRM(answerDRM(drmOffers(offer, media), drm))))
        sections.append(MediaDescription("audio", port, media.proto,
                                         [str(rtpmap.payloadType) for rtpmap in common],
                                         attributes=attributes))
    return SessionDescription(
        origin=_newOrigin(address, sessionId, sessionVersion, username), name="-",
        connection=Connection.forAddress(address), times=offer.times, attributes=sessionAttributes,
        media=sections)

"""
RTSP/1.0 messages (RFC 2326): parsing, serializing and the header grammars
the server needs, with no Twisted imports.

L{StreamParser} frames a TCP byte stream into L{Request}s, L{Response}s and
L{InterleavedFrame}s (RFC 2326 section 10.12: C{$}, channel, 16-bit length,
data), which may be mixed in any order on one connection. Anything
malformed raises L{ParseError}, whose C{status} is the response the server
should give (400, 413 for a too large message, 431-like limits as 400,
505 for another RTSP version); after a ParseError the stream cannot be
resynchronised and the connection should be closed.
"""

import re

import attrs

RTSP_VERSION = "RTSP/1.0"

#: Reason phrases (RFC 2326 section 7.1.1).
REASONS = {
    200: "OK", 201: "Created", 250: "Low on Storage Space",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 408: "Request Time-out",
    413: "Request Entity Too Large", 414: "Request-URI Too Large",
    415: "Unsupported Media Type", 451: "Parameter Not Understood",
    453: "Not Enough Bandwidth", 454: "Session Not Found",
    455: "Method Not Valid in This State", 456: "Header Field Not Valid for Resource",
    457: "Invalid Range", 458: "Parameter Is Read-Only",
    459: "Aggregate operation not allowed", 460: "Only aggregate operation allowed",
    461: "Unsupported transport", 462: "Destination unreachable",
    500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
    505: "RTSP Version not supported", 551: "Option not supported",
}

_TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_REQUEST_LINE = re.compile(rb"^([^ ]+) ([^ ]+) ([A-Za-z]+/[0-9]+\.[0-9]+)$")
_STATUS_LINE = re.compile(rb"^(RTSP/[0-9]+\.[0-9]+) ([0-9]{3})(?: (.*))?$")
_VERSION = re.compile(rb"^RTSP/([0-9]+)\.([0-9]+)$")


class ParseError(Exception):
    """
    Malformed input.

    @ivar reason: what is wrong, for logs and the reason phrase.
    @ivar status: the RTSP status to answer with.
    @ivar cseq: the request's CSeq when it was read before the error.
    """

    def __init__(self, reason, status=400, cseq=None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.cseq = cseq


class Headers:
    """
    Header fields in order, looked up case-insensitively.
    """

    def __init__(self, fields=()):
        self._fields = [(name, value) for name, value in fields]

    def get(self, name, default=None):
        """
        The first value of C{name}, or C{default}.
        """
        lowered = name.lower()
        for key, value in self._fields:
            if key.lower() == lowered:
                return value
        return default

    def getAll(self, name):
        lowered = name.lower()
        return [value for key, value in self._fields if key.lower() == lowered]

    def add(self, name, value):
        self._fields.append((name, str(value)))

    def set(self, name, value):
        self.remove(name)
        self.add(name, value)

    def remove(self, name):
        lowered = name.lower()
        self._fields = [(k, v) for k, v in self._fields if k.lower() != lowered]

    def __contains__(self, name):
        return self.get(name) is not None

    def __iter__(self):
        return iter(list(self._fields))

    def __len__(self):
        return len(self._fields)


@attrs.define
class Request:
    """
    An RTSP request (RFC 2326 section 6).
    """

    method: str
    uri: str
    headers: Headers = attrs.Factory(Headers)
    body: bytes = b""
    version: str = RTSP_VERSION

    @property
    def cseq(self):
        return self.headers.get("CSeq")

    def toBytes(self):
        return _serialize("%s %s %s" % (self.method, self.uri, self.version), self.headers, self.body)


@attrs.define
class Response:
    """
    An RTSP response (RFC 2326 section 7).
    """

    code: int
    reason: str = ""
    headers: Headers = attrs.Factory(Headers)
    body: bytes = b""
    version: str = RTSP_VERSION

    def toBytes(self):
        reason = self.reason or REASONS.get(self.code, "Unknown")
        return _serialize("%s %d %s" % (self.version, self.code, reason), self.headers, self.body)


@attrs.frozen
class InterleavedFrame:
    """
    An RTP or RTCP packet on the RTSP connection (RFC 2326 section 10.12).
    """

    channel: int
    data: bytes

    def toBytes(self):
        return frame(self.channel, self.data)


def frame(channel, data):
    """
    Interleave one packet: C{$}, channel, 16-bit length, data.
    """
    return b"$" + bytes([channel]) + len(data).to_bytes(2, "big") + data


def _serialize(startLine, headers, body):
    lines = [startLine]
    for name, value in headers:
        if name.lower() != "content-length":
            lines.append("%s: %s" % (name, value))
    if body:
        lines.append("Content-Length: %d" % (len(body),))
    text = "\r\n".join(lines) + "\r\n\r\n"
    return text.encode("utf-8") + body


def response(request, code, headers=(), body=b"", reason=""):
    """
    A response to C{request} carrying its CSeq (RFC 2326 section 12.17).
    """
    out = Response(code, reason)
    cseq = request.cseq if isinstance(request, Request) else request
    if cseq is not None:
        out.headers.add("CSeq", cseq)
    for name, value in headers:
        out.headers.add(name, value)
    out.body = body
    return out


def parseHead(head, cseqHint=None):
    """
    Parse the start line and header fields of one message (without the
    final empty line).

    @return: a L{Request} or L{Response} without body.
    @raise ParseError: for a malformed head or another RTSP version (505).
    """
    lines = head.split(b"\r\n") if b"\r\n" in head else head.split(b"\n")
    lines = [line.rstrip(b"\r") for line in lines]
    start = lines[0]
    fields = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + " " + _text(line.strip()))
            continue
        name, sep, value = line.partition(b":")
        name = name.strip()
        if not sep or not _TOKEN.match(name):
            raise ParseError("malformed header line", cseq=cseqHint)
        fields.append((_text(name), _text(value.strip())))
    headers = Headers(fields)
    cseq = headers.get("CSeq")
    if cseq is not None and not cseq.isdigit():
        raise ParseError("malformed CSeq")
    status = _STATUS_LINE.match(start)
    if status:
        version = _text(status.group(1))
        code = int(status.group(2))
        return Response(code, _text(status.group(3) or b""), headers, version=version)
    request = _REQUEST_LINE.match(start)
    if not request or not _TOKEN.match(request.group(1)):
        raise ParseError("malformed request line", cseq=cseq)
    version = _VERSION.match(request.group(3))
    if not version:
        raise ParseError("malformed protocol version", cseq=cseq)
    if version.groups() != (b"1", b"0"):
        raise ParseError("RTSP version not supported", status=505, cseq=cseq)
    return Request(_text(request.group(1)), _text(request.group(2)), headers)


def _text(data):
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("header is not UTF-8")
    if any(ord(c) < 32 and c != "\t" or ord(c) == 127 for c in text):
        raise ParseError("control character in header")
    return text


class StreamParser:
    """
    Frames a byte stream (RFC 2326 section 10.12) into messages and
    interleaved frames.

    @param maxHeaderSize: the largest start line + header block in bytes.
    @param maxHeaders: the most header fields in one message.
    @param maxBody: the largest Content-Length accepted (413 beyond).
    """

    def __init__(self, maxHeaderSize=8192, maxHeaders=64, maxBody=65536):
        self.maxHeaderSize = maxHeaderSize
        self.maxHeaders = maxHeaders
        self.maxBody = maxBody
        self._buffer = bytearray()
        self._pos = 0
        self._pending = None

    def feed(self, data):
        """
        Add bytes; return the list of whole items now available.

        @raise ParseError: on malformed input; the parser is then unusable.
        """
        self._buffer += data
        self._pos = 0
        items = []
        try:
            while True:
                item = self._next()
                if item is None:
                    return items
                items.append(item)
        finally:
            # One compaction per feed: deleting after every frame would
            # move the rest of the buffer each time.
            del self._buffer[: self._pos]
            self._pos = 0

    def _next(self):
        buffer, pos = self._buffer, self._pos
        available = len(buffer) - pos
        if self._pending is not None:
            message, length = self._pending
            if available < length:
                return None
            message.body = bytes(buffer[pos : pos + length])
            self._pos = pos + length
            self._pending = None
            return message
        # Empty lines between messages are allowed (RFC 2326 section 4).
        while True:
            if buffer[pos : pos + 2] == b"\r\n":
                pos += 2
            elif buffer[pos : pos + 1] == b"\n":
                pos += 1
            else:
                break
        self._pos = pos
        available = len(buffer) - pos
        if not available:
            return None
        if buffer[pos] == 0x24:
            if available < 4:
                return None
            length = (buffer[pos + 2] << 8) | buffer[pos + 3]
            if available < 4 + length:
                return None
            item = InterleavedFrame(buffer[pos + 1], bytes(buffer[pos + 4 : pos + 4 + length]))
            self._pos = pos + 4 + length
            return item
        limit = pos + self.maxHeaderSize + 4
        end = buffer.find(b"\r\n\r\n", pos, limit)
        separator = 4
        if end == -1:
            end = buffer.find(b"\n\n", pos, limit)
            separator = 2
        if end == -1 or end - pos > self.maxHeaderSize:
            if end - pos > self.maxHeaderSize or available > self.maxHeaderSize:
                raise ParseError("header block too large", cseq=_peekCSeq(buffer[pos:limit]))
            return None
        head = bytes(buffer[pos:end])
        self._pos = end + separator
        if head.count(b"\n") > self.maxHeaders:
            raise ParseError("too many header fields", cseq=_peekCSeq(head))
        message = parseHead(head, _peekCSeq(head))
        length = message.headers.get("Content-Length", "0").strip()
        if not length.isdigit():
            raise ParseError("malformed Content-Length", cseq=message.headers.get("CSeq"))
        length = int(length)
        if length > self.maxBody:
            raise ParseError("body too large", 413, cseq=message.headers.get("CSeq"))
        if length:
            self._pending = (message, length)
            return self._next()
        return message


def _peekCSeq(head):
    match = re.search(rb"\ncseq[ \t]*:[ \t]*([0-9]{1,9})\r?\n", bytes(head[:8192]), re.I)
    return match.group(1).decode("ascii") if match else None


# Header grammars (RFC 2326 section 12).


@attrs.frozen
class TransportSpec:
    """
    One alternative of a Transport header (RFC 2326 section 12.39).

    @ivar protocol: C{'RTP/AVP'} (UDP) or C{'RTP/AVP/TCP'}.
    @ivar unicast: False when C{multicast} was asked for.
    @ivar clientPorts: C{(rtp, rtcp)} or C{None}.
    @ivar interleaved: C{(rtp, rtcp)} channels or C{None}.
    @ivar mode: C{'play'} or C{'record'} (lowercase, unquoted).
    @ivar parameters: every parameter as C{(name, value or None)}.
    """

    protocol: str
    unicast: bool = True
    clientPorts: tuple = None
    interleaved: tuple = None
    mode: str = "play"
    parameters: tuple = ()

    def format(self, **replace):
        """
        Serialize, with parameters replaced or added by keyword (C{None}
        removes one), as the server echoes a transport.
        """
        params = [(name, value) for name, value in self.parameters if name not in replace]
        params.extend((name, value) for name, value in replace.items() if value is not None)
        return ";".join([self.protocol] + [
            name if value is None or value is True else "%s=%s" % (name, value)
            for name, value in params
        ])


def _pair(value, limit):
    low, sep, high = value.partition("-")
    if not low.isdigit() or (sep and not high.isdigit()):
        raise ParseError("malformed range %r" % (value,), 461)
    low = int(low)
    high = int(high) if sep else low + 1
    if low > limit or high > limit:
        raise ParseError("value out of range", 461)
    return low, high


def parseTransport(value):
    """
    Parse a Transport header into its L{TransportSpec} alternatives.

    @raise ParseError: with status 461 for a malformed one.
    """
    specs = []
    for alternative in value.split(","):
        parts = [p.strip() for p in alternative.split(";") if p.strip()]
        if not parts:
            continue
        protocol = parts[0].upper()
        if protocol == "RTP/AVP/UDP":
            protocol = "RTP/AVP"
        params, unicast, ports, channels, mode = [], True, None, None, "play"
        for part in parts[1:]:
            name, sep, raw = part.partition("=")
            name = name.strip().lower()
            raw = raw.strip()
            params.append((name, raw if sep else None))
            if name == "multicast":
                unicast = False
            elif name == "client_port" and sep:
                ports = _pair(raw, 65535)
            elif name == "interleaved" and sep:
                channels = _pair(raw, 255)
            elif name == "mode" and sep:
                mode = raw.strip('"').strip().lower()
        specs.append(TransportSpec(protocol, unicast, ports, channels, mode, tuple(params)))
    if not specs:
        raise ParseError("empty Transport header", 461)
    return specs


_NPT_TIME = re.compile(r"^(?:now|([0-9]+)(?::([0-9]{1,2}):([0-9]{1,2}))?(\.[0-9]*)?)$")


def _nptSeconds(text):
    match = _NPT_TIME.match(text.strip())
    if not match:
        raise ParseError("malformed npt time %r" % (text,), 457)
    if text.strip() == "now":
        return None
    whole, minutes, seconds, fraction = match.groups()
    value = int(whole)
    if minutes is not None:
        value = value * 3600 + int(minutes) * 60 + int(seconds)
    return value + (float("0" + fraction) if fraction and fraction != "." else 0.0)


def parseRange(value):
    """
    Parse an npt Range header (RFC 2326 section 12.29, 3.6).

    @return: C{(start, end)} in seconds; C{start} is C{None} for C{now}, and
        C{end} is C{None} when open.
    @raise ParseError: with status 457 for an unsupported or malformed range.
    """
    spec = value.split(";")[0].strip()
    unit, sep, times = spec.partition("=")
    if unit.strip().lower() != "npt" or not sep:
        raise ParseError("only npt ranges are supported", 457)
    start, dash, end = times.partition("-")
    if not dash:
        raise ParseError("malformed range", 457)
    startValue = _nptSeconds(start) if start.strip() else 0.0
    endValue = _nptSeconds(end) if end.strip() else None
    if startValue is not None and endValue is not None and endValue < startValue:
        raise ParseError("range ends before it starts", 457)
    return startValue, endValue


def formatNpt(seconds):
    return "%.3f" % (seconds,)


def parseSession(value):
    """
    The session identifier of a Session header, without C{;timeout=}.
    """
    return value.split(";")[0].strip()


_AUTH_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


def parseAuthorization(value):
    """
    Parse a Digest Authorization header (RFC 2617 section 3.2.2).

    @return: C{(scheme, {name: value})} with lowercase parameter names.
    @raise ParseError: when it cannot be read.
    """
    scheme, _, rest = value.strip().partition(" ")
    params = {}
    position = 0
    rest = rest.strip()
    while position < len(rest):
        match = _AUTH_PARAM.match(rest, position)
        if not match or match.end() == position:
            raise ParseError("malformed Authorization header")
        quoted = match.group(2)
        if quoted is not None:
            quoted = re.sub(r"\\(.)", r"\1", quoted)
        params[match.group(1).lower()] = quoted if quoted is not None else match.group(3)
        position = match.end()
    return scheme.lower(), params


# SDP (RFC 4566) as the RTSP server needs it: the audio media of an ANNOUNCE.

STATIC_PAYLOADS = {0: ("PCMU", 8000), 8: ("PCMA", 8000)}


@attrs.frozen
class AudioDescription:
    """
    The first audio media of a session description.

    @ivar payloadType: the RTP payload type chosen.
    @ivar encoding: C{'PCMU'} or C{'PCMA'}.
    @ivar control: the C{a=control} of the media, or C{None}.
    """

    payloadType: int
    encoding: str
    rate: int
    control: str = None


def parseAudioDescription(body):
    """
    Find the first audio stream in an SDP body, accepting static payload
    types without an rtpmap (RFC 3551 section 6).

    @raise ParseError: with status 415 when no G.711 audio is offered, 400
        for a body that is not SDP.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("SDP is not UTF-8")
    if not text.lstrip().startswith("v="):
        raise ParseError("not an SDP body")
    media, rtpmaps, control = None, {}, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("m="):
            if media is not None:
                break
            fields = line[2:].split()
            if len(fields) >= 4 and fields[0] == "audio":
                media = fields[3:]
        elif media is not None and line.startswith("a=rtpmap:"):
            number, _, rest = line[9:].partition(" ")
            name, _, rate = rest.partition("/")
            if number.isdigit():
                rtpmaps[int(number)] = (name.upper(), int(rate.split("/")[0]) if rate.split("/")[0].isdigit() else 8000)
        elif media is not None and line.startswith("a=control:"):
            control = line[10:].strip()
    for payload in media or ():
        if not payload.isdigit():
            continue
        number = int(payload)
        encoding, rate = rtpmaps.get(number, STATIC_PAYLOADS.get(number, (None, 0)))
        if encoding in ("PCMU", "PCMA") and rate == 8000:
            return AudioDescription(number, encoding, rate, control)
    raise ParseError("no G.711 audio stream in the description", 415)


def describeAudio(duration, encoding="PCMU", origin="127.0.0.1", sessionId=0):
    """
    The SDP of one stored message (RFC 2326 appendix C): one audio stream
    with its control URL and its npt range.
    """
    payloadType = 0 if encoding == "PCMU" else 8
    lines = [
        "v=0",
        "o=- %d 1 IN IP4 %s" % (sessionId, origin),
        "s=Message",
        "c=IN IP4 0.0.0.0",
        "t=0 0",
        "a=control:*",
        "a=range:npt=0-%s" % (formatNpt(duration),),
        "m=audio 0 RTP/AVP %d" % (payloadType,),
        "a=rtpmap:%d %s/8000" % (payloadType, encoding),
        "a=control:trackID=0",
    ]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")

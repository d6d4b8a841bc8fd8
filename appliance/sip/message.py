"""
SIP messages: parsing, serialization and the checks a server applies before processing a request
(RFC 3261 sections 7, 8.2, 18.3, 19, 20 and 25; RFC 3581 rport; RFC 5626 section 3.5.1 keep-alives).

Pure code: stdlib and attrs only, no Twisted.  Bytes come in, L{Request} / L{Response} objects or a
L{ParseError} with a short reason go out.

Decoding: the start line and header fields are decoded as UTF-8 with C{surrogateescape}, so any octet
sequence decodes deterministically and L{Request.toBytes} writes invalid UTF-8 back byte for byte.  Bodies
are bytes and may contain anything.

Headers are kept as strings; Via, Address, URI and CSeq values are parsed only when asked for
(C{vias()}, C{fromAddress()}, C{cseq()}...), and those accessors raise L{ParseError} on bad syntax.

L{Request} and L{Response} are mutable (C{attrs.define}): a proxy edits headers in place
(C{request.headers.prepend("Via", ...)}) after C{copy()}.  L{URI}, L{Address} and L{Via} are frozen.
"""

import functools
import re

import attrs

from appliance.sip.uri import (
    _CACHED_LENGTH,
    WILDCARD,
    AbsoluteURI,
    Address,
    ParseError,
    URI,
    findParam,
    formatParams,
    hasParam,
    parseDecimal,
    parseHost,
    parseParams,
    replaceParams,
    splitQuoted,
)

__all__ = [
    "DEFAULT_MAX_SIZE", "KEEPALIVE_PING", "LIST_HEADERS", "REASONS", "SINGLETON_HEADERS",
    "ParseError", "Headers", "URI", "AbsoluteURI", "Address", "WILDCARD", "Via", "Request", "Response",
    "makeResponse", "parseMessage", "StreamParser", "validateRequest", "validateResponse",
]

DEFAULT_MAX_SIZE = 65535
"""
Largest message accepted, in bytes; a larger one raises L{ParseError} with status 413.
"""


class _KeepalivePing:
    """
    The type of L{KEEPALIVE_PING}.
    """

    __slots__ = ()

    def __repr__(self):
        return "KEEPALIVE_PING"

    def __reduce__(self):
        return "KEEPALIVE_PING"


KEEPALIVE_PING = _KeepalivePing()
"""
Returned by L{StreamParser.feed} for a CRLF-CRLF keep-alive ping between messages (RFC 5626 section
3.5.1); the transport answers with a single CRLF pong.
"""


# Canonical header names (RFC 3261 section 20 and common extensions) and compact forms
# (RFC 3261 section 7.3.3 and the IANA registry).
_CANONICAL_NAMES = (
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Accept-Resource-Priority",
    "Alert-Info", "Allow", "Allow-Events", "Authentication-Info", "Authorization", "Call-ID", "Call-Info",
    "Contact", "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
    "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires", "Flow-Timer", "From",
    "History-Info", "Identity", "Identity-Info", "In-Reply-To", "Join", "Max-Breadth", "Max-Forwards",
    "MIME-Version", "Min-Expires", "Min-SE", "Organization", "P-Asserted-Identity",
    "P-Preferred-Identity", "Path", "Priority", "Privacy", "Proxy-Authenticate", "Proxy-Authorization",
    "Proxy-Require", "RAck", "Reason", "Record-Route", "Refer-To", "Referred-By", "Reject-Contact",
    "Replaces", "Reply-To", "Request-Disposition", "Require", "Resource-Priority", "Retry-After",
    "Route", "RSeq", "Security-Client", "Security-Server", "Security-Verify", "Server",
    "Service-Route", "Session-Expires", "SIP-ETag", "SIP-If-Match", "Subject", "Subscription-State",
    "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate",
)
_COMPACT_FORMS = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length", "c": "Content-Type",
    "f": "From", "s": "Subject", "k": "Supported", "t": "To", "v": "Via", "o": "Event", "r": "Refer-To",
    "b": "Referred-By", "x": "Session-Expires", "u": "Allow-Events", "a": "Accept-Contact",
    "j": "Reject-Contact", "d": "Request-Disposition", "y": "Identity", "n": "Identity-Info",
}

LIST_HEADERS = frozenset([
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Accept-Resource-Priority",
    "Alert-Info", "Allow", "Allow-Events", "Call-Info", "Contact", "Content-Encoding", "Content-Language",
    "Error-Info", "History-Info", "In-Reply-To", "P-Asserted-Identity", "P-Preferred-Identity", "Path",
    "Proxy-Require", "Reason", "Record-Route", "Reject-Contact", "Request-Disposition", "Require",
    "Resource-Priority", "Route", "Security-Client", "Security-Server", "Security-Verify",
    "Service-Route", "Supported", "Unsupported", "Via", "Warning",
])
"""
Headers whose comma-separated values L{Headers} splits into separate values (RFC 3261 section 7.3.1).
Every other header, known or not, is kept whole; in particular the authentication headers, Date and all
single-valued headers.
"""

SINGLETON_HEADERS = ("Call-ID", "CSeq", "From", "To", "Max-Forwards", "Content-Length", "Content-Type")
"""
Headers that may appear at most once (checked by L{validateRequest} and L{validateResponse}).
"""

_BY_NAME = {}
_BY_LOWER = {}
for _name in _CANONICAL_NAMES:
    _BY_NAME[_name] = _BY_LOWER[_name.lower()] = (_name.lower(), _name)
for _compact, _name in _COMPACT_FORMS.items():
    _BY_NAME[_compact] = _BY_NAME[_compact.upper()] = _BY_LOWER[_compact] = (_name.lower(), _name)
del _name, _compact
_LIST_KEYS = frozenset(name.lower() for name in LIST_HEADERS)

_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_VERSION = re.compile(r"[Ss][Ii][Pp]/[0-9]+\.[0-9]+")
_CSEQ = re.compile(r"([0-9]+)[ \t]+([A-Za-z0-9\-.!%*_+`'~]+)")
# RFC 3261 callid is word ["@" word]; deployed UAs also use "=", "#"..., so only whitespace, controls
# and emptiness are refused.
_CALL_ID = re.compile(r"[^\x00-\x20\x7f]+")
_VIA_HEAD = re.compile(
    r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*"
    r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]+(\[[^\]]*\]|[A-Za-z0-9\-_.]+)(?:[ \t]*:[ \t]*([0-9]+))?[ \t]*")
_FOLD = re.compile(r"\r\n[ \t]+")


def _headerKey(name):
    """
    The lower-case canonical key for looking C{name} up (compact forms expanded).
    """
    hit = _BY_NAME.get(name)
    if hit is not None:
        return hit[0]
    lower = name.lower()
    hit = _BY_LOWER.get(lower)
    return lower if hit is None else hit[0]


def _canonical(name):
    """
    C{(key, canonical name)} for a header name given by code; raises ValueError for a non-token name.
    """
    hit = _BY_NAME.get(name)
    if hit is not None:
        return hit
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise ValueError("invalid header name %r" % (name,))
    lower = name.lower()
    return _BY_LOWER.get(lower) or (lower, name)


def _splitValue(key, value):
    """
    The values one header line contributes: list headers are split at commas outside quoted strings
    and angle brackets, elements stripped and empty ones dropped (RFC 3261 section 7.3.1); an entirely
    empty list value stays one empty value.
    """
    if key in _LIST_KEYS and "," in value:
        parts = [part.strip(" \t") for part in splitQuoted(value, ",", angles=True)]
        parts = [part for part in parts if part]
        return parts or [""]
    return [value]


class Headers:
    """
    Ordered, case-insensitive multimap of header field values (strings), RFC 3261 section 7.3.

    Compact names are expanded (C{i} is C{Call-ID}) and known names get their canonical spelling
    (C{CSeq}, C{WWW-Authenticate}); unknown names keep the spelling they were given.  Values of
    L{LIST_HEADERS} are split at commas (outside quoted strings and C{<...>}) by every way of putting a
    value in, parsing and code alike, so C{getAll("Via")} always lists single Via values; every other
    header is kept whole.  Values given by code must not contain CR or LF (ValueError) and must not be
    None (TypeError); other non-strings (ints) are converted with str().
    """

    __slots__ = ("_entries", "_parsed")

    def __init__(self, items=()):
        self._parsed = None
        self._entries = []
        for name, value in items:
            key, canonical = _canonical(name)
            for part in _splitValue(key, _checkValue(value)):
                self._entries.append((key, canonical, part))

    @classmethod
    def _fromEntries(cls, entries):
        headers = cls.__new__(cls)
        headers._entries = entries
        headers._parsed = None
        return headers

    def _memo(self, key, parse):
        """
        The result of C{parse()}, kept until the headers change: messages parse their Via, CSeq, From
        and To once however often the layers above ask.
        """
        parsed = self._parsed
        if parsed is None:
            parsed = self._parsed = {}
        elif key in parsed:
            return parsed[key]
        value = parsed[key] = parse()
        return value

    def get(self, name, default=None):
        """
        The first value of header C{name}, or C{default}.
        """
        key = _headerKey(name)
        for entry in self._entries:
            if entry[0] == key:
                return entry[2]
        return default

    def getAll(self, name):
        """
        All values of header C{name} in order (a new list; empty if absent).
        """
        key = _headerKey(name)
        return [entry[2] for entry in self._entries if entry[0] == key]

    def add(self, name, value):
        """
        Add value(s) after the existing values of that name (at the end if there are none).
        """
        self._parsed = None
        key, canonical = _canonical(name)
        new = [(key, canonical, part) for part in _splitValue(key, _checkValue(value))]
        entries = self._entries
        for index in range(len(entries) - 1, -1, -1):
            if entries[index][0] == key:
                entries[index + 1:index + 1] = new
                return
        entries.extend(new)

    def prepend(self, name, value):
        """
        Add value(s) before the existing values of that name (at the top if there are none); used for Via
        (RFC 3261 section 16.6 step 8) and Record-Route (step 4).
        """
        self._parsed = None
        key, canonical = _canonical(name)
        new = [(key, canonical, part) for part in _splitValue(key, _checkValue(value))]
        entries = self._entries
        for index, entry in enumerate(entries):
            if entry[0] == key:
                entries[index:index] = new
                return
        entries[0:0] = new

    def set(self, name, value):
        """
        Replace all values of that name by C{value} (split if a list header), at the position of the first
        existing value, or at the end.
        """
        self._parsed = None
        key, canonical = _canonical(name)
        new = [(key, canonical, part) for part in _splitValue(key, _checkValue(value))]
        entries = self._entries
        for index, entry in enumerate(entries):
            if entry[0] == key:
                rest = [item for item in entries[index + 1:] if item[0] != key]
                entries[index:] = new + rest
                return
        entries.extend(new)

    def remove(self, name):
        """
        Remove all values of that name; no error if absent.
        """
        self._parsed = None
        key = _headerKey(name)
        self._entries = [entry for entry in self._entries if entry[0] != key]

    def removeFirst(self, name):
        """
        Remove and return the first value of that name (a proxy pops its Via from responses and its
        Route from requests, RFC 3261 sections 16.4 and 16.7); C{None} if absent.
        """
        self._parsed = None
        key = _headerKey(name)
        for index, entry in enumerate(self._entries):
            if entry[0] == key:
                del self._entries[index]
                return entry[2]
        return None

    def replaceFirst(self, name, value):
        """
        Replace the first value of that name in place (a transport stamps the top Via, RFC 3261
        section 18.2.1); added at the top if absent.
        """
        self._parsed = None
        key, canonical = _canonical(name)
        value = _checkValue(value)
        for index, entry in enumerate(self._entries):
            if entry[0] == key:
                self._entries[index] = (key, canonical, value)
                return
        self.prepend(name, value)

    def __contains__(self, name):
        key = _headerKey(name)
        for entry in self._entries:
            if entry[0] == key:
                return True
        return False

    def items(self):
        """
        C{(canonical name, value)} pairs in order.
        """
        return [(entry[1], entry[2]) for entry in self._entries]

    def copy(self):
        return self._fromEntries(list(self._entries))

    def __len__(self):
        return len(self._entries)

    def __iter__(self):
        return iter(self.items())

    def __eq__(self, other):
        if not isinstance(other, Headers):
            return NotImplemented
        return ([(e[0], e[2]) for e in self._entries] == [(e[0], e[2]) for e in other._entries])

    __hash__ = None

    def __repr__(self):
        return "Headers(%r)" % (self.items(),)


def _checkValue(value):
    """
    A header value given by code as a string (ints are converted; None is a mistake).
    """
    if value is None:
        raise TypeError("header value is None")
    value = str(value)
    if "\r" in value or "\n" in value:
        raise ValueError("header value contains CR or LF")
    return value


@attrs.frozen
class Via:
    """
    One Via header field value (RFC 3261 section 20.42; rport of RFC 3581).

    C{transport} is upper-cased, C{host} lower-cased (IPv6 references keep their brackets), C{protocol} is
    C{name/version} without whitespace (normally C{"SIP/2.0"}).  Parameter names are lower-cased, values
    kept as received.
    """

    transport: str
    host: str
    port: int | None = None
    params: tuple = attrs.field(default=(), converter=tuple)
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, text):
        """
        Parse one via-parm: C{sent-protocol LWS sent-by *( SEMI via-params )}, with the LWS RFC 3261
        allows around C{/}, C{:}, C{;} and C{=}.

        @raise ParseError: bad syntax, or a bad port, ttl, rport, maddr or received value, or a branch
            without value.
        """
        if len(text) <= _CACHED_LENGTH:
            return _parseViaCached(text)
        return _parseVia(text)

    @property
    def branch(self):
        """
        The branch parameter (RFC 3261 section 8.1.1.7), or C{None}.
        """
        return findParam(self.params, "branch")

    @property
    def received(self):
        """
        The received parameter (RFC 3261 section 18.2.1), or C{None}.
        """
        return findParam(self.params, "received")

    @property
    def maddr(self):
        return findParam(self.params, "maddr")

    @property
    def rport(self):
        """
        The rport parameter (RFC 3581 section 4): C{None} if absent, C{True} if present without a value
        (the client asks for it), else the port as an int.
        """
        for key, value in self.params:
            if key == "rport":
                if value is None:
                    return True
                port = parseDecimal(value, 65535)
                if port is None:
                    raise ParseError("bad rport in Via header")
                return port
        return None

    @property
    def sentBy(self):
        """
        C{host[:port]} as in the header, e.g. C{"pc33.atlanta.com"} or C{"[2001:db8::9]:5060"}.
        """
        if self.port is None:
            return self.host
        return "%s:%d" % (self.host, self.port)

    def param(self, name, default=None):
        """
        The value of parameter C{name}: C{None} if present without a value, C{default} if absent.
        """
        return findParam(self.params, name, default)

    def hasParam(self, name):
        return hasParam(self.params, name)

    def withParams(self, **changes):
        """
        A copy with parameters changed: C{None} removes, C{True} sets without value, anything else sets
        C{str(value)}; e.g. C{via.withParams(received="192.0.2.1", rport=5060)} (RFC 3581 section 4).
        """
        return attrs.evolve(self, params=replaceParams(self.params, changes))

    def __str__(self):
        text = "%s/%s %s" % (self.protocol, self.transport, self.sentBy)
        if self.params:
            text += formatParams(self.params)
        return text


def _parseVia(text):
    """
    The uncached body of L{Via.parse}.
    """
    text = text.strip(" \t")
    semicolon = text.find(";")
    head = text if semicolon < 0 else text[:semicolon]
    match = _VIA_HEAD.fullmatch(head)
    if match is None:
        raise ParseError("malformed Via header")
    name, version, transport, host, portText = match.groups()
    host = parseHost(host, "Via")
    port = None
    if portText is not None:
        port = parseDecimal(portText, 65535)
        if port is None:
            raise ParseError("bad port in Via header")
    params = () if semicolon < 0 else parseParams(text[semicolon:], "Via")
    for key, value in params:
        if key == "branch" or key == "maddr" or key == "received" or key == "ttl":
            if value is None:
                raise ParseError("Via %s without value" % (key,))
            if key == "ttl" and parseDecimal(value, 255) is None:
                raise ParseError("bad ttl in Via header")
            if key == "maddr" or key == "received":
                try:
                    parseHost(value if ":" not in value or value[:1] == "[" else "[%s]" % (value,), "Via")
                except ParseError:
                    raise ParseError("bad %s in Via header" % (key,)) from None
        elif key == "rport" and value is not None and parseDecimal(value, 65535) is None:
            raise ParseError("bad rport in Via header")
    return Via(transport.upper(), host, port, params, name.upper() + "/" + version)


_parseViaCached = functools.lru_cache(maxsize=4096)(_parseVia)


class _Message:
    """
    What requests and responses share: header accessors and serialization.
    """

    __slots__ = ()

    def vias(self):
        """
        All Via values, parsed, top first.

        @raise ParseError: a Via value is malformed.
        """
        return list(self.headers._memo(
            "vias", lambda: [Via.parse(value) for value in self.headers.getAll("Via")]))

    @property
    def topVia(self):
        """
        The first Via value parsed, or C{None} if there is no Via (raises L{ParseError} if malformed).
        """
        value = self.headers.get("Via")
        return None if value is None else Via.parse(value)

    @property
    def callId(self):
        """
        The Call-ID value as a string, or C{None}.
        """
        return self.headers.get("Call-ID")

    def cseq(self):
        """
        C{(sequence number, method)} of the CSeq header (RFC 3261 section 20.16).

        @raise ParseError: CSeq absent or malformed, or the number not below 2**32 (RFC 3261 section
            8.1.1.5).
        """
        return self.headers._memo("cseq", self._parseCSeq)

    def _parseCSeq(self):
        value = self.headers.get("CSeq")
        if value is None:
            raise ParseError("missing CSeq header")
        match = _CSEQ.fullmatch(value)
        if match is None:
            raise ParseError("malformed CSeq header")
        number = parseDecimal(match.group(1), 2 ** 32 - 1)
        if number is None:
            raise ParseError("CSeq number too large")
        return number, match.group(2)

    def _address(self, name):
        return self.headers._memo(name, lambda: self._parseAddress(name))

    def _parseAddress(self, name):
        value = self.headers.get(name)
        if value is None:
            raise ParseError("missing %s header" % (name,))
        try:
            return Address.parse(value)
        except ParseError as error:
            raise ParseError("bad %s header: %s" % (name, error.reason)) from None

    def fromAddress(self):
        """
        The From header parsed (RFC 3261 section 20.20); raises L{ParseError} if absent or malformed.
        """
        return self._address("From")

    def toAddress(self):
        """
        The To header parsed (RFC 3261 section 20.39); raises L{ParseError} if absent or malformed.
        """
        return self._address("To")

    def _addresses(self, name):
        result = []
        for value in self.headers.getAll(name):
            try:
                result.append(Address.parse(value))
            except ParseError as error:
                raise ParseError("bad %s header: %s" % (name, error.reason)) from None
        return result

    def contacts(self):
        """
        The Contact values parsed, in order; C{[]} if there are none.  C{Contact: *} (RFC 3261 section
        10.2.2) gives C{[WILDCARD]} (an Address whose C{isWildcard} is true).

        @raise ParseError: a malformed value, or C{*} together with other contacts or with parameters.
        """
        values = self.headers.getAll("Contact")
        if "*" in values:
            if len(values) != 1:
                raise ParseError("Contact * mixed with other contacts")
            return [WILDCARD]
        return self._addresses("Contact")

    def routes(self):
        """
        The Route values parsed, in order (RFC 3261 section 20.34).
        """
        return self._addresses("Route")

    def recordRoutes(self):
        """
        The Record-Route values parsed, in order (RFC 3261 section 20.30).
        """
        return self._addresses("Record-Route")

    def maxForwards(self):
        """
        The Max-Forwards value (0 to 255, RFC 3261 section 20.22), or C{None} if absent.

        @raise ParseError: present but not an integer from 0 to 255, or present more than once.
        """
        values = self.headers.getAll("Max-Forwards")
        if not values:
            return None
        value = parseDecimal(values[0], 255)
        if value is None or len(values) > 1:
            raise ParseError("bad Max-Forwards header")
        return value

    def toBytes(self):
        """
        The message on the wire (RFC 3261 section 7): one line per header value, in order, and a
        Content-Length equal to C{len(body)} (replacing the first Content-Length value in place, dropping
        any other, or appended at the end).
        """
        lines = [self._startLine()]
        length = str(len(self.body))
        seen = False
        for key, name, value in self.headers._entries:
            if key == "content-length":
                if seen:
                    continue
                seen = True
                value = length
            lines.append(name + ": " + value)
        if not seen:
            lines.append("Content-Length: " + length)
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body


@attrs.define(eq=True)
class Request(_Message):
    """
    A SIP request (RFC 3261 section 7.1).  Mutable; C{copy()} copies the headers too.

    C{uri} is a L{URI} (sip, sips, tel) or an L{AbsoluteURI}; it is C{None} only in the partial message of
    a L{ParseError} whose Request-URI was unreadable.  C{version} is upper-cased and may be something other
    than C{"SIP/2.0"} (L{validateRequest} answers 505).
    """

    method: str
    uri: object
    headers: Headers = attrs.Factory(Headers)
    body: bytes = b""
    version: str = "SIP/2.0"

    def _startLine(self):
        if self.uri is None:
            raise ValueError("request without Request-URI")
        return "%s %s %s" % (self.method, self.uri, self.version)

    def copy(self):
        return Request(self.method, self.uri, self.headers.copy(), self.body, self.version)


@attrs.define(eq=True)
class Response(_Message):
    """
    A SIP response (RFC 3261 section 7.2).  Mutable; C{copy()} copies the headers too.
    """

    code: int
    reason: str = ""
    headers: Headers = attrs.Factory(Headers)
    body: bytes = b""
    version: str = "SIP/2.0"

    def _startLine(self):
        reason = self.reason
        if "\r" in reason or "\n" in reason:
            reason = reason.replace("\r", " ").replace("\n", " ")
        return "%s %d %s" % (self.version, self.code, reason)

    def copy(self):
        return Response(self.code, self.reason, self.headers.copy(), self.body, self.version)


REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated",
    200: "OK", 202: "Accepted", 204: "No Notification",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily", 305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required",
    408: "Request Timeout", 410: "Gone", 412: "Conditional Request Failed",
    413: "Request Entity Too Large", 414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 417: "Unknown Resource-Priority", 420: "Bad Extension",
    421: "Extension Required", 422: "Session Interval Too Small", 423: "Interval Too Brief",
    424: "Bad Location Information", 428: "Use Identity Header", 429: "Provide Referrer Identity",
    430: "Flow Failed", 433: "Anonymity Disallowed", 436: "Bad Identity-Info",
    437: "Unsupported Certificate", 438: "Invalid Identity Header", 439: "First Hop Lacks Outbound Support",
    440: "Max-Breadth Exceeded", 469: "Bad Info Package", 470: "Consent Needed",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist", 482: "Loop Detected",
    483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here",
    487: "Request Terminated", 488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending",
    493: "Undecipherable", 494: "Security Agreement Required",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large",
    580: "Precondition Failure",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
    607: "Unwanted",
}
"""
Standard reason phrases (RFC 3261 section 21 and later extensions).
"""


def makeResponse(request, code, reason=None, *, toTag=None):
    """
    Build a response to C{request} (RFC 3261 section 8.2.6): copy all Via values in order, From, To,
    Call-ID and CSeq as they are, add C{;tag=toTag} to To if C{toTag} is given and To has no tag yet, and
    set Content-Length 0.

    Works on the partial request of a L{ParseError} too: headers that are absent are skipped, and a To that
    cannot be parsed is copied without adding a tag.

    @param reason: the reason phrase; default from L{REASONS} (or the class's generic phrase).
    """
    if reason is None:
        reason = REASONS.get(code) or REASONS.get(code // 100 * 100, "Unknown")
    entries = []
    toValue = None
    for key, name, value in request.headers._entries:
        if key == "via" or key == "from" or key == "call-id" or key == "cseq":
            entries.append((key, name, value))
        elif key == "to":
            if toValue is None:
                toValue = value
                if toTag is not None:
                    try:
                        hasTag = Address.parse(value).hasParam("tag")
                    except ParseError:
                        hasTag = True
                    if not hasTag:
                        value = value + ";tag=" + toTag
            entries.append((key, name, value))
    entries.append(("content-length", "Content-Length", "0"))
    return Response(code, reason, Headers._fromEntries(entries))


def _parseStartLine(line, headers):
    """
    Parse a Request-Line or Status-Line (RFC 3261 sections 7.1 and 7.2).

    @return: C{(message, reason)}: reason is C{None} on success; on failure message is a partial message
        or C{None}.
    """
    if "\r" in line or "\n" in line:
        return None, "bare CR or LF in start line"
    if line[:4].upper() == "SIP/":
        version, _, rest = line.partition(" ")
        codeText, _, phrase = rest.partition(" ")
        if not _VERSION.fullmatch(version):
            return None, "malformed SIP-Version"
        code = parseDecimal(codeText, 699) if len(codeText) == 3 else None
        if code is None or code < 100:
            return None, "bad status code"
        return Response(code, phrase, headers, b"", version.upper()), None
    reason = None
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        reason = "malformed Request-Line"
        parts = line.split()
        if len(parts) < 2:
            return None, reason
        parts = [parts[0], parts[1], parts[-1]]
    method, uriText, version = parts
    if not _TOKEN.fullmatch(method):
        return None, reason or "bad method"
    if not _VERSION.fullmatch(version):
        reason = reason or "malformed SIP-Version"
        version = "SIP/2.0"
    try:
        uri = URI.parse(uriText)
    except ParseError:
        uri = None
        reason = reason or "malformed Request-URI"
    return Request(method, uri, headers, b"", version.upper()), reason


def _parseHead(head):
    """
    Parse the start line and header fields (RFC 3261 section 7.3), without the empty line.  Header lines
    are unfolded, names canonicalised and list values split.  A bad header line is skipped so that the
    partial message still has every readable header.

    @return: C{(message, reason)} as for L{_parseStartLine}.
    """
    text = head.decode("utf-8", "surrogateescape")
    startLine, _, rest = text.partition("\r\n")
    entries = []
    reason = None
    if rest:
        if "\r\n " in rest or "\r\n\t" in rest:
            rest = _FOLD.sub(" ", rest)
        byName = _BY_NAME
        listKeys = _LIST_KEYS
        for line in rest.split("\r\n"):
            name, colon, value = line.partition(":")
            if not colon:
                reason = reason or "malformed header line"
                continue
            hit = byName.get(name)
            if hit is None:
                name = name.rstrip(" \t")
                hit = byName.get(name)
                if hit is None:
                    if not _TOKEN.fullmatch(name):
                        reason = reason or "bad header name"
                        continue
                    lower = name.lower()
                    hit = _BY_LOWER.get(lower) or (lower, name)
            if "\r" in value or "\n" in value:
                reason = reason or "bare CR or LF in header"
                continue
            key, canonical = hit
            value = value.strip(" \t")
            if key in listKeys and "," in value:
                for part in _splitValue(key, value):
                    entries.append((key, canonical, part))
            else:
                entries.append((key, canonical, value))
    message, startReason = _parseStartLine(startLine, Headers._fromEntries(entries))
    return message, startReason or reason


def _error(reason, status, message):
    """
    A ParseError carrying C{message} only if it is a request (responses are never answered).
    """
    return ParseError(reason, status, message if isinstance(message, Request) else None)


def _contentLength(message):
    """
    The Content-Length of a parsed head (RFC 3261 section 20.14), C{None} if absent, 2**31 for anything
    larger.

    @raise ParseError: malformed, or more than one Content-Length (RFC 4475 section 3.3.9).
    """
    values = message.headers.getAll("Content-Length")
    if not values:
        return None
    if len(values) > 1:
        raise _error("multiple Content-Length headers", 400, message)
    value = values[0]
    if not value.isascii() or not value.isdigit():
        raise _error("malformed Content-Length", 400, message)
    length = parseDecimal(value, 2 ** 31)
    return 2 ** 31 if length is None else length


def parseMessage(data, *, datagram=True, maxSize=DEFAULT_MAX_SIZE):
    """
    Parse one whole message (RFC 3261 sections 7 and 18.3).

    Leading CRLFs are skipped.  With C{datagram=True}, a missing Content-Length means the body is the rest
    of the datagram, and octets beyond Content-Length are ignored; a Content-Length larger than what is
    there is an error.  With C{datagram=False}, Content-Length is mandatory and C{data} must be exactly
    one message.  A SIP version other than 2.0 and an unknown Request-URI scheme are not errors here (see
    L{validateRequest}).

    @raise ParseError: malformed message (status 400) or more than C{maxSize} bytes (status 413); the
        error carries the partial request when there is one to answer.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    if start >= len(data):
        raise ParseError("empty message")
    if len(data) - start > maxSize:
        end = data.find(b"\r\n\r\n", start, start + maxSize)
        message = None if end < 0 else _parseHead(data[start:end])[0]
        raise _error("message too large", 413, message)
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        head = data[start:]
        if head.endswith(b"\r\n"):
            head = head[:-2]
        message, _ = _parseHead(head)
        raise _error("missing empty line after header fields", 400, message)
    message, reason = _parseHead(data[start:end])
    if reason is not None:
        raise _error(reason, 400, message)
    length = _contentLength(message)
    bodyStart = end + 4
    if length is None:
        if not datagram:
            raise _error("missing Content-Length", 400, message)
        message.body = data[bodyStart:]
    else:
        if bodyStart + length > len(data):
            raise _error("message body shorter than Content-Length", 400, message)
        if not datagram and bodyStart + length != len(data):
            raise _error("octets after message body", 400, message)
        message.body = data[bodyStart:bodyStart + length]
    return message


class StreamParser:
    """
    Frames a byte stream (TCP, TLS) into messages by Content-Length (RFC 3261 section 18.3).

    L{feed} returns a list of items, each a L{Request}, a L{Response} or L{KEEPALIVE_PING} (a CRLF-CRLF
    between messages, RFC 5626 section 3.5.1).  A lone CRLF between messages is a pong and is dropped.
    Content-Length is mandatory on streams.  After a L{ParseError} the stream is unusable: every later
    C{feed} raises the same error; the transport answers if it can (C{error.message}) and closes the
    connection.  Items framed by the failing C{feed} call before the error are in C{error.parsed}.
    """

    def __init__(self, maxSize=DEFAULT_MAX_SIZE):
        self.maxSize = maxSize
        self._buffer = bytearray()
        self._scanFrom = 0
        self._pending = None
        self._error = None

    def feed(self, data):
        """
        Add received bytes; return the items completed by them.

        @raise ParseError: malformed input (400, with the partial request if any), a missing
            Content-Length (400), or a message or unterminated header block larger than C{maxSize} (413).
        """
        if self._error is not None:
            raise self._error
        buffer = self._buffer
        buffer += data
        items = []
        position = 0
        try:
            while True:
                if self._pending is None:
                    position, waiting = self._skipKeepalives(buffer, position, items)
                    if waiting or position >= len(buffer):
                        break
                    end = buffer.find(b"\r\n\r\n", max(position, self._scanFrom))
                    if end < 0:
                        if len(buffer) - position > self.maxSize:
                            raise ParseError("message header too large", 413)
                        self._scanFrom = max(position, len(buffer) - 3)
                        break
                    message, reason = _parseHead(bytes(buffer[position:end]))
                    if reason is not None:
                        raise _error(reason, 400, message)
                    length = _contentLength(message)
                    if length is None:
                        raise _error("missing Content-Length", 400, message)
                    if end + 4 + length - position > self.maxSize:
                        raise _error("message too large", 413, message)
                    self._pending = (message, end + 4, end + 4 + length)
                message, bodyStart, bodyEnd = self._pending
                if len(buffer) < bodyEnd:
                    break
                message.body = bytes(buffer[bodyStart:bodyEnd])
                items.append(message)
                self._pending = None
                position = self._scanFrom = bodyEnd
        except ParseError as error:
            error.parsed = items
            self._error = error
            self._buffer = bytearray()
            self._pending = None
            raise
        if position:
            del buffer[:position]
            self._scanFrom = max(0, self._scanFrom - position)
            if self._pending is not None:
                message, bodyStart, bodyEnd = self._pending
                self._pending = (message, bodyStart - position, bodyEnd - position)
        return items

    @staticmethod
    def _skipKeepalives(buffer, position, items):
        """
        Consume CRLF-CRLF pings (appending L{KEEPALIVE_PING}) and CRLF pongs at a message boundary.

        @return: C{(new position, waiting)}; waiting is true when the buffer ends in an incomplete ping.
        """
        length = len(buffer)
        while position < length and buffer[position] == 13:
            if buffer.startswith(b"\r\n\r\n", position):
                items.append(KEEPALIVE_PING)
                position += 4
            elif b"\r\n\r\n".startswith(bytes(buffer[position:position + 4])):
                return position, True
            elif buffer.startswith(b"\r\n", position):
                position += 2
            else:
                break
        return position, False


def _checkCommon(message, fail):
    """
    Checks shared by requests and responses; C{fail(reason, status)} builds the error to raise.
    """
    headers = message.headers
    if message.version != "SIP/2.0":
        raise fail("SIP version not supported", 505)
    counts = {}
    for entry in headers._entries:
        counts[entry[0]] = counts.get(entry[0], 0) + 1
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        if name.lower() not in counts:
            raise fail("missing %s header" % (name,), 400)
    for name in SINGLETON_HEADERS:
        if counts.get(name.lower(), 0) > 1:
            raise fail("multiple %s headers" % (name,), 400)
    if not _CALL_ID.fullmatch(headers.get("Call-ID")):
        raise fail("malformed Call-ID header", 400)
    try:
        message.vias()
        message.fromAddress()
        message.toAddress()
        message.contacts()
        message.routes()
        message.recordRoutes()
        number, method = message.cseq()
        message.maxForwards()
    except ParseError as error:
        raise fail(error.reason, 400) from None
    if number >= 2 ** 31:
        raise fail("CSeq number too large", 400)
    expires = headers.get("Expires")
    if expires is not None and not (expires.isascii() and expires.isdigit()):
        raise fail("bad Expires header", 400)
    length = headers.get("Content-Length")
    if length is not None and parseDecimal(length, 2 ** 31) != len(message.body):
        raise fail("Content-Length does not match body", 400)
    return method


def validateRequest(request):
    """
    The syntax and sanity checks a server applies to a request before processing it (RFC 3261 sections
    8.2 and 16.3), in this order:

      1. SIP version other than 2.0 -> 505 (section 21.5.6);
      2. missing Via, From, To, Call-ID or CSeq -> 400 (section 8.1.1; Max-Forwards may be absent for RFC
         2543 compatibility);
      3. a singleton header (L{SINGLETON_HEADERS}) more than once -> 400;
      4. -> 400: a malformed Via, From, To, Contact, Route, Record-Route, CSeq or Max-Forwards (0 to
         255); an empty Call-ID or one with whitespace or control characters; a CSeq number not below
         2**31 (section 8.1.1.5); an Expires that is not an integer (a value over 2**32-1 is accepted:
         the registrar clamps it, RFC 4475 section 3.1.2.4); a Content-Length other than the body length;
      5. CSeq method other than the request method -> 400 (section 8.2: RFC 4475 sections 3.1.2.17-18);
      6. Request-URI scheme other than sip, sips or tel -> 416 (section 8.2.2.1);
      7. a SIP Request-URI with headers (C{?...}) -> 400 (section 19.1.5; RFC 4475 section 3.1.2.11).

    What it does not check, because it depends on the element: the method (405/501), Require and
    Proxy-Require (420), Max-Forwards 0 (483), the To / From schemes a registrar needs, Content-Type (415).

    @raise ParseError: with C{status} to answer and C{message} the request itself.
    """
    def fail(reason, status):
        return ParseError(reason, status, request)

    method = _checkCommon(request, fail)
    if method != request.method:
        raise fail("CSeq method does not match request method", 400)
    uri = request.uri
    if uri is None:
        raise fail("malformed Request-URI", 400)
    if isinstance(uri, AbsoluteURI) or uri.scheme not in ("sip", "sips", "tel"):
        raise fail("unsupported URI scheme", 416)
    if uri.headers:
        raise fail("headers not allowed in Request-URI", 400)


def validateResponse(response):
    """
    The checks an element applies to a received response before passing it up (RFC 3261 sections 8.1.3
    and 18.1.2): version SIP/2.0, the mandatory headers present once and well formed (as in
    L{validateRequest}), CSeq below 2**31, Content-Length consistent.  A response that fails is dropped,
    never answered: the L{ParseError} raised has no C{message}.
    """
    def fail(reason, status):
        return ParseError(reason, 400)

    _checkCommon(response, fail)

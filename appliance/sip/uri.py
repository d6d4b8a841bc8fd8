"""
SIP URI and address grammar (RFC 3261 sections 19.1, 20.10 and 25.1; RFC 3966 for tel:).

Pure code: stdlib and attrs only.  Everything here is re-exported by L{appliance.sip.message}, which is the
module other code should import from.

Escaping: user, password, URI parameters and URI headers are stored I{unescaped} (C{%41} becomes C{"A"}) and
re-escaped by C{str()} following RFC 3261 section 25.1, so C{URI.parse(str(uri)) == uri} always holds.
Octets that are not valid UTF-8 after unescaping are kept as surrogate escapes (PEP 383) and written back
unchanged.

Header parameters (of Address and Via) are I{not} URI-escaped: values are stored as received, and a
quoted-string value keeps its double quotes (C{'"<urn:uuid:...>"'}), so that it is written back verbatim.
"""

import functools
import ipaddress
import re
from urllib.parse import quote as _quote, unquote as _unquote

import attrs

__all__ = ["ParseError", "URI", "AbsoluteURI", "Address", "WILDCARD"]


_CACHED_LENGTH = 512
"""
Parse results of values up to this length are memoised (they are immutable), since a message's Via,
From, To... are typically parsed by several layers in turn.
"""

_UNSAFE_REASON = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


class ParseError(ValueError):
    """
    Malformed SIP input.

    @ivar reason: short human-readable text, safe to use as a reason phrase or in a Warning header
        (no CR, LF or other control characters, at most 200 characters).
    @ivar status: the SIP status code a server should answer with (400 by default, 413 for a message that
        is too large, 505 for an unsupported SIP version, 416 for an unsupported Request-URI scheme).
    @ivar message: a partial L{Request} (start line and the header fields that could be read, body empty)
        that a server can answer with C{makeResponse(error.message, error.status)}; C{None} when there is
        nothing to answer, in particular always C{None} for a response (a response is never answered,
        RFC 4475 section 3.1.1.12).  In a partial request, C{uri} is C{None} if the Request-URI itself was
        unreadable.
    @ivar parsed: for L{StreamParser.feed} only: the items framed by the same C{feed()} call before the
        error; deliver them before handling the error.  Empty otherwise.
    """

    def __init__(self, reason, status=400, message=None):
        reason = str(reason)
        if _UNSAFE_REASON.search(reason):
            reason = _UNSAFE_REASON.sub("?", reason)
        reason = reason[:200]
        ValueError.__init__(self, reason)
        self.reason = reason
        self.status = status
        self.message = message
        self.parsed = []


# Character classes of RFC 3261 section 25.1 (ASCII only).
_TOKEN_CHARS = r"A-Za-z0-9\-.!%*_+`'~"
_TOKEN = re.compile("[%s]+" % _TOKEN_CHARS)
_DISPLAY_TOKENS = re.compile("[%s]+(?:[ \t]+[%s]+)*" % (_TOKEN_CHARS, _TOKEN_CHARS))
# gen-value = token / host / quoted-string; unbracketed IPv6 (Via received) needs ":".
_PARAM_VALUE = re.compile(r"[%s:\[\]]+" % _TOKEN_CHARS)
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_QUOTED_PAIR = re.compile(r"\\(.)", re.S)

_USER = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+")
_PASSWORD = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,%]*")
_PARAMCHARS = re.compile(r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$%]+")
_HNVCHARS = re.compile(r"[A-Za-z0-9\-_.!~*'()\[\]/?:+$%]*")
_HOSTNAME = re.compile(r"[A-Za-z0-9\-_.]+")
_IPV6CHARS = re.compile(r"[0-9A-Fa-f:.]+")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+\-.]*):")
_OPAQUE = re.compile(r"[A-Za-z0-9\-_.!~*'();/?:@&=+$,%#\[\]]+")
_TELNUMBER = re.compile(r"\+?[0-9A-Fa-f*#\-.()]+")
_TEL_SEPARATORS = re.compile(r"[\-.()]")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")

# What str() leaves unescaped (besides letters, digits and "_.-~", which quote() never escapes).
_USER_SAFE = "!*'()&=+$,;?/"
_PASSWORD_SAFE = "!*'()&=+$,"
_PARAM_SAFE = "!*'()[]/:&+$"
_HEADER_SAFE = "!*'()[]/?:+$"
_TEL_SAFE = "+*()"


def parseDecimal(text, maximum):
    """
    Parse C{1*DIGIT} (ASCII digits only, leading zeros allowed).

    @return: the value, or C{None} if C{text} is not all digits or the value exceeds C{maximum}; never
        converts an overlong digit string (Python limits int() of long strings).
    """
    if not text or not text.isascii() or not text.isdigit():
        return None
    significant = text.lstrip("0")
    if len(significant) > len(str(maximum)):
        return None
    value = int(significant or "0")
    if value > maximum:
        return None
    return value


def _unescape(text):
    """
    Undo %HH escapes (RFC 3261 section 25.1); invalid UTF-8 becomes surrogate escapes.
    """
    if "%" not in text:
        return text
    return _unquote(text, errors="surrogateescape")


def _escape(text, safe):
    """
    %-escape every character of C{text} outside C{safe} and the unreserved set (RFC 3261 section 25.1).
    """
    return _quote(text, safe=safe, errors="surrogateescape")


def _checkEscapes(text, what):
    if "%" in text and _BAD_ESCAPE.search(text):
        raise ParseError("bad %-escape in " + what)


def splitQuoted(text, separator, angles=False):
    """
    Split C{text} at C{separator} (C{","} or C{";"}), except inside double-quoted strings (RFC 3261
    section 25.1 quoted-string, with backslash quoted-pairs) and, if C{angles}, inside C{<...>}.

    An unterminated quoted string or angle bracket runs to the end of C{text} (and is then rejected by
    whoever parses the element).  Linear time: each element is one regex match that cannot fail.
    """
    if '"' not in text and not (angles and "<" in text):
        return text.split(separator)
    match = _ELEMENT[separator, angles].match
    parts = []
    position = 0
    length = len(text)
    while True:
        end = match(text, position).end()
        parts.append(text[position:end])
        if end >= length:
            return parts
        position = end + 1


_ELEMENT = {
    (",", True): re.compile(r'(?:[^"<,]+|"(?:[^"\\]|\\.)*"?|<[^>]*>?)*', re.S),
    (",", False): re.compile(r'(?:[^",]+|"(?:[^"\\]|\\.)*"?)*', re.S),
    (";", True): re.compile(r'(?:[^"<;]+|"(?:[^"\\]|\\.)*"?|<[^>]*>?)*', re.S),
    (";", False): re.compile(r'(?:[^";]+|"(?:[^"\\]|\\.)*"?)*', re.S),
}


def parseParams(text, what):
    """
    Parse C{*( SEMI generic-param )} of a header field (RFC 3261 section 25.1): LWS is allowed around
    C{;} and C{=}; values are tokens, hosts or quoted strings (kept with their quotes).

    @param text: the parameter text, empty or starting (after optional LWS) with C{;}.
    @param what: the header name, for the error reason.
    @return: a tuple of C{(lower-cased name, value or None)}.
    """
    text = text.strip(" \t")
    if not text:
        return ()
    if text[0] != ";":
        raise ParseError("junk after " + what + " value")
    body = text[1:]
    if '"' in body:
        pieces = splitQuoted(body, ";")
    else:
        pieces = body.split(";")
    params = []
    for piece in pieces:
        name, equals, value = piece.partition("=")
        name = name.strip(" \t")
        if not _TOKEN.fullmatch(name):
            raise ParseError("bad parameter in " + what)
        if equals:
            value = value.strip(" \t")
            if not (_PARAM_VALUE.fullmatch(value) or (value[:1] == '"' and _QUOTED.fullmatch(value))):
                raise ParseError("bad parameter value in " + what)
        else:
            value = None
        params.append((name.lower(), value))
    return tuple(params)


def formatParams(params):
    """
    Serialize header parameters as C{;name=value} / C{;name}.
    """
    return "".join(";" + name if value is None else ";" + name + "=" + value for name, value in params)


def findParam(params, name, default=None):
    """
    The value of the first parameter called C{name} (case-insensitive): C{None} for a parameter without a
    value, C{default} if absent.
    """
    name = name.lower()
    for key, value in params:
        if key == name:
            return value
    return default


def hasParam(params, name):
    name = name.lower()
    return any(key == name for key, _ in params)


def replaceParams(params, changes):
    """
    Apply C{withParams(**changes)}: a value of C{None} (or C{False}) removes the parameter, C{True} sets it
    without a value, anything else sets C{str(value)}.  An existing parameter keeps its position, a new one
    is appended.
    """
    result = list(params)
    for name, value in changes.items():
        name = name.lower()
        if value is None or value is False:
            result = [item for item in result if item[0] != name]
            continue
        value = None if value is True else str(value)
        for index, (key, _) in enumerate(result):
            if key == name:
                result[index] = (name, value)
                result = result[:index + 1] + [item for item in result[index + 1:] if item[0] != name]
                break
        else:
            result.append((name, value))
    return tuple(result)


def parseHost(text, what):
    """
    Check and lower-case a host: a hostname, an IPv4 address or an IPv6 reference in brackets
    (RFC 3261 section 25.1 host).
    """
    if text[:1] == "[":
        inner = text[1:-1]
        if text[-1:] != "]" or ":" not in inner or not _IPV6CHARS.fullmatch(inner):
            raise ParseError("bad IPv6 reference in " + what)
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise ParseError("bad IPv6 reference in " + what) from None
        return text.lower()
    if not _HOSTNAME.fullmatch(text):
        raise ParseError("bad host in " + what)
    return text.lower()


def parseHostPort(text, what):
    """
    Parse C{host [ ":" port ]} (RFC 3261 section 25.1 hostport).

    @return: C{(host, port or None)}.
    """
    if text[:1] == "[":
        end = text.find("]")
        if end < 0:
            raise ParseError("bad IPv6 reference in " + what)
        host, rest = text[:end + 1], text[end + 1:]
        if rest and rest[0] != ":":
            raise ParseError("bad host in " + what)
        portText = rest[1:] if rest else None
    else:
        host, colon, portText = text.partition(":")
        if not colon:
            portText = None
    host = parseHost(host, what)
    port = None
    if portText is not None:
        port = parseDecimal(portText, 65535)
        if port is None:
            raise ParseError("bad port in " + what)
    return host, port


def _parseURIParams(text):
    params = []
    for piece in text.split(";"):
        name, equals, value = piece.partition("=")
        if not _PARAMCHARS.fullmatch(name) or (equals and not _PARAMCHARS.fullmatch(value)):
            raise ParseError("bad URI parameter")
        _checkEscapes(piece, "URI parameter")
        params.append((_unescape(name).lower(), _unescape(value) if equals else None))
    return tuple(params)


def _parseURIHeaders(text):
    headers = []
    for piece in text.split("&"):
        name, equals, value = piece.partition("=")
        if not name or not equals or not _HNVCHARS.fullmatch(name) or not _HNVCHARS.fullmatch(value):
            raise ParseError("bad URI header")
        _checkEscapes(piece, "URI header")
        headers.append((_unescape(name), _unescape(value)))
    return tuple(headers)


def _parseSIP(scheme, rest):
    """
    Parse the part of a SIP or SIPS URI after the colon (RFC 3261 section 19.1.1).
    """
    user = password = None
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1:]
        userText, colon, passwordText = userinfo.partition(":")
        if not _USER.fullmatch(userText):
            raise ParseError("bad user part in URI")
        _checkEscapes(userText, "user part")
        user = _unescape(userText)
        if colon:
            if not _PASSWORD.fullmatch(passwordText):
                raise ParseError("bad password in URI")
            _checkEscapes(passwordText, "password")
            password = _unescape(passwordText)
    headers = ()
    question = rest.find("?")
    if question >= 0:
        headers = _parseURIHeaders(rest[question + 1:])
        rest = rest[:question]
    params = ()
    semicolon = rest.find(";")
    if semicolon >= 0:
        params = _parseURIParams(rest[semicolon + 1:])
        rest = rest[:semicolon]
    host, port = parseHostPort(rest, "URI")
    return URI(scheme, user, password, host, port, params, headers)


def _parseTel(rest):
    """
    Parse the part of a tel URI after the colon (RFC 3966 section 3).
    """
    number, semicolon, paramText = rest.partition(";")
    if not _TELNUMBER.fullmatch(number.replace("%23", "#")) or not any(c.isdigit() for c in number) \
            or "+" in number[1:]:
        raise ParseError("bad telephone number in tel URI")
    params = _parseURIParams(paramText) if semicolon else ()
    return URI("tel", _unescape(number), None, "", None, params, ())


def _parseURI(text):
    """
    The uncached body of L{URI.parse}.
    """
    match = _SCHEME.match(text)
    if match is None:
        raise ParseError("malformed URI")
    scheme = match.group(1).lower()
    rest = text[match.end():]
    if scheme == "sip" or scheme == "sips":
        return _parseSIP(scheme, rest)
    if scheme == "tel":
        return _parseTel(rest)
    if not _OPAQUE.fullmatch(rest):
        raise ParseError("malformed URI")
    return AbsoluteURI(scheme, rest)


_parseURICached = functools.lru_cache(maxsize=4096)(_parseURI)


def _paramsEquivalent(mine, theirs, required):
    """
    RFC 3261 section 19.1.4: parameters in C{required} must be in both or neither and match; any other
    parameter is compared only when present in both.  Comparison is case-insensitive.
    """
    left = {name: (value or "").lower() for name, value in reversed(mine)}
    right = {name: (value or "").lower() for name, value in reversed(theirs)}
    for name in required:
        if left.get(name) != right.get(name):
            return False
    for name in left.keys() & right.keys():
        if left[name] != right[name]:
            return False
    return True


@attrs.frozen
class URI:
    """
    A SIP, SIPS (RFC 3261 section 19.1) or tel (RFC 3966) URI.

    For tel URIs, C{user} holds the telephone number as written (visual separators included), C{host} is
    C{""} and C{port} C{None}.  User, password, parameter names and values and header names and values
    are unescaped; parameter names are lower-cased, header names keep their case.
    """

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: tuple = attrs.field(default=(), converter=tuple)
    headers: tuple = attrs.field(default=(), converter=tuple)

    @classmethod
    def parse(cls, text):
        """
        Parse a URI.  SIP, SIPS and tel URIs become L{URI}; any other syntactically valid absoluteURI
        becomes L{AbsoluteURI} (not an error here: a server answers 416, RFC 3261 section 8.2.2.1).

        @raise ParseError: bad syntax (including surrounding whitespace or angle brackets).
        """
        if len(text) <= _CACHED_LENGTH:
            return _parseURICached(text)
        return _parseURI(text)


    @property
    def hostport(self):
        """
        C{host[:port]}, e.g. C{"example.com:5060"} or C{"[::1]:5060"}.
        """
        if self.port is None:
            return self.host
        return "%s:%d" % (self.host, self.port)

    def param(self, name, default=None):
        """
        The value of URI parameter C{name}: C{None} if present without a value, C{default} if absent.
        """
        return findParam(self.params, name, default)

    def hasParam(self, name):
        """
        Whether URI parameter C{name} is present (with or without a value).
        """
        return hasParam(self.params, name)

    def withParams(self, **changes):
        """
        A copy with parameters changed: C{None} removes, C{True} sets a parameter without value (C{;lr}),
        any other value sets C{str(value)}.  E.g. C{uri.withParams(transport="tcp", lr=True, maddr=None)}.
        """
        return attrs.evolve(self, params=replaceParams(self.params, changes))

    def __str__(self):
        if self.scheme == "tel":
            return "tel:" + _escape(self.user or "", _TEL_SAFE) + "".join(
                ";" + _escape(name, _PARAM_SAFE) + ("" if value is None else "=" + _escape(value, _PARAM_SAFE))
                for name, value in self.params)
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(_escape(self.user, _USER_SAFE))
            if self.password is not None:
                parts.append(":")
                parts.append(_escape(self.password, _PASSWORD_SAFE))
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts.append(":%d" % (self.port,))
        for name, value in self.params:
            parts.append(";")
            parts.append(_escape(name, _PARAM_SAFE))
            if value is not None:
                parts.append("=")
                parts.append(_escape(value, _PARAM_SAFE))
        if self.headers:
            parts.append("?")
            parts.append("&".join(_escape(name, _HEADER_SAFE) + "=" + _escape(value, _HEADER_SAFE)
                                  for name, value in self.headers))
        return "".join(parts)

    def equivalent(self, other):
        """
        URI comparison of RFC 3261 section 19.1.4 (and RFC 3966 section 4 for tel URIs): scheme, user and
        password case-sensitively after unescaping, host case-insensitively, port exactly (an omitted port
        does not match an explicit 5060); the user, ttl, method, maddr and transport parameters must match
        if either URI has them, other parameters only where both have them; headers must all match.
        """
        if not isinstance(other, URI) or self.scheme != other.scheme:
            return False
        if self.scheme == "tel":
            return (_TEL_SEPARATORS.sub("", self.user or "").lower()
                    == _TEL_SEPARATORS.sub("", other.user or "").lower()
                    and {(n, (v or "").lower()) for n, v in self.params}
                    == {(n, (v or "").lower()) for n, v in other.params})
        if (self.user, self.password, self.host, self.port) != (
                other.user, other.password, other.host, other.port):
            return False
        if not _paramsEquivalent(self.params, other.params, ("user", "ttl", "method", "maddr", "transport")):
            return False
        return ({(name.lower(), value) for name, value in self.headers}
                == {(name.lower(), value) for name, value in other.headers})


@attrs.frozen
class AbsoluteURI:
    """
    Any other absoluteURI (RFC 3261 section 25.1), e.g. C{http:}, C{urn:}, C{isbn:}: a lower-cased scheme
    and the opaque rest, kept verbatim.  It has no parameters, headers, user or host.
    """

    scheme: str
    opaque: str

    params = ()
    headers = ()

    def param(self, name, default=None):
        """
        Always C{default}: an absolute URI has no SIP parameters.
        """
        return default

    def hasParam(self, name):
        return False

    def equivalent(self, other):
        """
        Same scheme and same opaque part (RFC 2396 comparison, case-sensitive).
        """
        return isinstance(other, AbsoluteURI) and (self.scheme, self.opaque) == (other.scheme, other.opaque)

    def __str__(self):
        return self.scheme + ":" + self.opaque


_DISPLAY_ESCAPES = re.compile(r'[\\"\x00-\x08\x0b\x0c\x0e-\x1f\x7f]')


def quoteString(text):
    """
    Make a quoted-string (RFC 3261 section 25.1): backslash-escape backslash, double quote and control
    characters; CR and LF (which cannot be quoted) become spaces.
    """
    if "\r" in text or "\n" in text:
        text = text.replace("\r", " ").replace("\n", " ")
    return '"' + _DISPLAY_ESCAPES.sub(lambda match: "\\" + match.group(), text) + '"'


def unquoteString(text):
    """
    The content of a quoted-string (with its quotes) with quoted-pairs resolved.
    """
    inner = text[1:-1]
    if "\\" in inner:
        inner = _QUOTED_PAIR.sub(r"\1", inner)
    return inner


@attrs.frozen
class Address:
    """
    A name-addr or addr-spec with header parameters (RFC 3261 section 20.10): From, To, Contact, Route,
    Record-Route, Reply-To, P-Asserted-Identity...

    In the addr-spec form (no angle brackets), everything after the first C{;} belongs to the header,
    not to the URI (RFC 3261 section 20.10).  C{displayName} is unquoted and unescaped (C{None} if absent,
    C{""} for C{""}).  Parameter names are lower-cased; values are as received (quoted strings keep their
    quotes).  The Contact wildcard C{*} is the constant L{WILDCARD}, recognised by L{isWildcard}.
    """

    uri: object
    displayName: str | None = None
    params: tuple = attrs.field(default=(), converter=tuple)

    @classmethod
    def parse(cls, text):
        """
        Parse one name-addr or addr-spec with parameters.  C{*} is not accepted here (see
        C{Request.contacts}).

        @raise ParseError: bad syntax, e.g. an unterminated quoted display name, a display name that is not
            made of tokens, whitespace inside C{<...>}, or an addr-spec with URI headers (C{?}).
        """
        if len(text) <= _CACHED_LENGTH:
            return _parseAddressCached(text)
        return _parseAddress(text)

    @property
    def isWildcard(self):
        """
        Whether this is the Contact wildcard C{*} (RFC 3261 section 10.2.2).
        """
        return isinstance(self.uri, AbsoluteURI) and self.uri.scheme == "*"

    @property
    def tag(self):
        """
        The C{tag} parameter (RFC 3261 section 19.3), or C{None}.
        """
        for name, value in self.params:
            if name == "tag":
                return value
        return None

    def param(self, name, default=None):
        """
        The value of header parameter C{name}: C{None} if present without a value, C{default} if absent.
        """
        return findParam(self.params, name, default)

    def hasParam(self, name):
        return hasParam(self.params, name)

    def withParams(self, **changes):
        """
        A copy with header parameters changed (same rules as L{URI.withParams}), e.g.
        C{address.withParams(tag="a6c85cf")}.
        """
        return attrs.evolve(self, params=replaceParams(self.params, changes))

    def __str__(self):
        if self.isWildcard:
            return "*"
        if self.displayName is None:
            text = "<" + str(self.uri) + ">"
        else:
            text = quoteString(self.displayName) + " <" + str(self.uri) + ">"
        if self.params:
            text += formatParams(self.params)
        return text


def _parseAddress(text):
    """
    The uncached body of L{Address.parse}.
    """
    text = text.strip(" \t")
    if not text:
        raise ParseError("empty address")
    if text[0] == '"':
        match = _QUOTED.match(text)
        if match is None:
            raise ParseError("unterminated quoted display name")
        displayName = unquoteString(match.group())
        rest = text[match.end():].lstrip(" \t")
        if rest[:1] != "<":
            raise ParseError("expected <URI> after display name")
    else:
        less = text.find("<")
        if less < 0:
            return _parseAddrSpec(text)
        name = text[:less].rstrip(" \t")
        if name and not _DISPLAY_TOKENS.fullmatch(name):
            raise ParseError("bad display name")
        displayName = name or None
        rest = text[less:]
    greater = rest.find(">")
    if greater < 0:
        raise ParseError("missing > in address")
    uri = URI.parse(rest[1:greater])
    return Address(uri, displayName, parseParams(rest[greater + 1:], "address"))


def _parseAddrSpec(text):
    """
    An addr-spec without angle brackets: everything after the first C{;} is a header parameter, not a URI
    parameter (RFC 3261 section 20.10).
    """
    semicolon = text.find(";")
    if semicolon < 0:
        uriText, params = text, ()
    else:
        uriText, params = text[:semicolon].rstrip(" \t"), parseParams(text[semicolon:], "address")
    if "?" in uriText or "," in uriText or ">" in uriText:
        raise ParseError("URI with headers must be enclosed in <>")
    return Address(URI.parse(uriText), None, params)


_parseAddressCached = functools.lru_cache(maxsize=4096)(_parseAddress)


WILDCARD = Address(AbsoluteURI("*", ""))
"""
The Contact wildcard C{Contact: *} (RFC 3261 section 10.2.2), as returned by C{contacts()}.
"""

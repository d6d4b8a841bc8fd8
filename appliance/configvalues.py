"""
The value types of the configuration: each takes the text of a key and
returns the typed value, or raises L{ValueError} with a message for the
operator; L{appliance.config} names which key takes which.
"""

import re

import attrs

@attrs.frozen
class ListenAddress:
    """
    One parsed listen endpoint description, such as
    C{udp:5060:interface=127.0.0.1}.

    @ivar kind: C{'udp'}, C{'tcp'}, C{'tls'} or C{'ssl'}.
    @ivar port: the port number; 0 asks the system for a free one.
    @ivar interface: the address to bind, C{''} for all IPv4 interfaces.
    @ivar options: the other C{key=value} options, such as C{privateKey}.
    """

    kind: str
    port: int
    interface: str = ""
    options: tuple = ()

    def option(self, name, default=None):
        for key, value in self.options:
            if key == name:
                return value
        return default

    def __str__(self):
        text = "%s:%d" % (self.kind, self.port)
        if self.interface:
            text += ":interface=" + self.interface.replace(":", "\\:")
        for key, value in self.options:
            text += ":%s=%s" % (key, value.replace(":", "\\:"))
        return text


def splitEscaped(text):
    """
    Split an endpoint description on unescaped colons, as Twisted's
    endpoint strings do (C{interface=\\:\\:1}).
    """
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parseListenAddress(text, kinds=("udp", "tcp", "tls", "ssl")):
    """
    Parse one endpoint description into a L{ListenAddress}.

    @raise ValueError: with a message naming what is wrong.
    """
    parts = splitEscaped(text.strip())
    kind = parts[0].lower()
    if kind not in kinds:
        raise ValueError(
            "%r: transport must be one of %s" % (text, ", ".join(kinds))
        )
    if len(parts) < 2 or not parts[1].isdigit():
        raise ValueError("%r: expected %s:PORT[:interface=ADDR]" % (text, kind))
    port = int(parts[1])
    if port > 65535:
        raise ValueError("%r: port %d is out of range" % (text, port))
    interface, options = "", []
    for part in parts[2:]:
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError("%r: option %r is not key=value" % (text, part))
        if key == "interface":
            interface = value
        elif key in ("privateKey", "certKey"):
            options.append((key, value))
        else:
            raise ValueError("%r: unknown option %r" % (text, key))
    return ListenAddress(kind, port, interface, tuple(options))


# Value types: each takes the raw string and returns the typed value or
# raises ValueError with a message for the operator.


def string(text):
    return text.strip()


def boolean(text):
    value = text.strip().lower()
    if value in ("1", "yes", "true", "on"):
        return True
    if value in ("0", "no", "false", "off"):
        return False
    raise ValueError("%r is not a boolean (yes / no)" % (text,))


def integer(minimum, maximum):
    def parse(text):
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError("%r is not a whole number" % (text,))
        if not minimum <= value <= maximum:
            raise ValueError(
                "%d is out of range (%d to %d)" % (value, minimum, maximum)
            )
        return value

    return parse


def number(minimum, maximum):
    def parse(text):
        try:
            value = float(text.strip())
        except ValueError:
            raise ValueError("%r is not a number" % (text,))
        if not minimum <= value <= maximum:
            raise ValueError(
                "%g is out of range (%g to %g)" % (value, minimum, maximum)
            )
        return value

    return parse


def words(text):
    return tuple(word for word in text.replace(",", " ").split() if word)


_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


def domains(text):
    domains = tuple(word.lower() for word in words(text))
    if not domains:
        raise ValueError("at least one domain is required")
    for domain in domains:
        if not _DOMAIN.match(domain):
            raise ValueError("%r is not a domain name" % (domain,))
    return domains


def digestAlgorithms(text):
    names = tuple(word.upper() for word in words(text))
    if not names or len(set(names)) != len(names):
        raise ValueError("list MD5 and / or SHA-256, each once")
    for name in names:
        if name not in ("MD5", "SHA-256"):
            raise ValueError("%r is not MD5 or SHA-256" % (name,))
    return names


def domainList(text):
    return domains(text) if text.strip() else ()


def sipListen(text):
    addresses = tuple(
        parseListenAddress(word, kinds=("udp", "tcp", "tls"))
        for word in text.split()
    )
    if not addresses:
        raise ValueError("at least one listen address is required")
    return addresses


def rtspListen(text):
    return parseListenAddress(text, kinds=("tcp",))


def portRange(text):
    low, sep, high = text.strip().partition("-")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit():
        raise ValueError("%r is not a port range FIRST-LAST" % (text,))
    low, high = int(low), int(high)
    if not 1024 <= low < high <= 65535 or high - low < 3:
        raise ValueError("%r: expected 1024 <= FIRST < LAST <= 65535, at least 4 ports" % (text,))
    return low, high


def rtspUrl(text):
    value = text.strip()
    if value and not re.match(r"^rtsp://[^/\s]+/?$", value):
        raise ValueError("%r is not a base URL like rtsp://host:8554/" % (text,))
    return value


_BUS_ADDRESS_KEYS = {"unix": ("path", "abstract"), "tcp": ("host", "port", "family")}


def busAddress(text):
    """
    C{system}, C{session}, or a D-Bus server address (D-Bus specification,
    "Server Addresses"): C{unix:path=...}, C{unix:abstract=...} or
    C{tcp:host=...,port=...}, several separated by C{;}.
    """
    value = text.strip()
    if value.lower() in ("system", "session"):
        return value.lower()
    if not value:
        raise ValueError("expected system, session or an address like unix:path=/run/bus")
    for address in value.split(";"):
        kind, sep, rest = address.partition(":")
        if not sep or kind not in _BUS_ADDRESS_KEYS:
            raise ValueError(
                "%r: expected system, session or an address unix:path=... / "
                "unix:abstract=... / tcp:host=...,port=..." % (address,)
            )
        pairs = {}
        for pair in rest.split(","):
            key, sep, item = pair.partition("=")
            if not sep or not item or key not in _BUS_ADDRESS_KEYS[kind]:
                raise ValueError(
                    "%r: %r is not KEY=VALUE with KEY one of %s"
                    % (address, pair, ", ".join(_BUS_ADDRESS_KEYS[kind]))
                )
            pairs[key] = item
        if kind == "unix" and len(pairs) != 1:
            raise ValueError("%r: give exactly one of path= or abstract=" % (address,))
        if kind == "tcp" and not ("host" in pairs and pairs.get("port", "").isdigit()):
            raise ValueError("%r: tcp needs host= and a numeric port=" % (address,))
    return value


def choice(*choices):
    def parse(text):
        value = text.strip().lower()
        if value not in choices:
            raise ValueError("%r is not one of %s" % (text, ", ".join(choices)))
        return value

    return parse

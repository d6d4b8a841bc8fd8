"""
The appliance's configuration: one INI file, one section per service.

Every section and key is on an allow-list with its type and default. Unknown
sections and keys are errors, and all errors of a file are reported together,
each naming the file, section and key, so an operator fixes them in one go.
Each service receives a frozen attrs object for its own section, never the
raw parser.
"""

import configparser
import ipaddress
import os
import re

import attrs

#: The services the appliance knows, in start-up order. A name from the
#: design that this version does not ship yet is refused with a clear error.
AVAILABLE_SERVICES = ("sip", "rtsp", "drm", "dbus", "snmp")
PLANNED_SERVICES = ("voicemail", "psap", "web")

LOG_LEVELS = ("debug", "info", "warn", "error", "critical")

DEFAULT_PATH = "<defaults>"


class ConfigError(Exception):
    """
    One or more configuration errors; C{errors} lists them as
    C{"FILE [section] key: problem"} strings.
    """

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


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


def _splitEscaped(text):
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
    parts = _splitEscaped(text.strip())
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


def _string(text):
    return text.strip()


def _boolean(text):
    value = text.strip().lower()
    if value in ("1", "yes", "true", "on"):
        return True
    if value in ("0", "no", "false", "off"):
        return False
    raise ValueError("%r is not a boolean (yes / no)" % (text,))


def _integer(minimum, maximum):
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


def _number(minimum, maximum):
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


def _words(text):
    return tuple(word for word in text.replace(",", " ").split() if word)


_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


def _domains(text):
    domains = tuple(word.lower() for word in _words(text))
    if not domains:
        raise ValueError("at least one domain is required")
    for domain in domains:
        if not _DOMAIN.match(domain):
            raise ValueError("%r is not a domain name" % (domain,))
    return domains


def _digestAlgorithms(text):
    names = tuple(word.upper() for word in _words(text))
    if not names or len(set(names)) != len(names):
        raise ValueError("list MD5 and / or SHA-256, each once")
    for name in names:
        if name not in ("MD5", "SHA-256"):
            raise ValueError("%r is not MD5 or SHA-256" % (name,))
    return names


def _domainList(text):
    return _domains(text) if text.strip() else ()


def _services(text):
    names = tuple(word.lower() for word in _words(text))
    if not names:
        raise ValueError("at least one service is required")
    for name in names:
        if name in PLANNED_SERVICES:
            raise ValueError(
                "service %r is not available in this version" % (name,)
            )
        if name not in AVAILABLE_SERVICES:
            raise ValueError(
                "unknown service %r (known: %s)"
                % (name, ", ".join(AVAILABLE_SERVICES))
            )
    return tuple(name for name in AVAILABLE_SERVICES if name in names)


def _logLevel(text):
    value = text.strip().lower()
    if value not in LOG_LEVELS:
        raise ValueError("%r is not one of %s" % (text, ", ".join(LOG_LEVELS)))
    return value


def _sipListen(text):
    addresses = tuple(
        parseListenAddress(word, kinds=("udp", "tcp", "tls"))
        for word in text.split()
    )
    if not addresses:
        raise ValueError("at least one listen address is required")
    return addresses


def _rtspListen(text):
    return parseListenAddress(text, kinds=("tcp",))


def _portRange(text):
    low, sep, high = text.strip().partition("-")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit():
        raise ValueError("%r is not a port range FIRST-LAST" % (text,))
    low, high = int(low), int(high)
    if not 1024 <= low < high <= 65535 or high - low < 3:
        raise ValueError("%r: expected 1024 <= FIRST < LAST <= 65535, at least 4 ports" % (text,))
    return low, high


def _rtspUrl(text):
    value = text.strip()
    if value and not re.match(r"^rtsp://[^/\s]+/?$", value):
        raise ValueError("%r is not a base URL like rtsp://host:8554/" % (text,))
    return value


_BUS_ADDRESS_KEYS = {"unix": ("path", "abstract"), "tcp": ("host", "port", "family")}


def _busAddress(text):
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


def _choice(*choices):
    def parse(text):
        value = text.strip().lower()
        if value not in choices:
            raise ValueError("%r is not one of %s" % (text, ", ".join(choices)))
        return value

    return parse


@attrs.frozen
class ApplianceConfig:
    """
    The C{[appliance]} section: what runs and where its state lives.
    """

    data_dir: str = "./var"
    services: tuple = AVAILABLE_SERVICES
    tls_cert: str = ""
    tls_key: str = ""
    log_level: str = "info"


@attrs.frozen
class SIPConfig:
    """
    The C{[sip]} section.
    """

    domains: tuple = ("example.test",)
    listen: tuple = (
        ListenAddress("udp", 5060),
        ListenAddress("tcp", 5060),
        ListenAddress("tls", 5061),
    )
    record_route: bool = True
    realm: str = ""
    max_message_size: int = 65535
    tcp_idle_timeout: float = 300.0
    max_connections: int = 2048
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    nonce_lifetime: int = 300
    auth_max_failures: int = 10
    auth_lockout: int = 300
    ring_timeout: int = 30
    redirect_domains: tuple = ()
    digest_algorithms: tuple = ("SHA-256", "MD5")


@attrs.frozen
class RTSPConfig:
    """
    The C{[rtsp]} section: the RTSP media server.
    """

    listen: ListenAddress = ListenAddress("tcp", 8554)
    rtp_ports: tuple = (30000, 30999)
    url: str = ""
    auth: str = "digest"
    session_timeout: int = 60
    max_sessions_per_client: int = 32
    max_header_size: int = 8192
    max_headers: int = 64
    max_body_size: int = 65536
    operators: tuple = ()


@attrs.frozen
class DBusConfig:
    """
    The C{[dbus]} section: the bus the management interface
    (C{org.appliance.Appliance1}, docs/dbus.md) is offered on.
    """

    bus: str = "system"


def _drmListen(text):
    return parseListenAddress(text, kinds=("ssl",))


def _httpsUrl(text):
    value = text.strip()
    if value and not re.match(r"^https://[^/\s]+/?$", value):
        raise ValueError("%r is not a base URL like https://host:8443/" % (text,))
    return value


@attrs.frozen
class DRMConfig:
    """
    The C{[drm]} section: the HTTPS license server (docs/drm.md).
    """

    listen: ListenAddress = ListenAddress("ssl", 8443, "127.0.0.1")
    url: str = ""
    default_play_count: int = 3
    default_expiry_days: int = 30
    default_forward: bool = False
    rate_limit: float = 50.0
    rate_burst: int = 100


def _snmpListen(text):
    address = parseListenAddress(text, kinds=("udp",))
    if ":" in address.interface:
        raise ValueError("%r: the SNMP agent listens on IPv4 only" % (text,))
    return address


def _snmpTargets(text):
    """
    Notification receivers: C{HOST[:PORT]} (IPv4 address, port 162 by
    default), separated by spaces.
    """
    targets = []
    for word in _words(text):
        host, sep, port = word.partition(":")
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError("%r: expected IPV4-ADDRESS[:PORT]" % (word,))
        if sep and not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError("%r: the port must be a number from 1 to 65535" % (word,))
        targets.append((host, int(port) if sep else 162))
    return tuple(targets)


def _usmKey(text):
    value = text.strip()
    if value and len(value) < 8:
        raise ValueError("an SNMPv3 pass phrase needs at least 8 characters (RFC 3414)")
    return value


@attrs.frozen
class SNMPConfig:
    """
    The C{[snmp]} section: the SNMP agent (docs/snmp.md).
    """

    listen: ListenAddress = ListenAddress("udp", 16161, "127.0.0.1")
    community: str = "public"
    v3_user: str = ""
    v3_auth_key: str = ""
    v3_priv_key: str = ""
    trap_targets: tuple = ()
    inform_targets: tuple = ()
    check_interval: float = 5.0
    auth_burst_threshold: int = 20
    auth_burst_interval: int = 60


def _snmpErrors(config):
    """
    The consistency errors of the C{[snmp]} section.
    """
    snmp, path, errors = config.snmp, config.path, []
    v3 = (snmp.v3_user, snmp.v3_auth_key, snmp.v3_priv_key)
    if any(v3) and not all(v3):
        errors.append(
            "%s [snmp] v3_user: v3_user, v3_auth_key and v3_priv_key go together" % (path,)
        )
    if snmp.inform_targets and not snmp.v3_user:
        errors.append("%s [snmp] inform_targets: SNMPv3 informs need v3_user" % (path,))
    interface = snmp.listen.interface
    if snmp.community == "public" and not interface.startswith("127.") and interface != "localhost":
        errors.append(
            "%s [snmp] community: the well-known community public is only accepted on a "
            "loopback address; choose a community or leave it empty to disable SNMPv2c"
            % (path,)
        )
    return errors


@attrs.frozen
class Config:
    """
    The whole configuration, one attribute per section.
    """

    path: str
    appliance: ApplianceConfig
    sip: SIPConfig
    rtsp: RTSPConfig = RTSPConfig()
    snmp: SNMPConfig = SNMPConfig()
    dbus: DBusConfig = DBusConfig()
    drm: DRMConfig = DRMConfig()

    def dataPath(self, *segments):
        """
        Return a path under the data directory; a relative C{data_dir} is
        taken relative to the working directory the appliance started in.
        """
        return os.path.join(os.path.abspath(self.appliance.data_dir), *segments)


#: section name -> (attrs class, {key: value type}).
SCHEMA = {
    "appliance": (
        ApplianceConfig,
        {
            "data_dir": _string,
            "services": _services,
            "tls_cert": _string,
            "tls_key": _string,
            "log_level": _logLevel,
        },
    ),
    "sip": (
        SIPConfig,
        {
            "domains": _domains,
            "listen": _sipListen,
            "record_route": _boolean,
            "realm": _string,
            "max_message_size": _integer(1500, 1048576),
            "tcp_idle_timeout": _number(1, 86400),
            "max_connections": _integer(1, 1000000),
            "t1": _number(0.05, 60),
            "t2": _number(0.1, 600),
            "t4": _number(0.1, 600),
            "min_expires": _integer(1, 86400),
            "max_expires": _integer(1, 31536000),
            "default_expires": _integer(1, 31536000),
            "nonce_lifetime": _integer(10, 86400),
            "auth_max_failures": _integer(1, 100000),
            "auth_lockout": _integer(0, 86400),
            "ring_timeout": _integer(1, 3600),
            "redirect_domains": _domainList,
            "digest_algorithms": _digestAlgorithms,
        },
    ),
    "rtsp": (
        RTSPConfig,
        {
            "listen": _rtspListen,
            "rtp_ports": _portRange,
            "url": _rtspUrl,
            "auth": _choice("digest", "none"),
            "session_timeout": _integer(5, 86400),
            "max_sessions_per_client": _integer(1, 100000),
            "max_header_size": _integer(1024, 1048576),
            "max_headers": _integer(8, 1000),
            "max_body_size": _integer(1024, 16777216),
            "operators": _words,
        },
    ),
    "dbus": (DBusConfig, {"bus": _busAddress}),
    "drm": (
        DRMConfig,
        {
            "listen": _drmListen,
            "url": _httpsUrl,
            "default_play_count": _integer(0, 1000000),
            "default_expiry_days": _integer(0, 36500),
            "default_forward": _boolean,
            "rate_limit": _number(0, 1000000),
            "rate_burst": _integer(1, 1000000),
        },
    ),
    "snmp": (
        SNMPConfig,
        {
            "listen": _snmpListen,
            "community": _string,
            "v3_user": _string,
            "v3_auth_key": _usmKey,
            "v3_priv_key": _usmKey,
            "trap_targets": _snmpTargets,
            "inform_targets": _snmpTargets,
            "check_interval": _number(0.1, 3600),
            "auth_burst_threshold": _integer(1, 1000000),
            "auth_burst_interval": _integer(1, 86400),
        },
    ),
}


def config_from_string(text, path=DEFAULT_PATH, overrides=None):
    """
    Parse configuration text; see L{load}.
    """
    parser = configparser.ConfigParser(
        interpolation=None, strict=False, empty_lines_in_values=False,
        inline_comment_prefixes=None,
    )
    parser.optionxform = str
    errors = []
    try:
        parser.read_string(text, source=path)
    except configparser.Error as e:
        raise ConfigError(["%s: %s" % (path, " ".join(str(e).split()))])
    values = {}
    for section in parser.sections():
        if section not in SCHEMA:
            errors.append(
                "%s [%s]: unknown section (known: %s)"
                % (path, section, ", ".join(SCHEMA))
            )
            continue
        keys = SCHEMA[section][1]
        for key, raw in parser.items(section):
            if key not in keys:
                errors.append(
                    "%s [%s] %s: unknown key (known: %s)"
                    % (path, section, key, ", ".join(keys))
                )
                continue
            values[(section, key)] = raw
    for (section, key), raw in (overrides or {}).items():
        values[(section, key)] = raw
    sections = {}
    for section, (cls, keys) in SCHEMA.items():
        kwargs = {}
        for key, valueType in keys.items():
            if (section, key) not in values:
                continue
            try:
                kwargs[key] = valueType(values[(section, key)])
            except ValueError as e:
                errors.append("%s [%s] %s: %s" % (path, section, key, e))
        sections[section] = kwargs
    if errors:
        raise ConfigError(errors)
    config = Config(
        path=path,
        **{name: SCHEMA[name][0](**kwargs) for name, kwargs in sections.items()},
    )
    _checkConsistency(config)
    return config


def _checkConsistency(config):
    errors = []
    sip = config.sip
    if sip.t2 < sip.t1:
        errors.append(
            "%s [sip] t2: must not be smaller than t1 (%g)" % (config.path, sip.t1)
        )
    seen = set()
    for address in sip.listen:
        key = (address.kind, address.port, address.interface)
        if address.port and key in seen:
            errors.append(
                "%s [sip] listen: %s is listed twice" % (config.path, address)
            )
        seen.add(key)
    if not sip.min_expires <= sip.default_expires <= sip.max_expires:
        errors.append(
            "%s [sip] default_expires: must lie between min_expires (%d) and "
            "max_expires (%d)" % (config.path, sip.min_expires, sip.max_expires)
        )
    for domain in sip.redirect_domains:
        if domain not in sip.domains:
            errors.append(
                "%s [sip] redirect_domains: %s is not one of the domains"
                % (config.path, domain)
            )
    errors.extend(_snmpErrors(config))
    if bool(config.appliance.tls_cert) != bool(config.appliance.tls_key):
        errors.append(
            "%s [appliance] tls_cert: tls_cert and tls_key go together"
            % (config.path,)
        )
    if errors:
        raise ConfigError(errors)


def load(path=None, overrides=None):
    """
    Load the configuration file at C{path}, or the embedded defaults when
    C{path} is C{None}.

    @param overrides: C{{(section, key): text}} applied over the file, as
        given on the command line.
    @raise ConfigError: listing every problem found.
    """
    if path is None:
        return config_from_string("", overrides=overrides)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(["%s: cannot read: %s" % (path, e)])
    return config_from_string(text, path=path, overrides=overrides)

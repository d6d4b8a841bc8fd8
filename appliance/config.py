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

from appliance import configvalues as values
from appliance.configvalues import ListenAddress, parseListenAddress

#: The services the appliance knows, in start-up order. A name from the
#: design that this version does not ship yet is refused with a clear error.
AVAILABLE_SERVICES = ("sip", "rtsp", "conference", "drm", "dbus", "snmp")
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


def _services(text):
    names = tuple(word.lower() for word in values.words(text))
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
class ConferenceConfig:
    """
    The C{[conference]} section: the echo test and the conference bridge, a
    SIP user agent of its own that the proxy routes C{echo@} and
    C{<prefix><room>@} of our domains to.
    """

    listen: tuple = (
        ListenAddress("udp", 5070, "127.0.0.1"),
        ListenAddress("tcp", 5070, "127.0.0.1"),
    )
    rtp_ports: tuple = (31000, 31999)
    media_address: str = ""
    echo: str = "echo"
    prefix: str = "conf-"
    max_participants: int = 50
    mute_digit: str = "*"
    record: bool = False
    proxy: str = ""


def _userPart(text):
    value = text.strip()
    if value and not re.fullmatch(r"[A-Za-z0-9._~!$&'()*+,;=%-]+", value):
        raise ValueError("%r is not a SIP user part" % (text,))
    return value


def _sipURI(text):
    from appliance.sip.message import URI, ParseError

    value = text.strip()
    if value:
        try:
            uri = URI.parse(value)
        except ParseError as e:
            raise ValueError("%r is not a SIP URI: %s" % (text, e.reason))
        if not isinstance(uri, URI) or uri.scheme not in ("sip", "sips"):
            raise ValueError("%r is not a sip or sips URI" % (text,))
    return value


def _dtmfDigit(text):
    value = text.strip().upper()
    if len(value) != 1 or value not in "0123456789*#ABCD":
        raise ValueError("%r is not one DTMF digit (0-9, *, #, A-D)" % (text,))
    return value


def _mediaAddress(text):
    value = text.strip()
    if value:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("%r is not an IP address" % (text,))
    return value


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
    for word in values.words(text):
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
    conference: ConferenceConfig = ConferenceConfig()
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
            "data_dir": values.string,
            "services": _services,
            "tls_cert": values.string,
            "tls_key": values.string,
            "log_level": _logLevel,
        },
    ),
    "sip": (
        SIPConfig,
        {
            "domains": values.domains,
            "listen": values.sipListen,
            "record_route": values.boolean,
            "realm": values.string,
            "max_message_size": values.integer(1500, 1048576),
            "tcp_idle_timeout": values.number(1, 86400),
            "max_connections": values.integer(1, 1000000),
            "t1": values.number(0.05, 60),
            "t2": values.number(0.1, 600),
            "t4": values.number(0.1, 600),
            "min_expires": values.integer(1, 86400),
            "max_expires": values.integer(1, 31536000),
            "default_expires": values.integer(1, 31536000),
            "nonce_lifetime": values.integer(10, 86400),
            "auth_max_failures": values.integer(1, 100000),
            "auth_lockout": values.integer(0, 86400),
            "ring_timeout": values.integer(1, 3600),
            "redirect_domains": values.domainList,
            "digest_algorithms": values.digestAlgorithms,
        },
    ),
    "rtsp": (
        RTSPConfig,
        {
            "listen": values.rtspListen,
            "rtp_ports": values.portRange,
            "url": values.rtspUrl,
            "auth": values.choice("digest", "none"),
            "session_timeout": values.integer(5, 86400),
            "max_sessions_per_client": values.integer(1, 100000),
            "max_header_size": values.integer(1024, 1048576),
            "max_headers": values.integer(8, 1000),
            "max_body_size": values.integer(1024, 16777216),
            "operators": values.words,
        },
    ),
    "conference": (
        ConferenceConfig,
        {
            "listen": values.sipListen,
            "rtp_ports": values.portRange,
            "media_address": _mediaAddress,
            "echo": _userPart,
            "prefix": _userPart,
            "max_participants": values.integer(2, 1000),
            "mute_digit": _dtmfDigit,
            "record": values.boolean,
            "proxy": _sipURI,
        },
    ),
    "dbus": (DBusConfig, {"bus": values.busAddress}),
    "drm": (
        DRMConfig,
        {
            "listen": _drmListen,
            "url": _httpsUrl,
            "default_play_count": values.integer(0, 1000000),
            "default_expiry_days": values.integer(0, 36500),
            "default_forward": values.boolean,
            "rate_limit": values.number(0, 1000000),
            "rate_burst": values.integer(1, 1000000),
        },
    ),
    "snmp": (
        SNMPConfig,
        {
            "listen": _snmpListen,
            "community": values.string,
            "v3_user": values.string,
            "v3_auth_key": _usmKey,
            "v3_priv_key": _usmKey,
            "trap_targets": _snmpTargets,
            "inform_targets": _snmpTargets,
            "check_interval": values.number(0.1, 3600),
            "auth_burst_threshold": values.integer(1, 1000000),
            "auth_burst_interval": values.integer(1, 86400),
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
    conference = config.conference
    if "conference" in config.appliance.services:
        if not conference.echo and not conference.prefix:
            errors.append(
                "%s [conference] prefix: echo and prefix cannot both be empty" % (config.path,)
            )
        if not any(address.kind in ("udp", "tcp") for address in conference.listen):
            errors.append(
                "%s [conference] listen: needs a udp or tcp address" % (config.path,)
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

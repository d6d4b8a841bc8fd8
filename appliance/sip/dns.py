"""
Locating SIP servers (RFC 3263 section 4, client side) with twisted.names.

L{SIPResolver.resolve} turns the URI a request is forwarded to (its next hop: the Request-URI or the top
Route) into an ordered list of L{Target}s that the caller tries in turn, moving to the next one on a
transport error or a timeout (RFC 3263 section 4.3).  The steps:

  1. TARGET is the C{maddr} parameter if present, the host otherwise (RFC 3263 section 4).
  2. Transport (section 4.1): an explicit C{transport} parameter wins (TLS for C{sips:} with
     C{transport=tcp}); otherwise a numeric TARGET or an explicit port means UDP for C{sip:} and TLS for
     C{sips:}; otherwise NAPTR records (C{SIP+D2U}, C{SIP+D2T}, C{SIPS+D2T}, only C{SIPS+D2T} for a
     C{sips:} URI) ordered by order then preference; without usable NAPTR records, SRV queries for
     C{_sips._tcp}, C{_sip._tcp} and C{_sip._udp}, in that order of preference (C{_sips._tcp} only for
     C{sips:}).
  3. Address and port (section 4.2): a numeric TARGET is used as is with the URI's port or the default
     port (5060, 5061 for TLS); a name with an explicit port is looked up as A/AAAA; otherwise SRV
     records ordered per RFC 2782 (priority, then weighted random), each SRV target looked up as A/AAAA;
     with no SRV record at all, A/AAAA of TARGET at the default port.

Decisions where the RFCs leave room:

  - All usable NAPTR records and all SRV records contribute targets, in preference order, so that
    failover also crosses transports; duplicates are dropped.
  - With only some transports supported, records for the others are ignored; when UDP is not supported,
    a C{sip:} URI without transport parameter defaults to TCP instead.
  - An SRV record whose target is C{"."} (RFC 2782: service decidedly not available) yields no target
    but still counts as "SRV records found", so there is no A/AAAA fallback for that name.
  - CNAMEs are not chased beyond what the DNS server puts in its answer; records are picked by type.
  - No SRV or address records, NXDOMAIN, DNS errors and timeouts all end in an empty list: the caller
    treats that like a transport error (RFC 3261 section 8.1.3.1 and 16.7: 503).  The Deferred fails
    only for a URI that is not C{sip:} or C{sips:} (C{ValueError}) or for a bug; C{resolve} itself
    never raises.
  - For TLS, the server identity to check is the URI's domain, not the SRV target (RFC 5922 section 4);
    the caller has the URI for that.

Answers are cached for their TTL (the smallest of the records used), measured on the injected clock;
NXDOMAIN and empty answers are cached for C{negativeTTL} seconds; errors and timeouts are not cached.
"""

import ipaddress
from collections import OrderedDict
from random import Random

import attrs
from twisted.internet import defer, error as netError
from twisted.logger import Logger
from twisted.names import dns, error

from appliance import logs
from appliance.sip.transport import DEFAULT_PORTS

__all__ = ["Target", "SIPResolver", "DEFAULT_PORTS", "TRANSPORTS"]

_log = Logger(observer=logs.observer)

TRANSPORTS = ("UDP", "TCP", "TLS")

# RFC 3263 section 4.1 NAPTR services, and the SRV prefixes of section 4.2 in our order of preference.
_NAPTR_SERVICES = {b"sip+d2u": "UDP", b"sip+d2t": "TCP", b"sips+d2t": "TLS"}
_SRV_PREFIXES = (("TLS", b"_sips._tcp."), ("TCP", b"_sip._tcp."), ("UDP", b"_sip._udp."))

# What a failed query may fail with, short of a bug: logged, not cached and treated as "no records".
# (They subclass DomainError, which otherwise means NXDOMAIN, so they are caught first.)
_DNS_FAILURES = (
    error.DNSFormatError, error.DNSServerError, error.DNSQueryRefusedError, error.DNSNotImplementedError,
    error.DNSUnknownError, error.ResolverError, defer.TimeoutError, netError.CannotListenError, OSError,
)


@attrs.frozen
class Target:
    """
    One place to send a request to (RFC 3263 section 4.2).

    Iterating gives C{(transport, host, port)}, so C{transport, host, port = target} works.

    @ivar transport: C{"UDP"}, C{"TCP"} or C{"TLS"}.
    @ivar host: an IP address, without brackets for IPv6.
    @ivar port: the port number.
    """

    transport: str
    host: str
    port: int

    def __iter__(self):
        return iter((self.transport, self.host, self.port))


def _ipAddress(host):
    """
    The address object for a numeric host (IPv6 with or without brackets), C{None} for a name.
    """
    if host[:1] == "[" and host[-1:] == "]":
        host = host[1:-1]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _explicitTransport(value, secure):
    """
    The transport asked for by a C{transport} URI parameter (RFC 3261 section 19.1.1), or C{None} for one
    we cannot use: TLS for C{tcp} (and the deprecated C{tls}) in a C{sips:} URI, no UDP for C{sips:}.
    """
    value = (value or "").lower()
    if value == "tls" or (secure and value == "tcp"):
        return "TLS"
    if not secure and value in ("udp", "tcp"):
        return value.upper()
    return None


class SIPResolver:
    """
    Turns SIP and SIPS URIs into the servers to try, per RFC 3263 section 4 (see the module docstring).

    @param resolver: a twisted.names L{IResolver}, e.g. C{client.Resolver(resolv="/etc/resolv.conf",
        reactor=reactor)}; it does the I/O on its own reactor.
    @param clock: an L{IReactorTime} for cache expiry.
    @param supportedTransports: the transports we can send on; others are never returned.
    @param cacheSize: the most (name, type) answers kept; the least recently used go first.
    @param negativeTTL: seconds to remember NXDOMAIN and empty answers (RFC 2308, kept short).
    @param timeout: the retry timeouts of each query, passed to C{resolver.query}; short, since a lookup
        may take three queries in turn and the caller's transaction has its own timers.
    @param addressTypes: the address record types looked up, in order of preference.
    @param random: a L{Random} for the RFC 2782 weighted choice (seeded in tests).
    """

    def __init__(self, resolver, clock, *, supportedTransports=TRANSPORTS, cacheSize=1000, negativeTTL=30,
                 timeout=(1, 3), addressTypes=(dns.A, dns.AAAA), random=None):
        unknown = set(supportedTransports) - set(TRANSPORTS)
        if unknown:
            raise ValueError("unsupported transports: %s" % (", ".join(sorted(unknown)),))
        if not supportedTransports:
            raise ValueError("no supported transport")
        self._resolver = resolver
        self._clock = clock
        self._transports = frozenset(supportedTransports)
        self._cacheSize = cacheSize
        self._negativeTTL = negativeTTL
        self._timeout = timeout
        self._addressTypes = tuple(addressTypes)
        self._random = Random() if random is None else random
        self._cache = OrderedDict()

    def resolve(self, uri):
        """
        Locate the servers for C{uri} (RFC 3263 section 4).

        @param uri: a C{sip:} or C{sips:} L{appliance.sip.uri.URI}.
        @return: a L{Deferred} firing with the L{Target}s to try in turn, possibly empty (nothing found,
            or DNS failed); failing with C{ValueError} for any other kind of URI.
        """
        return defer.Deferred.fromCoroutine(self._resolve(uri))

    async def _resolve(self, uri):
        scheme = getattr(uri, "scheme", None)
        if scheme not in ("sip", "sips"):
            raise ValueError("cannot locate servers for a %s URI" % (scheme,))
        secure = scheme == "sips"
        host = uri.param("maddr") or uri.host
        address = _ipAddress(host)
        default = "TLS" if secure else next(t for t in TRANSPORTS if t in self._transports)
        transport = None
        if uri.hasParam("transport"):
            transport = _explicitTransport(uri.param("transport"), secure)
        elif address is not None or uri.port is not None:
            transport = default
        if default not in self._transports or (uri.hasParam("transport") and transport not in self._transports):
            _log.info("No supported transport for {uri}", uri=str(uri))
            return []
        if address is not None:
            return [Target(transport, str(address), DEFAULT_PORTS[transport] if uri.port is None else uri.port)]
        try:
            name = host.rstrip(".").encode("idna").lower()
        except UnicodeError:
            _log.info("Bad host name in {uri}", uri=str(uri))
            return []
        if uri.port is not None:
            targets = await self._addresses(transport, name, uri.port)
        else:
            if transport is not None:
                services = [(transport, prefix + name) for t, prefix in _SRV_PREFIXES if t == transport]
            else:
                services = await self._naptr(name, secure)
                if services:
                    transport = services[0][0]
                else:
                    services = [(t, prefix + name) for t, prefix in _SRV_PREFIXES
                                if t in self._transports and (t == "TLS" or not secure)]
            found, targets = await self._services(services)
            if not found:
                transport = transport or default
                targets = await self._addresses(transport, name, DEFAULT_PORTS[transport])
        targets = list(dict.fromkeys(targets))
        _log.debug("Located {uri}: {targets}", uri=str(uri), targets=targets)
        return targets

    async def _naptr(self, name, secure):
        """
        The C{(transport, SRV name)} of the usable NAPTR records of C{name}, best first (RFC 3263 section
        4.1, RFC 3403 section 4.1): known SIP services over supported transports, flag C{"s"}, only
        C{SIPS+D2T} for a SIPS URI.
        """
        usable = []
        for record in await self._lookup(name, dns.NAPTR):
            transport = _NAPTR_SERVICES.get(record.service.string.lower())
            if (transport in self._transports and record.flags.string.lower() == b"s"
                    and (transport == "TLS" or not secure)):
                usable.append((record.order, record.preference, transport, record.replacement.name))
        usable.sort(key=lambda item: item[:2])
        return [(transport, replacement) for _, _, transport, replacement in usable]

    async def _services(self, services):
        """
        Look up the SRV records of each C{(transport, name)} of C{services} and the addresses of their
        targets (RFC 3263 section 4.2).

        @return: C{(found, targets)}: whether there was any SRV record, and the L{Target}s in order.
        """
        answers = await self._gather(self._lookup(name, dns.SRV) for _, name in services)
        found = False
        hops = []
        for (transport, _), records in zip(services, answers):
            found = found or bool(records)
            for record in self._orderSRV(records):
                if record.target.name not in (b"", b"."):
                    hops.append((transport, record.target.name, record.port))
        lists = await self._gather(self._addresses(*hop) for hop in hops)
        return found, [target for targets in lists for target in targets]

    def _orderSRV(self, records):
        """
        Order SRV records as RFC 2782 says ("Usage rules"): by priority, lowest first; within a priority,
        repeatedly pick one at random with a probability proportional to its weight, weight-0 records
        being placed first so that they get a small chance when the random number is 0.
        """
        byPriority = {}
        for record in records:
            byPriority.setdefault(record.priority, []).append(record)
        ordered = []
        for priority in sorted(byPriority):
            group = sorted(byPriority[priority], key=lambda record: record.weight != 0)
            while group:
                chosen = self._random.randint(0, sum(record.weight for record in group))
                running = 0
                for index, record in enumerate(group):
                    running += record.weight
                    if running >= chosen:
                        break
                ordered.append(group.pop(index))
        return ordered

    async def _addresses(self, transport, name, port):
        """
        The L{Target}s for the address records of C{name} (RFC 3263 section 4.2), in the order of
        C{addressTypes}, then in the order the DNS gave them.
        """
        answers = await self._gather(self._lookup(name, recordType) for recordType in self._addressTypes)
        return [Target(transport, str(ipaddress.ip_address(record.address)), port)
                for records in answers for record in records]

    @staticmethod
    def _gather(coroutines):
        """
        Run C{coroutines} concurrently; a L{Deferred} of their results in order.
        """
        return defer.gatherResults([defer.Deferred.fromCoroutine(c) for c in coroutines], consumeErrors=True)

    async def _lookup(self, name, recordType):
        """
        The records of type C{recordType} in the answer for C{name}, from the cache or the resolver; an
        empty list for NXDOMAIN, no data, an error or a timeout.
        """
        key = (name.lower(), recordType)
        now = self._clock.seconds()
        entry = self._cache.get(key)
        if entry is not None:
            if entry[0] > now:
                self._cache.move_to_end(key)
                return entry[1]
            del self._cache[key]
        typeName = dns.QUERY_TYPES.get(recordType, recordType)
        try:
            answers, _, _ = await self._resolver.query(dns.Query(name, recordType, dns.IN), self._timeout)
        except _DNS_FAILURES as e:
            _log.info("DNS {type} query for {name} failed: {error}", type=typeName,
                      name=name.decode("ascii", "replace"), error=e.__class__.__name__)
            return []
        except (error.DomainError, error.AuthoritativeDomainError):
            records, ttl = [], self._negativeTTL  # NXDOMAIN (DNSNameError) or "nobody knows this name"
        else:
            records = [answer.payload for answer in answers if answer.type == recordType]
            ttl = min((answer.ttl for answer in answers if answer.type == recordType),
                      default=self._negativeTTL)
        if ttl > 0:
            self._cache[key] = (self._clock.seconds() + ttl, records)
            while len(self._cache) > self._cacheSize:
                self._cache.popitem(last=False)
        return records

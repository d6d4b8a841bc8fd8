"""
Tests for L{appliance.sip.dns}: locating SIP servers (RFC 3263 section 4) against a real twisted.names
server on loopback that serves an in-memory authoritative zone; cache expiry runs on a L{task.Clock}.
"""

from random import Random

from twisted.internet import defer, reactor, task
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol
from twisted.names import authority, client, common, dns, server
from twisted.trial.unittest import TestCase

from appliance.sip.dns import SIPResolver, Target
from appliance.sip.message import URI

TTL = 60


def A(address):
    return dns.Record_A(address, ttl=TTL)


def AAAA(address):
    return dns.Record_AAAA(address, ttl=TTL)


def SRV(priority, weight, port, target):
    return dns.Record_SRV(priority, weight, port, target, ttl=TTL)


def NAPTR(order, preference, flags, service, replacement):
    return dns.Record_NAPTR(order, preference, flags, service, b"", replacement, ttl=TTL)


SOA = dns.Record_SOA(mname=b"ns.example.com", rname=b"root.example.com", serial=1, refresh=60, retry=60,
                     expire=60, minimum=60, ttl=TTL)

RECORDS = {
    b"example.com": [SOA],
    # NAPTR -> SRV -> A, with services we cannot use (SCTP, ENUM, flag "u") ranked first.
    b"naptr.example.com": [
        NAPTR(90, 50, b"s", b"SIP+D2T", b"_sip._tcp.naptr.example.com"),
        NAPTR(90, 40, b"s", b"SIP+D2U", b"_sip._udp.naptr.example.com"),
        NAPTR(50, 50, b"s", b"SIPS+D2T", b"_sips._tcp.naptr.example.com"),
        NAPTR(10, 10, b"s", b"SIP+D2S", b"_sip._sctp.naptr.example.com"),
        NAPTR(10, 10, b"u", b"E2U+sip", b"example.com"),
        A("192.0.2.99"),
    ],
    b"_sips._tcp.naptr.example.com": [SRV(0, 0, 5061, b"tls.naptr.example.com")],
    b"_sip._tcp.naptr.example.com": [SRV(0, 0, 5060, b"tcp.naptr.example.com")],
    b"_sip._udp.naptr.example.com": [SRV(0, 0, 5060, b"udp.naptr.example.com")],
    b"_sip._sctp.naptr.example.com": [SRV(0, 0, 5060, b"sctp.naptr.example.com")],
    b"tls.naptr.example.com": [A("192.0.2.1")],
    b"tcp.naptr.example.com": [A("192.0.2.3")],
    b"udp.naptr.example.com": [A("192.0.2.2")],
    b"sctp.naptr.example.com": [A("192.0.2.4")],
    # A NAPTR record whose SRV name has no records: A/AAAA of the domain with the NAPTR's transport.
    b"lonely.example.com": [NAPTR(10, 10, b"s", b"SIP+D2T", b"_sip._tcp.lonely.example.com"), A("192.0.2.40")],
    # SRV only, two priorities and two transports; the domain's own A record must not be used.
    b"srv.example.com": [A("192.0.2.99")],
    b"_sip._udp.srv.example.com": [SRV(10, 0, 5070, b"b.srv.example.com"), SRV(5, 0, 5080, b"a.srv.example.com")],
    b"_sip._tcp.srv.example.com": [SRV(0, 0, 5090, b"a.srv.example.com")],
    b"a.srv.example.com": [A("192.0.2.10"), AAAA("2001:db8::10")],
    b"b.srv.example.com": [A("192.0.2.11")],
    # Addresses only.
    b"plain.example.com": [A("192.0.2.20"), AAAA("2001:db8::20")],
    b"v6.example.com": [AAAA("2001:db8::30")],
    # SRV weights within one priority.
    b"_sip._udp.weighted.example.com": [
        SRV(0, 10, 5060, b"w10.example.com"), SRV(0, 90, 5060, b"w90.example.com"),
        SRV(0, 0, 5060, b"w0.example.com"),
    ],
    b"w0.example.com": [A("192.0.2.50")],
    b"w10.example.com": [A("192.0.2.51")],
    b"w90.example.com": [A("192.0.2.59")],
    # Service decidedly not available (RFC 2782), despite an A record.
    b"dot.example.com": [A("192.0.2.60")],
    b"_sip._udp.dot.example.com": [SRV(0, 0, 0, b".")],
}


class Zone(authority.FileAuthority):
    """
    An authoritative zone built from records in code (as C{NoFileAuthority} in Twisted's own tests) that
    remembers the queries it answers and fails with SERVFAIL for C{broken.example.com}.
    """

    def __init__(self, records):
        common.ResolverBase.__init__(self)
        self.soa = (b"example.com", SOA)
        self.records = records
        self.queries = []

    def _lookup(self, name, cls, type, timeout=None):
        self.queries.append((name.decode(), dns.QUERY_TYPES[type]))
        if name == b"broken.example.com":
            return defer.fail(RuntimeError("broken zone"))
        return authority.FileAuthority._lookup(self, name, cls, type, timeout)


class ScriptedRandom:
    """
    Answers C{randint} from a script and records the ranges asked for.
    """

    def __init__(self, values):
        self.values = list(values)
        self.ranges = []

    def randint(self, low, high):
        self.ranges.append((low, high))
        return self.values.pop(0)


class SIPResolverTests(TestCase):
    """
    Tests for L{SIPResolver.resolve}.
    """

    def setUp(self):
        self.zone = Zone(RECORDS)
        factory = server.DNSServerFactory(authorities=[self.zone])
        # The client may fall back to TCP on the same port: find a port
        # free for both (another program may hold the TCP one).
        for attempt in range(50):
            udp = reactor.listenUDP(0, dns.DNSDatagramProtocol(factory), interface="127.0.0.1")
            self.port = udp.getHost().port
            try:
                tcp = reactor.listenTCP(self.port, factory, interface="127.0.0.1")
            except CannotListenError:
                udp.stopListening()
                continue
            break
        self.addCleanup(udp.stopListening)
        self.addCleanup(tcp.stopListening)
        self.clock = task.Clock()
        self.resolver = self.makeResolver()

    def makeResolver(self, port=None, timeout=(1,), **kwargs):
        dnsResolver = client.Resolver(servers=[("127.0.0.1", port or self.port)], reactor=reactor)
        return SIPResolver(dnsResolver, self.clock, timeout=timeout, **kwargs)

    @defer.inlineCallbacks
    def assertResolves(self, uri, expected, resolver=None):
        targets = yield (resolver or self.resolver).resolve(URI.parse(uri))
        self.assertEqual([tuple(target) for target in targets], expected)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    @defer.inlineCallbacks
    def test_numericIPv4(self):
        """
        A numeric host is used as is, over UDP at port 5060, without any DNS query.
        """
        yield self.assertResolves("sip:bob@192.0.2.1", [("UDP", "192.0.2.1", 5060)])
        self.assertEqual(self.zone.queries, [])

    @defer.inlineCallbacks
    def test_numericIPv6(self):
        """
        A bracketed IPv6 host with a port and C{transport=tcp} gives the bare address over TCP.
        """
        yield self.assertResolves("sip:[2001:DB8::1]:5070;transport=tcp", [("TCP", "2001:db8::1", 5070)])
        self.assertEqual(self.zone.queries, [])

    @defer.inlineCallbacks
    def test_numericSIPS(self):
        """
        A numeric host in a SIPS URI means TLS at port 5061, also with C{transport=tcp}.
        """
        yield self.assertResolves("sips:192.0.2.1", [("TLS", "192.0.2.1", 5061)])
        yield self.assertResolves("sips:192.0.2.1;transport=tcp", [("TLS", "192.0.2.1", 5061)])
        yield self.assertResolves("sip:192.0.2.1;transport=TLS", [("TLS", "192.0.2.1", 5061)])

    @defer.inlineCallbacks
    def test_unusableTransport(self):
        """
        An unknown transport, UDP for SIPS and a transport we do not support give no target.
        """
        yield self.assertResolves("sip:192.0.2.1;transport=sctp", [])
        yield self.assertResolves("sips:192.0.2.1;transport=udp", [])
        yield self.assertResolves("sip:192.0.2.1;transport", [])
        tcpOnly = self.makeResolver(supportedTransports=("TCP",))
        yield self.assertResolves("sip:192.0.2.1;transport=udp", [], tcpOnly)
        yield self.assertResolves("sips:plain.example.com", [], tcpOnly)
        yield self.assertResolves("sip:192.0.2.1", [("TCP", "192.0.2.1", 5060)], tcpOnly)

    @defer.inlineCallbacks
    def test_maddr(self):
        """
        The maddr parameter, numeric or a name, replaces the host as TARGET (RFC 3263 section 4).
        """
        yield self.assertResolves("sip:bob@srv.example.com;maddr=192.0.2.7", [("UDP", "192.0.2.7", 5060)])
        yield self.assertResolves("sip:bob@srv.example.com:5099;maddr=plain.example.com",
                                  [("UDP", "192.0.2.20", 5099), ("UDP", "2001:db8::20", 5099)])

    @defer.inlineCallbacks
    def test_explicitPort(self):
        """
        A name with an explicit port is looked up as A and AAAA only, over UDP (TLS for SIPS).
        """
        yield self.assertResolves("sip:plain.example.com:5080",
                                  [("UDP", "192.0.2.20", 5080), ("UDP", "2001:db8::20", 5080)])
        self.assertEqual(sorted(self.zone.queries), [("plain.example.com", "A"), ("plain.example.com", "AAAA")])
        yield self.assertResolves("sips:srv.example.com:5081", [("TLS", "192.0.2.99", 5081)])

    @defer.inlineCallbacks
    def test_naptr(self):
        """
        Usable NAPTR records lead to SRV then A records by order, then preference; others are ignored.
        """
        yield self.assertResolves("sip:naptr.example.com", [
            ("TLS", "192.0.2.1", 5061), ("UDP", "192.0.2.2", 5060), ("TCP", "192.0.2.3", 5060)])

    @defer.inlineCallbacks
    def test_naptrSIPS(self):
        """
        A SIPS URI only uses C{SIPS+D2T} NAPTR records.
        """
        yield self.assertResolves("sips:naptr.example.com", [("TLS", "192.0.2.1", 5061)])

    @defer.inlineCallbacks
    def test_naptrSupportedTransports(self):
        """
        NAPTR records for transports we do not support are ignored.
        """
        resolver = self.makeResolver(supportedTransports=("UDP", "TCP"))
        yield self.assertResolves("sip:naptr.example.com",
                                  [("UDP", "192.0.2.2", 5060), ("TCP", "192.0.2.3", 5060)], resolver)

    @defer.inlineCallbacks
    def test_naptrWithoutSRV(self):
        """
        When the SRV name of a NAPTR record has no records, the domain's addresses are used with the
        NAPTR's transport and its default port.
        """
        yield self.assertResolves("sip:lonely.example.com", [("TCP", "192.0.2.40", 5060)])

    @defer.inlineCallbacks
    def test_srvOnly(self):
        """
        Without NAPTR, SRV records are used per transport (TCP before UDP) and by priority, each target
        giving its IPv4 then IPv6 addresses; the domain's own A record is not used.
        """
        yield self.assertResolves("sip:srv.example.com", [
            ("TCP", "192.0.2.10", 5090), ("TCP", "2001:db8::10", 5090),
            ("UDP", "192.0.2.10", 5080), ("UDP", "2001:db8::10", 5080), ("UDP", "192.0.2.11", 5070)])
        self.assertIn(("_sips._tcp.srv.example.com", "SRV"), self.zone.queries)

    @defer.inlineCallbacks
    def test_srvExplicitTransport(self):
        """
        With a transport parameter, NAPTR is skipped and only that transport's SRV name is queried.
        """
        yield self.assertResolves("sip:srv.example.com;transport=tcp",
                                  [("TCP", "192.0.2.10", 5090), ("TCP", "2001:db8::10", 5090)])
        self.assertNotIn(("srv.example.com", "NAPTR"), self.zone.queries)

    @defer.inlineCallbacks
    def test_addressesOnly(self):
        """
        Without NAPTR and SRV records, the A and AAAA records are used at the default port over UDP (TLS
        for SIPS, or the explicit transport).
        """
        yield self.assertResolves("sip:plain.example.com",
                                  [("UDP", "192.0.2.20", 5060), ("UDP", "2001:db8::20", 5060)])
        yield self.assertResolves("sips:plain.example.com",
                                  [("TLS", "192.0.2.20", 5061), ("TLS", "2001:db8::20", 5061)])
        yield self.assertResolves("sip:plain.example.com;transport=tcp",
                                  [("TCP", "192.0.2.20", 5060), ("TCP", "2001:db8::20", 5060)])

    @defer.inlineCallbacks
    def test_aaaaOnly(self):
        """
        A name with only an AAAA record gives its IPv6 address.
        """
        yield self.assertResolves("sip:v6.example.com", [("UDP", "2001:db8::30", 5060)])

    @defer.inlineCallbacks
    def test_ipv6First(self):
        """
        C{addressTypes} sets the order of address families, and can leave one out.
        """
        resolver = self.makeResolver(addressTypes=(dns.AAAA, dns.A))
        yield self.assertResolves("sip:plain.example.com",
                                  [("UDP", "2001:db8::20", 5060), ("UDP", "192.0.2.20", 5060)], resolver)
        resolver = self.makeResolver(addressTypes=(dns.A,))
        yield self.assertResolves("sip:plain.example.com", [("UDP", "192.0.2.20", 5060)], resolver)

    @defer.inlineCallbacks
    def test_srvWeights(self):
        """
        Within a priority, records are picked by the RFC 2782 running sum of weights, weight 0 first.
        """
        random = ScriptedRandom([50, 0, 7])
        resolver = self.makeResolver(random=random)
        yield self.assertResolves("sip:weighted.example.com;transport=udp", [
            ("UDP", "192.0.2.59", 5060), ("UDP", "192.0.2.50", 5060), ("UDP", "192.0.2.51", 5060)], resolver)
        self.assertEqual(random.ranges, [(0, 100), (0, 10), (0, 10)])

    @defer.inlineCallbacks
    def test_srvWeightsDistribution(self):
        """
        With a seeded random source, the heavier record comes first about as often as its weight says.
        """
        resolver = self.makeResolver(random=Random(3263))
        firsts = []
        for _ in range(200):
            targets = yield resolver.resolve(URI.parse("sip:weighted.example.com;transport=udp"))
            firsts.append(targets[0].host)
        self.assertTrue(160 <= firsts.count("192.0.2.59") <= 195, firsts.count("192.0.2.59"))
        self.assertTrue(0 < firsts.count("192.0.2.51") < 40)

    @defer.inlineCallbacks
    def test_srvDot(self):
        """
        An SRV target of C{"."} means the service is not available: no target and no A fallback.
        """
        yield self.assertResolves("sip:dot.example.com;transport=udp", [])
        yield self.assertResolves("sip:dot.example.com", [])

    @defer.inlineCallbacks
    def test_nxdomain(self):
        """
        A name that does not exist gives no target.
        """
        yield self.assertResolves("sip:missing.example.com", [])

    @defer.inlineCallbacks
    def test_serverFailure(self):
        """
        SERVFAIL gives no target, and is not cached.
        """
        yield self.assertResolves("sip:broken.example.com:5060", [])
        yield self.assertResolves("sip:broken.example.com:5060", [])
        self.assertEqual(len(self.zone.queries), 4)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 4)

    @defer.inlineCallbacks
    def test_timeout(self):
        """
        A DNS server that does not answer gives no target once the query timeouts have passed.
        """
        silent = reactor.listenUDP(0, DatagramProtocol(), interface="127.0.0.1")
        self.addCleanup(silent.stopListening)
        resolver = self.makeResolver(port=silent.getHost().port, timeout=(0.05,))
        yield self.assertResolves("sip:plain.example.com", [], resolver)

    @defer.inlineCallbacks
    def test_cacheExpiry(self):
        """
        Answers are reused until their TTL has passed on the injected clock.
        """
        self.resolver = self.makeResolver(negativeTTL=TTL)
        yield self.assertResolves("sip:srv.example.com", [
            ("TCP", "192.0.2.10", 5090), ("TCP", "2001:db8::10", 5090),
            ("UDP", "192.0.2.10", 5080), ("UDP", "2001:db8::10", 5080), ("UDP", "192.0.2.11", 5070)])
        count = len(self.zone.queries)
        self.clock.advance(TTL - 1)
        targets = yield self.resolver.resolve(URI.parse("sip:srv.example.com"))
        self.assertEqual(len(targets), 5)
        self.assertEqual(len(self.zone.queries), count)
        self.clock.advance(1)
        targets = yield self.resolver.resolve(URI.parse("sip:srv.example.com"))
        self.assertEqual(len(targets), 5)
        self.assertEqual(len(self.zone.queries), 2 * count)

    @defer.inlineCallbacks
    def test_negativeCache(self):
        """
        NXDOMAIN is remembered for C{negativeTTL} seconds.
        """
        resolver = self.makeResolver(negativeTTL=5)
        yield self.assertResolves("sip:missing.example.com:5060", [], resolver)
        self.assertEqual(len(self.zone.queries), 2)
        yield self.assertResolves("sip:missing.example.com:5060", [], resolver)
        self.assertEqual(len(self.zone.queries), 2)
        self.clock.advance(5)
        yield self.assertResolves("sip:missing.example.com:5060", [], resolver)
        self.assertEqual(len(self.zone.queries), 4)

    @defer.inlineCallbacks
    def test_cacheSize(self):
        """
        The cache keeps at most C{cacheSize} answers, dropping the least recently used.
        """
        resolver = self.makeResolver(cacheSize=2)
        yield self.assertResolves("sip:plain.example.com:5060", [
            ("UDP", "192.0.2.20", 5060), ("UDP", "2001:db8::20", 5060)], resolver)
        yield self.assertResolves("sip:v6.example.com:5060", [("UDP", "2001:db8::30", 5060)], resolver)
        self.assertEqual(len(self.zone.queries), 4)
        yield self.assertResolves("sip:v6.example.com:5060", [("UDP", "2001:db8::30", 5060)], resolver)
        self.assertEqual(len(self.zone.queries), 4)
        yield self.assertResolves("sip:plain.example.com:5060", [
            ("UDP", "192.0.2.20", 5060), ("UDP", "2001:db8::20", 5060)], resolver)
        self.assertEqual(len(self.zone.queries), 6)

    def test_notSIP(self):
        """
        A URI that is not C{sip:} or C{sips:} fails the Deferred with C{ValueError}, without raising.
        """
        self.failureResultOf(self.resolver.resolve(URI.parse("tel:+15551234")), ValueError)
        self.failureResultOf(self.resolver.resolve(URI.parse("http://example.com/")), ValueError)

    def test_badTransportOption(self):
        """
        Only UDP, TCP and TLS can be declared supported, and at least one of them.
        """
        self.assertRaises(ValueError, SIPResolver, None, self.clock, supportedTransports=("SCTP",))
        self.assertRaises(ValueError, SIPResolver, None, self.clock, supportedTransports=())

    def test_targetUnpacks(self):
        """
        A L{Target} unpacks as C{(transport, host, port)}.
        """
        transport, host, port = Target("UDP", "192.0.2.1", 5060)
        self.assertEqual((transport, host, port), ("UDP", "192.0.2.1", 5060))

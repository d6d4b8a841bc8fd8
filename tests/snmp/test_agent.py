"""
Tests for L{appliance.snmp.agent}: binding, the notification logic on a
L{Clock}, and the agent answering pysnmp's own client over the asyncio
reactor's loop.
"""

import asyncio
import socket

from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from appliance.config import ListenAddress, config_from_string
from appliance.sip.service import ListenError
from appliance.snmp import agent, mib
from appliance.stats import Statistics


class FakeService(Service):
    def __init__(self, name):
        self.name = name


def snmpConfig(extra=""):
    return config_from_string(
        "[snmp]\nlisten = udp:0:interface=127.0.0.1\ncommunity = c0mmunity\n"
        "v3_user = ops\nv3_auth_key = auth-pass-1\nv3_priv_key = priv-pass-1\n" + extra
    ).snmp


class BindTests(SynchronousTestCase):
    """
    L{agent.bindSocket} binds before privileges are dropped and reports a
    busy port as a L{ListenError}.
    """

    def test_busyPort(self):
        """
        A port in use gives a L{ListenError} naming the section, key and
        address.
        """
        taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        error = self.assertRaises(
            ListenError, agent.bindSocket, ListenAddress("udp", port, "127.0.0.1")
        )
        self.assertIn("[snmp] listen: cannot listen on udp:%d:interface=127.0.0.1" % (port,),
                      str(error))

    def test_nonBlocking(self):
        """
        The socket handed to pysnmp is bound and non-blocking.
        """
        sock = agent.bindSocket(ListenAddress("udp", 0, "127.0.0.1"))
        self.addCleanup(sock.close)
        self.assertFalse(sock.getblocking())
        self.assertEqual(sock.getsockname()[0], "127.0.0.1")


class AuthFailureWatchTests(SynchronousTestCase):
    """
    Bursts of authentication failures within a sliding interval.
    """

    def setUp(self):
        self.clock = Clock()
        self.totals = {"sip": 0}
        self.watch = agent.AuthFailureWatch(lambda: dict(self.totals), self.clock, 5, 60)
        self.watch.start()

    def test_burst(self):
        """
        Reaching the threshold within the interval reports the service
        once, with the failures counted.
        """
        self.clock.advance(10)
        self.totals["sip"] = 4
        self.assertEqual(self.watch.check(), [])
        self.clock.advance(10)
        self.totals["sip"] = 6
        self.assertEqual(self.watch.check(), [("sip", 6)])
        self.clock.advance(10)
        self.totals["sip"] = 12
        self.assertEqual(self.watch.check(), [])

    def test_slowFailuresAreNoBurst(self):
        """
        Failures spread wider than the interval are no burst.
        """
        for _ in range(10):
            self.clock.advance(30)
            self.totals["sip"] += 2
            self.assertEqual(self.watch.check(), [])

    def test_againAfterTheQuietPeriod(self):
        """
        After one interval, a new burst is reported again.
        """
        self.clock.advance(1)
        self.totals["sip"] = 5
        self.assertEqual(self.watch.check(), [("sip", 5)])
        self.clock.advance(61)
        self.totals["sip"] = 11
        self.assertEqual(self.watch.check(), [("sip", 6)])


class CheckTests(SynchronousTestCase):
    """
    L{agent.SNMPAgent.check} turns state changes into notifications.
    """

    def setUp(self):
        self.clock = Clock()
        self.tree = MultiService()
        self.sip = FakeService("sip")
        self.sip.setServiceParent(self.tree)
        self.stats = {"sip": Statistics("sip")}
        state = mib.ApplianceState(self.stats, self.tree, ("sip",), "1.0", self.clock)
        self.agent = agent.SNMPAgent(
            snmpConfig("auth_burst_threshold = 3\nauth_burst_interval = 60\n"), self.clock, state
        )
        self.sent = []
        self.agent.notify = lambda oid, service, status=None, failures=None: self.sent.append(
            (oid, service, failures)
        )
        self.tree.startService()
        self.agent._lastStatus = {"sip": mib.RUNNING}
        self.agent._authWatch.start()

    def test_failedAndBack(self):
        """
        A configured service that stops while the appliance runs is
        reported failed, and started when it runs again.
        """
        self.agent.check()
        self.assertEqual(self.sent, [])
        self.sip.stopService()
        self.agent.check()
        self.agent.check()
        self.assertEqual(self.sent, [(mib.SERVICE_FAILED, "sip", None)])
        self.sip.startService()
        self.agent.check()
        self.assertEqual(self.sent[1:], [(mib.SERVICE_STARTED, "sip", None)])

    def test_authBurst(self):
        """
        Authentication failures over the threshold send
        applAuthFailureBurst with their number.
        """
        self.stats["sip"].increment("auth.failures", 3)
        self.clock.advance(5)
        self.agent.check()
        self.assertEqual(self.sent, [(mib.AUTH_FAILURE_BURST, "sip", 3)])


class AgentTests(TestCase):
    """
    The agent on the asyncio reactor answers pysnmp's client over v2c and
    v3 authPriv, and stays silent for a wrong community.
    """

    def setUp(self):
        from twisted.internet import reactor

        if getattr(reactor, "_asyncioEventloop", None) is None:
            raise SkipTest("needs the asyncio reactor (trial --reactor=asyncio)")
        self.reactor = reactor
        self.tree = MultiService()
        self.stats = {"sip": Statistics("sip")}
        state = mib.ApplianceState(self.stats, self.tree, ("sip", "snmp"), "7.7", reactor)
        FakeService("sip").setServiceParent(self.tree)
        self.agent = agent.SNMPAgent(snmpConfig(), reactor, state)
        self.agent.setServiceParent(self.tree)
        self.tree.privilegedStartService()
        self.port = self.agent._socket.getsockname()[1]
        self.tree.startService()
        self.addCleanup(self.tree.stopService)

    def query(self, auth, *oids):
        from pysnmp.hlapi.v3arch import asyncio as hlapi

        async def run():
            client = hlapi.SnmpEngine()
            try:
                target = await hlapi.UdpTransportTarget.create(
                    ("127.0.0.1", self.port), timeout=1, retries=0
                )
                return await hlapi.get_cmd(
                    client, auth, target, hlapi.ContextData(),
                    *[hlapi.ObjectType(hlapi.ObjectIdentity(oid)) for oid in oids],
                )
            finally:
                client.close_dispatcher()

        return defer.Deferred.fromFuture(asyncio.ensure_future(run()))

    @defer.inlineCallbacks
    def test_v2c(self):
        """
        A v2c GET with the community reads the version and a counter.
        """
        from pysnmp.hlapi.v3arch import asyncio as hlapi

        self.stats["sip"].increment("requests.in.OPTIONS", 4)
        errorIndication, errorStatus, errorIndex, varBinds = yield self.query(
            hlapi.CommunityData("c0mmunity"),
            mib.SYSTEM + (1, 0), mib.SIP_METHOD_ENTRY + (3, 5),
        )
        self.assertIsNone(errorIndication)
        self.assertEqual(int(errorStatus), 0)
        self.assertEqual(bytes(varBinds[0][1]), b"7.7")
        self.assertEqual(int(varBinds[1][1]), 4)

    @defer.inlineCallbacks
    def test_systemGroup(self):
        """
        The MIB-2 system group describes the appliance: sysDescr names it
        and its version, sysObjectID is the enterprise subtree.
        """
        from pysnmp.hlapi.v3arch import asyncio as hlapi

        errorIndication, errorStatus, errorIndex, varBinds = yield self.query(
            hlapi.CommunityData("c0mmunity"), (1, 3, 6, 1, 2, 1, 1, 1, 0), (1, 3, 6, 1, 2, 1, 1, 2, 0)
        )
        self.assertIsNone(errorIndication)
        self.assertEqual(bytes(varBinds[0][1]), b"appliance 7.7")
        self.assertEqual(tuple(varBinds[1][1]), mib.ENTERPRISE)

    @defer.inlineCallbacks
    def test_v3AuthPriv(self):
        """
        A v3 authPriv GET (SHA, AES) with the configured keys reads the
        service status.
        """
        from pysnmp.hlapi.v3arch import asyncio as hlapi

        errorIndication, errorStatus, errorIndex, varBinds = yield self.query(
            hlapi.UsmUserData(
                "ops", "auth-pass-1", "priv-pass-1",
                authProtocol=hlapi.USM_AUTH_HMAC96_SHA, privProtocol=hlapi.USM_PRIV_CFB128_AES,
            ),
            mib.SERVICE_ENTRY + (3, 1),
        )
        self.assertIsNone(errorIndication)
        self.assertEqual(int(varBinds[0][1]), mib.RUNNING)

    @defer.inlineCallbacks
    def test_wrongCommunity(self):
        """
        A wrong community gets no answer: the request times out.
        """
        from pysnmp.hlapi.v3arch import asyncio as hlapi

        errorIndication, errorStatus, errorIndex, varBinds = yield self.query(
            hlapi.CommunityData("public"), mib.SYSTEM + (1, 0)
        )
        self.assertIn("No SNMP response", str(errorIndication))
        self.assertEqual(varBinds, ())

"""
The appliance's registration client (L{appliance.sip.registration}) against
SIPp acting as a registrar that challenges and checks the digest itself
(C{verifyauth}), on 127.0.0.1.
"""

import os

from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import TestCase

from appliance.sip.proxy import hostTargets
from appliance.sip.registration import Registration
from appliance.sip.service import SIPController
from appliance.sip.transaction import TimerSettings, TransactionLayer
from appliance.sip.transport import UDPTransport
from appliance.sip.useragent import UserAgent
from appliance.stats import Statistics
from tests.integration.harness import LOOPBACK, pickPorts
from tests.integration.sipp import Sipp


class RegistrationClientTests(TestCase):
    """
    A L{Registration} on a user agent stack of this process, SIPp the
    registrar.
    """

    timeout = 30

    def setUp(self):
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        stats = Statistics("test")
        self.agent = UserAgent(
            reactor, {}, lambda uri: succeed(hostTargets(uri, "UDP")), "", lambda call: call.reject(480),
            stats, TimerSettings(),
        )
        self.transactions = TransactionLayer(reactor, self.agent, self.agent.timers)
        self.agent.transactions = self.transactions
        controller = SIPController(self.transactions, stats)
        controller.ready = True
        transport = UDPTransport(controller, 65535)
        self.port = reactor.listenUDP(0, transport, interface=LOOPBACK)
        self.agent.transports["UDP"] = transport
        self.addCleanup(self.port.stopListening)
        self.addCleanup(self.transactions.stop)

    def registrar(self, password):
        port = pickPorts(1)[0]
        sipp = Sipp("registrar", "registrar_challenge.xml", self.directory, localPort=port, timeout=15,
                    arguments=["-key", "user", "vm-bob", "-key", "password", password,
                               "-key", "granted", "120"])
        self.addCleanup(sipp.stop)
        sipp.start().waitUntilListening()
        return sipp, port


    def test_challengeAnsweredAndExpiryRead(self):
        """
        SIPp's registrar checks our digest answer to its challenge and
        grants 120 s, which the registration takes as its expiry.
        """
        sipp, port = self.registrar("s3cret pass")
        registration = Registration(
            self.agent, "sip:vm-bob@example.test",
            "<sip:vm-bob@%s:%d>" % (LOOPBACK, self.port.getHost().port),
            credentials=("vm-bob", "s3cret pass"), registrar="sip:%s:%d" % (LOOPBACK, port),
        )
        self.addCleanup(registration.stop, unregister=False)
        return self.expectStatus(sipp, registration, 200)

    def test_wrongPasswordRefused(self):
        """
        With a password SIPp does not expect, its check fails and the
        registration is not in place.
        """
        sipp, port = self.registrar("another password")
        registration = Registration(
            self.agent, "sip:vm-bob@example.test",
            "<sip:vm-bob@%s:%d>" % (LOOPBACK, self.port.getHost().port),
            credentials=("vm-bob", "s3cret pass"), registrar="sip:%s:%d" % (LOOPBACK, port),
        )
        self.addCleanup(registration.stop, unregister=False)
        return self.expectStatus(sipp, registration, 403)

    def expectStatus(self, sipp, registration, code):
        done = Deferred()

        def poll():
            if registration.lastStatus is not None:
                done.callback(registration.lastStatus)
            else:
                reactor.callLater(0.05, poll)

        registration.start()
        poll()

        def check(status):
            self.assertEqual(status, code)
            if code == 200:
                self.assertEqual((registration.registered, registration.expires), (True, 120))
            else:
                self.assertFalse(registration.registered)
            result = sipp.wait(10)
            self.assertIn("REGISTER sip:%s" % (LOOPBACK,), result.messages)
            self.assertEqual(result.messages.count("Authorization: Digest"), 1, result.describe())

        return done.addCallback(check)

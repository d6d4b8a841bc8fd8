"""
The appliance's stateful forking proxy, redirect server and call rules against
SIPp callers and callees on 127.0.0.1 (issue 3, verification).

One appliance serves the module, with C{ring_timeout = 2} and a redirect
domain.  Each callee is a SIPp UAS whose binding is registered from the UAS's
own port before SIPp binds it (see L{tests.integration.sipp} for why not by
SIPp itself); callers are SIPp UACs.  Unless a test is about authentication,
the caller is C{carol@elsewhere.test}, a user of another domain, whom the
proxy does not challenge.
"""

import subprocess
import time
import uuid

from tests.integration.harness import (
    LOOPBACK,
    ApplianceTestCase,
    SharedAppliance,
    pickPorts,
    portIsFree,
    scratchDirectory,
    sipConfig,
    statusOf,
)
from tests.integration.sipp import (
    PASSWORD,
    Registration,
    Sipp,
    addUser,
    contactsOf,
    register,
    runSipp,
    setCallRule,
)

RING_TIMEOUT = 2

_appliance = SharedAppliance(
    configText=lambda appliance: sipConfig(
        appliance.dataDir, appliance.sipPort, appliance.tlsPort,
        domains="example.test redirect.test",
        extra=(
            "ring_timeout = %d\nredirect_domains = redirect.test\n"
            # SIPp 3.6.1 answers the first challenge only, and only MD5.
            "digest_algorithms = MD5 SHA-256\n" % (RING_TIMEOUT,)
        ),
    )
)

EXTERNAL_CALLER = "carol@elsewhere.test"


def _codes(lines):
    """
    The status codes among received first lines (requests left out).
    """
    return [int(line.split()[1]) for line in lines if line.startswith("SIP/2.0 ")]


def _methods(lines):
    """
    The methods among received first lines (responses left out).
    """
    return [line.split()[0] for line in lines if not line.startswith("SIP/2.0 ")]


class ProxyTests(ApplianceTestCase):
    """
    Calls from SIPp through the running appliance to SIPp phones.
    """

    def setUp(self):
        self.appliance = _appliance.get()
        self.watchAppliance(self.appliance)
        self._logStart = self.appliance.logSize()
        self.workDirectory = scratchDirectory("proxy-")
        self._sipps = []

    def tearDown(self):
        for process in self._sipps:
            process.stop()
        self.assertAlive(self.appliance)
        self.assertNoTracebacks(self.appliance, self._logStart)

    # ------------------------------------------------------------- helpers

    def newUser(self, domain="example.test"):
        """
        A new user of C{domain}, added with appliancectl.
        """
        aor = "u%s@%s" % (uuid.uuid4().hex[:8], domain)
        addUser(self.appliance, aor)
        return aor

    def phone(self, scenarioName, aor=None, name="uas"):
        """
        Start a SIPp UAS running C{scenarioName} on a fresh port, registered
        for C{aor} first when given.
        """
        port = pickPorts(1)[0]
        if aor is not None:
            register(self.appliance.sipPort, aor, port)
        process = Sipp(name, scenarioName, self.workDirectory, localPort=port, timeout=15)
        self._sipps.append(process)
        process.start().waitUntilListening()
        return process

    def call(self, aor, scenarioName="uac_call.xml", caller=EXTERNAL_CALLER, name="uac",
             arguments=()):
        """
        Run a SIPp UAC calling C{aor} through the appliance.
        """
        user, _, domain = aor.partition("@")
        return runSipp(
            name, scenarioName, self.workDirectory, self.appliance.sipPort, service=user,
            arguments=["-set", "domain", domain, "-set", "caller", caller] + list(arguments),
        )

    def assertSucceeded(self, *results):
        """
        Every SIPp run completed its scenario; the logs of all of them are
        in the failure message.
        """
        if not all(result.succeeded for result in results):
            self.fail("\n".join(result.describe() for result in results))

    def finalCode(self, result):
        """
        The final response code the UAC received.
        """
        finals = [code for code in _codes(result.received()) if code >= 200]
        if not finals:
            self.fail("no final response\n" + result.describe())
        return finals[-1]

    # ------------------------------------------------------------- calls

    def test_callThroughTheProxy(self):
        """
        A call to a registered phone: INVITE, 100, 180, 200, ACK, BYE, 200,
        with the proxy's Record-Route in the 200, so that the ACK and the BYE
        reach the phone through the proxy (RFC 3261 sections 16.6 and 16.12).
        """
        callee = self.newUser()
        uas = self.phone("uas_answer.xml", callee)
        uac = self.call(callee)
        phone = uas.wait(5)
        self.assertSucceeded(uac, phone)
        self.assertEqual(_codes(uac.received()), [100, 180, 200, 200])
        self.assertEqual(_methods(phone.received()), ["INVITE", "ACK", "BYE"])
        invite = phone.receivedMessages()[0]
        self.assertIn("Record-Route: <sip:127.0.0.1:%d;lr>" % (self.appliance.sipPort,), invite)

    def tcpPhone(self, aor, scenarioName="uas_answer.xml"):
        """
        Start a SIPp UAS on TCP, registered (over UDP) with a contact that
        asks for TCP.
        """
        port = pickPorts(1)[0]
        registration = Registration(self.appliance.sipPort, aor, localPort=port)
        try:
            response = registration.send(
                contact="<sip:%s@%s:%d;transport=tcp>" % (aor.partition("@")[0], LOOPBACK, port)
            )
        finally:
            registration.close()
        self.assertEqual(statusOf(response)[0], 200, response)
        process = Sipp("uas-tcp", scenarioName, self.workDirectory, localPort=port,
                       timeout=15, arguments=["-t", "t1"])
        self._sipps.append(process)
        process.start()
        deadline = time.monotonic() + 5
        while portIsFree(port, udp=False):
            if process.process.poll() is not None or time.monotonic() > deadline:
                self.fail("sipp did not start:\n" + process.result().describe())
            time.sleep(0.05)
        return process

    def test_callOverTCP(self):
        """
        A caller and a phone both on TCP: the call goes through, with a
        Record-Route for TCP, and the ACK and BYE follow it over TCP.
        """
        callee = self.newUser()
        uas = self.tcpPhone(callee)
        uac = self.call(callee, arguments=["-t", "t1"])
        phone = uas.wait(5)
        self.assertSucceeded(uac, phone)
        self.assertEqual(_codes(uac.received()), [100, 180, 200, 200])
        self.assertEqual(_methods(phone.received()), ["INVITE", "ACK", "BYE"])
        invite = phone.receivedMessages()[0]
        self.assertIn("Record-Route: <sip:127.0.0.1:%d;lr;transport=tcp>" % (
            self.appliance.sipPort,), invite)

    def test_callFromUDPToTCP(self):
        """
        A caller on UDP reaching a phone on TCP: the proxy inserts two
        Record-Route values, one for each side (RFC 5658), and the dialog's
        ACK and BYE cross from UDP to TCP through it.
        """
        callee = self.newUser()
        uas = self.tcpPhone(callee)
        uac = self.call(callee)
        phone = uas.wait(5)
        self.assertSucceeded(uac, phone)
        self.assertEqual(_methods(phone.received()), ["INVITE", "ACK", "BYE"])
        invite = phone.receivedMessages()[0]
        self.assertIn(
            "Record-Route: <sip:127.0.0.1:%d;lr;transport=tcp>" % (self.appliance.sipPort,), invite)
        self.assertIn("Record-Route: <sip:127.0.0.1:%d;lr>" % (self.appliance.sipPort,), invite)

    def test_callOverTLS(self):
        """
        A caller on TLS (SIPp through socat, an OpenSSL client verifying the
        appliance certificate: Debian's SIPp has no TLS) reaching a phone on
        UDP: two Record-Route values, TLS and UDP, and the whole dialog
        through the proxy.
        """
        callee = self.newUser()
        uas = self.phone("uas_answer.xml", callee)
        tunnelPort = pickPorts(1)[0]
        tunnel = subprocess.Popen(
            [
                "socat", "TCP-LISTEN:%d,bind=%s,reuseaddr,fork" % (tunnelPort, LOOPBACK),
                "OPENSSL:%s:%d,cafile=%s,verify=1,commonname=example.test"
                % (LOOPBACK, self.appliance.tlsPort, self.appliance.certificatePath),
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.addCleanup(_stop, tunnel)
        deadline = time.monotonic() + 5
        while portIsFree(tunnelPort, udp=False):
            if time.monotonic() > deadline:
                self.fail("socat did not start")
            time.sleep(0.05)
        user, _, domain = callee.partition("@")
        uac = runSipp(
            "uac-tls", "uac_call.xml", self.workDirectory, tunnelPort, service=user,
            arguments=["-set", "domain", domain, "-set", "caller", EXTERNAL_CALLER, "-t", "t1"],
        )
        phone = uas.wait(5)
        self.assertSucceeded(uac, phone)
        self.assertEqual(_methods(phone.received()), ["INVITE", "ACK", "BYE"])
        invite = phone.receivedMessages()[0]
        self.assertIn("Record-Route: <sip:127.0.0.1:%d;lr>" % (self.appliance.sipPort,), invite)
        self.assertIn(
            "<sip:127.0.0.1:%d;lr;transport=tls>" % (self.appliance.tlsPort,), invite)

    def test_authenticatedCallerThroughTheProxy(self):
        """
        A caller of our domain is challenged with 407 (RFC 3261 section 22.3),
        SIPp answers with its credentials, and the call goes through.
        """
        caller, callee = self.newUser(), self.newUser()
        uas = self.phone("uas_answer.xml", callee)
        user = caller.partition("@")[0]
        uac = self.call(callee, caller=caller, arguments=[
            "-au", user, "-ap", PASSWORD, "-auth_uri", callee,
        ])
        phone = uas.wait(5)
        self.assertSucceeded(uac, phone)
        self.assertEqual(_codes(uac.received())[:1], [407])

    def test_forkedCallOneAnswersOtherCancelled(self):
        """
        Two phones registered for one user both ring (parallel forking, RFC
        3261 section 16.6); when one answers, the other gets CANCEL and answers
        it 200 and 487 (section 16.7 step 10 via 16.10).
        """
        callee = self.newUser()
        answering = self.phone("uas_answer.xml", callee, name="uas-answer")
        ringing = self.phone("uas_ring.xml", callee, name="uas-ring")
        uac = self.call(callee)
        answered, cancelled = answering.wait(5), ringing.wait(5)
        self.assertSucceeded(uac, answered, cancelled)
        self.assertEqual(_methods(cancelled.received()), ["INVITE", "CANCEL", "ACK"])

    def test_ringTimeout(self):
        """
        A phone that rings and never answers is cancelled after
        C{ring_timeout} seconds (RFC 3261 section 16.6 step 11 leaves the
        duration to the proxy), and the caller gets 480 (the proxy's choice,
        responsecontext.py: the phones were cancelled by the proxy, not the
        caller), not the 487 its cancelled branch answered, which would tell
        the caller it had cancelled.
        """
        callee = self.newUser()
        uas = self.phone("uas_ring.xml", callee)
        started = time.monotonic()
        uac = self.call(callee, "uac_rejected.xml")
        elapsed = time.monotonic() - started
        phone = uas.wait(5)
        self.assertSucceeded(phone)
        self.assertEqual(_methods(phone.received()), ["INVITE", "CANCEL", "ACK"])
        self.assertEqual(self.finalCode(uac), 480, uac.describe())
        self.assertTrue(
            RING_TIMEOUT - 0.5 < elapsed < RING_TIMEOUT + 3,
            "the call ended after %.1f s" % (elapsed,),
        )

    def test_callerCancels(self):
        """
        The caller's CANCEL gets 200, the INVITE 487, and the ringing phone
        gets a CANCEL from the proxy (RFC 3261 section 16.10).
        """
        callee = self.newUser()
        uas = self.phone("uas_ring.xml", callee)
        uac = self.call(callee, "uac_cancel.xml")
        phone = uas.wait(5)
        self.assertSucceeded(uac, phone)
        self.assertEqual([c for c in _codes(uac.received()) if c >= 200], [200, 487])
        self.assertEqual(_methods(phone.received()), ["INVITE", "CANCEL", "ACK"])

    def test_unknownUserGets404(self):
        """
        A call to a user our domain does not have gets 404 Not Found.
        """
        uac = self.call("nobody%s@example.test" % (uuid.uuid4().hex[:6],), "uac_rejected.xml")
        self.assertSucceeded(uac)
        self.assertEqual(self.finalCode(uac), 404)

    def test_knownUserWithoutBindingGets480(self):
        """
        A call to a user who exists but has no registered phone gets 480
        Temporarily Unavailable.
        """
        uac = self.call(self.newUser(), "uac_rejected.xml")
        self.assertSucceeded(uac)
        self.assertEqual(self.finalCode(uac), 480)

    # ------------------------------------------------------------- call rules

    def test_busyRuleForwards(self):
        """
        With a busy rule, a call the user's phone refuses with 486 is
        forwarded to the rule's URI, where a second phone answers.
        """
        callee = self.newUser()
        busy = self.phone("uas_busy.xml", callee, name="uas-busy")
        forwarded = self.phone("uas_answer.xml", name="uas-forwarded")
        setCallRule(self.appliance, callee, "busy", "sip:vm@127.0.0.1:%d" % (forwarded.localPort,))
        uac = self.call(callee)
        self.assertSucceeded(uac, busy.wait(5), forwarded.wait(5))

    def test_noAnswerRuleForwards(self):
        """
        With a noanswer rule, a call nobody answers within the ring timeout
        is forwarded to the rule's URI after the ringing phone is cancelled.
        """
        callee = self.newUser()
        ringing = self.phone("uas_ring.xml", callee, name="uas-ring")
        forwarded = self.phone("uas_answer.xml", name="uas-forwarded")
        setCallRule(
            self.appliance, callee, "noanswer", "sip:vm@127.0.0.1:%d" % (forwarded.localPort,)
        )
        uac = self.call(callee)
        self.assertSucceeded(uac, ringing.wait(5), forwarded.wait(5))

    def test_unregisteredRuleForwards(self):
        """
        With an unregistered rule, a call to a user without a binding goes to
        the rule's URI instead of getting 480.
        """
        callee = self.newUser()
        forwarded = self.phone("uas_answer.xml", name="uas-forwarded")
        setCallRule(
            self.appliance, callee, "unregistered", "sip:vm@127.0.0.1:%d" % (forwarded.localPort,)
        )
        uac = self.call(callee)
        self.assertSucceeded(uac, forwarded.wait(5))

    def assertRedirected(self, callee, port):
        """
        A call to C{callee} gets 302 whose only Contact is the one bound
        from C{port}.
        """
        uac = self.call(callee, "uac_rejected.xml")
        self.assertSucceeded(uac)
        self.assertEqual(self.finalCode(uac), 302)
        final = uac.receivedMessages()[-1].replace("\n", "\r\n").encode()
        contacts = contactsOf(final)
        self.assertEqual(len(contacts), 1, contacts)
        self.assertIn("127.0.0.1:%d" % (port,), contacts[0])

    def test_redirectDomainAnswers302(self):
        """
        A call to a user of a domain in C{redirect_domains} gets 302 Moved
        Temporarily listing the user's registered contact (issue 3, redirect
        mode).
        """
        callee = self.newUser("redirect.test")
        port = pickPorts(1)[0]
        register(self.appliance.sipPort, callee, port)
        self.assertRedirected(callee, port)

    def test_redirectRuleAnswers302(self):
        """
        A user with the redirect rule gets 302 with the registered contact
        instead of a proxied call.
        """
        callee = self.newUser()
        port = pickPorts(1)[0]
        register(self.appliance.sipPort, callee, port)
        setCallRule(self.appliance, callee, "redirect")
        self.assertRedirected(callee, port)


def _stop(process):
    """
    Stop a helper program a test started, by its PID.
    """
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

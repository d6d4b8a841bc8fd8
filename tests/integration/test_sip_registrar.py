"""
The appliance's registrar and digest authentication against SIPp and a small
digest client of the tests' own, on 127.0.0.1 (issue 3, verification).

Two appliances serve the module: one with C{digest_algorithms = MD5 SHA-256}
for SIPp, and one on the defaults (SHA-256 offered first), which one test
also restarts.  Debian's SIPp 3.6.1 answers only the first challenge of a
401 and knows only MD5 (on a SHA-256-first challenge it stops with
"createAuthHeader: authentication must use MD5 or AKAv1-MD5"), so SHA-256 is
covered by the client in L{tests.integration.sipp}, which computes RFC 7616
digests with hashlib, independently of the appliance's code.
"""

import re
import uuid

from tests.integration.harness import (
    ApplianceTestCase,
    SharedAppliance,
    pickPorts,
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
)

_forSipp = SharedAppliance(
    configText=lambda appliance: sipConfig(
        appliance.dataDir, appliance.sipPort, appliance.tlsPort,
        extra="digest_algorithms = MD5 SHA-256\nmin_expires = 60\nmax_expires = 3600\n",
    )
)
_defaults = SharedAppliance()


def _expires(contact):
    """
    The expires parameter of a Contact value, as an int.
    """
    match = re.search(r";\s*expires\s*=\s*([0-9]+)", contact)
    if match is None:
        raise AssertionError("no expires in %r" % (contact,))
    return int(match.group(1))


def _okResponses(result):
    """
    The 200 responses SIPp received, as bytes with CRLFs.
    """
    return [
        message.replace("\n", "\r\n").encode() + b"\r\n\r\n"
        for message in result.receivedMessages()
        if message.startswith("SIP/2.0 200 ")
    ]


class RegistrarTests(ApplianceTestCase):
    """
    REGISTER against the running appliance.
    """

    def setUp(self):
        self.workDirectory = scratchDirectory("registrar-")
        self._sipps = []
        self._used = []

    def use(self, shared):
        """
        The running appliance of C{shared}, watched by this test.
        """
        appliance = shared.get()
        self.watchAppliance(appliance)
        self._used.append((appliance, appliance.logSize()))
        return appliance

    def tearDown(self):
        for process in self._sipps:
            process.stop()
        for appliance, since in self._used:
            self.assertAlive(appliance)
            self.assertNoTracebacks(appliance, since)

    def newUser(self, appliance):
        """
        A new user of example.test, added with appliancectl.
        """
        aor = "r%s@example.test" % (uuid.uuid4().hex[:8],)
        addUser(appliance, aor)
        return aor

    def sippRegister(self, appliance, aor, scenarioName, expires=600):
        """
        Run a REGISTER scenario with SIPp authenticating as C{aor}.
        """
        user, _, domain = aor.partition("@")
        result = runSipp(
            "register", scenarioName, self.workDirectory, appliance.sipPort, service=user,
            arguments=[
                "-set", "domain", domain, "-key", "expires", str(expires),
                "-au", user, "-ap", PASSWORD, "-auth_uri", domain,
            ],
        )
        if not result.succeeded:
            self.fail(result.describe())
        return result

    # ------------------------------------------------------------- SIPp

    def test_sippRegisterWithMD5Digest(self):
        """
        SIPp registers with an MD5 digest: 401 first, then 200 listing its
        contact with the expiry it asked for (RFC 3261 sections 10.3 and 22).
        """
        appliance = self.use(_forSipp)
        aor = self.newUser(appliance)
        result = self.sippRegister(appliance, aor, "register.xml", expires=600)
        self.assertEqual([line.split()[1] for line in result.received()], ["401", "200"])
        (ok,) = _okResponses(result)
        (contact,) = contactsOf(ok)
        self.assertIn("sip:%s@127.0.0.1:" % (aor.partition("@")[0],), contact)
        self.assertTrue(590 <= _expires(contact) <= 600, contact)
        sent = result.messages
        self.assertIn("algorithm=MD5", sent)

    def test_sippRefreshAndRemove(self):
        """
        SIPp adds a binding for 600 s, refreshes it for 300 s in the same
        Call-ID (still one binding, now about 300 s left) and removes it with
        Expires 0 (the 200 then lists no contact).
        """
        appliance = self.use(_forSipp)
        aor = self.newUser(appliance)
        result = self.sippRegister(appliance, aor, "register_refresh.xml")
        added, refreshed, removed = [contactsOf(ok) for ok in _okResponses(result)]
        self.assertEqual(len(added), 1, added)
        self.assertTrue(590 <= _expires(added[0]) <= 600, added)
        self.assertEqual(len(refreshed), 1, refreshed)
        self.assertTrue(290 <= _expires(refreshed[0]) <= 300, refreshed)
        self.assertEqual(removed, [])

    def test_sippWildcardRemove(self):
        """
        Contact: * with Expires: 0 from SIPp removes every binding of the
        address of record, those of other phones too (RFC 3261 section
        10.2.2).
        """
        appliance = self.use(_forSipp)
        aor = self.newUser(appliance)
        first, second = pickPorts(2)
        register(appliance.sipPort, aor, first)
        listing = register(appliance.sipPort, aor, second)
        self.assertEqual(len(contactsOf(listing)), 2, listing)
        result = self.sippRegister(appliance, aor, "register_wildcard.xml")
        (ok,) = _okResponses(result)
        self.assertEqual(contactsOf(ok), [])
        self.assertEqual(contactsOf(self.fetch(appliance, aor)), [])

    # ------------------------------------------------------------- digest client

    def fetch(self, appliance, aor):
        """
        A REGISTER without Contact: the 200 lists the current bindings
        (RFC 3261 section 10.2.3).
        """
        registration = Registration(appliance.sipPort, aor, algorithm="MD5")
        try:
            response = registration.send(contact=None, expires=None)
        finally:
            registration.close()
        self.assertEqual(statusOf(response)[0], 200, response)
        return response

    def test_defaultChallengeOffersSHA256ThenMD5(self):
        """
        On the defaults a 401 offers SHA-256 then MD5 with qop=auth (RFC 8760
        section 2.3), and a SHA-256 response registers.
        """
        appliance = self.use(_defaults)
        aor = self.newUser(appliance)
        registration = Registration(appliance.sipPort, aor, algorithm="SHA-256")
        try:
            response = registration.send()
        finally:
            registration.close()
        self.assertEqual(statusOf(response)[0], 200, response)
        (challenge,) = registration.challenges
        values = [v for v in challenge.decode().split("\r\n") if v.startswith("WWW-Authenticate")]
        self.assertEqual(len(values), 2, values)
        self.assertIn("algorithm=SHA-256", values[0])
        self.assertIn("algorithm=MD5", values[1])
        for value in values:
            self.assertIn('qop="auth"', value)

    def test_md5AndSHA256BothRegister(self):
        """
        Both offered algorithms authenticate a REGISTER (RFC 7616 section
        3.4, RFC 8760), on either order of the challenges.
        """
        for shared in (_forSipp, _defaults):
            appliance = self.use(shared)
            aor = self.newUser(appliance)
            for algorithm in ("MD5", "SHA-256"):
                registration = Registration(appliance.sipPort, aor, algorithm=algorithm)
                try:
                    response = registration.send()
                finally:
                    registration.close()
                self.assertEqual(statusOf(response)[0], 200, (algorithm, response))

    def test_wrongPasswordRefused(self):
        """
        A digest made with a wrong password gets 401 again, not 200.
        """
        appliance = self.use(_forSipp)
        aor = self.newUser(appliance)
        registration = Registration(appliance.sipPort, aor, password="wrong", algorithm="MD5")
        try:
            response = registration.send()
        finally:
            registration.close()
        self.assertIn(statusOf(response)[0], (401, 403), response)

    def test_bindingsListedWithExpiry(self):
        """
        Two phones of one user: the 200 lists both contacts, each with its
        remaining expiry and q (RFC 3261 section 10.3 step 8).
        """
        appliance = self.use(_forSipp)
        aor = self.newUser(appliance)
        first = Registration(appliance.sipPort, aor, algorithm="MD5")
        second = Registration(appliance.sipPort, aor, algorithm="MD5")
        try:
            first.send(contact="<%s>;q=0.5" % (first.contact,), expires=120)
            response = second.send(expires=600)
        finally:
            first.close()
            second.close()
        contacts = sorted(contactsOf(response), key=_expires)
        self.assertEqual(len(contacts), 2, contacts)
        self.assertIn(first.contact, contacts[0])
        self.assertIn("q=0.5", contacts[0])
        self.assertTrue(110 <= _expires(contacts[0]) <= 120, contacts)
        self.assertIn(second.contact, contacts[1])
        self.assertTrue(590 <= _expires(contacts[1]) <= 600, contacts)

    def test_intervalTooBrief(self):
        """
        An expiry below min_expires gets 423 with Min-Expires (RFC 3261
        section 10.3 step 7), one above max_expires is shortened to it.
        """
        appliance = self.use(_forSipp)
        aor = self.newUser(appliance)
        registration = Registration(appliance.sipPort, aor, algorithm="MD5")
        try:
            brief = registration.send(expires=10)
            long = registration.send(expires=999999)
        finally:
            registration.close()
        self.assertEqual(statusOf(brief)[0], 423, brief)
        self.assertIn(b"Min-Expires: 60", brief)
        self.assertEqual(statusOf(long)[0], 200, long)
        (contact,) = contactsOf(long)
        self.assertTrue(3590 <= _expires(contact) <= 3600, contact)

    # ------------------------------------------------------------- restart

    def test_bindingSurvivesRestart(self):
        """
        A phone registered before a restart of the appliance is reached by a
        call after it: bindings live in SQLite (issue 3, registrar).
        """
        appliance = self.use(_defaults)
        callee = self.newUser(appliance)
        port = pickPorts(1)[0]
        register(appliance.sipPort, callee, port)
        appliance.stop()
        restarted = appliance.logSize()
        appliance.start()
        self.watchAppliance(appliance)
        self.assertTrue(
            re.search(r"loaded [1-9][0-9]* binding", appliance.logText(restarted)),
            "no bindings loaded at start-up",
        )
        uas = Sipp("uas", "uas_answer.xml", self.workDirectory, localPort=port, timeout=15)
        self._sipps.append(uas)
        uas.start().waitUntilListening()
        user = callee.partition("@")[0]
        uac = runSipp(
            "uac", "uac_call.xml", self.workDirectory, appliance.sipPort, service=user,
            arguments=["-set", "domain", "example.test", "-set", "caller", "carol@elsewhere.test"],
        )
        phone = uas.wait(5)
        if not (uac.succeeded and phone.succeeded):
            self.fail(uac.describe() + "\n" + phone.describe())

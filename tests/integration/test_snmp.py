"""
The appliance's SNMP agent against net-snmp's tools: C{snmpget},
C{snmpwalk} and C{snmpbulkwalk} over SNMPv2c and SNMPv3 authPriv (SHA /
AES) read APPLIANCE-MIB's objects by name with the shipped MIB, and
C{snmptrapd} receives the notifications (v2c traps and v3 informs).

One appliance (services sip and snmp) and one snmptrapd serve the whole
module; everything runs on 127.0.0.1 and every program is bounded by a
timeout.

Debian ships no IETF base MIBs, so the tools get the stand-ins of
C{tests/snmp/mibs} (see its README) on their MIB path next to the shipped
MIB directory.
"""

import atexit
import os
import re
import shutil
import signal
import subprocess
import time

from twisted.trial.unittest import SkipTest

from appliance.snmp import MIB_DIRECTORY
from appliance.snmp.mib import SERVICES
from tests.integration.harness import (
    LOOPBACK,
    ApplianceNotReady,
    ApplianceProcess,
    ApplianceTestCase,
    UDPClient,
    headerValues,
    optionsRequest,
    pickPorts,
    scratchDirectory,
    sipConfig,
)

BASE_MIBS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "snmp", "mibs")
MIB_PATH = "+%s:%s" % (BASE_MIBS, MIB_DIRECTORY)

COMMUNITY = "s3cret-ro"
V3_USER = "ops"
V3_AUTH = "auth-pass-123"
V3_PRIV = "priv-pass-456"

_TOOL_TIMEOUT = 10
_TOOLS = ("snmpget", "snmpwalk", "snmpbulkwalk", "snmptrapd")


def _requireTools():
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        raise SkipTest(
            "needs net-snmp's %s (apt-get install snmp snmptrapd)" % (", ".join(missing),)
        )


def _toolEnvironment(directory):
    """
    An environment that keeps net-snmp away from the user's and the
    system's persistent state.
    """
    env = dict(os.environ)
    env["SNMP_PERSISTENT_DIR"] = directory
    env["SNMPCONFPATH"] = directory
    env.pop("MIBS", None)
    env.pop("MIBDIRS", None)
    return env


def applianceConfig(appliance, snmpPort, trapPort, informs=True):
    """
    The INI text of an appliance running sip and snmp on loopback, sending
    v2c traps (and v3 informs when C{informs}) to C{trapPort}.
    """
    text = sipConfig(appliance.dataDir, appliance.sipPort, appliance.tlsPort)
    text = text.replace("services = sip\n", "services = sip snmp\n")
    text += (
        "\n[snmp]\n"
        "listen = udp:{snmp}:interface=127.0.0.1\n"
        "community = {community}\n"
        "v3_user = {user}\n"
        "v3_auth_key = {auth}\n"
        "v3_priv_key = {priv}\n"
        "trap_targets = 127.0.0.1:{trap}\n"
        "check_interval = 0.5\n"
        "auth_burst_threshold = 3\n"
        "auth_burst_interval = 30\n"
    ).format(
        snmp=snmpPort, community=COMMUNITY, user=V3_USER, auth=V3_AUTH, priv=V3_PRIV,
        trap=trapPort,
    )
    if informs:
        text += "inform_targets = 127.0.0.1:%d\n" % (trapPort,)
    return text


class SNMPFixture:
    """
    snmptrapd, then the appliance with its agent sending to it; started on
    first use, stopped when the test process exits.
    """

    def __init__(self):
        self._error = None
        self.appliance = None
        self.trapd = None

    def get(self):
        if self._error is not None:
            raise ApplianceNotReady(self._error)
        if self.appliance is None:
            try:
                self._start()
            except Exception as e:
                self._error = str(e)
                self.stop()
                raise
        return self

    def _start(self):
        self.directory = scratchDirectory("snmp-")
        self.snmpPort, self.trapPort = pickPorts(2)
        self.env = _toolEnvironment(self.directory)
        self.trapLog = os.path.join(self.directory, "snmptrapd.log")
        trapConf = os.path.join(self.directory, "snmptrapd.conf")
        with open(trapConf, "w") as f:
            f.write(
                "disableAuthorization yes\n"
                "createUser %s SHA %s AES %s\n" % (V3_USER, V3_AUTH, V3_PRIV)
            )
        self._trapOutput = open(self.trapLog, "wb")
        self.trapd = subprocess.Popen(
            ["snmptrapd", "-f", "-Lo", "-C", "-c", trapConf,
             "-M", MIB_PATH, "-m", "+APPLIANCE-MIB", "-F", "%P | %b | %v\n",
             "udp:%s:%d" % (LOOPBACK, self.trapPort)],
            stdin=subprocess.DEVNULL, stdout=self._trapOutput, stderr=subprocess.STDOUT,
            env=self.env,
        )
        atexit.register(self.stop)
        self._waitFor(lambda: "NET-SNMP version" in self.trapText(), "snmptrapd to start")

        def configText(appliance):
            return applianceConfig(appliance, self.snmpPort, self.trapPort)

        self.appliance = ApplianceProcess(configText=configText)
        self.appliance.start()

    def _waitFor(self, condition, what, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise ApplianceNotReady(
                    "timed out waiting for %s; snmptrapd log:\n%s" % (what, self.trapText())
                )
            time.sleep(0.1)

    def trapText(self):
        try:
            with open(self.trapLog, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.appliance is not None:
            self.appliance.stop()
        if self.trapd is not None and self.trapd.poll() is None:
            self.trapd.send_signal(signal.SIGTERM)
            try:
                self.trapd.wait(5)
            except subprocess.TimeoutExpired:
                self.trapd.kill()
                self.trapd.wait(5)
        if self.trapd is not None and not self._trapOutput.closed:
            self._trapOutput.close()


_fixture = SNMPFixture()


class SNMPAgentTests(ApplianceTestCase):
    """
    net-snmp's clients and trap receiver against the running appliance.
    """

    def setUp(self):
        _requireTools()
        self.fixture = _fixture.get()
        self.appliance = self.fixture.appliance
        self.watchAppliance(self.appliance)
        self._logMark = self.appliance.logSize()

    def tearDown(self):
        self.assertNoTracebacks(self.appliance, self._logMark)
        self.assertAlive(self.appliance)

    def snmp(self, tool, *arguments, version="2c", community=COMMUNITY, auth=V3_AUTH,
             priv=V3_PRIV):
        """
        Run a net-snmp client against the agent with the shipped MIB
        (C{-M +DIR -m +APPLIANCE-MIB}); return C{(exit status, stdout,
        stderr)}.
        """
        argv = [tool, "-M", MIB_PATH, "-m", "+APPLIANCE-MIB", "-t", "1", "-r", "0"]
        if version == "3":
            argv += ["-v3", "-l", "authPriv", "-u", V3_USER, "-a", "SHA", "-A", auth,
                     "-x", "AES", "-X", priv]
        else:
            argv += ["-v2c", "-c", community]
        argv.append("%s:%d" % (LOOPBACK, self.fixture.snmpPort))
        argv += list(arguments)
        try:
            completed = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True,
                timeout=_TOOL_TIMEOUT, env=self.fixture.env,
            )
        except subprocess.TimeoutExpired:
            self.fail("%s did not finish within %ss" % (" ".join(argv), _TOOL_TIMEOUT))
        return (
            completed.returncode,
            completed.stdout.decode("utf-8", "replace"),
            completed.stderr.decode("utf-8", "replace"),
        )

    def snmpOK(self, tool, *arguments, **kwargs):
        status, out, err = self.snmp(tool, *arguments, **kwargs)
        if status != 0 or not out.strip():
            self.fail("%s %s failed (%s):\n%s\n%s" % (tool, arguments, status, out, err[-3000:]))
        return out

    def counter(self, name, **kwargs):
        out = self.snmpOK("snmpget", "-Oqv", "APPLIANCE-MIB::" + name, **kwargs)
        return int(out.split()[0])

    def test_getByNameV2c(self):
        """
        snmpget over SNMPv2c reads the version, the uptime and the status
        of the SIP service by name.
        """
        out = self.snmpOK(
            "snmpget", "APPLIANCE-MIB::applVersion.0", "APPLIANCE-MIB::applUptime.0",
            "APPLIANCE-MIB::applServiceStatus.1", "APPLIANCE-MIB::applServiceStatus.2",
        )
        self.assertRegex(out, r"APPLIANCE-MIB::applVersion\.0 = STRING: \"?\d+\.\d+")
        self.assertIn("APPLIANCE-MIB::applUptime.0 = Timeticks:", out)
        self.assertIn("APPLIANCE-MIB::applServiceStatus.1 = INTEGER: running(1)", out)
        self.assertIn("APPLIANCE-MIB::applServiceStatus.2 = INTEGER: disabled(4)", out)

    def test_walkV2c(self):
        """
        snmpwalk of the whole enterprise subtree lists every group of the
        MIB by name, ending with the emergency-call group.
        """
        out = self.snmpOK("snmpwalk", "APPLIANCE-MIB::applianceMIB")
        for expected in (
            "APPLIANCE-MIB::applServiceName.7 = STRING: snmp",
            "APPLIANCE-MIB::applSipMethodName.5 = STRING: OPTIONS",
            "APPLIANCE-MIB::applSipStatusClassName.2 = STRING: 2xx",
            "APPLIANCE-MIB::applSipCurrentBindings.0 = Gauge32: 0",
            "APPLIANCE-MIB::applRtspSessionsActive.0 = Gauge32: 0",
            "APPLIANCE-MIB::applVmMessages.0 = Gauge32: 0",
            "APPLIANCE-MIB::applDrmLicensesIssued.0 = Counter32: 0",
            "APPLIANCE-MIB::applPsapCallTakersAvailable.0 = Gauge32: 0",
        ):
            self.assertIn(expected, out)
        self.assertNotIn("No Such", out)

    def test_bulkwalkV3AuthPriv(self):
        """
        snmpbulkwalk over SNMPv3 authPriv (SHA, AES) reads the service
        table.
        """
        out = self.snmpOK("snmpbulkwalk", "APPLIANCE-MIB::applServiceTable", version="3")
        self.assertIn("APPLIANCE-MIB::applServiceName.1 = STRING: sip", out)
        self.assertIn("APPLIANCE-MIB::applServiceStatus.7 = INTEGER: running(1)", out)
        self.assertIn("APPLIANCE-MIB::applServiceName.9 = STRING: conference", out)
        self.assertEqual(len(re.findall(r"applServiceStatus\.\d+ =", out)), len(SERVICES))

    def test_getV3AuthPriv(self):
        """
        snmpget over SNMPv3 authPriv reads a SIP scalar by name.
        """
        out = self.snmpOK("snmpget", "APPLIANCE-MIB::applSipSummaryInRequests.0", version="3")
        self.assertIn("APPLIANCE-MIB::applSipSummaryInRequests.0 = Counter32:", out)

    def test_sipCounterIncreases(self):
        """
        OPTIONS requests sent to the SIP service show in the OPTIONS row
        of the method table and in the summary counters.
        """
        before = self.counter("applSipMethodInRequests.5")
        summaryBefore = self.counter("applSipSummaryInRequests.0", version="3")
        client = UDPClient()
        try:
            for _ in range(2):
                client.send(
                    optionsRequest("UDP", client.port, self.appliance.sipPort),
                    self.appliance.sipPort,
                )
                self.assertIsNotNone(client.receiveFinal())
        finally:
            client.close()
        self.assertEqual(self.counter("applSipMethodInRequests.5"), before + 2)
        self.assertGreaterEqual(
            self.counter("applSipSummaryInRequests.0", version="3"), summaryBefore + 2
        )
        self.assertGreaterEqual(self.counter("applSipStatusClassOutResponses.2"), 2)

    def test_wrongCommunity(self):
        """
        A wrong community gets no answer at all.
        """
        status, out, err = self.snmp(
            "snmpget", "APPLIANCE-MIB::applVersion.0", community="public"
        )
        self.assertNotEqual(status, 0)
        self.assertNotIn("STRING", out)
        self.assertIn("Timeout", out + err)

    def test_wrongV3AuthKey(self):
        """
        A wrong SNMPv3 authentication key gets no data (an authentication
        failure report, or nothing).
        """
        status, out, err = self.snmp(
            "snmpget", "APPLIANCE-MIB::applVersion.0", version="3", auth="wrong-pass-000"
        )
        self.assertNotEqual(status, 0)
        self.assertNotIn("STRING", out)
        self.assertRegex(out + err, r"(?i)authentication failure|timeout")

    def test_wrongV3PrivKey(self):
        """
        A wrong SNMPv3 privacy key gets no data.
        """
        status, out, err = self.snmp(
            "snmpget", "APPLIANCE-MIB::applVersion.0", version="3", priv="wrong-priv-000"
        )
        self.assertNotEqual(status, 0)
        self.assertNotIn("STRING", out)

    def test_startNotifications(self):
        """
        snmptrapd receives applServiceStarted for the SIP service both as
        an SNMPv2c trap and as an acknowledged SNMPv3 inform.
        """
        def received():
            lines = self.fixture.trapText().splitlines()
            started = [line for line in lines if "APPLIANCE-MIB::applServiceStarted" in line
                       and "applServiceName.1 = STRING: sip" in line]
            return (
                any(line.startswith("TRAP2, SNMP v2c") for line in started)
                and any(line.startswith("INFORM, SNMP v3, user %s" % (V3_USER,))
                        for line in started)
            )

        self.fixture._waitFor(received, "applServiceStarted as trap and inform")

    def test_stopNotification(self):
        """
        An appliance stopped in an orderly way (SIGTERM) sends
        applServiceStopped for each of its services before it exits.
        """
        (snmpPort,) = pickPorts(1)
        other = ApplianceProcess(
            configText=lambda appliance: applianceConfig(
                appliance, snmpPort, self.fixture.trapPort, informs=False
            )
        )
        self.watchAppliance(other)
        self.addCleanup(other.stop)
        other.start()
        self.assertIn(other.stop(), (0, -signal.SIGTERM))
        self.assertIn("Server Shut Down.", other.logText())
        source = "[127.0.0.1]:%d->" % (snmpPort,)

        def stopped():
            lines = [line for line in self.fixture.trapText().splitlines() if source in line]
            return all(
                any("APPLIANCE-MIB::applServiceStopped" in line
                    and "applServiceName.%d = STRING: %s" % (index, name) in line
                    and "stopped(2)" in line for line in lines)
                for index, name in ((1, "sip"), (7, "snmp"))
            )

        self.fixture._waitFor(stopped, "applServiceStopped from %s" % (source,))

    def test_authFailureBurst(self):
        """
        A burst of failed digest authentications (wrong passwords in
        REGISTER) makes the agent send applAuthFailureBurst.
        """
        # An unknown user fails digest authentication like a wrong password.
        client = UDPClient()
        try:
            for attempt in range(3):
                request = _register(client.port, self.appliance.sipPort, attempt)
                client.send(request, self.appliance.sipPort)
                answer = client.receiveFinal()
                self.assertIsNotNone(answer)
                challenge = headerValues(answer, "WWW-Authenticate")
                self.assertTrue(challenge)
                client.send(
                    _register(client.port, self.appliance.sipPort, attempt, challenge[0]),
                    self.appliance.sipPort,
                )
                self.assertIsNotNone(client.receiveFinal())
        finally:
            client.close()
        self.assertGreaterEqual(self.counter("applSipAuthFailures.0"), 3)
        self.fixture._waitFor(
            lambda: "APPLIANCE-MIB::applAuthFailureBurst" in self.fixture.trapText(),
            "applAuthFailureBurst",
        )


def _register(localPort, targetPort, attempt, challenge=None):
    """
    A REGISTER for an unknown user, with wrong digest credentials when
    C{challenge} (a WWW-Authenticate value) is given.
    """
    import hashlib
    import uuid

    lines = [
        "REGISTER sip:example.test SIP/2.0",
        "Via: SIP/2.0/UDP %s:%d;rport;branch=z9hG4bK-snmp-%s" % (
            LOOPBACK, localPort, uuid.uuid4().hex[:12]),
        "Max-Forwards: 70",
        "From: <sip:mallory@example.test>;tag=snmp%d" % (attempt,),
        "To: <sip:mallory@example.test>",
        "Call-ID: snmp-burst-%d@127.0.0.1" % (attempt,),
        "CSeq: %d REGISTER" % (1 if challenge is None else 2,),
        "Contact: <sip:mallory@%s:%d>" % (LOOPBACK, localPort),
        "Expires: 60",
    ]
    if challenge is not None:
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
        algorithm = params.get("algorithm", "MD5")
        digest = hashlib.sha256 if algorithm.upper().startswith("SHA-256") else hashlib.md5

        def h(text):
            return digest(text.encode()).hexdigest()

        uri = "sip:example.test"
        ha1 = h("mallory:%s:wrong-password" % (params["realm"],))
        ha2 = h("REGISTER:" + uri)
        cnonce = "0a4f113b"
        if "qop" in params:
            response = h("%s:%s:00000001:%s:auth:%s" % (ha1, params["nonce"], cnonce, ha2))
            extra = ', qop=auth, nc=00000001, cnonce="%s"' % (cnonce,)
        else:
            response = h("%s:%s:%s" % (ha1, params["nonce"], ha2))
            extra = ""
        lines.append(
            'Authorization: Digest username="mallory", realm="%s", nonce="%s", uri="%s", '
            'response="%s", algorithm=%s%s' % (
                params["realm"], params["nonce"], uri, response, algorithm, extra)
        )
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()

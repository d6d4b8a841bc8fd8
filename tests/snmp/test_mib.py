"""
Tests for L{appliance.snmp.mib}: the Python definitions match the SMI text
of APPLIANCE-MIB, and every value is the right statistic, encoded in its
SMI type, read when asked.
"""

import os
import re
import shutil
import subprocess

from twisted.application.service import MultiService, Service
from twisted.internet.task import Clock
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from appliance.snmp import MIB_DIRECTORY, mib
from appliance.stats import Statistics

MIB_FILE = os.path.join(MIB_DIRECTORY, "APPLIANCE-MIB.txt")
BASE_MIBS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mibs")


def parseSMI(text):
    """
    A small reader of the SMI text, enough for our own module: every
    descriptor defined with its macro, SYNTAX, MAX-ACCESS and OID.

    @return: C{{name: {"macro": ..., "syntax": ..., "access": ..., "oid": tuple}}}
    """
    text = re.sub(r"--[^\n]*", "", text)
    text = re.sub(r'"[^"]*"', '""', text)
    text = text.split(";", 1)[1]  # after IMPORTS
    definitions = {}
    pattern = re.compile(
        r"(?<![A-Za-z0-9-])(?P<name>[a-z][A-Za-z0-9-]*)\s+"
        r"(?P<macro>OBJECT IDENTIFIER|OBJECT-TYPE|MODULE-IDENTITY|NOTIFICATION-TYPE|"
        r"OBJECT-GROUP|NOTIFICATION-GROUP|MODULE-COMPLIANCE)"
        r"(?P<body>.*?)::=\s*\{\s*(?P<parent>[A-Za-z0-9-]+)\s+(?P<number>\d+)\s*\}",
        re.S,
    )
    for match in pattern.finditer(text):
        body = match.group("body")
        syntax = re.search(r"SYNTAX\s+(.*?)\s+(?:UNITS|MAX-ACCESS)", body, re.S)
        access = re.search(r"MAX-ACCESS\s+(\S+)", body)
        objects = re.search(r"OBJECTS\s*\{([^}]*)\}", body)
        definitions[match.group("name")] = {
            "macro": match.group("macro"),
            "syntax": " ".join(syntax.group(1).split()) if syntax else None,
            "access": access.group(1) if access else None,
            "parent": match.group("parent"),
            "number": int(match.group("number")),
            "objects": [o.strip() for o in objects.group(1).split(",")] if objects else None,
        }
    resolved = {"enterprises": (1, 3, 6, 1, 4, 1)}

    def oidOf(name):
        if name not in resolved:
            definition = definitions[name]
            resolved[name] = oidOf(definition["parent"]) + (definition["number"],)
        return resolved[name]

    for name, definition in definitions.items():
        definition["oid"] = oidOf(name)
    return definitions


class FakeService(Service):
    """
    A named child service whose running state the test sets.
    """

    def __init__(self, name):
        self.name = name


def makeState(stats=None, configured=("sip", "rtsp", "snmp"), clock=None):
    tree = MultiService()
    for name in configured:
        FakeService(name).setServiceParent(tree)
    clock = clock or Clock()
    return mib.ApplianceState(stats or {}, tree, configured, "1.2.3", clock), tree, clock


class MibTextTests(SynchronousTestCase):
    """
    The Python definitions are APPLIANCE-MIB.txt, object for object.
    """

    def setUp(self):
        with open(MIB_FILE) as f:
            self.smi = parseSMI(f.read())

    def test_rootIsTheEnterprisePlaceholder(self):
        """
        The module identity sits at the placeholder enterprise number
        99999 that the Python side uses.
        """
        self.assertEqual(self.smi["applianceMIB"]["oid"], mib.ENTERPRISE)
        self.assertEqual(self.smi["applianceMIB"]["macro"], "MODULE-IDENTITY")

    def test_everyPythonObjectIsInTheMib(self):
        """
        Every object the agent serves has the OID, type and read-only
        access the SMI text gives it.
        """
        syntaxes = {
            mib.COUNTER: "Counter32", mib.GAUGE: "Gauge32", mib.TICKS: "TimeTicks",
            mib.STRING: "DisplayString",
        }
        for definition in mib.ALL_OBJECTS:
            smi = self.smi[definition.name]
            self.assertEqual(smi["oid"], definition.oid, definition.name)
            self.assertEqual(smi["access"], "read-only", definition.name)
            if definition.kind in syntaxes:
                self.assertEqual(smi["syntax"], syntaxes[definition.kind], definition.name)
            else:
                self.assertTrue(smi["syntax"].startswith("INTEGER"), definition.name)

    def test_everyReadableMibObjectIsServed(self):
        """
        Every read-only object of the SMI text is served by the agent: no
        object of the MIB is missing from the Python side.
        """
        served = {definition.name for definition in mib.ALL_OBJECTS}
        readable = {
            name for name, smi in self.smi.items()
            if smi["macro"] == "OBJECT-TYPE" and smi["access"] == "read-only"
        }
        self.assertEqual(readable - served, set())

    def test_tableStructure(self):
        """
        The tables, entries and index columns the agent defines are those
        of the SMI text.
        """
        for tableName, entryName, entryOid, indexName, indexNumber, columns in mib.TABLES:
            self.assertEqual(self.smi[entryName]["oid"], entryOid)
            self.assertEqual(self.smi[tableName]["oid"], entryOid[:-1])
            self.assertEqual(self.smi[indexName]["oid"], entryOid + (indexNumber,))
            self.assertEqual(self.smi[indexName]["access"], "not-accessible")
            for column, (number, kind) in columns.items():
                self.assertEqual(self.smi[column]["oid"], entryOid + (number,))

    def test_notifications(self):
        """
        The notifications the agent sends are the NOTIFICATION-TYPEs of the
        MIB, and their variable bindings follow each one's OBJECTS.
        """
        notifications = {
            "applServiceStarted": mib.SERVICE_STARTED,
            "applServiceStopped": mib.SERVICE_STOPPED,
            "applServiceFailed": mib.SERVICE_FAILED,
            "applAuthFailureBurst": mib.AUTH_FAILURE_BURST,
        }
        byOid = {smi["oid"]: name for name, smi in self.smi.items()}
        for name, oid in notifications.items():
            smi = self.smi[name]
            self.assertEqual(smi["macro"], "NOTIFICATION-TYPE")
            self.assertEqual(smi["oid"], oid)
            varBinds = mib.notificationVarBinds(oid, "sip", mib.RUNNING, 5, 60)
            self.assertEqual(varBinds[0], (mib.SNMP_TRAP_OID, "ObjectIdentifier", oid))
            self.assertEqual([byOid[v[0][:-1]] for v in varBinds[1:]], smi["objects"])
        self.assertEqual(self.smi["applNotifyAuthFailures"]["oid"], mib.NOTIFY_AUTH_FAILURES)
        self.assertEqual(self.smi["applNotifyInterval"]["oid"], mib.NOTIFY_INTERVAL)

    def test_fixedRowsMatchTheDescription(self):
        """
        The fixed row numbers the MIB's DESCRIPTIONs promise are those the
        agent uses.
        """
        with open(MIB_FILE) as f:
            text = " ".join(f.read().split())
        for index, service in enumerate(mib.SERVICES, 1):
            self.assertIn("%s(%d)" % (service, index), text)
        for index, method in enumerate(mib.SIP_METHOD_ROWS, 1):
            self.assertIn("%s(%d)" % (method, index), text)

    def test_smilint(self):
        """
        smilint (libsmi) finds nothing to report in the module, at level 3,
        with the base modules on its path.
        """
        if shutil.which("smilint") is None:
            raise SkipTest("needs smilint (apt-get install smitools)")
        env = dict(os.environ, SMIPATH="%s:%s" % (BASE_MIBS, MIB_DIRECTORY))
        completed = subprocess.run(
            ["smilint", "-l", "3", MIB_FILE], capture_output=True, timeout=20, env=env,
        )
        output = (completed.stdout + completed.stderr).decode("utf-8", "replace")
        self.assertEqual((completed.returncode, output), (0, ""))

    def test_snmptranslate(self):
        """
        net-snmp's snmptranslate loads the module and prints its tree.
        """
        if shutil.which("snmptranslate") is None:
            raise SkipTest("needs snmptranslate (apt-get install snmp)")
        completed = subprocess.run(
            ["snmptranslate", "-Tp", "-m", "APPLIANCE-MIB",
             "-M", "%s:%s" % (BASE_MIBS, MIB_DIRECTORY), "APPLIANCE-MIB::applianceMIB"],
            capture_output=True, timeout=20,
            env=dict(os.environ, SNMPCONFPATH=self.mktemp()),
        )
        output = completed.stdout.decode("utf-8", "replace")
        self.assertEqual(completed.returncode, 0, completed.stderr)
        self.assertIn("applSipMethodInRequests(3)", output)
        self.assertIn("applAuthFailureBurst(4)", output)


class EncodingTests(SynchronousTestCase):
    """
    Statistics fitted into SMI types (RFC 2578 section 7.1).
    """

    def test_counterWraps(self):
        """
        A Counter32 wraps to 0 after 2^32 - 1.
        """
        self.assertEqual(mib.encode(mib.COUNTER, 2**32 + 5), 5)
        self.assertEqual(mib.encode(mib.COUNTER, 2**32 - 1), 2**32 - 1)

    def test_gaugeLatches(self):
        """
        A Gauge32 stays at its maximum above it, and at 0 below 0.
        """
        self.assertEqual(mib.encode(mib.GAUGE, 2**40), 2**32 - 1)
        self.assertEqual(mib.encode(mib.GAUGE, -3), 0)

    def test_stringIsBytesOfAtMost255(self):
        """
        A DisplayString is UTF-8 bytes cut at 255.
        """
        self.assertEqual(mib.encode(mib.STRING, "x" * 300), b"x" * 255)


class ValueTests(SynchronousTestCase):
    """
    Each object reads its statistic from the snapshot taken when asked.
    """

    def value(self, state, name, index=()):
        for definition in mib.ALL_OBJECTS:
            if definition.name == name and definition.index == tuple(index):
                return definition.value(state)
        raise KeyError(name)

    def test_sipMethodsAndOther(self):
        """
        The method table reads requests.in.<METHOD>; the other row and the
        summary add up the methods, each request once.
        """
        sip = Statistics("sip")
        sip.increment("requests.in.OPTIONS", 3)
        sip.increment("requests.in.INVITE")
        sip.increment("requests.in.FOO", 2)
        sip.increment("requests.in.BAR")
        state, tree, clock = makeState({"sip": sip})
        self.assertEqual(self.value(state, "applSipMethodInRequests", [5]), 3)
        self.assertEqual(self.value(state, "applSipMethodInRequests", [1]), 1)
        self.assertEqual(self.value(state, "applSipMethodInRequests", [15]), 3)
        self.assertEqual(self.value(state, "applSipMethodName", [15]), b"other")
        self.assertEqual(self.value(state, "applSipSummaryInRequests"), 7)

    def test_sipResponsesByClass(self):
        """
        The status class table reads responses.in / out.<N>xx and the
        summaries add the classes up.
        """
        sip = Statistics("sip")
        sip.increment("responses.out.2xx", 4)
        sip.increment("responses.out.4xx")
        sip.increment("responses.in.1xx", 2)
        state, tree, clock = makeState({"sip": sip})
        self.assertEqual(self.value(state, "applSipStatusClassOutResponses", [2]), 4)
        self.assertEqual(self.value(state, "applSipStatusClassOutResponses", [4]), 1)
        self.assertEqual(self.value(state, "applSipStatusClassInResponses", [1]), 2)
        self.assertEqual(self.value(state, "applSipSummaryOutResponses"), 5)
        self.assertEqual(self.value(state, "applSipSummaryInResponses"), 2)

    def test_sipScalarsFromTheirKeys(self):
        """
        Registrations, bindings, authentication failures and transactions
        come from the SIP service's keys; gauges are read at request time.
        """
        sip = Statistics("sip")
        bindings = [2]
        sip.gauge("registrar.bindings", lambda: bindings[0])
        sip.gauge("transactions.active", lambda: 7)
        sip.increment("registrar.accepted", 5)
        sip.increment("registrar.rejected", 1)
        sip.increment("registrar.challenged", 6)
        sip.increment("auth.failures", 9)
        sip.increment("parse.errors", 2)
        state, tree, clock = makeState({"sip": sip})
        self.assertEqual(self.value(state, "applSipCurrentBindings"), 2)
        bindings[0] = 3
        self.assertEqual(self.value(state, "applSipCurrentBindings"), 3)
        self.assertEqual(self.value(state, "applSipTransactionsActive"), 7)
        self.assertEqual(self.value(state, "applSipRegAccepted"), 5)
        self.assertEqual(self.value(state, "applSipRegRejected"), 1)
        self.assertEqual(self.value(state, "applSipRegChallenged"), 6)
        self.assertEqual(self.value(state, "applSipAuthFailures"), 9)
        self.assertEqual(self.value(state, "applSipParseErrors"), 2)

    def test_rtsp(self):
        """
        RTSP sessions and streams come from the RTSP service's keys.
        """
        rtsp = Statistics("rtsp")
        rtsp.gauges(lambda: {"sessions.active": 2, "streams.playing": 1, "streams.recording": 1})
        rtsp.increment("requests.in.SETUP", 2)
        rtsp.increment("requests.in.other")
        rtsp.increment("auth.failures")
        state, tree, clock = makeState({"rtsp": rtsp})
        self.assertEqual(self.value(state, "applRtspSessionsActive"), 2)
        self.assertEqual(self.value(state, "applRtspStreamsPlaying"), 1)
        self.assertEqual(self.value(state, "applRtspStreamsRecording"), 1)
        self.assertEqual(self.value(state, "applRtspInRequests"), 3)
        self.assertEqual(self.value(state, "applRtspAuthFailures"), 1)

    def test_absentServicesReadZero(self):
        """
        The objects of a service that is not running (no statistics) read
        0: RTSP, voicemail, DRM and PSAP alike.
        """
        state, tree, clock = makeState({})
        for name in ("applRtspSessionsActive", "applVmMessages", "applDrmLicensesIssued",
                     "applPsapCallsActive", "applSipSummaryInRequests"):
            self.assertEqual(self.value(state, name), 0, name)

    def test_placeholderGroupsReadTheirServices(self):
        """
        The voicemail, DRM and PSAP groups read the keys their services
        will export.
        """
        voicemail, drm, psap = Statistics("voicemail"), Statistics("drm"), Statistics("psap")
        voicemail.increment("deposits", 2)
        drm.increment("licenses.issued", 3)
        psap.gauge("calls.active", lambda: 1)
        state, tree, clock = makeState({"voicemail": voicemail, "drm": drm, "psap": psap})
        self.assertEqual(self.value(state, "applVmDeposits"), 2)
        self.assertEqual(self.value(state, "applDrmLicensesIssued"), 3)
        self.assertEqual(self.value(state, "applPsapCallsActive"), 1)

    def test_brokenSourceReadsZero(self):
        """
        A statistics source that raises reads as empty, and the error is
        logged as our bug.
        """

        class Broken:
            name = "sip"

            def snapshot(self):
                raise ZeroDivisionError()

        state, tree, clock = makeState({"sip": Broken()})
        self.assertEqual(self.value(state, "applSipAuthFailures"), 0)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_versionAndUptime(self):
        """
        applVersion is the version given; applUptime counts hundredths of
        a second from markStarted.
        """
        state, tree, clock = makeState()
        clock.advance(100)
        state.markStarted()
        clock.advance(12.345)
        self.assertEqual(self.value(state, "applVersion"), b"1.2.3")
        self.assertEqual(self.value(state, "applUptime"), 1234)

    def test_serviceStatus(self):
        """
        A configured service is running(1) when its child service runs,
        failed(3) when it does not while the appliance runs, stopped(2)
        while the appliance stops; one not configured is disabled(4).
        """
        state, tree, clock = makeState(configured=("sip", "rtsp", "snmp"))
        tree.startService()
        tree.getServiceNamed("rtsp").stopService()
        index = {name: i for i, name in enumerate(mib.SERVICES, 1)}
        self.assertEqual(self.value(state, "applServiceStatus", [index["sip"]]), mib.RUNNING)
        self.assertEqual(self.value(state, "applServiceStatus", [index["rtsp"]]), mib.FAILED)
        self.assertEqual(self.value(state, "applServiceStatus", [index["drm"]]), mib.DISABLED)
        self.assertEqual(self.value(state, "applServiceName", [index["drm"]]), b"drm")
        tree.stopService()
        self.assertEqual(self.value(state, "applServiceStatus", [index["sip"]]), mib.STOPPED)


class ExportTests(SynchronousTestCase):
    """
    L{mib.exportMib} makes pysnmp managed objects that read the statistics
    per request.
    """

    def setUp(self):
        from pysnmp.entity import engine
        from pysnmp.entity.rfc3413 import context

        self.sip = Statistics("sip")
        self.state, tree, clock = makeState({"sip": self.sip})
        self.instrum = context.SnmpContext(engine.SnmpEngine()).get_mib_instrum()
        mib.exportMib(self.instrum.get_mib_builder(), self.state)

    def get(self, oid):
        ((name, value),) = self.instrum.read_variables((oid, None))
        return value

    def test_getReadsAtRequestTime(self):
        """
        A GET of a counter instance returns the statistic as it is when
        the request is handled.
        """
        oid = mib.SIP_METHOD_ENTRY + (3, 5)
        self.assertEqual(int(self.get(oid)), 0)
        self.sip.increment("requests.in.OPTIONS", 2)
        value = self.get(oid)
        self.assertEqual(int(value), 2)
        self.assertEqual(value.__class__.__name__, "Counter32")

    def test_walkVisitsEveryObjectInOrder(self):
        """
        GETNEXT from the enterprise root visits every served instance, in
        OID order, and nothing else.
        """
        seen = []
        oid = mib.ENTERPRISE
        while True:
            ((name, value),) = self.instrum.read_next_variables((oid, None))
            if tuple(name)[:len(mib.ENTERPRISE)] != mib.ENTERPRISE:
                break
            if value.__class__.__name__ == "EndOfMibView":
                break
            seen.append(tuple(name))
            oid = name
        self.assertEqual(seen, [definition.instance for definition in mib.ALL_OBJECTS])

    def test_unknownInstance(self):
        """
        An OID below a scalar other than .0 is no such instance.
        """
        value = self.get(mib.SIP + (1, 1))
        self.assertEqual(value.__class__.__name__, "NoSuchInstance")

"""
The D-Bus interface of the running appliance, used with the standard tools
(busctl, gdbus, dbus-monitor) and appliancectl status, on a private
dbus-daemon started by the tests.
"""

import hashlib
import io
import os
import re
import signal
import sys
import time
import uuid

from appliance import __version__
from appliance.cli import main as appliancectl
from tests.dbus.privatebus import PrivateBus, SharedBus, SignalMonitor, requirePrograms
from tests.integration.harness import (
    LOOPBACK,
    REPOSITORY_ROOT,
    ApplianceTestCase,
    SharedAppliance,
    UDPClient,
    childEnvironment,
    headerValues,
    newBranch,
    runProgram,
    sipConfig,
    statusOf,
)

NAME = "org.appliance.Appliance1"
PATH = "/org/appliance/Appliance1"
REGISTRAR = PATH + "/Registrar"
REGISTRAR_INTERFACE = NAME + ".Registrar"
CONFERENCE = PATH + "/Conference"
CONFERENCE_INTERFACE = NAME + ".Conference"
POLICY = os.path.join(REPOSITORY_ROOT, "etc", "dbus", "org.appliance.Appliance1.conf")
TIMEOUT = 10


def dbusConfig(bus, services="sip dbus"):
    """
    A config function for L{ApplianceProcess}: the standard SIP test
    appliance with the D-Bus service on C{bus} (and the conference service
    on ports of the system's choosing when C{services} names it).
    """

    def config(appliance):
        text = sipConfig(appliance.dataDir, appliance.sipPort, appliance.tlsPort)
        text = text.replace("services = sip\n", "services = %s\n" % (services,))
        if "conference" in services:
            base = 34000 + 100 * (appliance.sipPort % 40)
            text += ("\n[conference]\nlisten = udp:0:interface=127.0.0.1\nrtp_ports = %d-%d\n"
                     "media_address = 127.0.0.1\n" % (base, base + 99))
        return text + "\n[dbus]\nbus = %s\n" % (bus,)

    return config


_bus = SharedBus()
_appliance = SharedAppliance(configText=lambda appliance: dbusConfig(_bus.get().address)(appliance))


def busctl(address, *arguments):
    requirePrograms("busctl")
    return runProgram(["busctl", "--address=" + address] + list(arguments), timeout=TIMEOUT)


def gdbus(address, *arguments):
    requirePrograms("gdbus")
    return runProgram(["gdbus", "call", "--address", address] + list(arguments), timeout=TIMEOUT)


def status(*arguments):
    """
    Run appliancectl status as operators do, in its own process.
    """
    return runProgram(
        [sys.executable, "-c", "from appliance.cli import run; run()"] + list(arguments)
        + ["status"],
        env=childEnvironment(), timeout=TIMEOUT,
    )


def register(sipPort, user, password, domain="example.test", expires=600):
    """
    REGISTER C{user@domain} from a UDP socket on 127.0.0.1, answering the
    digest challenge (RFC 3261 section 22.4, MD5 with qop=auth); return the
    final status code and the contact registered.
    """
    client = UDPClient()
    try:
        callId = uuid.uuid4().hex
        contact = "sip:%s@%s:%d" % (user, LOOPBACK, client.port)

        def request(cseq, authorization=None):
            lines = [
                "REGISTER sip:%s SIP/2.0" % (domain,),
                "Via: SIP/2.0/UDP %s:%d;branch=%s;rport" % (LOOPBACK, client.port, newBranch()),
                "Max-Forwards: 70",
                "From: <sip:%s@%s>;tag=dbus%d" % (user, domain, cseq),
                "To: <sip:%s@%s>" % (user, domain),
                "Call-ID: " + callId,
                "CSeq: %d REGISTER" % (cseq,),
                "Contact: <%s>" % (contact,),
                "Expires: %d" % (expires,),
                "User-Agent: dbus-test/1",
            ]
            if authorization:
                lines.append("Authorization: " + authorization)
            lines.append("Content-Length: 0")
            return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")

        challenge = client.exchange(request(1), sipPort)
        assert challenge is not None and statusOf(challenge)[0] == 401, challenge
        md5 = [v for v in headerValues(challenge, "WWW-Authenticate") if "MD5" in v.upper()
               and "SHA" not in v.upper()]
        assert md5, challenge
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', md5[0]))
        uri, cnonce, nc = "sip:" + domain, uuid.uuid4().hex[:8], "00000001"
        ha1 = hashlib.md5(("%s:%s:%s" % (user, fields["realm"], password)).encode()).hexdigest()
        ha2 = hashlib.md5(("REGISTER:%s" % (uri,)).encode()).hexdigest()
        response = hashlib.md5(
            ("%s:%s:%s:%s:auth:%s" % (ha1, fields["nonce"], nc, cnonce, ha2)).encode()
        ).hexdigest()
        authorization = (
            'Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", '
            'algorithm=MD5, cnonce="%s", qop=auth, nc=%s'
            % (user, fields["realm"], fields["nonce"], uri, response, cnonce, nc)
        )
        answer = client.exchange(request(2, authorization), sipPort)
        assert answer is not None, "no answer to the authenticated REGISTER"
        return statusOf(answer)[0], contact
    finally:
        client.close()


class DBusInterfaceTests(ApplianceTestCase):
    """
    One appliance on one private bus, shared by these tests.
    """

    def setUp(self):
        self.bus = _bus.get()
        self.appliance = _appliance.get()
        self.watchAppliance(self.appliance)
        self.address = self.bus.address

    def test_introspect(self):
        """
        busctl introspects both objects: the methods, properties and
        signals with their types, and the standard interfaces.
        """
        code, output = busctl(self.address, "introspect", NAME, PATH)
        self.assertEqual(code, 0, output)
        for pattern in [
            r"\.Reload\s+method\s+-\s+as",
            r"\.GetStatistics\s+method\s+s\s+a\{sx\}",
            r'\.Services\s+property\s+a\{ss\}\s+\d+ .*"sip" "running".*emits-change',
            r"\.Uptime\s+property\s+t\s+\d+",
            r'\.Version\s+property\s+s\s+"%s"' % (re.escape(__version__),),
            r"\.ServiceStateChanged\s+signal\s+ss",
            r"org\.freedesktop\.DBus\.Properties\s+interface",
            r"\.PropertiesChanged\s+signal\s+sa\{sv\}as",
            r"org\.freedesktop\.DBus\.Introspectable\s+interface",
        ]:
            self.assertRegex(output, pattern)
        code, output = busctl(self.address, "introspect", NAME, REGISTRAR)
        self.assertEqual(code, 0, output)
        for pattern in [
            r"\.ListBindings\s+method\s+s\s+a\(sudsss\)",
            r"\.Unregister\s+method\s+s\s+u",
            r"\.ListAddressesOfRecord\s+method\s+-\s+as",
            r"\.BindingChanged\s+signal\s+s",
            r"\.BindingCount\s+property\s+u",
        ]:
            self.assertRegex(output, pattern)
        code, output = busctl(self.address, "tree", NAME)
        self.assertEqual(code, 0, output)
        self.assertIn(REGISTRAR, output)

    def test_properties(self):
        """
        busctl get-property and gdbus GetAll read Version, Services and
        Uptime.
        """
        code, output = busctl(self.address, "get-property", NAME, PATH, NAME, "Version")
        self.assertEqual((code, output.strip()), (0, 's "%s"' % (__version__,)))
        code, output = busctl(self.address, "get-property", NAME, PATH, NAME, "Services")
        self.assertEqual(
            (code, output.strip()), (0, 'a{ss} 2 "sip" "running" "dbus" "running"')
        )
        code, output = gdbus(
            self.address, "-d", NAME, "-o", PATH, "-m",
            "org.freedesktop.DBus.Properties.GetAll", NAME,
        )
        self.assertEqual(code, 0, output)
        self.assertIn("'Services': <{'sip': 'running', 'dbus': 'running'}>", output)
        self.assertRegex(output, r"'Uptime': <uint64 \d+>")

    def test_errorNames(self):
        """
        Errors reach gdbus under proper D-Bus error names, never txdbus's
        org.txdbus.PythonException.
        """
        cases = [
            ([REGISTRAR, "-m", REGISTRAR_INTERFACE + ".ListBindings", "alice"],
             "org.freedesktop.DBus.Error.InvalidArgs"),
            ([PATH, "-m", "org.freedesktop.DBus.Properties.Get", NAME, "Colour"],
             "org.freedesktop.DBus.Error.UnknownProperty"),
            ([PATH, "-m", "org.freedesktop.DBus.Properties.Set", NAME, "Version", "<'9'>"],
             "org.freedesktop.DBus.Error.PropertyReadOnly"),
            ([PATH, "-m", NAME + ".GetStatistics", "nope"],
             "org.freedesktop.DBus.Error.InvalidArgs"),
        ]
        for arguments, name in cases:
            code, output = gdbus(self.address, "-d", NAME, "-o", *arguments)
            self.assertNotEqual(code, 0, output)
            self.assertIn("GDBus.Error:" + name + ":", output)
            self.assertNotIn("txdbus", output)

    def test_statistics(self):
        """
        GetStatistics gives a service's counters and gauges.
        """
        code, output = gdbus(self.address, "-d", NAME, "-o", PATH, "-m", NAME + ".GetStatistics",
                             "sip")
        self.assertEqual(code, 0, output)
        self.assertIn("'registrar.bindings':", output)

    def test_registerListUnregister(self):
        """
        A REGISTER shows in ListBindings and is signalled as BindingChanged;
        Unregister removes the binding, which is signalled too.
        """
        aor = "dora@example.test"
        code = appliancectl(
            ["--config", self.appliance.configPath, "user", "add", aor, "--password", "pw1"],
            stdout=io.StringIO(), stderr=io.StringIO(),
        )
        self.assertEqual(code, 0)
        monitor = SignalMonitor(
            self.address, ["type='signal',interface='%s'" % (REGISTRAR_INTERFACE,)],
            self.bus.directory,
        )
        self.addCleanup(monitor.stop)
        code, contact = register(self.appliance.sipPort, "dora", "pw1")
        self.assertEqual(code, 200)
        monitor.waitFor('string "%s"' % (aor,))
        code, output = busctl(
            self.address, "call", NAME, REGISTRAR, REGISTRAR_INTERFACE, "ListBindings", "s", aor
        )
        self.assertEqual(code, 0, output)
        self.assertRegex(
            output.strip(),
            r'^a\(sudsss\) 1 "%s" (600|599) 1 "" "udp:127.0.0.1:\d+" "dbus-test/1"$'
            % (re.escape(contact),),
        )
        code, output = gdbus(self.address, "-d", NAME, "-o", REGISTRAR, "-m",
                             REGISTRAR_INTERFACE + ".ListAddressesOfRecord")
        self.assertIn("'%s'" % (aor,), output)
        code, output = busctl(
            self.address, "call", NAME, REGISTRAR, REGISTRAR_INTERFACE, "Unregister", "s",
            "sip:" + aor,
        )
        self.assertEqual((code, output.strip()), (0, "u 1"))
        monitor.waitFor(lambda text: text.count('string "%s"' % (aor,)) == 2)
        code, output = busctl(
            self.address, "call", NAME, REGISTRAR, REGISTRAR_INTERFACE, "ListBindings", "s", aor
        )
        self.assertEqual((code, output.strip()), (0, "a(sudsss) 0"))

    def test_reload(self):
        """
        Reload applies a new log level, names what needs a restart, and
        refuses a broken file with InvalidConfig, changing nothing.
        """
        path = self.appliance.configPath
        with open(path) as f:
            original = f.read()

        def restore():
            with open(path, "w") as f:
                f.write(original)
            busctl(self.address, "call", NAME, PATH, NAME, "Reload")

        self.addCleanup(restore)
        code, output = busctl(self.address, "call", NAME, PATH, NAME, "Reload")
        self.assertEqual((code, output.strip()), (0, "as 0"))
        with open(path, "w") as f:
            f.write(original.replace("log_level = debug", "log_level = info")
                    + "[rtsp]\nurl = rtsp://x/\n")
        code, output = busctl(self.address, "call", NAME, PATH, NAME, "Reload")
        self.assertEqual(
            (code, output.strip()),
            (0, 'as 2 "[appliance] log_level: applied" '
                '"[rtsp] url: changed, takes effect after a restart"'),
        )
        with open(path, "w") as f:
            f.write(original + "colour = blue\n")
        code, output = gdbus(self.address, "-d", NAME, "-o", PATH, "-m", NAME + ".Reload")
        self.assertNotEqual(code, 0)
        self.assertIn("GDBus.Error:org.appliance.Appliance1.Error.InvalidConfig:", output)
        self.assertIn("[dbus] colour: unknown key", output)

    def test_statusAllRunning(self):
        """
        appliancectl status lists every service running and exits 0.
        """
        code, output = status("--config", self.appliance.configPath)
        self.assertEqual(code, 0, output)
        self.assertRegex(output, r"^appliance %s, up \d\d:\d\d:\d\d\n" % (re.escape(__version__),))
        self.assertRegex(output, r"\nsip +running\n")
        self.assertRegex(output, r"\ndbus +running\n")

    def test_statusServiceDown(self):
        """
        A configured service that is not running makes status exit 1 and
        name it.
        """
        path = os.path.join(self.appliance.directory, "more.conf")
        with open(self.appliance.configPath) as f:
            text = f.read().replace("services = sip dbus", "services = sip rtsp dbus")
        with open(path, "w") as f:
            f.write(text)
        code, output = status("--config", path)
        self.assertEqual(code, 1, output)
        self.assertIn("appliancectl: not running: rtsp (not running)", output)


class DBusLifecycleTests(ApplianceTestCase):
    """
    Appliances of their own: signals at start and stop, no bus, the
    system bus policy.
    """

    def startBus(self, configFile=None):
        bus = PrivateBus(configFile=configFile)
        self.addCleanup(bus.stop)
        return bus.start()

    def test_startAndStopSignals(self):
        """
        ServiceStateChanged announces the interface running at start and
        stopped at shutdown; then status exits 3, saying the appliance is
        not on the bus.
        """
        bus = self.startBus()
        monitor = SignalMonitor(
            bus.address, ["type='signal',interface='%s'" % (NAME,)], bus.directory
        )
        self.addCleanup(monitor.stop)
        appliance = self.startAppliance(configText=dbusConfig(bus.address))
        monitor.waitFor('member=ServiceStateChanged\n   string "dbus"\n   string "running"')
        code, output = status("--config", appliance.configPath)
        self.assertEqual(code, 0, output)
        appliance.process.send_signal(signal.SIGTERM)
        self.assertIsNotNone(appliance.wait())  # it exits on its own
        monitor.waitFor('member=ServiceStateChanged\n   string "dbus"\n   string "stopped"')
        code, output = status("--config", appliance.configPath)
        self.assertEqual(code, 3, output)
        self.assertIn(
            "cannot reach the appliance: org.appliance.Appliance1 is not on the bus at "
            + bus.address, output,
        )

    def test_noBus(self):
        """
        Without its bus the appliance still starts and answers SIP, warns in
        its log, and status exits 3 naming the bus.
        """
        missing = "unix:path=" + os.path.join(self.mktemp(), "bus")
        appliance = self.startAppliance(configText=dbusConfig(missing))
        self.assertIn("D-Bus: cannot offer org.appliance.Appliance1 on the bus at " + missing,
                      appliance.logText())
        self.assertIn("the other services keep running", appliance.logText())
        code, output = status("--config", appliance.configPath)
        self.assertEqual(code, 3, output)
        self.assertIn("cannot reach the appliance: no connection to the bus at " + missing,
                      output)
        self.assertAlive(appliance)

    def test_systemBusPolicy(self):
        """
        On a bus with the system bus's default policy and our policy file,
        root owns the name and may call everything; an unprivileged user
        may read properties, introspect and list bindings, but not
        Unregister nor Reload.
        """
        if os.getuid() != 0:
            self.skipTest("needs root to run a client as another user")
        requirePrograms("setpriv")
        directory = PrivateBus().directory
        os.chmod(directory, 0o755)
        configFile = os.path.join(directory, "system.conf")
        with open(configFile, "w") as f:
            f.write(SYSTEM_LIKE_CONFIG % {"policy": POLICY, "directory": directory})
        bus = PrivateBus(configFile=configFile, directory=directory)
        self.addCleanup(bus.stop)
        bus.start()
        appliance = self.startAppliance(configText=dbusConfig(bus.address, "sip conference dbus"))
        code, output = status("--config", appliance.configPath)
        self.assertEqual(code, 0, output + bus.logText())

        def asNobody(*arguments):
            return runProgram(
                ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                 "busctl", "--address=" + bus.address] + list(arguments),
                timeout=TIMEOUT,
            )

        allowed = [
            ("get-property", NAME, PATH, NAME, "Version"),
            ("introspect", NAME, PATH),
            ("call", NAME, REGISTRAR, REGISTRAR_INTERFACE, "ListBindings", "s", "a@example.test"),
            ("call", NAME, PATH, NAME, "GetStatistics", "s", "sip"),
            ("call", NAME, CONFERENCE, CONFERENCE_INTERFACE, "ListRooms"),
        ]
        for arguments in allowed:
            code, output = asNobody(*arguments)
            self.assertEqual(code, 0, (arguments, output))
        denied = [
            ("call", NAME, REGISTRAR, REGISTRAR_INTERFACE, "Unregister", "s", "a@example.test"),
            ("call", NAME, PATH, NAME, "Reload"),
            ("set-property", NAME, PATH, NAME, "Version", "s", "x"),
            ("call", NAME, CONFERENCE, CONFERENCE_INTERFACE, "Invite", "ss", "x", "sip:a@example.test"),
            ("call", NAME, CONFERENCE, CONFERENCE_INTERFACE, "Kick", "ss", "x", "y"),
        ]
        for arguments in denied:
            code, output = asNobody(*arguments)
            self.assertNotEqual(code, 0, (arguments, output))
            self.assertIn("Access denied", output)
        code, output = busctl(
            bus.address, "call", NAME, REGISTRAR, REGISTRAR_INTERFACE, "Unregister", "s",
            "a@example.test",
        )
        self.assertEqual((code, output.strip()), (0, "u 0"))


# A bus of its own: two appliances on one bus would compete for the name.
_conferenceBus = SharedBus()
_conferenceAppliance = SharedAppliance(
    configText=lambda appliance: dbusConfig(_conferenceBus.get().address, "sip conference dbus")(appliance))


class ConferenceObjectTests(ApplianceTestCase):
    """
    C{/org/appliance/Appliance1/Conference} with busctl, and a SIPp phone
    the room calls.
    """

    def setUp(self):
        self.bus = _conferenceBus.get()
        self.appliance = _conferenceAppliance.get()
        self.watchAppliance(self.appliance)
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)

    def call(self, *arguments):
        code, output = busctl(self.bus.address, "call", NAME, CONFERENCE, CONFERENCE_INTERFACE,
                              *arguments)
        return code, output.strip()

    def gdbusError(self, method, *arguments):
        """
        Call C{method} with gdbus, which names the D-Bus error it gets.
        """
        code, output = gdbus(self.bus.address, "--dest", NAME, "--object-path", CONFERENCE,
                             "--method", CONFERENCE_INTERFACE + "." + method, *arguments)
        self.assertNotEqual(code, 0, output)
        return output

    def test_inviteListMuteKick(self):
        """
        Invite calls a registered phone into a new room (third-party call
        control); ListRooms and ListParticipants show it; Mute changes its
        flag; Kick hangs it up with a BYE and the room closes.
        """
        from tests.integration.sipp import Sipp, addUser, register
        from tests.integration.harness import pickPorts

        user = "conf%s" % (uuid.uuid4().hex[:8],)
        addUser(self.appliance, user + "@example.test")
        port = pickPorts(1)[0]
        register(self.appliance.sipPort, user + "@example.test", port)
        phone = Sipp("phone", "uas_answer.xml", self.directory, localPort=port, timeout=15)
        self.addCleanup(phone.stop)
        phone.start().waitUntilListening()
        code, output = self.call("Invite", "ss", "dbus", "sip:%s@example.test" % (user,))
        self.assertEqual(code, 0, output)
        callId = re.match(r's "(.+)"$', output).group(1)
        deadline = time.monotonic() + 10
        while self.call("ListRooms") != (0, 'a(su) 1 "dbus" 1') and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(self.call("ListRooms"), (0, 'a(su) 1 "dbus" 1'))
        code, output = self.call("ListParticipants", "s", "dbus")
        self.assertEqual(code, 0, output)
        self.assertIn('"%s"' % (callId,), output)
        self.assertIn("sip:%s@example.test" % (user,), output)
        self.assertTrue(output.endswith("false"), output)
        self.assertEqual(self.call("Mute", "ssb", "dbus", callId, "true"), (0, ""))
        self.assertTrue(self.call("ListParticipants", "s", "dbus")[1].endswith("true"))
        self.assertIn("org.appliance.Appliance1.Error.NoSuchParticipant",
                      self.gdbusError("Kick", "dbus", "no-such-call"))
        self.assertEqual(self.call("Kick", "ss", "dbus", callId), (0, ""))
        result = phone.wait(10)
        self.assertTrue(result.succeeded, result.describe())
        self.assertEqual(self.call("ListRooms"), (0, "a(su) 0"))

    def phone(self, name, scenario):
        """
        A SIPp phone registered as a new user; return C{(aor, process)}.
        """
        from tests.integration.sipp import Sipp, addUser, register
        from tests.integration.harness import pickPorts

        aor = "%s%s@example.test" % (name, uuid.uuid4().hex[:8])
        addUser(self.appliance, aor)
        port = pickPorts(1)[0]
        register(self.appliance.sipPort, aor, port)
        process = Sipp(name, scenario, self.directory, localPort=port, timeout=15)
        self.addCleanup(process.stop)
        process.start().waitUntilListening()
        return aor, process

    def test_connect(self):
        """
        Connect calls A without an offer, takes the offer of A's 200 to B,
        and acknowledges A with B's answer (RFC 3725 flow I); when A hangs
        up, B gets a BYE.
        """
        a, first = self.phone("a", "uas_offer_in_ok.xml")
        b, second = self.phone("b", "uas_answer.xml")
        code, output = self.call("Connect", "ss", "sip:" + a, "sip:" + b)
        self.assertEqual(code, 0, output)
        resultA, resultB = first.wait(15), second.wait(15)
        self.assertTrue(resultA.succeeded, resultA.describe())
        self.assertTrue(resultB.succeeded, resultB.describe())
        offerA = re.search(r"m=audio (\d+) RTP/AVP", resultA.messages).group(1)
        inviteB = resultB.receivedMessages()[0]
        self.assertIn("m=audio %s RTP/AVP" % (offerA,), inviteB)
        self.assertIn("From: <sip:%s>" % (a,), inviteB)
        self.assertEqual([line.split()[0] for line in resultB.received()], ["INVITE", "ACK", "BYE"])

    def test_badArguments(self):
        """
        A URI that is not sip / sips or a room name with spaces is refused
        with InvalidArgs; listing an unknown room with NoSuchParticipant.
        """
        for arguments in (("dbus", "mailto:x@example.test"), ("two words", "sip:a@example.test"),
                          ("dbus", "not a uri")):
            self.assertIn("org.freedesktop.DBus.Error.InvalidArgs", self.gdbusError("Invite", *arguments))
        self.assertIn("org.appliance.Appliance1.Error.NoSuchParticipant",
                      self.gdbusError("ListParticipants", "nowhere"))


# The parts of Debian's /usr/share/dbus-1/system.conf that decide access
# (its default policy), with the appliance's policy file included.
SYSTEM_LIKE_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%(directory)s/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.systemd1.Activator"/>
  </policy>
  <include>%(policy)s</include>
</busconfig>
"""

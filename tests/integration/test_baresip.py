"""
A real softphone against the appliance (issue 3, verification): two baresip
instances (Debian package baresip-core) register through it and one calls
the other through its proxy, on 127.0.0.1.

baresip 1.0.0 (libre 1.1.0) refuses a 401 / 407 that carries any challenge
but MD5 ("Register: Function not implemented", ENOSYS), whatever the order, so
this module's appliance offers MD5 only (C{digest_algorithms = MD5}).  Each
baresip reaches the appliance as its outbound proxy, so its REGISTER carries
C{Route: <sip:127.0.0.1:PORT;lr>}.

Each baresip gets its own configuration directory (and HOME): no audio
device (the source is a WAV file of silence, no player), no video, SIP on
127.0.0.1 only, and the ctrl_tcp module, through which the test dials, hangs
up and reads call events (JSON in netstrings).  Every baresip quits by
itself after C{-t} seconds and is stopped by PID in cleanup.
"""

import json
import os
import shutil
import socket
import subprocess
import time
import wave

from tests.integration.harness import (
    LOOPBACK,
    ApplianceTestCase,
    SharedAppliance,
    pickPorts,
    scratchDirectory,
    sipConfig,
    statusOf,
)
from tests.integration.sipp import PASSWORD, Registration, addUser, contactsOf

def _config(appliance):
    conferencePort = pickPorts(1)[0]
    base = 33000 + 100 * (conferencePort % 40)
    return sipConfig(
        appliance.dataDir, appliance.sipPort, appliance.tlsPort,
        extra="digest_algorithms = MD5\n"
              "[conference]\nlisten = udp:%d:interface=127.0.0.1\nrtp_ports = %d-%d\n"
              "media_address = 127.0.0.1\n" % (conferencePort, base, base + 99),
    ).replace("services = sip\n", "services = sip conference\n")


_appliance = SharedAppliance(configText=_config)

BARESIP_LIFETIME = 40
_MODULES = "/usr/lib/baresip/modules"


class ControlConnection:
    """
    A connection to baresip's ctrl_tcp module: commands and events are JSON
    objects framed as netstrings (C{LENGTH:JSON,}).
    """

    def __init__(self, port, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._socket = socket.create_connection((LOOPBACK, port), timeout=1.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self._buffer = b""
        self.events = []

    def command(self, name, params=""):
        data = json.dumps({"command": name, "params": params, "token": name}).encode()
        self._socket.sendall(b"%d:%s," % (len(data), data))

    def _next(self, deadline):
        while True:
            length, colon, rest = self._buffer.partition(b":")
            if colon and length.isdigit() and len(rest) > int(length):
                size = int(length)
                message, self._buffer = rest[:size], rest[size + 1:]
                return json.loads(message)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._socket.settimeout(remaining)
            try:
                chunk = self._socket.recv(65536)
            except socket.timeout:
                return None
            if not chunk:
                return None
            self._buffer += chunk

    def waitForEvent(self, types, timeout=10.0):
        """
        The first event whose type is in C{types}, or C{None} after
        C{timeout} seconds; every message read is kept in L{events}.
        """
        deadline = time.monotonic() + timeout
        while True:
            message = self._next(deadline)
            if message is None:
                return None
            self.events.append(message)
            if message.get("event") and message.get("type") in types:
                return message

    def close(self):
        self._socket.close()


class Baresip:
    """
    One baresip process with its own configuration directory.
    """

    def __init__(self, directory, aor, sipPort, appliancePort, controlPort, answer):
        self.directory = directory
        self.aor = aor
        self.sipPort = sipPort
        self.controlPort = controlPort
        os.makedirs(directory)
        silence = os.path.join(directory, "silence.wav")
        with wave.open(silence, "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(8000)
            f.writeframes(b"\0\0" * 8000 * 2)
        with open(os.path.join(directory, "config"), "w") as f:
            f.write(
                "poll_method\tepoll\n"
                "sip_listen\t{host}:{sip}\n"
                "net_interface\t{host}\n"
                "audio_source\taufile,{silence}\n"
                "module_path\t{modules}\n"
                "module\tg711.so\n"
                "module\taufile.so\n"
                "module_app\taccount.so\n"
                "module_app\tmenu.so\n"
                "module_app\tctrl_tcp.so\n"
                "ctrl_tcp_listen\t{host}:{control}\n".format(
                    host=LOOPBACK, sip=sipPort, silence=silence, modules=_MODULES,
                    control=controlPort,
                )
            )
        with open(os.path.join(directory, "accounts"), "w") as f:
            f.write(
                '<sip:{aor}>;auth_pass={password};outbound="sip:{host}:{port}";regint=600;'
                "answermode={answer};audio_codecs=PCMU\n".format(
                    aor=aor, password=PASSWORD, host=LOOPBACK, port=appliancePort,
                    answer="auto" if answer else "manual",
                )
            )
        self.outputPath = os.path.join(directory, "output.log")
        self.process = None

    def start(self):
        env = dict(os.environ, HOME=self.directory)
        self._output = open(self.outputPath, "wb")
        self.process = subprocess.Popen(
            ["baresip", "-f", self.directory, "-s", "-t", str(BARESIP_LIFETIME)],
            cwd=self.directory, env=env, stdin=subprocess.DEVNULL,
            stdout=self._output, stderr=subprocess.STDOUT,
        )
        return self

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process is not None:
            self._output.close()

    def output(self):
        try:
            with open(self.outputPath, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class BaresipTests(ApplianceTestCase):
    """
    Two baresip softphones and the appliance.
    """

    def setUp(self):
        if shutil.which("baresip") is None:
            self.fail("baresip is not installed (Debian package baresip-core)")
        self.appliance = _appliance.get()
        self.watchAppliance(self.appliance)
        self._logStart = self.appliance.logSize()
        self.workDirectory = scratchDirectory("baresip-")
        self._phones = []

    def tearDown(self):
        for phone in self._phones:
            phone.stop()
        self.assertAlive(self.appliance)
        self.assertNoTracebacks(self.appliance, self._logStart)

    def phone(self, name, answer=False):
        aor = "%s%d@example.test" % (name, os.getpid())
        addUser(self.appliance, aor)
        sipPort, controlPort = pickPorts(2)
        phone = Baresip(
            os.path.join(self.workDirectory, name), aor, sipPort, self.appliance.sipPort,
            controlPort, answer,
        )
        self._phones.append(phone)
        self.addCleanup(phone.stop)
        return phone.start()

    def describe(self, *phones):
        return "\n".join(
            "---- baresip %s (port %d):\n%s\n---- end of baresip %s"
            % (phone.aor, phone.sipPort, phone.output()[-6000:], phone.aor)
            for phone in phones
        )

    def waitForBinding(self, phone, timeout=8.0):
        """
        Poll the registrar (a REGISTER without Contact lists the bindings)
        until C{phone}'s contact is bound.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            query = Registration(self.appliance.sipPort, phone.aor, algorithm="MD5")
            try:
                response = query.send(contact=None, expires=None)
            finally:
                query.close()
            if response is not None and statusOf(response)[0] == 200:
                if any("%s:%d" % (LOOPBACK, phone.sipPort) in c for c in contactsOf(response)):
                    return
            time.sleep(0.3)
        self.fail("%s did not register\n%s" % (phone.aor, self.describe(phone)))

    def callService(self, phone, control, uri):
        """
        Dial C{uri} from C{phone} and wait until the call is established.
        """
        control.command("dial", uri)
        event = control.waitForEvent({"CALL_ESTABLISHED", "CALL_CLOSED"})
        if event is None or event["type"] != "CALL_ESTABLISHED":
            self.fail("%s: not established: %r\n%s" % (uri, control.events, self.describe(phone)))

    def waitForLog(self, text, timeout=5.0):
        deadline = time.monotonic() + timeout
        while text not in self.appliance.logText(self._logStart):
            if time.monotonic() > deadline:
                self.fail("%r not in the log:\n%s" % (text, self.appliance.logText(self._logStart)[-3000:]))
            time.sleep(0.1)

    def test_baresipCallsEchoAndARoom(self):
        """
        baresip calls the echo test and then a conference room through the
        proxy (authenticated with 407): both answer; in the room, the mute
        key baresip sends (RFC 4733) mutes it; each hang-up is answered
        along the Record-Route, leaving no call behind.
        """
        phone = self.phone("carol")
        self.waitForBinding(phone)
        control = ControlConnection(phone.controlPort)
        self.addCleanup(control.close)
        for uri in ("sip:echo@example.test", "sip:conf-baresip@example.test"):
            self.callService(phone, control, uri)
            time.sleep(1.0)
            if "conf-" in uri:
                # The mute key as baresip sends it: RFC 4733 telephone-events.
                control.command("sndcode", "*")
                self.waitForLog("room baresip: a participant is muted")
            control.command("hangup")
            closed = control.waitForEvent({"CALL_CLOSED"}, timeout=5)
            self.assertIsNotNone(closed, control.events)
        output = phone.output()
        self.assertIn("Proxy-Authorization: Digest", output)
        self.assertIn("m=audio", output)
        self.assertNotIn("Request Terminated", output)
        deadline = time.monotonic() + 5
        while True:
            # The log is written asynchronously: wait for both calls' ends.
            log = self.appliance.logText(self._logStart)
            if log.count("ended: bye") >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(log.count("ended: bye"), 2, log[-3000:])

    def test_baresipCallsBaresipThroughTheAppliance(self):
        """
        Two baresip phones register with digest authentication; one calls
        the other, which answers automatically; the call is established on
        both sides (the INVITE was challenged with 407 and proxied), and the
        hang-up reaches the callee through the proxy (BYE along the
        Record-Route).
        """
        caller, callee = self.phone("alice"), self.phone("bob", answer=True)
        self.waitForBinding(caller)
        self.waitForBinding(callee)
        callerControl = ControlConnection(caller.controlPort)
        calleeControl = ControlConnection(callee.controlPort)
        self.addCleanup(callerControl.close)
        self.addCleanup(calleeControl.close)
        callerControl.command("dial", "sip:%s" % (callee.aor,))
        established = callerControl.waitForEvent({"CALL_ESTABLISHED", "CALL_CLOSED"})
        answered = calleeControl.waitForEvent({"CALL_ESTABLISHED", "CALL_CLOSED"}, timeout=3)
        problem = None
        if established is None or established["type"] != "CALL_ESTABLISHED":
            problem = "the caller's call was not established: %r" % (callerControl.events,)
        elif answered is None or answered["type"] != "CALL_ESTABLISHED":
            problem = "the callee's call was not established: %r" % (calleeControl.events,)
        if problem:
            self.fail(problem + "\n" + self.describe(caller, callee))
        callerControl.command("hangup")
        closed = calleeControl.waitForEvent({"CALL_CLOSED"}, timeout=5)
        if closed is None:
            self.fail("the callee saw no hang-up: %r\n%s" % (
                calleeControl.events, self.describe(caller, callee)))
        self.assertIn("Proxy-Authorization: Digest", caller.output())
        self.assertIn("Record-Route: <sip:127.0.0.1:%d;lr>" % (self.appliance.sipPort,),
                      callee.output())

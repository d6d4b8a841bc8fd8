"""
Helpers for whole-appliance integration tests.

L{ApplianceProcess} runs the real appliance (C{twistd --reactor=asyncio -n
appliance --config FILE}) as a child process on loopback ports, waits until it
answers, and stops it again.  L{ApplianceTestCase} starts one per test (or
shares one per module) and appends the appliance's log to every failure or
error of a test that used it.  The socket helpers send raw bytes over UDP,
TCP and TLS and read SIP messages back, always with a timeout, always to
127.0.0.1.

Everything here is blocking: the peers the tests exercise (sipp, sipsak) are
external programs anyway, so the tests are L{SynchronousTestCase}s that call
C{subprocess} and plain sockets.
"""

import os
import random
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid

from zope.interface import directlyProvides, providedBy

from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

LOOPBACK = "127.0.0.1"

# The repository root: the twistd plugin lives in <root>/twisted/plugins and
# the package in <root>/appliance, so the child gets the root on PYTHONPATH
# whatever its working directory is.
REPOSITORY_ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
SCENARIOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios")
TEST_DATA = os.path.join(REPOSITORY_ROOT, "tests", "data")

STARTUP_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
PROGRAM_TIMEOUT = 20.0

# Ports are drawn from a four-digit range: sipsak 0.9.8.1 truncates a
# five-digit port in the Request-URI and To it writes ("sip:x@h:15060"
# becomes "sip:x@h:1506"), which would make its requests target another port.
_PORT_RANGE = (6000, 9899)
_AVOID_PORTS = {5060, 5061, 8080, 8443, 8554}


def scratchDirectory(prefix):
    """
    A new temporary directory: under trial's working directory (marked by
    C{_trial_marker}; trial empties it on its next run) when the tests run
    under trial, so logs survive a failed run for inspection; else in the
    system's temporary directory.
    """
    parent = None
    if os.path.exists("_trial_marker"):
        parent = os.path.abspath("integration")
        os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=prefix, dir=parent)


def twistdCommand():
    """
    The argv prefix that runs twistd with the current interpreter.

    @return: a list of strings; the twistd script next to the interpreter when
        there is one, else the same entry point through C{-c}.
    """
    script = os.path.join(os.path.dirname(sys.executable), "twistd")
    if os.path.exists(script):
        return [sys.executable, script]
    return [
        sys.executable,
        "-c",
        "import sys; sys.argv[0] = 'twistd'; "
        "from twisted.scripts.twistd import run; run()",
    ]


def childEnvironment():
    """
    The environment for programs the tests start: the repository on
    C{PYTHONPATH}, unbuffered output, no proxy settings.
    """
    env = dict(os.environ)
    paths = [REPOSITORY_ROOT]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env.pop(name, None)
    return env


def _dieWithParent():
    """
    Ask Linux to send SIGTERM to the child if the test process dies first,
    so an interrupted test run leaves no appliance behind.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except Exception:
        pass


def portIsFree(port, host=LOOPBACK, udp=True, tcp=True):
    """
    Whether C{port} can be bound on C{host} for UDP and/or TCP right now.
    """
    kinds = []
    if udp:
        kinds.append(socket.SOCK_DGRAM)
    if tcp:
        kinds.append(socket.SOCK_STREAM)
    for kind in kinds:
        s = socket.socket(socket.AF_INET, kind)
        try:
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def pickPorts(count=1):
    """
    Pick C{count} distinct loopback port numbers that are each free for both
    UDP and TCP.

    @return: a list of C{count} ints.
    """
    chosen = []
    for _ in range(2000):
        port = random.randint(*_PORT_RANGE)
        if port in chosen or port in _AVOID_PORTS:
            continue
        if portIsFree(port):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise RuntimeError("no free loopback ports in %r" % (_PORT_RANGE,))


# ----------------------------------------------------------------------------
# SIP bytes


def newBranch():
    """
    A fresh RFC 3261 branch (magic cookie + random).
    """
    return "z9hG4bK-it-" + uuid.uuid4().hex[:16]


def optionsRequest(
    transport,
    localPort,
    targetPort,
    user="ping",
    host=LOOPBACK,
    branch=None,
    callId=None,
    extraHeaders=(),
    rport=True,
):
    """
    A well-formed OPTIONS request (RFC 3261 section 11.1) as bytes.

    @param transport: "UDP", "TCP" or "TLS" for the Via.
    @param localPort: the port of the socket the request is sent from.
    @param targetPort: the appliance's port, for the Request-URI.
    """
    branch = branch or newBranch()
    callId = callId or uuid.uuid4().hex + "@" + LOOPBACK
    via = "SIP/2.0/%s %s:%d;branch=%s" % (transport, LOOPBACK, localPort, branch)
    if rport:
        via += ";rport"
    lines = [
        "OPTIONS sip:%s@%s:%d SIP/2.0" % (user, host, targetPort),
        "Via: " + via,
        "Max-Forwards: 70",
        "From: <sip:tester@example.test>;tag=%s" % uuid.uuid4().hex[:8],
        "To: <sip:%s@%s>" % (user, host),
        "Call-ID: " + callId,
        "CSeq: 1 OPTIONS",
        "Accept: application/sdp",
    ]
    lines.extend(extraHeaders)
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def parseResponse(data):
    """
    Parse one SIP response with the appliance's own parser.

    @param data: the bytes of one whole message.
    @return: an C{appliance.sip.message.Response}.
    @raise AssertionError: if C{data} is not a SIP response.
    """
    from appliance.sip.message import Response, parseMessage

    message = parseMessage(data, datagram=True)
    if not isinstance(message, Response):
        raise AssertionError("expected a SIP response, got %r" % (data[:200],))
    return message


_STATUS_LINE = re.compile(rb"^SIP/2\.0 ([1-6][0-9][0-9]) ([^\r\n]*)\r\n")


def statusOf(data):
    """
    The status code and reason phrase of a response, read from its status
    line without the appliance's parser.

    @return: C{(code, reason)}.
    @raise AssertionError: if C{data} does not start with a status line.
    """
    match = _STATUS_LINE.match(data)
    if match is None:
        raise AssertionError("not a SIP response: %r" % (data[:200],))
    return int(match.group(1)), match.group(2).decode("utf-8", "replace")


def headerValues(data, name, compact=None):
    """
    All values of one header in a message's header block, read with a
    regular expression (no folding support; enough for the appliance's own
    output).

    @param name: the header name, e.g. "Via".
    @param compact: its compact form, e.g. "v".
    """
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    names = {name.lower()}
    if compact:
        names.add(compact.lower())
    values = []
    for line in head.split("\r\n")[1:]:
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in names:
            values.append(value.strip())
    return values


# ----------------------------------------------------------------------------
# Sockets


class UDPClient:
    """
    A UDP socket bound on 127.0.0.1 for talking to the appliance.

    @ivar port: the local port.
    """

    def __init__(self, port=0):
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind((LOOPBACK, port))
        self.port = self._socket.getsockname()[1]

    def send(self, data, port):
        """
        Send one datagram to 127.0.0.1:C{port}.
        """
        self._socket.sendto(data, (LOOPBACK, port))

    def receive(self, timeout=2.0):
        """
        The next datagram, or C{None} after C{timeout} seconds.
        """
        self._socket.settimeout(timeout)
        try:
            data, _ = self._socket.recvfrom(70000)
        except (socket.timeout, ConnectionRefusedError):
            return None
        return data

    def receiveFinal(self, timeout=3.0):
        """
        Skip provisional responses; the first final response or other
        datagram, or C{None} if none arrives within C{timeout} seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            data = self.receive(remaining)
            if data is None:
                return None
            if not re.match(rb"^SIP/2\.0 1[0-9][0-9] ", data):
                return data

    def receiveAll(self, timeout=0.5):
        """
        Every datagram that arrives until C{timeout} seconds pass without one.
        """
        received = []
        while True:
            data = self.receive(timeout)
            if data is None:
                return received
            received.append(data)

    def exchange(self, data, port, timeout=3.0):
        """
        Send C{data} and return the first final response (or C{None}).
        """
        self.send(data, port)
        return self.receiveFinal(timeout)

    def close(self):
        self._socket.close()


class StreamClient:
    """
    A TCP or TLS connection to the appliance that frames SIP messages by
    Content-Length (RFC 3261 section 18.3).

    @ivar port: the local port.
    """

    def __init__(self, port, tlsContext=None, serverHostname=LOOPBACK, timeout=5.0):
        raw = socket.create_connection((LOOPBACK, port), timeout=timeout)
        if tlsContext is not None:
            raw = tlsContext.wrap_socket(raw, server_hostname=serverHostname)
        self._socket = raw
        self._buffer = b""
        self._closed = False
        self.port = raw.getsockname()[1]

    def send(self, data):
        """
        Write C{data} to the connection.
        """
        self._socket.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or self._closed:
            return False
        self._socket.settimeout(remaining)
        try:
            chunk = self._socket.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            return False
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            self._closed = True
            return False
        if not chunk:
            self._closed = True
            return False
        self._buffer += chunk
        return True

    def receiveMessage(self, timeout=3.0):
        """
        The next whole SIP message on the stream, or C{None} if the
        connection closed or C{timeout} seconds passed first.  Leading CRLFs
        (keep-alive pongs) are skipped.
        """
        deadline = time.monotonic() + timeout
        while True:
            self._buffer = self._buffer.lstrip(b"\r\n")
            end = self._buffer.find(b"\r\n\r\n")
            if end != -1:
                head = self._buffer[:end]
                match = re.search(
                    rb"\r\n(?:content-length|l)[ \t]*:[ \t]*([0-9]+)", head, re.I
                )
                length = int(match.group(1)) if match else 0
                total = end + 4 + length
                if len(self._buffer) >= total:
                    message, self._buffer = (
                        self._buffer[:total],
                        self._buffer[total:],
                    )
                    return message
            if not self._fill(deadline):
                return None

    def receiveFinal(self, timeout=3.0):
        """
        Skip provisional responses; the first final response or request on
        the stream, or C{None}.
        """
        deadline = time.monotonic() + timeout
        while True:
            message = self.receiveMessage(max(0.0, deadline - time.monotonic()))
            if message is None or not re.match(rb"^SIP/2\.0 1[0-9][0-9] ", message):
                return message

    def receiveRaw(self, timeout=1.0):
        """
        Whatever bytes arrive within C{timeout} seconds (the buffer first).
        """
        deadline = time.monotonic() + timeout
        while not self._buffer and self._fill(deadline):
            pass
        data, self._buffer = self._buffer, b""
        return data

    def waitForClose(self, timeout=3.0):
        """
        Whether the peer closes the connection within C{timeout} seconds;
        data that arrives meanwhile is kept in the buffer.
        """
        deadline = time.monotonic() + timeout
        while not self._closed and time.monotonic() < deadline:
            self._fill(deadline)
        return self._closed

    def exchange(self, data, timeout=3.0):
        """
        Send C{data} and return the first final response (or C{None}).
        """
        self.send(data)
        return self.receiveFinal(timeout)

    def close(self):
        try:
            self._socket.close()
        except OSError:
            pass


def clientTLSContext(caFile):
    """
    A client TLS context that trusts only C{caFile} and checks the server's
    name (so the appliance's certificate must carry SAN IP 127.0.0.1).
    """
    context = ssl.create_default_context(cafile=caFile)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def runProgram(argv, timeout=PROGRAM_TIMEOUT, cwd=None, env=None):
    """
    Run an external program with a timeout and capture its output.

    @return: C{(exitCode, output)}; output is stdout and stderr together,
        decoded leniently; C{exitCode} is C{None} if the program had to be
        killed at the timeout.
    """
    try:
        completed = subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        output = e.output or b""
        return None, output.decode("utf-8", "replace") + (
            "\n[killed after %ss]" % (timeout,)
        )
    return completed.returncode, completed.stdout.decode("utf-8", "replace")


# ----------------------------------------------------------------------------
# The appliance


class ApplianceNotReady(Exception):
    """
    The appliance exited or did not answer on its ports in time.
    """


def sipConfig(dataDir, sipPort, tlsPort, domains="example.test", extra=""):
    """
    The INI text of a SIP-only appliance on loopback (ARCHITECTURE.md,
    configuration contract).
    """
    return (
        "[appliance]\n"
        "data_dir = {dataDir}\n"
        "services = sip\n"
        "log_level = debug\n"
        "\n"
        "[sip]\n"
        "domains = {domains}\n"
        "listen = udp:{p}:interface=127.0.0.1 tcp:{p}:interface=127.0.0.1"
        " tls:{t}:interface=127.0.0.1\n"
        "{extra}"
    ).format(dataDir=dataDir, domains=domains, p=sipPort, t=tlsPort, extra=extra)


class ApplianceProcess:
    """
    One appliance child process.

    @ivar directory: a private temporary directory: the config file, the log
        and (unless C{configText} says otherwise) the data directory live here;
        it is also the child's working directory unless C{cwd} is given.
    @ivar dataDir: C{<directory>/var}.
    @ivar sipPort: the UDP and TCP SIP port (one number).
    @ivar tlsPort: the SIP-over-TLS port.
    @ivar logPath: the file receiving the child's stdout and stderr.
    @ivar process: the L{subprocess.Popen}, or C{None} before L{start}.
    """

    def __init__(
        self, configText=None, arguments=None, cwd=None, ready=None, sipPort=None, tlsPort=None
    ):
        """
        @param configText: C{None} for the standard SIP test config
            (L{sipConfig}) on fresh ports, or a callable taking this object
            and returning INI text, or a string used verbatim, or C{False}
            to write no config file.
        @param arguments: the argv after the twistd prefix; default
            C{--reactor=asyncio -n appliance --config <file>}.  The string
            "{config}" in an argument is replaced by the config path.
        @param cwd: the child's working directory (default L{directory}).
        @param ready: C{(udpPorts, tcpPorts)} to probe for readiness; default
            the SIP port over UDP and TCP and the TLS port over TCP.
        @param sipPort: the SIP port the appliance will use, when the test
            chooses it (default: two free ports are picked).
        @param tlsPort: the TLS port, likewise.
        """
        self.directory = scratchDirectory("appliance-")
        self.dataDir = os.path.join(self.directory, "var")
        self.configPath = os.path.join(self.directory, "appliance.conf")
        self.logPath = os.path.join(self.directory, "appliance.log")
        self.cwd = cwd or self.directory
        self._configText = configText
        self._arguments = arguments
        self._ready = ready
        self.process = None
        self.sipPort = sipPort
        self.tlsPort = tlsPort
        self._portsChosen = sipPort is not None
        self.exitCode = None

    @property
    def certificatePath(self):
        """
        Where the appliance writes its generated certificate.
        """
        return os.path.join(self.dataDir, "tls", "cert.pem")

    def argv(self):
        """
        The full command line of the child.
        """
        arguments = self._arguments
        if arguments is None:
            arguments = ["--reactor=asyncio", "-n", "appliance", "--config", "{config}"]
        return twistdCommand() + [a.replace("{config}", self.configPath) for a in arguments]

    def _writeConfig(self):
        text = self._configText
        if text is False:
            return
        if text is None:
            text = sipConfig(self.dataDir, self.sipPort, self.tlsPort)
        elif callable(text):
            text = text(self)
        with open(self.configPath, "w") as f:
            f.write(text)

    def launch(self):
        """
        Start the child without waiting for it to be ready.
        """
        if self.sipPort is None:
            self.sipPort, self.tlsPort = pickPorts(2)
        self._writeConfig()
        self._logFile = open(self.logPath, "ab")
        self.process = subprocess.Popen(
            self.argv(),
            cwd=self.cwd,
            env=childEnvironment(),
            stdin=subprocess.DEVNULL,
            stdout=self._logFile,
            stderr=subprocess.STDOUT,
            preexec_fn=_dieWithParent if sys.platform.startswith("linux") else None,
        )

    def start(self, timeout=STARTUP_TIMEOUT, attempts=3):
        """
        Start the child and wait until it answers; if it exits because a port
        was taken meanwhile, try again on new ports.

        @raise ApplianceNotReady: with the log, if it exits or does not answer
            within C{timeout} seconds.
        """
        for attempt in range(attempts):
            self.launch()
            try:
                self.waitUntilReady(timeout)
                return self
            except ApplianceNotReady:
                portClash = (
                    self.process.poll() is not None
                    and "in use" in self.logText().lower()
                    and not self._portsChosen
                    and attempt + 1 < attempts
                )
                if not portClash:
                    self.stop()
                    raise
                self.stop()
                self.sipPort = self.tlsPort = None
        raise AssertionError("unreachable")

    def _probes(self):
        if self._ready is not None:
            return self._ready
        return [self.sipPort], [self.sipPort, self.tlsPort]

    def waitUntilReady(self, timeout=STARTUP_TIMEOUT):
        """
        Poll until every TCP port accepts a connection and every UDP port
        answers an OPTIONS with any response.

        @raise ApplianceNotReady: with the log, if the child exits or
            C{timeout} seconds pass first.
        """
        udpPorts, tcpPorts = self._probes()
        deadline = time.monotonic() + timeout
        pendingTCP = list(tcpPorts)
        pendingUDP = list(udpPorts)
        client = UDPClient()
        try:
            while pendingTCP or pendingUDP:
                if self.process.poll() is not None:
                    raise ApplianceNotReady(
                        "appliance exited with status %s before it was ready\n%s"
                        % (self.process.returncode, self.describe())
                    )
                if time.monotonic() > deadline:
                    raise ApplianceNotReady(
                        "appliance not ready after %ss (waiting for TCP %s, UDP %s)"
                        "\n%s" % (timeout, pendingTCP, pendingUDP, self.describe())
                    )
                for port in list(pendingTCP):
                    try:
                        socket.create_connection((LOOPBACK, port), timeout=0.5).close()
                    except OSError:
                        continue
                    pendingTCP.remove(port)
                for port in list(pendingUDP):
                    client.send(optionsRequest("UDP", client.port, port), port)
                    if client.receive(0.2) is not None:
                        pendingUDP.remove(port)
                if pendingTCP or pendingUDP:
                    time.sleep(0.1)
            # Drop late answers to earlier probes.
            client.receiveAll(0.05)
        finally:
            client.close()

    def stop(self, timeout=STOP_TIMEOUT):
        """
        SIGTERM the child (by PID), wait up to C{timeout} seconds, then
        SIGKILL it.

        @return: its exit status (negative for a signal, as in L{Popen}).
        """
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
                with open(self.logPath, "ab") as f:
                    f.write(b"\n[harness: killed after %ds without exiting]\n" % timeout)
        self.exitCode = self.process.returncode
        if not self._logFile.closed:
            self._logFile.close()
        return self.exitCode

    def wait(self, timeout=STARTUP_TIMEOUT):
        """
        Wait for the child to exit on its own (killing it after C{timeout}).

        @return: its exit status, or C{None} if it had to be killed.
        """
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return None
        return self.stop()

    def logText(self, since=0):
        """
        The child's output so far, from byte offset C{since}.
        """
        try:
            with open(self.logPath, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def logSize(self):
        try:
            return os.path.getsize(self.logPath)
        except OSError:
            return 0

    def describe(self, since=0, limit=20000):
        """
        A report for a failure message: command, ports and (the tail of)
        the log from byte offset C{since}.
        """
        log = self.logText(since)
        if len(log) > limit:
            log = "[... %d characters cut ...]\n" % (len(log) - limit,) + log[-limit:]
        return (
            "---- appliance: {argv}\n"
            "---- cwd {cwd}, SIP port {sip}, TLS port {tls}, pid {pid}\n"
            "---- log {path}:\n{log}\n---- end of appliance log"
        ).format(
            argv=" ".join(self.argv()),
            cwd=self.cwd,
            sip=self.sipPort,
            tls=self.tlsPort,
            pid=self.process.pid if self.process else None,
            path=self.logPath,
            log=log,
        )


# ----------------------------------------------------------------------------
# Test case support


class _LogAttachingResult:
    """
    A proxy for a trial result that appends appliance logs to the failures
    and errors it reports.
    """

    def __init__(self, result, describe):
        self._result = result
        self._describe = describe
        directlyProvides(self, providedBy(result))

    def __getattr__(self, name):
        return getattr(self._result, name)

    def _attach(self, failure):
        text = self._describe()
        if not text:
            return failure
        if isinstance(failure, tuple):
            failure = Failure(failure[1], failure[0], failure[2])
        value = failure.value
        if isinstance(value, ApplianceNotReady):
            return failure  # its message has the log already
        try:
            if value.args and isinstance(value.args[0], str):
                value.args = (value.args[0] + "\n" + text,) + tuple(value.args[1:])
            else:
                value.args = tuple(value.args) + (text,)
        except (AttributeError, TypeError):
            pass
        return failure

    def addFailure(self, test, failure):
        return self._result.addFailure(test, self._attach(failure))

    def addError(self, test, error):
        return self._result.addError(test, self._attach(error))


class ApplianceTestCase(SynchronousTestCase):
    """
    A test case whose failures carry the log of every appliance it used.
    """

    def run(self, result):
        self._logMarks = []
        return super().run(_LogAttachingResult(result, self._describeAppliances))

    def watchAppliance(self, appliance):
        """
        Attach C{appliance}'s log from now on to this test's failures.
        """
        self._logMarks.append((appliance, appliance.logSize()))

    def _describeAppliances(self):
        return "\n".join(
            appliance.describe(since) for appliance, since in self._logMarks
        )

    def startAppliance(self, **kwargs):
        """
        Start an L{ApplianceProcess} for this test only and stop it in
        cleanup.
        """
        appliance = ApplianceProcess(**kwargs)
        self.watchAppliance(appliance)
        self.addCleanup(appliance.stop)
        return appliance.start()

    def assertNoTracebacks(self, appliance, since=0):
        """
        Fail if the appliance logged a traceback or an unhandled error (a bug
        of ours by STYLE.md: malformed input is logged at debug/info).
        """
        log = appliance.logText(since)
        for marker in ("Traceback (most recent call last)", "Unhandled Error"):
            if marker in log:
                self.fail("appliance logged %r" % (marker,))

    def assertAlive(self, appliance):
        """
        Fail if the appliance process has exited.
        """
        if appliance.process.poll() is not None:
            self.fail("appliance exited with status %s" % (appliance.process.returncode,))


class SharedAppliance:
    """
    One appliance shared by the tests of a module, started on first use and
    stopped when the test process exits (trial has no class fixtures).
    """

    def __init__(self, **kwargs):
        self._kwargs = kwargs
        self._appliance = None
        self._error = None

    def get(self):
        """
        The running appliance; the start-up error again on later calls if
        it failed to start.
        """
        if self._error is not None:
            raise ApplianceNotReady(self._error)
        if self._appliance is None:
            import atexit

            appliance = ApplianceProcess(**self._kwargs)
            atexit.register(appliance.stop)
            try:
                appliance.start()
            except ApplianceNotReady as e:
                self._error = str(e)
                raise
            self._appliance = appliance
        elif self._appliance.process.poll() is not None:
            raise ApplianceNotReady(
                "the shared appliance has exited (status %s)\n%s"
                % (self._appliance.process.returncode, self._appliance.describe())
            )
        return self._appliance

"""
Helpers for the registrar, proxy and softphone integration tests: SIPp
processes (UAC in the foreground, UAS in the background, each bounded in time
and stopped by PID, with -cp / -mp away from the defaults 8888 and 6000),
users and call rules through C{appliancectl}, and a small digest client of our
own that registers a contact from a given local port.

Why the digest client: a SIPp UAS scenario starts with the incoming INVITE,
so it cannot first REGISTER (that would be a call of its own, with another
Call-ID).  The tests register the UAS's contact from the UAS's port with this
client, free the port and start SIPp on it, so the flow the registrar records
is the UAS's address.  The client computes RFC 7616 digests with hashlib,
independently of the appliance's code, and is the tests' SHA-256 client:
Debian's SIPp 3.6.1 answers only the first challenge of a 401 / 407 and knows
only MD5 ("createAuthHeader: authentication must use MD5 or AKAv1-MD5" on a
SHA-256-first challenge), hence C{digest_algorithms = MD5 SHA-256} in the
configuration of the appliances SIPp authenticates with.
"""

import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import time
import uuid

from tests.integration.harness import (
    LOOPBACK,
    SCENARIOS,
    UDPClient,
    childEnvironment,
    headerValues,
    newBranch,
    pickPorts,
    portIsFree,
    statusOf,
)

#: Every SIPp run is killed after this many seconds at the latest.
SIPP_TIMEOUT = 20

PASSWORD = "s3cret-Pa55"

_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def scenario(name):
    """
    The path of a committed SIPp scenario.
    """
    return os.path.join(SCENARIOS, name)


# ----------------------------------------------------------------------------
# appliancectl


def appliancectl(appliance, *arguments, stdin=None):
    """
    Run C{appliancectl --config <the appliance's config> ARGUMENTS} with the
    repository's package; return C{(exit status, output)}.
    """
    argv = [
        sys.executable, "-c",
        "import sys; from appliance.cli import main; sys.exit(main())",
        "--config", appliance.configPath,
    ] + list(arguments)
    completed = subprocess.run(
        argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=childEnvironment(), timeout=30, text=True,
    )
    return completed.returncode, completed.stdout


def addUser(appliance, aor, password=PASSWORD):
    """
    Add a user with C{appliancectl user add}; fail loudly if it does not work.
    """
    status, output = appliancectl(appliance, "user", "add", aor, "--password", password)
    if status != 0:
        raise AssertionError("appliancectl user add %s: %s %s" % (aor, status, output))


def setCallRule(appliance, aor, rule, target=""):
    """
    Set a call rule with C{appliancectl rule set AOR RULE [URI]}.
    """
    arguments = ["rule", "set", aor, rule] + ([target] if target else [])
    status, output = appliancectl(appliance, *arguments)
    if status != 0:
        raise AssertionError("appliancectl %s: %s %s" % (" ".join(arguments), status, output))


# ----------------------------------------------------------------------------
# Digest client


def _challenges(response, header):
    """
    The challenges of one header name as C{{algorithm: {param: value}}}.
    """
    found = {}
    for value in headerValues(response, header):
        scheme, _, rest = value.partition(" ")
        if scheme.lower() != "digest":
            continue
        params = dict(
            (name.lower(), quoted if quoted else plain)
            for name, quoted, plain in re.findall(
                r'([A-Za-z0-9-]+)\s*=\s*(?:"([^"]*)"|([^\s,]+))', rest
            )
        )
        found[params.get("algorithm", "MD5").upper()] = params
    return found


def digestCredentials(challenge, method, uri, username, password, algorithm, nc=1):
    """
    An Authorization value answering C{challenge} with qop=auth, computed
    here from RFC 7616 section 3.4.1 independently of the appliance's code.
    """
    h = _HASHES[algorithm]
    realm, nonce = challenge["realm"], challenge["nonce"]
    cnonce = uuid.uuid4().hex[:16]
    ncText = "%08x" % (nc,)
    ha1 = h(("%s:%s:%s" % (username, realm, password)).encode()).hexdigest()
    ha2 = h(("%s:%s" % (method, uri)).encode()).hexdigest()
    response = h(
        ("%s:%s:%s:%s:auth:%s" % (ha1, nonce, ncText, cnonce, ha2)).encode()
    ).hexdigest()
    return (
        'Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", '
        'algorithm=%s, qop=auth, nc=%s, cnonce="%s"'
        % (username, realm, nonce, uri, response, algorithm, ncText, cnonce)
    )


class Registration:
    """
    A REGISTER dialog (one Call-ID, increasing CSeq) from one local UDP port,
    answering 401 challenges with the algorithm asked for.

    @ivar port: the local port (the flow the registrar records).
    """

    def __init__(self, sipPort, aor, password=PASSWORD, localPort=0, algorithm="SHA-256"):
        self.sipPort = sipPort
        self.aor = aor
        self.user, _, self.domain = aor.partition("@")
        self.password = password
        self.algorithm = algorithm
        self._client = UDPClient(localPort)
        self.port = self._client.port
        self.callId = uuid.uuid4().hex + "@" + LOOPBACK
        self.cseq = 0
        self.tag = uuid.uuid4().hex[:8]
        self.challenges = []

    @property
    def contact(self):
        return "sip:%s@%s:%d" % (self.user, LOOPBACK, self.port)

    def _request(self, contact, expires, authorization):
        self.cseq += 1
        lines = [
            "REGISTER sip:%s SIP/2.0" % (self.domain,),
            "Via: SIP/2.0/UDP %s:%d;rport;branch=%s" % (LOOPBACK, self.port, newBranch()),
            "Max-Forwards: 70",
            "From: <sip:%s>;tag=%s" % (self.aor, self.tag),
            "To: <sip:%s>" % (self.aor,),
            "Call-ID: " + self.callId,
            "CSeq: %d REGISTER" % (self.cseq,),
        ]
        if contact is not None:
            lines.append("Contact: " + contact)
        if expires is not None:
            lines.append("Expires: %d" % (expires,))
        if authorization:
            lines.append("Authorization: " + authorization)
        lines.append("Content-Length: 0")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def send(self, contact="", expires=600):
        """
        REGISTER C{contact} (default: this port's contact; C{"*"} allowed;
        C{None}: no Contact, a query) with C{Expires: expires} (C{None}: no
        header); answer a 401 once.

        @return: the final response bytes (C{None} if none came).
        """
        if contact == "":
            contact = "<%s>" % (self.contact,)
        response = self._client.exchange(self._request(contact, expires, None), self.sipPort)
        if response is None or statusOf(response)[0] != 401:
            return response
        offered = _challenges(response, "WWW-Authenticate")
        self.challenges.append(response)
        if self.algorithm not in offered:
            raise AssertionError("%s not offered: %r" % (self.algorithm, response))
        credentials = digestCredentials(
            offered[self.algorithm], "REGISTER", "sip:" + self.domain,
            self.user, self.password, self.algorithm,
        )
        return self._client.exchange(
            self._request(contact, expires, credentials), self.sipPort
        )

    def close(self):
        self._client.close()


def register(sipPort, aor, localPort, password=PASSWORD, expires=600, algorithm="SHA-256"):
    """
    Register C{sip:user@127.0.0.1:localPort} for C{aor} from C{localPort},
    then free the port (for a SIPp UAS to bind it).

    @raise AssertionError: unless the registrar answers 200.
    """
    registration = Registration(sipPort, aor, password, localPort, algorithm)
    try:
        response = registration.send(expires=expires)
    finally:
        registration.close()
    if response is None or statusOf(response)[0] != 200:
        raise AssertionError("REGISTER %s from port %d: %r" % (aor, localPort, response))
    return response


def contactsOf(response):
    """
    The Contact values of a response, split at commas outside <>.
    """
    contacts = []
    for value in headerValues(response, "Contact", "m"):
        contacts.extend(part.strip() for part in re.findall(r"(?:<[^>]*>|[^,])+", value))
    return [c for c in contacts if c]


# ----------------------------------------------------------------------------
# SIPp


def freeHighPort(step=1):
    """
    A free loopback port in 20000-39999 (with the C{step - 1} ports above it
    free too), for SIPp's control (-cp) and media (-mp) sockets, which would
    otherwise default to 8888 and 6000, inside the harness's SIP port range.
    """
    for _ in range(500):
        port = random.randrange(20000, 39999 - step)
        if all(portIsFree(port + i) for i in range(step)):
            return port
    raise RuntimeError("no free high port")


class SippResult:
    """
    The outcome of one SIPp run.

    @ivar status: exit status (C{None} if it was killed at its time limit).
    @ivar output: its screen output.
    @ivar errors: its -trace_err file.
    @ivar messages: its -trace_msg file.
    """

    def __init__(self, name, status, output, errors, messages):
        self.name = name
        self.status = status
        self.output = output
        self.errors = errors
        self.messages = messages

    def _counter(self, label):
        found = re.findall(r"%s\s*\|\s*\d+\s*\|\s*(\d+)" % (label,), self.output)
        return int(found[-1]) if found else None

    @property
    def successful(self):
        return self._counter("Successful call")

    @property
    def failed(self):
        return self._counter("Failed call")

    @property
    def succeeded(self):
        """
        Exit status 0 and every call successful.
        """
        return self.status == 0 and self.failed == 0 and bool(self.successful)

    def received(self):
        """
        The first lines (status or request line) of the messages SIPp
        received, in order.
        """
        return re.findall(
            r"message received \[\d+\] bytes :\n\n([^\n]*)\n", self.messages
        )

    def receivedMessages(self):
        """
        The whole messages SIPp received, in order.
        """
        return [
            m.strip("\n") for m in re.findall(
                r"message received \[\d+\] bytes :\n\n(.*?)(?=\n-{20,}|\Z)", self.messages, re.S
            )
        ]

    def describe(self):
        return (
            "---- sipp {name}: exit status {status}\n{output}\n---- errors:\n{errors}\n"
            "---- messages:\n{messages}\n---- end of sipp {name}"
        ).format(
            name=self.name, status=self.status, output=self.output[-2500:],
            errors=self.errors[-4000:], messages=self.messages[-8000:],
        )


class Sipp:
    """
    One SIPp process on 127.0.0.1 with its logs in C{directory}: a UAS in the
    background (C{remotePort=None}) or a UAC towards the appliance.
    """

    def __init__(self, name, scenarioName, directory, localPort=None, remotePort=None,
                 service=None, calls=1, timeout=15, arguments=()):
        if shutil.which("sipp") is None:
            raise AssertionError("sipp is not installed (Debian package sip-tester)")
        self.name = name
        self.directory = directory
        self.localPort = localPort
        self.errorFile = os.path.join(directory, name + "-errors.log")
        self.messageFile = os.path.join(directory, name + "-messages.log")
        self.outputFile = os.path.join(directory, name + "-output.log")
        self.timeout = timeout
        argv = ["sipp", "-sf", scenario(scenarioName), "-i", LOOPBACK, "-t", "u1"]
        if localPort is not None:
            argv += ["-p", str(localPort)]
        if service is not None:
            argv += ["-s", service]
        argv += [
            "-m", str(calls),
            "-cp", str(freeHighPort()), "-mp", str(freeHighPort(4)),
            "-timeout", "%ds" % (timeout,), "-timeout_error",
            "-recv_timeout", "%d" % (timeout * 1000,),
            "-trace_err", "-error_file", self.errorFile,
            "-trace_msg", "-message_file", self.messageFile,
            "-nostdin",
        ] + list(arguments)
        if remotePort is not None:
            argv.append("%s:%d" % (LOOPBACK, remotePort))
        self.argv = argv
        self.process = None

    def start(self):
        self._output = open(self.outputFile, "wb")
        self.process = subprocess.Popen(
            self.argv, cwd=self.directory, stdin=subprocess.DEVNULL,
            stdout=self._output, stderr=subprocess.STDOUT,
        )
        return self

    def waitUntilListening(self, timeout=5.0):
        """
        Wait until the UAS has bound its UDP port (so a request sent now is
        not lost).
        """
        deadline = time.monotonic() + timeout
        while portIsFree(self.localPort, tcp=False):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("sipp %s did not start:\n%s" % (self.name, self.result().describe()))
            time.sleep(0.05)
        return self

    def wait(self, timeout=None):
        """
        Wait for SIPp to exit (killing it after its own timeout plus a
        margin); return its L{SippResult}.
        """
        try:
            self.process.wait(self.timeout + 5 if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            self.stop()
        return self.result()

    def stop(self):
        """
        Stop SIPp by its PID (SIGTERM, then SIGKILL).
        """
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(3)

    def result(self):
        if not self._output.closed and self.process.poll() is not None:
            self._output.close()

        def read(path):
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    return f.read()
            except OSError:
                return ""

        status = self.process.poll()
        return SippResult(
            self.name, status, read(self.outputFile), read(self.errorFile), read(self.messageFile)
        )


def runSipp(name, scenarioName, directory, remotePort, service=None, timeout=15, arguments=(),
            localPort=None):
    """
    Run a SIPp UAC to the appliance to its end; return its L{SippResult}.
    """
    if localPort is None:
        # Not SIPp's default 5060, which may belong to someone else.
        localPort = pickPorts(1)[0]
    process = Sipp(
        name, scenarioName, directory, localPort=localPort, remotePort=remotePort,
        service=service, timeout=timeout, arguments=arguments,
    ).start()
    try:
        return process.wait()
    finally:
        process.stop()


__all__ = [
    "PASSWORD", "Registration", "Sipp", "SippResult", "addUser", "appliancectl", "contactsOf",
    "digestCredentials", "register", "runSipp", "scenario", "setCallRule",
]

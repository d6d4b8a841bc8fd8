"""
The appliance's SIP service against real third-party peers (sipsak, SIPp) and
raw sockets, over UDP, TCP and TLS on 127.0.0.1.

One appliance serves the whole module (started on first use); every test also
checks that it logged no traceback meanwhile.

Peer quirks the tests work around (see the helpers below):
  - sipsak 0.9.8.1 writes a five-digit port truncated into its Request-URI and
    To, so the harness uses four-digit ports;
  - sipsak's GnuTLS code fails to read the answer on a TLS 1.3 connection
    ("nothing received, select returned error", with any TLS 1.3 server), so
    its TLS test caps the client at TLS 1.2 with a GnuTLS priority override
    file (TLS 1.3 is covered by the Python client); and it does not enforce
    its --tls-ca-cert, so only the Python client checks the certificate;
  - Debian's sipp (sip-tester) is built without OpenSSL (no C{-t l1}), so
    SIPp's TLS test runs SIPp over TCP into socat, an OpenSSL TLS client that
    verifies the appliance's certificate and carries the stream over TLS.
"""

import os
import re
import shutil
import socket
import subprocess
import time

from tests.integration.harness import (
    LOOPBACK,
    SCENARIOS,
    ApplianceTestCase,
    SharedAppliance,
    StreamClient,
    UDPClient,
    clientTLSContext,
    headerValues,
    newBranch,
    optionsRequest,
    parseResponse,
    pickPorts,
    runProgram,
    scratchDirectory,
    statusOf,
)

_appliance = SharedAppliance()

OPTIONS_SCENARIO = os.path.join(SCENARIOS, "options.xml")

_SIPSAK_TIMEOUT = 15
_SIPP_TIMEOUT = 20


def _requestWith(port, transport, lines, body=b""):
    """
    A request made of C{lines} (str, without CRLF) and C{body}, with a top
    Via for 127.0.0.1:C{port} (so that an answer can be routed) prepended to
    the header lines.
    """
    via = "Via: SIP/2.0/%s %s:%d;rport;branch=%s" % (transport, LOOPBACK, port, newBranch())
    text = "\r\n".join([lines[0], via] + list(lines[1:])) + "\r\n\r\n"
    return text.encode("utf-8") + body


def _malformedRequests(port, transport):
    """
    Requests that are broken in one way each, with a usable top Via:
    name -> bytes.  All carry a correct Content-Length so that they frame on
    a stream too.
    """
    common = [
        "Max-Forwards: 70",
        "From: <sip:tester@example.test>;tag=1928301774",
        "To: <sip:ping@example.test>",
    ]
    requests = {
        "missing CSeq": ["OPTIONS sip:ping@example.test SIP/2.0"] + common + [
            "Call-ID: nocseq@127.0.0.1", "Content-Length: 0"],
        "CSeq not a number": ["OPTIONS sip:ping@example.test SIP/2.0"] + common + [
            "Call-ID: badcseq@127.0.0.1", "CSeq: one OPTIONS", "Content-Length: 0"],
        "CSeq method differs from the request's": [
            "OPTIONS sip:ping@example.test SIP/2.0"] + common + [
            "Call-ID: mismatch@127.0.0.1", "CSeq: 1 INVITE", "Content-Length: 0"],
        "missing Call-ID": ["OPTIONS sip:ping@example.test SIP/2.0"] + common + [
            "CSeq: 1 OPTIONS", "Content-Length: 0"],
        "missing From": ["OPTIONS sip:ping@example.test SIP/2.0", "Max-Forwards: 70",
                         "To: <sip:ping@example.test>", "Call-ID: nofrom@127.0.0.1",
                         "CSeq: 1 OPTIONS", "Content-Length: 0"],
        "header line without a colon": ["OPTIONS sip:ping@example.test SIP/2.0"] + common + [
            "Call-ID: nocolon@127.0.0.1", "CSeq: 1 OPTIONS", "This line has no colon",
            "Content-Length: 0"],
        "Max-Forwards not a number": ["OPTIONS sip:ping@example.test SIP/2.0",
                                      "Max-Forwards: many"] + common[1:] + [
            "Call-ID: badmf@127.0.0.1", "CSeq: 1 OPTIONS", "Content-Length: 0"],
        "Request-URI without a host": ["OPTIONS sip: SIP/2.0"] + common + [
            "Call-ID: nohost@127.0.0.1", "CSeq: 1 OPTIONS", "Content-Length: 0"],
        "Content-Length not a number": ["OPTIONS sip:ping@example.test SIP/2.0"] + common + [
            "Call-ID: badcl@127.0.0.1", "CSeq: 1 OPTIONS", "Content-Length: 0x10"],
    }
    return {
        name: _requestWith(port, transport, lines) for name, lines in requests.items()
    }


class PeerTests(ApplianceTestCase):
    """
    Real peers and raw sockets against one shared appliance.
    """

    def setUp(self):
        self.appliance = _appliance.get()
        self.watchAppliance(self.appliance)
        self._logStart = self.appliance.logSize()
        self.workDirectory = scratchDirectory("peer-")

    def tearDown(self):
        self.assertAlive(self.appliance)
        self.assertNoTracebacks(self.appliance, self._logStart)

    # ------------------------------------------------------------- helpers

    def udpOptions(self):
        """
        Send an OPTIONS over UDP and return the final response bytes.
        """
        client = UDPClient()
        try:
            return client.exchange(
                optionsRequest("UDP", client.port, self.appliance.sipPort),
                self.appliance.sipPort,
            )
        finally:
            client.close()

    def assertOptionsAnsweredOverUDP(self):
        """
        A fresh OPTIONS over UDP gets 200.
        """
        response = self.udpOptions()
        self.assertIsNotNone(response, "no answer to OPTIONS over UDP")
        self.assertEqual(statusOf(response)[0], 200, response)

    def assertOptionsAnsweredOverTCP(self):
        """
        A fresh TCP connection carries an OPTIONS and gets 200.
        """
        client = StreamClient(self.appliance.sipPort)
        try:
            response = client.exchange(
                optionsRequest("TCP", client.port, self.appliance.sipPort)
            )
        finally:
            client.close()
        self.assertIsNotNone(response, "no answer to OPTIONS over TCP")
        self.assertEqual(statusOf(response)[0], 200, response)

    def runSipsak(self, *arguments, env=None):
        """
        Run sipsak with C{arguments}; return C{(exit status, output)}.
        """
        if shutil.which("sipsak") is None:
            self.fail("sipsak is not installed (Debian package sipsak)")
        return runProgram(
            ["sipsak"] + list(arguments), timeout=_SIPSAK_TIMEOUT,
            cwd=self.workDirectory, env=env,
        )

    def assertSipsakGot200(self, status, output):
        """
        sipsak exited 0 (a 2xx final response, its "shoot" mode) and printed
        the 200.
        """
        self.assertEqual(status, 0, "sipsak exited with %s:\n%s" % (status, output))
        self.assertIn("SIP/2.0 200", output, output)

    def runSipp(self, transport, calls=3, port=None, sendTo=None):
        """
        Run the OPTIONS scenario with SIPp over C{transport} (C{u1}, C{t1})
        for C{calls} calls, addressed to the appliance's SIP port or C{port}
        and sent there or to the port C{sendTo}; return C{(exit status,
        output, errors)}.
        """
        if shutil.which("sipp") is None:
            self.fail("sipp is not installed (Debian package sip-tester)")
        errorFile = os.path.join(self.workDirectory, "sipp-errors.log")
        status, output = runProgram(
            [
                "sipp", "-sf", OPTIONS_SCENARIO,
                "-s", "ping",
                "%s:%d" % (LOOPBACK, port or self.appliance.sipPort),
                "-t", transport,
                "-i", LOOPBACK,
                "-m", str(calls),
                "-r", "10",
                "-timeout", "10s", "-timeout_error",
                "-recv_timeout", "5000",
                "-trace_err", "-error_file", errorFile,
                "-nostdin",
            ] + (["-rsa", "%s:%d" % (LOOPBACK, sendTo)] if sendTo else []),
            timeout=_SIPP_TIMEOUT,
            cwd=self.workDirectory,
        )
        errors = ""
        if os.path.exists(errorFile):
            with open(errorFile, encoding="utf-8", errors="replace") as f:
                errors = f.read()
        return status, output, errors

    def assertSippSucceeded(self, result, calls=3):
        """
        SIPp exited 0 with every call successful.
        """
        status, output, errors = result
        summary = "sipp exited with %s\n%s\nerrors:\n%s" % (status, output[-3000:], errors)
        self.assertEqual(status, 0, summary)
        successful = re.findall(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", output)
        failed = re.findall(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", output)
        self.assertEqual(successful[-1:], [str(calls)], summary)
        self.assertEqual(failed[-1:], ["0"], summary)

    # ------------------------------------------------------------- sipsak

    def test_sipsakOptionsOverUDP(self):
        """
        sipsak's OPTIONS ping over UDP gets 200 OK.
        """
        self.assertSipsakGot200(*self.runSipsak(
            "-s", "sip:ping@%s:%d" % (LOOPBACK, self.appliance.sipPort), "-vv"))

    def test_sipsakOptionsOverTCP(self):
        """
        sipsak's OPTIONS ping over TCP gets 200 OK.
        """
        self.assertSipsakGot200(*self.runSipsak(
            "-s", "sip:ping@%s:%d" % (LOOPBACK, self.appliance.sipPort), "-E", "tcp", "-vv"))

    def test_sipsakOptionsOverTLS(self):
        """
        sipsak's OPTIONS ping over TLS gets 200 OK (sipsak 0.9.8.1 does not
        enforce --tls-ca-cert; test_optionsOverTLSWithPython checks the
        certificate).
        """
        priorities = os.path.join(self.workDirectory, "gnutls-priorities")
        with open(priorities, "w") as f:
            f.write("[overrides]\ndisabled-version = tls1.3\n")
        env = dict(os.environ, GNUTLS_SYSTEM_PRIORITY_FILE=priorities)
        self.assertSipsakGot200(*self.runSipsak(
            "-s", "sip:ping@%s:%d" % (LOOPBACK, self.appliance.tlsPort),
            "-E", "tls", "--tls-ca-cert", self.appliance.certificatePath, "-vv",
            env=env))

    # ------------------------------------------------------------- SIPp

    def test_sippOptionsOverUDP(self):
        """
        SIPp's OPTIONS scenario over UDP gets 200 with Allow listing OPTIONS,
        three calls out of three.
        """
        self.assertSippSucceeded(self.runSipp("u1"))

    def test_sippOptionsOverTCP(self):
        """
        SIPp's OPTIONS scenario over one TCP connection gets 200 with Allow
        listing OPTIONS, three calls out of three.
        """
        self.assertSippSucceeded(self.runSipp("t1"))

    def test_sippOptionsOverTLS(self):
        """
        SIPp's OPTIONS scenario reaches the TLS port through an OpenSSL TLS
        client (socat, verifying the appliance certificate for the domain)
        and gets 200 with Allow listing OPTIONS, three calls out of three.
        """
        # Debian's SIPp is built without OpenSSL, so its own -t l1 is not
        # available: SIPp speaks SIP over one TCP connection into socat,
        # which carries it over TLS to the appliance.
        tunnelPort = pickPorts(1)[0]
        tunnel = subprocess.Popen(
            [
                "socat",
                "TCP-LISTEN:%d,bind=%s,reuseaddr,fork" % (tunnelPort, LOOPBACK),
                "OPENSSL:%s:%d,cafile=%s,verify=1,commonname=example.test"
                % (LOOPBACK, self.appliance.tlsPort, self.appliance.certificatePath),
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self.addCleanup(_stopProcess, tunnel)
        _waitForTCP(tunnelPort)
        self.assertSippSucceeded(
            self.runSipp("t1", port=self.appliance.tlsPort, sendTo=tunnelPort)
        )
        self.assertEqual(self.appliance.logText().count("Traceback"), 0)

    def test_tlsTunnelRefusesWrongName(self):
        """
        The same OpenSSL client refuses the appliance certificate for a name
        it was not made for, so the TLS test above proves verification.
        """
        status, output = runProgram(
            [
                "socat", "-u", "OPEN:/dev/null",
                "OPENSSL:%s:%d,cafile=%s,verify=1,commonname=wrong.test"
                % (LOOPBACK, self.appliance.tlsPort, self.appliance.certificatePath),
            ],
            timeout=_SIPP_TIMEOUT,
        )
        self.assertNotEqual(status, 0, output)

    # ------------------------------------------------------------- raw sockets

    def test_optionsAnswerHeaders(self):
        """
        An OPTIONS over UDP gets 200 with Allow (listing OPTIONS), Accept and
        Supported, the request's Call-ID and CSeq, a To tag, and a top Via
        stamped with received and rport (RFC 3261 sections 11.2 and 8.2.6,
        RFC 3581 section 4).
        """
        client = UDPClient()
        try:
            request = optionsRequest(
                "UDP", client.port, self.appliance.sipPort, callId="hdrs@127.0.0.1"
            )
            data = client.exchange(request, self.appliance.sipPort)
        finally:
            client.close()
        self.assertIsNotNone(data, "no answer")
        response = parseResponse(data)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.reason, "OK")
        allow = ",".join(response.headers.getAll("Allow"))
        self.assertIn("OPTIONS", [m.strip() for m in allow.split(",")])
        self.assertIn("Accept", response.headers)
        self.assertIn("Supported", response.headers)
        self.assertEqual(response.callId, "hdrs@127.0.0.1")
        self.assertEqual(response.cseq(), (1, "OPTIONS"))
        self.assertTrue(response.toAddress().tag, "no To tag in a final response")
        via = response.vias()[0]
        self.assertEqual(via.port, client.port)
        self.assertEqual(via.rport, client.port)
        self.assertEqual(via.received, LOOPBACK)

    def test_responseRoutingOverUDP(self):
        """
        Over UDP the answer goes to the source address and the Via's sent-by
        port when the Via has no rport (RFC 3261 section 18.2.2, with
        received= for a sent-by host that is not the source), and to the
        source port when it has rport (RFC 3581 section 4).
        """
        sender, listener = UDPClient(), UDPClient()
        try:
            plain = optionsRequest("UDP", listener.port, self.appliance.sipPort, rport=False)
            sender.send(plain, self.appliance.sipPort)
            toSentBy = listener.receiveFinal()
            foreignHost = plain.replace(
                b"127.0.0.1:%d;" % (listener.port,), b"192.0.2.7:%d;" % (listener.port,), 1
            )
            sender.send(foreignHost, self.appliance.sipPort)
            toReceived = listener.receiveFinal()
            symmetric = optionsRequest("UDP", listener.port, self.appliance.sipPort, rport=True)
            sender.send(symmetric, self.appliance.sipPort)
            toSource = sender.receiveFinal()
            strays = sender.receiveAll(0.2) + listener.receiveAll(0.2)
        finally:
            sender.close()
            listener.close()
        self.assertIsNotNone(toSentBy, "no answer at the Via's sent-by port")
        self.assertIsNotNone(toReceived, "no answer at received:sent-by port")
        self.assertIn("received=127.0.0.1", headerValues(toReceived, "Via", "v")[0])
        self.assertIsNotNone(toSource, "no answer at the source port for rport")
        self.assertIn("rport=%d" % (sender.port,), headerValues(toSource, "Via", "v")[0])
        self.assertEqual(strays, [])

    def test_optionsRetransmissionGetsSameAnswer(self):
        """
        A retransmitted OPTIONS (same branch) is answered again with the same
        response, To tag included (RFC 3261 section 17.2.2).
        """
        client = UDPClient()
        try:
            request = optionsRequest("UDP", client.port, self.appliance.sipPort)
            first = client.exchange(request, self.appliance.sipPort)
            second = client.exchange(request, self.appliance.sipPort)
        finally:
            client.close()
        self.assertIsNotNone(first, "no answer")
        self.assertIsNotNone(second, "no answer to the retransmission")
        self.assertEqual(
            headerValues(first, "To", "t"), headerValues(second, "To", "t")
        )
        self.assertEqual(statusOf(second)[0], 200)

    def test_optionsOverTLSWithPython(self):
        """
        An OPTIONS over TLS (TLS 1.3 allowed) gets 200, and the server's
        certificate is the generated one, valid for 127.0.0.1.
        """
        self.assertTrue(os.path.exists(self.appliance.certificatePath))
        client = StreamClient(
            self.appliance.tlsPort, tlsContext=clientTLSContext(self.appliance.certificatePath)
        )
        try:
            response = client.exchange(
                optionsRequest("TLS", client.port, self.appliance.tlsPort)
            )
        finally:
            client.close()
        self.assertIsNotNone(response, "no answer over TLS")
        self.assertEqual(statusOf(response)[0], 200, response)
        self.assertIn("SIP/2.0/TLS", headerValues(response, "Via", "v")[0])

    def test_unknownMethodGets501(self):
        """
        A request with a method nobody defined gets 501 Not Implemented
        (RFC 3261 section 8.2.1).
        """
        client = UDPClient()
        try:
            request = optionsRequest("UDP", client.port, self.appliance.sipPort)
            request = request.replace(b"OPTIONS", b"FROBNICATE")
            response = client.exchange(request, self.appliance.sipPort)
        finally:
            client.close()
        self.assertIsNotNone(response, "no answer")
        self.assertEqual(statusOf(response)[0], 501, response)

    def test_garbageDatagramThenOptions(self):
        """
        A datagram of garbage gets no answer, and the next OPTIONS is still
        answered with 200.
        """
        client = UDPClient()
        try:
            client.send(b"\x00\xff\xfe garbage \x80\x81\r\nnot: sip\r\n\r\n", self.appliance.sipPort)
            client.send(b"GARBAGE", self.appliance.sipPort)
            self.assertEqual(client.receiveAll(0.5), [])
        finally:
            client.close()
        self.assertOptionsAnsweredOverUDP()

    def test_malformedRequestsOverUDP(self):
        """
        Malformed requests over UDP each get 400 with a reason phrase, and the
        server still answers OPTIONS afterwards.
        """
        problems = []
        client = UDPClient()
        try:
            for name, request in _malformedRequests(client.port, "UDP").items():
                response = client.exchange(request, self.appliance.sipPort)
                if response is None:
                    problems.append("%s: no answer" % (name,))
                    continue
                code, reason = statusOf(response)
                if code != 400 or not reason.strip():
                    problems.append("%s: got %d %r" % (name, code, reason))
        finally:
            client.close()
        self.assertEqual(problems, [])
        self.assertOptionsAnsweredOverUDP()

    def test_malformedRequestsOverTCP(self):
        """
        Malformed requests, each on its own TCP connection, get 400 with a
        reason phrase, and a new connection still gets OPTIONS answered.
        """
        problems = []
        for name in _malformedRequests(0, "TCP"):
            client = StreamClient(self.appliance.sipPort)
            try:
                response = client.exchange(_malformedRequests(client.port, "TCP")[name])
            finally:
                client.close()
            if response is None:
                problems.append("%s: no answer" % (name,))
                continue
            code, reason = statusOf(response)
            if code != 400 or not reason.strip():
                problems.append("%s: got %d %r" % (name, code, reason))
        self.assertEqual(problems, [])
        self.assertOptionsAnsweredOverTCP()

    def test_garbageOverTCPThenNewConnection(self):
        """
        Garbage on a TCP connection may close it, but a new connection still
        gets OPTIONS answered.
        """
        client = StreamClient(self.appliance.sipPort)
        try:
            client.send(b"\x16\x03\x01 this is not SIP\r\n\x00\xff\r\n\r\n")
            client.waitForClose(1.0)
        finally:
            client.close()
        self.assertOptionsAnsweredOverTCP()
        self.assertOptionsAnsweredOverUDP()

    def test_tcpConnectionCarriesSeveralRequests(self):
        """
        Two OPTIONS in one TCP segment, then a third, are all answered on the
        same connection, in order.
        """
        client = StreamClient(self.appliance.sipPort)
        try:
            requests = [
                optionsRequest("TCP", client.port, self.appliance.sipPort,
                               callId="pipeline-%d@127.0.0.1" % (i,))
                for i in range(3)
            ]
            client.send(requests[0] + requests[1])
            answers = [client.receiveFinal(), client.receiveFinal()]
            answers.append(client.exchange(requests[2]))
        finally:
            client.close()
        for i, answer in enumerate(answers):
            self.assertIsNotNone(answer, "no answer to request %d" % (i,))
            self.assertEqual(statusOf(answer)[0], 200, answer)
            self.assertEqual(headerValues(answer, "Call-ID", "i"), ["pipeline-%d@127.0.0.1" % (i,)])

    def test_tcpKeepAlivePingGetsPong(self):
        """
        A CRLFCRLF keep-alive ping on a TCP connection gets a CRLF pong (RFC
        5626 section 3.5.1) and the connection stays usable.
        """
        client = StreamClient(self.appliance.sipPort)
        try:
            client.send(b"\r\n\r\n")
            pong = client.receiveRaw(2.0)
            response = client.exchange(
                optionsRequest("TCP", client.port, self.appliance.sipPort)
            )
        finally:
            client.close()
        self.assertEqual(pong, b"\r\n")
        self.assertIsNotNone(response, "no answer after the keep-alive")
        self.assertEqual(statusOf(response)[0], 200, response)

    def test_largeRequestsAnswered(self):
        """
        An OPTIONS of 20000 bytes (well under the default max_message_size
        of 65535) is read whole and answered 200, over UDP and over TCP.
        """
        padding = "X-Padding: " + "p" * 20000
        udp = UDPClient()
        try:
            udpAnswer = udp.exchange(
                optionsRequest("UDP", udp.port, self.appliance.sipPort, extraHeaders=[padding]),
                self.appliance.sipPort,
            )
        finally:
            udp.close()
        tcp = StreamClient(self.appliance.sipPort)
        try:
            tcpAnswer = tcp.exchange(
                optionsRequest("TCP", tcp.port, self.appliance.sipPort, extraHeaders=[padding])
            )
        finally:
            tcp.close()
        self.assertEqual(
            [answer and statusOf(answer) for answer in (udpAnswer, tcpAnswer)],
            [(200, "OK"), (200, "OK")],
        )

    def test_oversizedRequestOverTCPGets413(self):
        """
        A request whose Content-Length exceeds max_message_size gets 413 on
        its TCP connection, which the server then closes.
        """
        client = StreamClient(self.appliance.sipPort)
        try:
            request = optionsRequest("TCP", client.port, self.appliance.sipPort).replace(
                b"Content-Length: 0\r\n", b"Content-Type: text/plain\r\nContent-Length: 70000\r\n"
            )
            client.send(request + b"x" * 70000)
            answer = client.receiveMessage()
            closed = client.waitForClose()
        finally:
            client.close()
        self.assertIsNotNone(answer, "no answer")
        self.assertEqual(statusOf(answer)[0], 413, answer)
        self.assertTrue(closed, "the connection stayed open after the 413")

    def test_strayResponseNotAnswered(self):
        """
        A response matching no transaction is dropped without an answer, over
        UDP and TCP.
        """
        response = (
            "SIP/2.0 200 OK\r\n"
            "Via: SIP/2.0/{t} 127.0.0.1:{p};branch={b}\r\n"
            "From: <sip:a@example.test>;tag=1\r\n"
            "To: <sip:b@example.test>;tag=2\r\n"
            "Call-ID: stray@127.0.0.1\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        udp = UDPClient()
        try:
            udp.send(response.format(t="UDP", p=udp.port, b=newBranch()).encode(),
                     self.appliance.sipPort)
            self.assertEqual(udp.receiveAll(0.5), [])
        finally:
            udp.close()
        tcp = StreamClient(self.appliance.sipPort)
        try:
            tcp.send(response.format(t="TCP", p=tcp.port, b=newBranch()).encode())
            self.assertIsNone(tcp.receiveMessage(0.5))
        finally:
            tcp.close()
        self.assertOptionsAnsweredOverUDP()


def _stopProcess(process):
    """
    Stop a helper program this test started, by its PID.
    """
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stderr is not None:
        process.stderr.close()


def _waitForTCP(port, timeout=5.0):
    """
    Wait until something accepts TCP connections on C{port} of 127.0.0.1.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((LOOPBACK, port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)

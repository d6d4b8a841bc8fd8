"""
The RFC 4475 SIP torture messages, sent over UDP to a running appliance.

Each message of C{tests/data/rfc4475} is sent as one datagram; the answer
must match what RFC 4475 says an element should do (C{index.tsv}): valid
requests get a final response other than 400, 416 or 505; invalid ones get
400 with a reason phrase (or the specific code the RFC names); responses are
never answered; the server keeps answering OPTIONS afterwards.

Where answers go: the appliance answers each request to its top Via (RFC 3261
section 18.2.2, RFC 3581).  The torture messages' Vias name hosts such as
192.0.2.15:5060, so to capture the answer the test changes the top Via of
most messages, per the table L{MESSAGES}:

  - C{PREPEND}: a new top Via C{SIP/2.0/UDP 127.0.0.1:<ours>;rport;branch=...}
    is added before the first header; the message's own Vias follow it
    unchanged, as they would after an upstream proxy forwarded it.  Used
    wherever the point of the message is not its top Via.
  - C{SENT_BY}: only the sent-by of the message's own top Via is replaced
    by C{127.0.0.1:<ours>}, keeping its (odd) parameters; used where the top
    Via's parameters are the point (C{badbranch}).
  - C{PREPEND_2543}: a new top Via without branch or rport, for the RFC 2543
    request whose point is the missing branch.

One appliance serves the whole module (started on first use).
"""

import os
import re
import uuid

from tests.integration.harness import (
    LOOPBACK,
    TEST_DATA,
    ApplianceTestCase,
    SharedAppliance,
    UDPClient,
    headerValues,
    optionsRequest,
    parseResponse,
    statusOf,
)

TORTURE_DIRECTORY = os.path.join(TEST_DATA, "rfc4475")

# How the top Via is adjusted (module docstring).
PREPEND = "prepend"
SENT_BY = "sent-by"
PREPEND_2543 = "prepend-2543"

# Expectations.
DROP = "dropped"  # no answer at all
_ALL_FINAL = frozenset(range(200, 700))
#: A valid request: any final response except the ones that say "your
#: message is broken".
VALID = _ALL_FINAL - {400, 416, 505}
#: The RFC allows rejecting (400) or accepting liberally.
LENIENT = VALID | {400}
BAD_REQUEST = frozenset({400})

#: name -> (Via handling, expected codes or DROP, RFC 4475 section, what the
#: test pins down: the docstring of the generated test).
MESSAGES = {
    "wsinv": (PREPEND, VALID, "3.1.1.1",
              "A tortuous but valid INVITE (folding, odd LWS and case, compact and unknown "
              "headers) is treated as well formed."),
    "intmeth": (PREPEND, VALID, "3.1.1.2",
                "An unknown method made of unusual token characters is answered (501 by an "
                "endpoint, 404 or forwarding by a proxy), not refused as malformed."),
    "esc01": (PREPEND, VALID, "3.1.1.3",
              "Valid %-escapes in the Request-URI, To, From and Contact are accepted."),
    "escnull": (PREPEND, VALID, "3.1.1.4",
                "A REGISTER with escaped NULs in user parts is accepted as well formed."),
    "esc02": (PREPEND, VALID, "3.1.1.5",
              "The method RE%47IST%45R is an unknown method, answered and not refused as "
              "malformed."),
    "lwsdisp": (PREPEND, VALID, "3.1.1.6",
                "A display name without LWS before '<' is accepted."),
    "longreq": (PREPEND, VALID, "3.1.1.7",
                "Very long header values and 34 Via values are accepted."),
    "dblreq": (PREPEND, VALID, "3.1.1.8",
               "A datagram holding a REGISTER followed by junk gets one answer, for the "
               "REGISTER, and the trailing octets are ignored."),
    "semiuri": (PREPEND, VALID, "3.1.1.9",
                "A Request-URI user part containing ';par=' is accepted."),
    "transports": (PREPEND, VALID, "3.1.1.10",
                   "Via values with UDP, SCTP, TLS and unknown transports are accepted."),
    "mpart01": (PREPEND, VALID, "3.1.1.11",
                "A MESSAGE whose multipart body holds NUL octets is framed by Content-Length "
                "and accepted."),
    "unreason": (PREPEND, DROP, "3.1.1.12",
                 "A stray 200 response with a UTF-8 reason phrase is never answered."),
    "noreason": (PREPEND, DROP, "3.1.1.13",
                 "A stray 100 response with an empty reason phrase is never answered."),
    "badinv01": (PREPEND, BAD_REQUEST, "3.1.2.1",
                 "An INVITE with empty Via values and ';;;;' in Contact gets 400."),
    "clerr": (PREPEND, BAD_REQUEST, "3.1.2.2",
              "A datagram shorter than its Content-Length gets 400."),
    "ncl": (PREPEND, BAD_REQUEST, "3.1.2.3",
            "A negative Content-Length gets 400."),
    "scalar02": (PREPEND, BAD_REQUEST, "3.1.2.4",
                 "A REGISTER whose CSeq exceeds 2**32-1 gets 400."),
    "scalarlg": (PREPEND, DROP, "3.1.2.5",
                 "A response with out-of-range scalars is discarded without an answer."),
    "quotbal": (PREPEND, LENIENT, "3.1.2.6",
                "An unterminated quoted display name gets 400 (or a liberal answer), never "
                "silence."),
    "ltgtruri": (PREPEND, LENIENT, "3.1.2.7",
                 "A Request-URI in angle brackets gets 400 (or a liberal answer), not 416."),
    "lwsruri": (PREPEND, LENIENT, "3.1.2.8",
                "LWS inside the Request-URI gets 400 (or a liberal answer)."),
    "lwsstart": (PREPEND, LENIENT, "3.1.2.9",
                 "Several spaces between Request-Line elements get 400 (or a liberal "
                 "answer)."),
    "trws": (PREPEND, LENIENT, "3.1.2.10",
             "A space after the SIP version gets 400 (or a liberal answer), not 505."),
    "escruri": (PREPEND, LENIENT, "3.1.2.11",
                "Escaped headers in a SIP Request-URI get 400 (or a liberal answer)."),
    "baddate": (PREPEND, LENIENT, "3.1.2.12",
                "A Date header in a non-GMT zone does not stop the request being answered."),
    "regbadct": (PREPEND, LENIENT, "3.1.2.13",
                 "A Contact addr-spec with an escaped header outside <> gets 400 (or a "
                 "liberal answer)."),
    "badaspec": (PREPEND, LENIENT, "3.1.2.14",
                 "Spaces inside an addr-spec get 400 (or a liberal answer)."),
    "baddn": (PREPEND, LENIENT, "3.1.2.15",
              "Unquoted display names with commas (and no blank line ending the headers) "
              "get 400 (or a liberal answer)."),
    "badvers": (PREPEND, frozenset({505}), "3.1.2.16",
                "A request with version SIP/7.0 gets 505 Version Not Supported."),
    "mismatch01": (PREPEND, BAD_REQUEST, "3.1.2.17",
                   "A Request-Line method that differs from the CSeq method gets 400."),
    "mismatch02": (PREPEND, frozenset({400, 501}), "3.1.2.18",
                   "An unknown method with a CSeq naming INVITE gets 501 (or 400)."),
    "bigcode": (PREPEND, DROP, "3.1.2.19",
                "A response with status 4294967301 is dropped without an answer."),
    "badbranch": (SENT_BY, LENIENT, "3.2.1",
                  "A top Via branch of just the magic cookie does not break the server: it "
                  "answers (400 or normally)."),
    "insuf": (PREPEND, BAD_REQUEST, "3.3.1",
              "An INVITE without Call-ID, From and To gets 400."),
    "unkscm": (PREPEND, frozenset({416}), "3.3.2",
               "A Request-URI with an unknown scheme gets 416 Unsupported URI Scheme."),
    "novelsc": (PREPEND, frozenset({416, 404}), "3.3.3",
                "A Request-URI with the soap.beep scheme gets 416 (or 404)."),
    "unksm2": (PREPEND, LENIENT, "3.3.4",
               "A REGISTER with non-SIP URIs in To, From and Contact is answered (a "
               "registrar answers 400)."),
    "bext01": (PREPEND, frozenset({420}), "3.3.5",
               "An OPTIONS requiring unknown extensions gets 420 Bad Extension."),
    "invut": (PREPEND, VALID, "3.3.6",
              "An INVITE with an unknown Content-Type is answered (415 by an endpoint), not "
              "refused as malformed."),
    "regaut01": (PREPEND, VALID, "3.3.7",
                 "A REGISTER with Authorization in an unknown scheme is answered, not "
                 "refused as malformed."),
    "multi01": (PREPEND, BAD_REQUEST, "3.3.8",
                "Several values in single-value headers (To, From, Call-ID, CSeq, "
                "Max-Forwards) get 400."),
    "mcl01": (PREPEND, BAD_REQUEST, "3.3.9",
              "Two conflicting Content-Length values get 400."),
    "bcast": (PREPEND, DROP, "3.3.10",
              "A stray 200 response with a broadcast Via is neither answered nor forwarded."),
    "zeromf": (PREPEND, frozenset({200, 483}), "3.3.11",
               "An OPTIONS with Max-Forwards 0 is answered 200 (endpoint) or 483 (proxy)."),
    "cparam01": (PREPEND, VALID, "3.3.12",
                 "A REGISTER whose Contact addr-spec carries ';unknownparam' is accepted."),
    "cparam02": (PREPEND, VALID, "3.3.13",
                 "A REGISTER whose Contact URI carries ';unknownparam' is accepted."),
    "regescrt": (PREPEND, VALID, "3.3.14",
                 "A REGISTER whose Contact URI holds an escaped Route header is accepted."),
    "sdp01": (PREPEND, VALID, "3.3.15",
              "An INVITE with an Accept nobody knows is answered, not refused as malformed."),
    "inv2543": (PREPEND_2543, VALID, "3.4.1",
                "An RFC 2543-style INVITE (no branch, no From tag, no Max-Forwards, no "
                "Content-Length) is accepted."),
}

_appliance = SharedAppliance()


def readIndex():
    """
    Parse C{index.tsv}: name -> (class, note, section).
    """
    index = {}
    with open(os.path.join(TORTURE_DIRECTORY, "index.tsv"), encoding="utf-8") as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            name, kind, note, section = line.rstrip("\n").split("\t")
            index[name] = (kind, note, section)
    return index


def readMessage(name):
    """
    The bytes of one torture message.
    """
    with open(os.path.join(TORTURE_DIRECTORY, name + ".dat"), "rb") as f:
        return f.read()


def adjustVia(data, mode, port, name):
    """
    Make the answer to C{data} come back to 127.0.0.1:C{port} (module
    docstring).

    @return: C{(message bytes, marker)}; C{marker} is a string the top Via of
        the answer must contain.
    """
    if mode == SENT_BY:
        match = re.search(
            rb"^((?:Via|v)[ \t]*:[ \t]*SIP[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*UDP[ \t]+)([^;,\r\n]+)",
            data, re.I | re.M,
        )
        if match is None:
            raise AssertionError("%s: no UDP top Via to rewrite" % (name,))
        sentBy = ("%s:%d" % (LOOPBACK, port)).encode("ascii")
        return data[: match.start(2)] + sentBy + data[match.end(2):], sentBy.decode()
    firstLineEnd = data.index(b"\r\n") + 2
    if mode == PREPEND_2543:
        via = "SIP/2.0/UDP %s:%d" % (LOOPBACK, port)
        marker = "%s:%d" % (LOOPBACK, port)
    else:
        branch = "z9hG4bK-torture-%s-%s" % (name, uuid.uuid4().hex[:8])
        via = "SIP/2.0/UDP %s:%d;rport;branch=%s" % (LOOPBACK, port, branch)
        marker = branch
    return data[:firstLineEnd] + b"Via: " + via.encode("ascii") + b"\r\n" + data[firstLineEnd:], marker


def ackFor(request, response, marker):
    """
    The ACK for a non-2xx final response to an INVITE (RFC 3261 section
    17.1.1.3), so the server stops retransmitting it; C{None} if the
    response lacks what an ACK needs.
    """
    requestURI = request.split(b"\r\n", 1)[0].split(b" ")[1]
    topVia = headerValues(response, "Via", "v")[0].split(",")[0]
    toValues = headerValues(response, "To", "t")
    fromValues = headerValues(response, "From", "f")
    callIds = headerValues(response, "Call-ID", "i")
    cseqs = headerValues(response, "CSeq")
    if not (toValues and fromValues and callIds and cseqs) or marker not in topVia:
        return None
    number = cseqs[0].split()[0]
    lines = [
        "ACK %s SIP/2.0" % (requestURI.decode("utf-8", "replace"),),
        "Via: " + re.sub(r";(received|rport)(=[^;]*)?", "", topVia) + (
            ";rport" if "rport" in topVia else ""
        ),
        "Max-Forwards: 70",
        "From: " + fromValues[0],
        "To: " + toValues[0],
        "Call-ID: " + callIds[0],
        "CSeq: %s ACK" % (number,),
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def _viaIdentity(via):
    """
    A Via value without whitespace, for comparing a request's Via with the
    answer's copy (which may be re-serialised).
    """
    return "".join(via.split()).lower()


def _codes(expected):
    if expected == VALID:
        return "any final response except 400, 416 and 505"
    if expected == LENIENT:
        return "400 or any final response except 416 and 505"
    return " or ".join(str(code) for code in sorted(expected))


class TortureTests(ApplianceTestCase):
    """
    Each RFC 4475 message over UDP; the test methods are generated from
    L{MESSAGES}.
    """

    def setUp(self):
        self.appliance = _appliance.get()
        self.watchAppliance(self.appliance)
        self._logStart = self.appliance.logSize()

    def tearDown(self):
        self.assertAlive(self.appliance)
        self.assertNoTracebacks(self.appliance, self._logStart)

    def assertStillAnswers(self):
        """
        The appliance still answers a well-formed OPTIONS over UDP with 200.
        """
        client = UDPClient()
        try:
            response = client.exchange(
                optionsRequest("UDP", client.port, self.appliance.sipPort),
                self.appliance.sipPort,
            )
        finally:
            client.close()
        self.assertIsNotNone(response, "no answer to an OPTIONS after the torture message")
        self.assertEqual(statusOf(response)[0], 200, response)

    def assertAnswerCopiesVias(self, request, response):
        """
        The answer to a well-formed request parses, and carries all of the
        request's Via values, in order (RFC 3261 section 8.2.6.2).
        """
        from appliance.sip.message import parseMessage

        requestVias = parseMessage(request).headers.getAll("Via")
        responseVias = parseResponse(response).headers.getAll("Via")
        self.assertEqual(len(responseVias), len(requestVias))
        self.assertEqual(
            [_viaIdentity(via) for via in responseVias[1:]],
            [_viaIdentity(via) for via in requestVias[1:]],
        )

    def checkMessage(self, name):
        """
        Send torture message C{name} and check the answer against
        L{MESSAGES}.
        """
        mode, expected, section, _ = MESSAGES[name]
        client = UDPClient()
        try:
            data, marker = adjustVia(readMessage(name), mode, client.port, name)
            client.send(data, self.appliance.sipPort)
            if expected is DROP:
                answers = client.receiveAll(0.7)
                self.assertEqual(
                    answers, [], "%s (RFC 4475 section %s) must not be answered" % (name, section)
                )
            else:
                response = client.receiveFinal(3.0)
                self.assertIsNotNone(
                    response,
                    "%s (RFC 4475 section %s): no answer; expected %s"
                    % (name, section, _codes(expected)),
                )
                code, reason = statusOf(response)
                self.assertIn(
                    code, expected,
                    "%s (RFC 4475 section %s): got %d %s; expected %s\n%s"
                    % (name, section, code, reason, _codes(expected),
                       response.decode("utf-8", "replace")),
                )
                if code == 400:
                    self.assertTrue(reason.strip(), "400 without a reason phrase")
                vias = headerValues(response, "Via", "v")
                self.assertTrue(vias, "answer without Via: %r" % (response,))
                self.assertIn(marker, vias[0].split(",")[0], "answer's top Via is not ours")
                if code in VALID:
                    self.assertAnswerCopiesVias(data, response)
                if re.search(rb"^CSeq:[ \t]*[0-9]+[ \t]+INVITE", response, re.M | re.I) and code >= 300:
                    ack = ackFor(data, response, marker)
                    if ack is not None:
                        client.send(ack, self.appliance.sipPort)
                if name == "dblreq":
                    self.assertNotIn(
                        b"INVITE", b"".join(
                            answer for answer in client.receiveAll(0.5)
                            if re.search(rb"^CSeq:[^\r\n]*INVITE", answer, re.M | re.I)
                        ),
                        "the junk INVITE after the REGISTER was answered",
                    )
        finally:
            client.close()
        self.assertStillAnswers()

    def test_tableCoversTheIndex(self):
        """
        Every message in C{tests/data/rfc4475/index.tsv} has a file and an
        entry in the table, and the table's sections match the index.
        """
        index = readIndex()
        self.assertEqual(sorted(index), sorted(MESSAGES))
        for name, (kind, note, section) in index.items():
            self.assertTrue(os.path.exists(os.path.join(TORTURE_DIRECTORY, name + ".dat")), name)
            self.assertEqual(MESSAGES[name][2], section, name)


def _makeTest(name):
    def test(self):
        self.checkMessage(name)

    mode, expected, section, doc = MESSAGES[name]
    test.__name__ = "test_" + name
    test.__doc__ = "RFC 4475 section %s (%s): %s" % (section, name, doc)
    return test


for _name in MESSAGES:
    setattr(TortureTests, "test_" + _name, _makeTest(_name))
del _name

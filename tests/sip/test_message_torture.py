"""
What a server does with a message: L{validateRequest} / L{validateResponse} on literals, the RFC 3261
section 24 example messages and the RFC 4475 torture messages.

Each message ends in one of three outcomes, decided by L{parseMessage} then L{validateRequest} /
L{validateResponse}:

  - C{ACCEPT}: well formed at this layer (higher layers may still answer 420, 415, 483, 501...);
  - C{(stage, status)}: a request answered with C{status}, because parsing (C{PARSE}) or validation
    (C{VALIDATE}) raised a ParseError that carries the request;
  - C{DROP}: a response rejected at either stage; it is never answered (the error has no message).
"""

from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from appliance.sip.message import (
    AbsoluteURI,
    Address,
    ParseError,
    Request,
    Response,
    StreamParser,
    URI,
    Via,
    makeResponse,
    parseMessage,
    validateRequest,
    validateResponse,
)
from tests.sip.test_message import INVITE, RINGING, replaceOnce

TORTURE = FilePath(__file__).parent().parent().child("data").child("rfc4475")
RFC3261 = FilePath(__file__).parent().parent().child("data").child("rfc3261")

ACCEPT = "accept"
DROP = "drop"
PARSE = "parse"
VALIDATE = "validate"

# What message.py does with each message, and why (RFC 4475 section in index.tsv).
EXPECTED = {
    # 3.1.1: valid messages, all accepted.
    "wsinv": ACCEPT, "intmeth": ACCEPT, "esc01": ACCEPT, "escnull": ACCEPT,
    "esc02": ACCEPT,            # RE%47IST%45R is an unknown method: 501 is the UA's business
    "lwsdisp": ACCEPT, "longreq": ACCEPT,
    "dblreq": ACCEPT,           # the REGISTER; the trailing INVITE octets are ignored
    "semiuri": ACCEPT, "transports": ACCEPT, "mpart01": ACCEPT,
    "unreason": ACCEPT, "noreason": ACCEPT,   # responses: accepted, never answered
    # 3.1.2: invalid messages.
    "badinv01": (VALIDATE, 400),   # empty Via / Contact parameters
    "clerr": (PARSE, 400),         # Content-Length beyond the datagram
    "ncl": (PARSE, 400),           # negative Content-Length
    "scalar02": (VALIDATE, 400),   # CSeq > 2**32-1
    "scalarlg": DROP,              # response with CSeq > 2**32-1
    "quotbal": (VALIDATE, 400),    # unterminated quoted display name in To
    "ltgtruri": (PARSE, 400),      # Request-URI in <>
    "lwsruri": (PARSE, 400),       # LWS inside the Request-URI
    "lwsstart": (PARSE, 400),      # several SP in the Request-Line
    "trws": (PARSE, 400),          # trailing SP in the Request-Line
    "escruri": (VALIDATE, 400),    # headers in the Request-URI
    "baddate": ACCEPT,             # nobody here uses Date, so it is not rejected
    "regbadct": (VALIDATE, 400),   # addr-spec Contact with ?headers
    "badaspec": (VALIDATE, 400),   # spaces inside <...> in To
    "baddn": (PARSE, 400),         # header block not terminated (and unquoted display names with commas)
    "badvers": (VALIDATE, 505),    # SIP/7.0
    "mismatch01": (VALIDATE, 400),  # CSeq method differs from the Request-Line
    "mismatch02": (VALIDATE, 400),  # same, with an unknown method (RFC 4475 allows 400 instead of 501)
    "bigcode": DROP,               # status code 4294967301
    # 3.2 - 3.4: transaction layer, application layer and backward compatibility.
    "badbranch": ACCEPT,           # branch=z9hG4bK alone is syntactically fine
    "insuf": (VALIDATE, 400),      # no Call-ID, From, To
    "unkscm": (VALIDATE, 416),     # nobodyKnowsThisScheme: Request-URI
    "novelsc": (VALIDATE, 416),    # soap.beep: Request-URI
    "unksm2": ACCEPT,              # non-SIP To / From / Contact: a registrar answers 400, a proxy forwards
    "bext01": ACCEPT,              # 420 Bad Extension is the proxy's / UAS's business
    "invut": ACCEPT,               # 415 is the UAS's business
    "regaut01": ACCEPT,            # unknown Authorization scheme
    "multi01": (VALIDATE, 400),    # several Call-ID, CSeq, From, To, Max-Forwards
    "mcl01": (PARSE, 400),         # two Content-Length values
    "bcast": ACCEPT,               # response: a proxy must not forward to 255.255.255.255 (routing layer)
    "zeromf": ACCEPT,              # Max-Forwards 0: a proxy answers 483, an endpoint processes it
    "cparam01": ACCEPT, "cparam02": ACCEPT, "regescrt": ACCEPT, "sdp01": ACCEPT,
    "inv2543": ACCEPT,             # RFC 2543 syntax: no branch, no From tag, no Max-Forwards
}


def _index():
    """
    The rows of index.tsv: (name, "valid" or "invalid", note, RFC 4475 section).
    """
    rows = []
    for line in TORTURE.child("index.tsv").getContent().decode("utf-8").splitlines():
        if line and not line.startswith("#"):
            rows.append(tuple(line.split("\t")))
    return rows


def _load(name):
    return TORTURE.child(name + ".dat").getContent()


def _outcome(data):
    """
    What happens to C{data} received as a datagram: ACCEPT, DROP or (stage, status), plus the message
    (parsed or partial) and the error if any.
    """
    try:
        message = parseMessage(data)
    except ParseError as error:
        if error.message is None:
            return DROP, None, error
        return (PARSE, error.status), error.message, error
    try:
        if isinstance(message, Request):
            validateRequest(message)
        else:
            validateResponse(message)
    except ParseError as error:
        if error.message is None:
            return DROP, message, error
        return (VALIDATE, error.status), message, error
    return ACCEPT, message, None


class ValidateTests(SynchronousTestCase):
    """
    L{validateRequest} and L{validateResponse} (RFC 3261 sections 8.1.3, 8.2 and 16.3).
    """

    def assertRejected(self, data, status=400):
        """
        C{data} parses but validateRequest rejects it with C{status}, carrying the request.
        """
        request = parseMessage(data)
        error = self.assertRaises(ParseError, validateRequest, request)
        self.assertEqual(error.status, status)
        self.assertIs(error.message, request)
        return error

    def test_validRequestPasses(self):
        """
        A well-formed request passes, with sip, sips and tel Request-URIs alike.
        """
        validateRequest(parseMessage(INVITE))
        validateRequest(parseMessage(replaceOnce(INVITE, b"INVITE sip:", b"INVITE sips:")))
        validateRequest(parseMessage(replaceOnce(INVITE, b"sip:bob@biloxi.example.com SIP", b"tel:+1-201-555-0123 SIP")))

    def test_rfc2543RequestPasses(self):
        """
        No Max-Forwards, no branch and no From tag are accepted (RFC 3261 section 8.2 compatibility).
        """
        data = replaceOnce(replaceOnce(replaceOnce(INVITE, b"Max-Forwards: 70\r\n", b""),
                                 b";branch=z9hG4bK776asdhds", b""), b";tag=1928301774", b"")
        validateRequest(parseMessage(data))

    def test_version(self):
        """
        A SIP version other than 2.0 is answered 505 (RFC 3261 section 21.5.6).
        """
        self.assertRejected(replaceOnce(INVITE, b" SIP/2.0\r\n", b" SIP/7.0\r\n"), 505)

    def test_missingHeaders(self):
        """
        Each of Via, From, To, Call-ID and CSeq is mandatory.
        """
        for line in [b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n",
                     b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n",
                     b"To: Bob <sip:bob@biloxi.example.com>\r\n",
                     b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n", b"CSeq: 314159 INVITE\r\n"]:
            error = self.assertRejected(replaceOnce(INVITE, line, b""))
            self.assertTrue(error.reason.startswith("missing "), error.reason)

    def test_duplicateSingletons(self):
        """
        Call-ID, CSeq, From, To, Max-Forwards and Content-Type may not appear twice.
        """
        for line in [b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n",
                     b"To: Bob <sip:bob@biloxi.example.com>\r\n",
                     b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n", b"CSeq: 314159 INVITE\r\n",
                     b"Max-Forwards: 70\r\n", b"Content-Type: application/sdp\r\n"]:
            error = self.assertRejected(replaceOnce(INVITE, line, line + line))
            self.assertTrue(error.reason.startswith("multiple "), error.reason)

    def test_duplicateContentLength(self):
        """
        Two Content-Length headers in a request built by code are rejected too.
        """
        request = parseMessage(INVITE)
        request.headers.add("Content-Length", "4")
        self.assertEqual(self.assertRaises(ParseError, validateRequest, request).status, 400)

    def test_badValues(self):
        """
        Malformed Via, From, To, Contact, Route, Call-ID, CSeq, Max-Forwards and Expires are 400s.
        """
        for old, new in [(b"SIP/2.0/UDP pc33", b"SIP/2.0/ pc33"), (b"tag=1928301774", b"tag="),
                         (b"To: Bob <sip:bob@biloxi.example.com>", b"To: Bob <sip:bob@biloxi.example.com"),
                         (b"Contact: <sip:alice", b"Contact: sip:alice@x?y=1,<sip:alice"),
                         (b"Max-Forwards: 70", b"Route: <sip:p;lr>;x=\r\nMax-Forwards: 70"),
                         (b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com", b"Call-ID: a b"),
                         (b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com", b"Call-ID:"),
                         (b"CSeq: 314159 INVITE", b"CSeq: 2147483648 INVITE"),
                         (b"CSeq: 314159 INVITE", b"CSeq: 99999999999999999999 INVITE"),
                         (b"CSeq: 314159 INVITE", b"CSeq: INVITE"),
                         (b"Max-Forwards: 70", b"Max-Forwards: 300"), (b"Max-Forwards: 70", b"Max-Forwards: ten"),
                         (b"Max-Forwards: 70", b"Expires: soon")]:
            self.assertRejected(replaceOnce(INVITE, old, new))

    def test_hugeExpiresAccepted(self):
        """
        An Expires beyond 2**32-1 is left for the registrar to clamp (RFC 4475 section 3.1.2.4).
        """
        validateRequest(parseMessage(replaceOnce(INVITE, b"Max-Forwards: 70", b"Expires: " + b"1" * 100)))

    def test_cseqMethodMismatch(self):
        """
        A CSeq method other than the request method is a 400 (RFC 4475 section 3.1.2.17).
        """
        self.assertRejected(replaceOnce(INVITE, b"CSeq: 314159 INVITE", b"CSeq: 314159 OPTIONS"))

    def test_unsupportedScheme(self):
        """
        A Request-URI that is not sip, sips or tel is answered 416 (RFC 3261 section 8.2.2.1).
        """
        self.assertRejected(replaceOnce(INVITE, b"sip:bob@biloxi.example.com SIP", b"mailto:bob@biloxi.example.com SIP"),
                            416)

    def test_requestURIHeaders(self):
        """
        A Request-URI with headers is a 400 (RFC 4475 section 3.1.2.11).
        """
        self.assertRejected(replaceOnce(INVITE, b"sip:bob@biloxi.example.com SIP", b"sip:bob@biloxi.example.com?a=b SIP"))

    def test_contentLengthMismatch(self):
        """
        A request whose Content-Length disagrees with its body is rejected.
        """
        request = parseMessage(INVITE)
        request.body = b""
        self.assertEqual(self.assertRaises(ParseError, validateRequest, request).status, 400)

    def test_partialMessageWithoutURI(self):
        """
        A partial request without Request-URI is a 400, never a 416.
        """
        request = parseMessage(INVITE)
        request.uri = None
        self.assertEqual(self.assertRaises(ParseError, validateRequest, request).status, 400)

    def test_validResponsePasses(self):
        """
        A well-formed response passes.
        """
        validateResponse(parseMessage(RINGING))

    def test_invalidResponsesDroppedNotAnswered(self):
        """
        A response failing the checks raises a ParseError without a message to answer.
        """
        for old, new in [(b"CSeq: 314159 INVITE", b"CSeq: 9292394834772304023312 INVITE"),
                         (b"CSeq: 314159 INVITE\r\n", b""), (b"SIP/2.0 180", b"SIP/3.0 180"),
                         (b"Via: SIP/2.0/UDP pc33", b"Via: SIP/2.0/UDP pc33;;"),
                         (b"Content-Length: 0", b"Content-Length: 0\r\nTo: <sip:x@y>")]:
            error = self.assertRaises(ParseError, validateResponse, parseMessage(replaceOnce(RINGING, old, new)))
            self.assertIsNone(error.message)


class TortureIndexTests(SynchronousTestCase):
    """
    The table above, checked against index.tsv and every message.
    """

    def test_tableCoversIndex(self):
        """
        The copied data holds the 49 messages of index.tsv, and the table states an outcome for each.
        """
        names = [row[0] for row in _index()]
        self.assertEqual(len(names), 49)
        self.assertEqual(sorted(names), sorted(EXPECTED))
        self.assertEqual(sorted(path.basename()[:-4] for path in TORTURE.globChildren("*.dat")), sorted(names))

    def test_outcomes(self):
        """
        Every torture message ends with the outcome stated in the table.
        """
        for name, validity, note, section in _index():
            outcome, _, error = _outcome(_load(name))
            self.assertEqual(outcome, EXPECTED[name], "%s (%s): %s" % (name, section, error and error.reason))

    def test_validMessagesAccepted(self):
        """
        Every message index.tsv calls valid is accepted (the unknown Request-URI schemes with the 416
        RFC 4475 asks for), and every invalid one is rejected, except baddate and unksm2, which RFC 4475
        allows (or requires) an element to process.
        """
        for name, validity, note, section in _index():
            outcome = EXPECTED[name]
            if name in ("unkscm", "novelsc"):
                self.assertEqual(outcome, (VALIDATE, 416), name)
            elif validity == "valid":
                self.assertEqual(outcome, ACCEPT, name)
            elif name not in ("baddate", "unksm2"):
                self.assertNotEqual(outcome, ACCEPT, name)

    def test_rejectionsCarryAnswerableRequest(self):
        """
        Every rejected request carries a message with what a 4xx/5xx needs (RFC 3261 section 8.2.6) and a
        reason fit for a reason phrase.
        """
        for name, expected in EXPECTED.items():
            outcome, message, error = _outcome(_load(name))
            if outcome in (ACCEPT, DROP):
                continue
            self.assertIsInstance(message, Request, name)
            self.assertTrue(error.reason, name)
            self.assertNotIn("\n", error.reason)
            self.assertNotIn("\r", error.reason)
            self.assertIn("CSeq", message.headers, name)
            self.assertIn("Via", message.headers, name)

    def test_responsesNeverAnswered(self):
        """
        No torture response yields a status to answer: it is accepted or dropped.
        """
        for name in EXPECTED:
            data = _load(name)
            if data.startswith(b"SIP/"):
                self.assertIn(_outcome(data)[0], (ACCEPT, DROP), name)

    def test_acceptedMessagesRoundTrip(self):
        """
        Each accepted message serializes to bytes that parse to an equal message (plus the Content-Length
        toBytes adds where there was none), and re-serializing that gives the same bytes.
        """
        for name, expected in EXPECTED.items():
            if expected != ACCEPT:
                continue
            message = parseMessage(_load(name))
            data = message.toBytes()
            if "Content-Length" not in message.headers:
                message.headers.add("Content-Length", str(len(message.body)))
            again = parseMessage(data)
            self.assertEqual(again, message, name)
            self.assertEqual(again.toBytes(), data, name)

    def test_acceptedMessagesFrameOnStreams(self):
        """
        Each accepted message with a Content-Length frames the same way on a stream.
        """
        for name, expected in EXPECTED.items():
            if expected != ACCEPT:
                continue
            message = parseMessage(_load(name))
            if "Content-Length" not in message.headers:
                continue
            self.assertEqual(StreamParser().feed(message.toBytes()), [message], name)

    def test_accessorsNeverRaiseOtherErrors(self):
        """
        On every torture message (whole or partial), accessors either work or raise ParseError.
        """
        for name in EXPECTED:
            _, message, _ = _outcome(_load(name))
            if message is None:
                continue
            for accessor in ("vias", "cseq", "fromAddress", "toAddress", "contacts", "routes",
                             "recordRoutes", "maxForwards"):
                try:
                    getattr(message, accessor)()
                except ParseError:
                    pass


class ValidTortureFieldTests(SynchronousTestCase):
    """
    The tricky fields of the valid torture messages (RFC 4475 section 3.1.1 and 3.3) come out right.
    """

    def test_wsinv(self):
        """
        Folding, LWS around every separator, odd case and leading zeros (RFC 4475 section 3.1.1.1).
        """
        request = parseMessage(_load("wsinv"))
        self.assertEqual(request.uri.params, (("unknownparam", None),))
        self.assertEqual(request.toAddress(), Address(URI.parse("sip:vivekg@chair-dnrc.example.com"), None,
                                                      (("tag", "1918181833n"),)))
        sender = request.fromAddress()
        self.assertEqual((sender.displayName, sender.tag), ('J Rosenberg \\"', "98asjd8"))
        self.assertEqual(request.maxForwards(), 68)
        self.assertEqual(request.cseq(), (9, "INVITE"))
        self.assertEqual(request.vias(), [
            Via("UDP", "192.0.2.2", None, (("branch", "390skdjuw"),)),
            Via("TCP", "spindle.example.com", None, (("branch", "z9hG4bK9ikj8"),)),
            Via("UDP", "192.168.255.111", None, (("branch", "z9hG4bK30239"),)),
        ])
        self.assertEqual(request.headers.get("Subject"), "")
        self.assertEqual(request.headers.get("NewFangledHeader"), "newfangled value continued newfangled value")
        self.assertEqual(request.headers.getAll("UnknownHeaderWithUnusualValue"), [";;,,;;,;"])
        self.assertEqual(request.routes()[0].uri.params,
                         (("lr", None), ("unknownwith", "value"), ("unknown-no-value", None)))
        [contact] = request.contacts()
        self.assertEqual(contact.displayName, 'Quoted string ""')
        self.assertEqual(contact.params, (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33")))
        self.assertEqual(len(request.body), 150)

    def test_intmeth(self):
        """
        Unusual token characters in method, URI user and password, quoted control characters and UTF-8
        (RFC 4475 section 3.1.1.2).
        """
        request = parseMessage(_load("intmeth"))
        method = "!interesting-Method0123456789_*+`.%indeed'~"
        self.assertEqual(request.method, method)
        self.assertEqual(request.cseq(), (139122385, method))
        self.assertEqual((request.uri.user, request.uri.password, request.uri.host),
                         ("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*",
                          "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)", "example.com"))
        self.assertEqual(request.toAddress().displayName, "BEL:\x07 NUL:\x00 DEL:\x7f")
        sender = request.fromAddress()
        self.assertEqual(sender.displayName, "token1~` token2'+_ token3*%!.-")
        self.assertEqual(sender.tag, "_token~1'+`*%!-.")
        self.assertEqual(sender.param("fromparam''~+*_!.-%"),
                         '"\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439"')
        self.assertEqual(request.callId, "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{")
        self.assertEqual(request.headers.get("extensionHeader-!.%*+_`'~"), "\ufeff\u5927\u505c\u96fb")
        self.assertEqual(request.topVia.branch, "z9hG4bK-.!%66*_+`'~")

    def test_esc01(self):
        """
        %-escapes in the Request-URI, To, From and Contact parameters are equivalent to the characters
        (RFC 4475 section 3.1.1.3).
        """
        request = parseMessage(_load("esc01"))
        self.assertEqual((request.uri.user, request.uri.host), ("sips:user@example.com", "example.net"))
        self.assertEqual(request.toAddress().uri.user, "user")
        self.assertTrue(request.toAddress().uri.equivalent(URI.parse("sip:user@example.com")))
        self.assertEqual(request.fromAddress().uri.user, "I have spaces")
        [contact] = request.contacts()
        self.assertEqual(contact.uri.user, "caller")
        self.assertEqual(contact.uri.params, (("lr", None), ("name", "value%41")))

    def test_escnull(self):
        """
        An escaped NUL does not shorten the user, and the two contacts stay distinct (RFC 4475 section
        3.1.1.4).
        """
        request = parseMessage(_load("escnull"))
        self.assertEqual(request.toAddress().uri.user, "null-\x00-null")
        self.assertEqual([contact.uri.user for contact in request.contacts()], ["\x00", "\x00\x00"])
        self.assertEqual(str(request.contacts()[1].uri), "sip:%00%00@host5.example.com")

    def test_esc02(self):
        """
        A % that is not an escape makes an unknown method and an unknown header (RFC 4475 section 3.1.1.5).
        """
        request = parseMessage(_load("esc02"))
        self.assertEqual(request.method, "RE%47IST%45R")
        self.assertEqual(request.toAddress().displayName, "%Z%45")
        self.assertEqual([contact.uri.host for contact in request.contacts()],
                         ["host1.example.com", "host3.example.com"])
        self.assertEqual(request.headers.getAll("C%6Fntact"), ["<sip:alias2@host2.example.com>"])
        self.assertEqual(request.topVia.branch, "z9hG4bK209%fzsnel234")

    def test_lwsdisp(self):
        """
        No LWS between display name and C{<} (RFC 4475 section 3.1.1.6).
        """
        self.assertEqual(parseMessage(_load("lwsdisp")).fromAddress().displayName, "caller")

    def test_longreq(self):
        """
        Long values and 34 Via values with compact and odd-cased names (RFC 4475 section 3.1.1.7).
        """
        request = parseMessage(_load("longreq"))
        vias = request.vias()
        self.assertEqual(len(vias), 34)
        self.assertEqual([via.host for via in vias[:3]], ["sip33.example.com", "sip32.example.com",
                                                         "sip31.example.com"])
        self.assertEqual(vias[-1].received, "192.0.2.5")
        self.assertTrue(vias[-1].branch.startswith("verylonglong"))
        self.assertTrue(vias[-1].branch.endswith("longbranchvalue"))
        to = request.toAddress()
        self.assertEqual(to.uri.port, 6000)
        self.assertEqual(len(to.uri.params), 3)
        self.assertTrue(to.displayName.endswith("extreme proportion"))
        sender = request.fromAddress()
        self.assertEqual(sender.tag, "1" + "298" * 50 + "2424")
        self.assertIsNone(sender.param("unknownvaluelessparamnameparamnameparamnameparamnameparamnameparamname"
                                       "paramnameparamnameparamnameparamname", "absent"))
        self.assertTrue(request.callId.endswith("reallylongcallid"))

    def test_dblreq(self):
        """
        The REGISTER is handled and the INVITE after its Content-Length is ignored (RFC 4475 section
        3.1.1.8).
        """
        request = parseMessage(_load("dblreq"))
        self.assertEqual((request.method, request.body), ("REGISTER", b""))

    def test_semiuri(self):
        """
        A semicolon in the user part belongs to the user (RFC 4475 section 3.1.1.9).
        """
        request = parseMessage(_load("semiuri"))
        self.assertEqual((request.uri.user, request.uri.host, request.uri.params),
                         ("user;par=u@example.net", "example.com", ()))
        self.assertEqual(len(request.headers.getAll("Accept")), 6)

    def test_transports(self):
        """
        Via transports UDP, SCTP, TLS, UNKNOWN and TCP (RFC 4475 section 3.1.1.10).
        """
        self.assertEqual([via.transport for via in parseMessage(_load("transports")).vias()],
                         ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"])

    def test_mpart01(self):
        """
        A binary multipart body is framed by Content-Length, NULs included (RFC 4475 section 3.1.1.11).
        """
        request = parseMessage(_load("mpart01"))
        self.assertEqual(len(request.body), 553)
        self.assertIn(b"\x00", request.body)
        self.assertTrue(request.body.endswith(b"--7a9cbec02ceef655--\r\n"))
        self.assertIs(request.topVia.rport, True)

    def test_unreasonAndNoreason(self):
        """
        A UTF-8 reason phrase and an empty one (RFC 4475 sections 3.1.1.12 and 3.1.1.13).
        """
        response = parseMessage(_load("unreason"))
        self.assertIsInstance(response, Response)
        self.assertTrue(response.reason.startswith("= 2**3 * 5**2 \u043d\u043e \u0441\u0442\u043e"))
        self.assertIn(response.reason.encode("utf-8"), _load("unreason"))
        self.assertEqual(parseMessage(_load("noreason")).reason, "")

    def test_badbranch(self):
        """
        The magic cookie alone is a branch like any other (RFC 4475 section 3.2.1).
        """
        self.assertEqual(parseMessage(_load("badbranch")).topVia.branch, "z9hG4bK")

    def test_unknownSchemes(self):
        """
        Unknown Request-URI schemes parse as absolute URIs (RFC 4475 sections 3.3.2 and 3.3.3).
        """
        self.assertEqual(parseMessage(_load("unkscm")).uri,
                         AbsoluteURI("nobodyknowsthisscheme", "totallyopaquecontent"))
        self.assertEqual(parseMessage(_load("novelsc")).uri, AbsoluteURI("soap.beep", "//192.0.2.103:3002"))

    def test_unksm2(self):
        """
        Non-SIP URIs in To, From and Contact parse (RFC 4475 section 3.3.4).
        """
        request = parseMessage(_load("unksm2"))
        self.assertEqual(request.toAddress().uri, AbsoluteURI("isbn", "2983792873"))
        self.assertEqual(request.fromAddress().uri, AbsoluteURI("http", "//www.example.com"))
        self.assertEqual(request.fromAddress().tag, "3234233")
        self.assertEqual(request.contacts()[0].uri, AbsoluteURI("name", "John_Smith"))

    def test_bext01AndRegaut01(self):
        """
        Option tags are split; an Authorization in an unknown scheme is kept whole (RFC 4475 sections
        3.3.5 and 3.3.7).
        """
        self.assertEqual(parseMessage(_load("bext01")).headers.getAll("Proxy-Require"),
                         ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"])
        self.assertEqual(parseMessage(_load("regaut01")).headers.getAll("Authorization"),
                         ["NoOneKnowsThisScheme opaque-data=here"])

    def test_bcastAndZeromf(self):
        """
        The broadcast second Via and Max-Forwards 0 are plain values (RFC 4475 sections 3.3.10 and 3.3.11).
        """
        self.assertEqual(parseMessage(_load("bcast")).vias()[1].host, "255.255.255.255")
        self.assertEqual(parseMessage(_load("zeromf")).maxForwards(), 0)

    def test_contactParams(self):
        """
        An addr-spec parameter is a Contact parameter, one inside <> a URI parameter, and an escaped
        Route header stays in the URI (RFC 4475 sections 3.3.12 to 3.3.14).
        """
        [one] = parseMessage(_load("cparam01")).contacts()
        self.assertEqual((one.uri.params, one.params), ((), (("unknownparam", None),)))
        [two] = parseMessage(_load("cparam02")).contacts()
        self.assertEqual((two.uri.params, two.params), ((("unknownparam", None),), ()))
        [three] = parseMessage(_load("regescrt")).contacts()
        self.assertEqual(three.uri.headers, (("Route", "<sip:sip.example.com>"),))
        self.assertEqual(str(three), "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>")

    def test_inv2543(self):
        """
        RFC 2543 syntax without Content-Length takes the rest of the datagram (RFC 4475 section 3.4.1).
        """
        request = parseMessage(_load("inv2543"))
        self.assertIsNone(request.topVia.branch)
        self.assertIsNone(request.fromAddress().tag)
        self.assertIsNone(request.maxForwards())
        self.assertTrue(request.body.startswith(b"v=0\r\n"))
        self.assertEqual(request.toAddress().params, (("user", "phone"),))


class InvalidTortureReasonTests(SynchronousTestCase):
    """
    The invalid torture messages are rejected for the right reason.
    """

    def assertReason(self, name, fragment):
        """
        C{name} is rejected with a reason containing C{fragment}.
        """
        _, _, error = _outcome(_load(name))
        self.assertIn(fragment, error.reason)

    def test_reasons(self):
        """
        Each rejection names the actual defect.
        """
        for name, fragment in [
                ("badinv01", "Via"), ("clerr", "Content-Length"), ("ncl", "Content-Length"),
                ("scalar02", "CSeq"), ("scalarlg", "CSeq"), ("quotbal", "quoted"), ("ltgtruri", "Request-URI"),
                ("lwsruri", "Request-Line"), ("lwsstart", "Request-Line"), ("trws", "Request-Line"),
                ("escruri", "Request-URI"), ("regbadct", "Contact"), ("badaspec", "To"), ("baddn", "empty line"),
                ("badvers", "version"), ("mismatch01", "CSeq method"), ("mismatch02", "CSeq method"),
                ("bigcode", "status code"), ("insuf", "missing"), ("unkscm", "scheme"), ("novelsc", "scheme"),
                ("multi01", "multiple"), ("mcl01", "Content-Length")]:
            self.assertReason(name, fragment)

    def test_baddnDisplayNamesAlsoRejected(self):
        """
        Even with the missing empty line supplied, the unquoted display names with commas are rejected.
        """
        request = parseMessage(_load("baddn") + b"\r\n")
        error = self.assertRaises(ParseError, validateRequest, request)
        self.assertEqual((error.status, error.reason), (400, "bad From header: bad display name"))

    def test_quotbalAnswerable(self):
        """
        The unbalanced quote does not stop the server from answering to the top Via (port 5050).
        """
        _, message, _ = _outcome(_load("quotbal"))
        self.assertEqual(message.topVia.sentBy, "192.0.2.59:5050")


class RFC3261ExampleTests(SynchronousTestCase):
    """
    The example messages of RFC 3261 section 24.
    """

    def load(self, name):
        return RFC3261.child(name + ".dat").getContent()

    def test_allExamplesParseAndValidate(self):
        """
        Every example message parses, passes validation and survives a serialization round trip.
        """
        names = sorted(path.basename() for path in RFC3261.globChildren("*.dat"))
        self.assertEqual(len(names), 16)
        for name in names:
            data = RFC3261.child(name).getContent()
            message = parseMessage(data)
            if isinstance(message, Request):
                validateRequest(message)
            else:
                validateResponse(message)
            self.assertEqual(parseMessage(message.toBytes()), message, name)
            self.assertEqual(StreamParser().feed(data), [message], name)

    def test_registration(self):
        """
        The section 24.1 REGISTER and its 200 OK, whose Via is folded onto two lines.
        """
        register = parseMessage(self.load("s24_1_f1_register"))
        self.assertEqual((register.method, str(register.uri)), ("REGISTER", "sip:registrar.biloxi.com"))
        self.assertEqual(register.headers.get("Expires"), "7200")
        self.assertEqual(register.contacts()[0].uri.host, "192.0.2.4")
        ok = parseMessage(self.load("s24_1_f2_200"))
        self.assertEqual(ok.topVia, Via("UDP", "bobspc.biloxi.com", 5060,
                                        (("branch", "z9hG4bKnashds7"), ("received", "192.0.2.4"))))
        self.assertEqual(ok.toAddress().tag, "2493k59kd")

    def test_sessionSetupVias(self):
        """
        F5, the INVITE after both proxies, carries three Vias in order; F9 answers with the same.
        """
        invite = parseMessage(self.load("s24_2_f05_invite"))
        self.assertEqual([via.host for via in invite.vias()],
                         ["server10.biloxi.com", "bigbox3.site3.atlanta.com", "pc33.atlanta.com"])
        self.assertEqual(invite.maxForwards(), 68)
        self.assertEqual(len(invite.body), 142)
        ok = parseMessage(self.load("s24_2_f09_200"))
        self.assertEqual([via.branch for via in ok.vias()], [via.branch for via in invite.vias()])
        self.assertEqual(ok.vias()[0].received, "192.0.2.3")

    def test_ackAndBye(self):
        """
        F12 ACK and F13 BYE carry their own CSeq methods.
        """
        self.assertEqual(parseMessage(self.load("s24_2_f12_ack")).cseq(), (314159, "ACK"))
        self.assertEqual(parseMessage(self.load("s24_2_f13_bye")).cseq(), (231, "BYE"))

    def test_makeResponseReproducesF14(self):
        """
        makeResponse on F13 BYE gives exactly the F14 200 OK of the RFC.
        """
        bye = parseMessage(self.load("s24_2_f13_bye"))
        self.assertEqual(makeResponse(bye, 200).toBytes(), self.load("s24_2_f14_200"))

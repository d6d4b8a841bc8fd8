"""
Property tests for L{appliance.sip.message}: generated messages, URIs, addresses and Vias survive a
serialization round trip, and no input makes the parser raise anything but L{ParseError}.
"""

from hypothesis import HealthCheck, given, settings, strategies as st
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from appliance.sip.message import (
    AbsoluteURI,
    Address,
    Headers,
    ParseError,
    Request,
    Response,
    StreamParser,
    URI,
    Via,
    parseMessage,
    validateRequest,
    validateResponse,
)
from appliance.sip.uri import quoteString

DATA = FilePath(__file__).parent().parent().child("data")
SEEDS = [path.getContent() for path in sorted(DATA.child("rfc4475").globChildren("*.dat"))
         + sorted(DATA.child("rfc3261").globChildren("*.dat"))]

# Bounded so the whole module runs in a few seconds; no example database in the source tree.
bounded = settings(max_examples=150, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
messages = settings(bounded, max_examples=60)
fuzzing = settings(bounded, max_examples=1000)

TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"

text = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=20)
nonEmptyText = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20)
tokens = st.text(TOKEN_CHARS, min_size=1, max_size=12)
lowerTokens = tokens.map(str.lower)
hostnames = st.from_regex(r"[a-z0-9]([a-z0-9\-_]{0,10}[a-z0-9])?(\.[a-z0-9\-]{1,8}){0,3}", fullmatch=True)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(lambda address: "[%s]" % (address.compressed,))
hosts = st.one_of(hostnames, ipv4, ipv6)
ports = st.none() | st.integers(0, 65535)


def _lowerStable(name):
    return name == name.lower()


uriParams = st.lists(st.tuples(nonEmptyText.map(str.lower).filter(_lowerStable), st.none() | nonEmptyText),
                     max_size=4).map(tuple)
uriHeaders = st.lists(st.tuples(nonEmptyText, st.text(st.characters(codec="utf-8"), max_size=10)),
                      max_size=3).map(tuple)


@st.composite
def sipURIs(draw):
    user = draw(st.none() | nonEmptyText)
    password = draw(st.none() | st.text(st.characters(codec="utf-8"), max_size=8)) if user else None
    return URI(draw(st.sampled_from(["sip", "sips"])), user, password, draw(hosts), draw(ports),
               draw(uriParams), draw(uriHeaders))


telURIs = st.builds(lambda number, params: URI("tel", number, None, "", None, params),
                    st.from_regex(r"\+?[0-9][0-9\-.()]{0,12}", fullmatch=True), uriParams)
absoluteURIs = st.builds(AbsoluteURI, st.from_regex(r"[a-z][a-z0-9+\-.]{0,8}", fullmatch=True).filter(
                             lambda scheme: scheme not in ("sip", "sips", "tel")),
                         st.from_regex(r"[A-Za-z0-9\-_.!~*'();/?:@&=+$,%]{1,20}", fullmatch=True))
uris = st.one_of(sipURIs(), telURIs)
anyURIs = st.one_of(sipURIs(), sipURIs(), telURIs, absoluteURIs)

headerParamValues = st.one_of(st.none(), tokens, text.map(quoteString))
headerParams = st.lists(st.tuples(lowerTokens, headerParamValues), max_size=4).map(tuple)
addresses = st.builds(Address, anyURIs, st.none() | text, headerParams)

viaParams = st.lists(st.tuples(lowerTokens.filter(lambda name: name not in ("branch", "maddr", "received",
                                                                             "ttl", "rport")),
                               st.none() | tokens), max_size=3)


@st.composite
def vias(draw):
    params = [("branch", "z9hG4bK" + draw(tokens))]
    if draw(st.booleans()):
        params.append(("received", draw(ipv4)))
    if draw(st.booleans()):
        params.append(("rport", draw(st.none() | st.integers(0, 65535).map(str))))
    params.extend(draw(viaParams))
    return Via(draw(tokens).upper(), draw(hosts), draw(ports), tuple(draw(st.permutations(params))))


extensionHeaders = st.lists(st.tuples(tokens.map(lambda name: "X-" + name),
                                      text.map(lambda value: value.strip(" \t"))), max_size=4)
callIds = st.from_regex(r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]{1,20}(@[A-Za-z0-9.\-]{1,12})?", fullmatch=True)


@st.composite
def headerSets(draw, method):
    items = [("Via", str(via)) for via in draw(st.lists(vias(), min_size=1, max_size=3))]
    items.append(("From", str(draw(addresses).withParams(tag=draw(tokens)))))
    items.append(("To", str(draw(addresses))))
    items.append(("Call-ID", draw(callIds)))
    items.append(("CSeq", "%d %s" % (draw(st.integers(0, 2 ** 31 - 1)), method)))
    items.append(("Max-Forwards", str(draw(st.integers(0, 255)))))
    items.extend(("Contact", str(contact)) for contact in draw(st.lists(addresses, max_size=2)))
    items.extend(draw(extensionHeaders))
    return Headers(draw(st.permutations(items)))


@st.composite
def requests(draw):
    method = draw(tokens)
    return Request(method, draw(anyURIs), draw(headerSets(method)), draw(st.binary(max_size=200)))


@st.composite
def responses(draw):
    return Response(draw(st.integers(100, 699)), draw(text), draw(headerSets(draw(tokens))),
                    draw(st.binary(max_size=200)))


def _withContentLength(message):
    """
    C{message} as it comes back from the wire: with the Content-Length toBytes writes.
    """
    expected = message.copy()
    expected.headers.set("Content-Length", str(len(message.body)))
    return expected


def _exercise(message):
    """
    Run validation and every accessor on C{message}; only ParseError may come out.
    """
    checks = [message.vias, lambda: message.topVia, message.cseq, message.fromAddress, message.toAddress,
              message.contacts, message.routes, message.recordRoutes, message.maxForwards]
    if isinstance(message, Request):
        checks.append(lambda: validateRequest(message))
    else:
        checks.append(lambda: validateResponse(message))
    for check in checks:
        try:
            check()
        except ParseError:
            pass


def _parseAnything(data):
    """
    Parse C{data} as a datagram and exercise whatever message (whole or partial) comes out.
    """
    try:
        message = parseMessage(data)
    except ParseError as error:
        message = error.message
        assert "\n" not in error.reason and "\r" not in error.reason
        assert error.status in (400, 413)
    if message is not None:
        _exercise(message)
    return message


@st.composite
def mutated(draw):
    """
    A torture or RFC 3261 example message with a few random byte-level edits.
    """
    data = bytearray(draw(st.sampled_from(SEEDS)))
    fragments = st.sampled_from([b"\r\n", b"\r\n ", b",", b";", b'"', b"\\", b"<", b">", b"%", b"%4", b"[",
                                 b"]", b":", b"@", b"=", b"?", b" ", b"\x00", b"\xff", b"\r\n\r\n", b"SIP/2.0"])
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(data)))
        operation = draw(st.integers(0, 4))
        if operation == 0:
            data[position:position + 1] = draw(st.binary(min_size=1, max_size=1))
        elif operation == 1:
            data[position:position] = draw(fragments)
        elif operation == 2:
            del data[position:position + draw(st.integers(1, 30))]
        elif operation == 3:
            data[position:position] = draw(fragments) * draw(st.integers(1, 200))
        else:
            data[position:position] = draw(st.binary(max_size=20))
    return bytes(data)


class RoundTripProperties(SynchronousTestCase):
    """
    Whatever this module writes, it reads back identically.
    """

    @messages
    @given(requests())
    def test_requestRoundTrip(self, request):
        """
        parseMessage(toBytes(r)) reproduces r (plus Content-Length) and toBytes is then a fixed point.
        """
        data = request.toBytes()
        parsed = parseMessage(data)
        self.assertEqual(parsed, _withContentLength(request))
        self.assertEqual(parsed.toBytes(), data)
        self.assertEqual(StreamParser().feed(data), [parsed])

    @messages
    @given(responses())
    def test_responseRoundTrip(self, response):
        """
        parseMessage(toBytes(r)) reproduces a response, reason phrase included.
        """
        data = response.toBytes()
        parsed = parseMessage(data)
        self.assertEqual(parsed, _withContentLength(response))
        self.assertEqual(parsed.toBytes(), data)

    @messages
    @given(requests())
    def test_generatedRequestsValidate(self, request):
        """
        Generated requests with a sip/sips/tel Request-URI pass validateRequest after a round trip.
        """
        parsed = parseMessage(request.toBytes())
        if isinstance(parsed.uri, URI) and not parsed.uri.headers:
            validateRequest(parsed)

    @bounded
    @given(anyURIs)
    def test_uriRoundTrip(self, uri):
        """
        URI.parse(str(u)) == u, for any user, password, parameter and header content.
        """
        self.assertEqual(URI.parse(str(uri)), uri)
        self.assertEqual(str(URI.parse(str(uri))), str(uri))
        self.assertTrue(URI.parse(str(uri)).equivalent(uri))

    @bounded
    @given(addresses)
    def test_addressRoundTrip(self, address):
        """
        Address.parse(str(a)) == a, for any display name and parameters.
        """
        self.assertEqual(Address.parse(str(address)), address)

    @bounded
    @given(vias())
    def test_viaRoundTrip(self, via):
        """
        Via.parse(str(v)) == v.
        """
        self.assertEqual(Via.parse(str(via)), via)

    @messages
    @given(st.lists(st.sampled_from([b"\r\n\r\n", b"\r\n"]) | requests().map(lambda r: r.toBytes()),
                    min_size=1, max_size=4), st.data())
    def test_streamSplitAnywhere(self, chunks, data):
        """
        A stream of messages and keep-alives cut at random places frames like the stream in one piece.
        """
        stream = b"".join(chunks)
        expected = StreamParser().feed(stream)
        cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
        parser = StreamParser()
        items = []
        for start, end in zip([0] + cuts, cuts + [len(stream)]):
            items.extend(parser.feed(stream[start:end]))
        self.assertEqual(items, expected)


class RobustnessProperties(SynchronousTestCase):
    """
    No input makes the message layer raise anything but ParseError.
    """

    @fuzzing
    @given(st.binary(max_size=1000))
    def test_randomBytes(self, data):
        """
        Random bytes parse or raise ParseError, as a datagram and on a stream.
        """
        _parseAnything(data)
        try:
            StreamParser().feed(data)
        except ParseError:
            pass

    @fuzzing
    @given(st.lists(st.sampled_from([b"INVITE sip:a@b SIP/2.0", b"SIP/2.0 200 OK", b"Via: SIP/2.0/UDP h",
                                     b"Via:", b"To: <sip:a@b>", b"CSeq: 1 INVITE", b"Contact: *", b"l: 5",
                                     b"\r\n", b"\r\n ", b";", b",", b'"', b"<", b">", b"%", b"=", b":", b"\\",
                                     b"[::1]", b"tag=1", b"\x00", b"\xc3", b"Content-Length: 0"]),
                    max_size=40).map(b"".join))
    def test_sipLikeBytes(self, data):
        """
        Concatenations of SIP fragments parse or raise ParseError.
        """
        _parseAnything(data)
        _parseAnything(b"OPTIONS sip:x@y SIP/2.0\r\n" + data + b"\r\n\r\n")

    @fuzzing
    @given(mutated())
    def test_mutatedMessages(self, data):
        """
        Mutated torture messages parse (and serialize back) or raise ParseError, on datagrams and
        streams.
        """
        message = _parseAnything(data)
        if message is not None and not (isinstance(message, Request) and message.uri is None):
            again = parseMessage(message.toBytes())
            self.assertEqual(again.toBytes(), message.toBytes())
        parser = StreamParser()
        try:
            for start in range(0, len(data), 61):
                for item in parser.feed(data[start:start + 61]):
                    if isinstance(item, (Request, Response)):
                        _exercise(item)
        except ParseError as error:
            self.assertIn(error.status, (400, 413))

    @fuzzing
    @given(st.text(max_size=200))
    def test_randomValues(self, value):
        """
        The value parsers raise only ParseError on any text, surrogates included.
        """
        for parse in (URI.parse, Address.parse, Via.parse):
            try:
                parse(value)
            except ParseError:
                pass

"""
Tests for L{appliance.sip.message}: headers, URIs, addresses, Via, parsing, serialization, validation and
stream framing (RFC 3261 sections 7, 8.2, 18.3, 19, 20 and 25).  The RFC 3261 section 24 examples and the
RFC 4475 torture messages, and the checks of L{validateRequest}, are in L{tests.sip.test_message_torture}.
"""

from twisted.trial.unittest import SynchronousTestCase

from appliance.sip.message import (
    DEFAULT_MAX_SIZE,
    KEEPALIVE_PING,
    REASONS,
    WILDCARD,
    AbsoluteURI,
    Address,
    Headers,
    ParseError,
    Request,
    Response,
    StreamParser,
    URI,
    Via,
    makeResponse,
    parseMessage,
)

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)

RINGING = (
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;received=192.0.2.1\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def replaceOnce(data, old, new):
    """
    C{data} with the one occurrence of C{old} replaced by C{new}.
    """
    assert data.count(old) == 1, old
    return data.replace(old, new)


class HeadersTests(SynchronousTestCase):
    """
    L{Headers}: an ordered, case-insensitive multimap (RFC 3261 section 7.3).
    """

    def test_getIsCaseInsensitive(self):
        """
        Header names match whatever their case.
        """
        headers = Headers([("call-id", "abc")])
        self.assertEqual(headers.get("CALL-ID"), "abc")
        self.assertEqual(headers.get("Call-Id"), "abc")
        self.assertIsNone(headers.get("To"))
        self.assertEqual(headers.get("To", "x"), "x")

    def test_compactNamesExpanded(self):
        """
        Every compact form of RFC 3261 section 7.3.3 and the registry maps to its full canonical name.
        """
        compact = {
            "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
            "c": "Content-Type", "f": "From", "s": "Subject", "k": "Supported", "t": "To", "v": "Via",
            "o": "Event", "r": "Refer-To", "b": "Referred-By", "x": "Session-Expires", "u": "Allow-Events",
            "a": "Accept-Contact", "j": "Reject-Contact", "d": "Request-Disposition", "y": "Identity",
            "n": "Identity-Info",
        }
        for letter, name in compact.items():
            headers = Headers([(letter.upper(), "value")])
            self.assertEqual(headers.items(), [(name, "value")])
            self.assertEqual(headers.get(letter), "value")
            self.assertEqual(headers.get(name), "value")

    def test_canonicalCapitalisation(self):
        """
        Known names get their canonical spelling; unknown names keep the spelling they came with.
        """
        headers = Headers([("cseq", "1 INVITE"), ("www-authenticate", "Digest x=1"),
                           ("MAX-FORWARDS", "70"), ("X-fancy-Thing", "y")])
        self.assertEqual([name for name, _ in headers.items()],
                         ["CSeq", "WWW-Authenticate", "Max-Forwards", "X-fancy-Thing"])
        self.assertEqual(headers.get("x-FANCY-thing"), "y")

    def test_listHeaderSplitAtCommas(self):
        """
        A comma-separated list header becomes one value per element, whitespace stripped.
        """
        headers = Headers([("Via", "SIP/2.0/UDP a;branch=z9hG4bK1 ,SIP/2.0/TCP b;branch=z9hG4bK2")])
        self.assertEqual(headers.getAll("via"),
                         ["SIP/2.0/UDP a;branch=z9hG4bK1", "SIP/2.0/TCP b;branch=z9hG4bK2"])

    def test_splitRespectsQuotesAndAngles(self):
        """
        Commas inside a quoted display name or inside C{<...>} do not split a Contact.
        """
        headers = Headers([("Contact", '"Doe, John" <sip:j@a.com;x=1,2>;q=0.5, <sip:c@d>, "a\\",b" <sip:e@f>')])
        self.assertEqual(headers.getAll("Contact"),
                         ['"Doe, John" <sip:j@a.com;x=1,2>;q=0.5', "<sip:c@d>", '"a\\",b" <sip:e@f>'])

    def test_authenticationHeadersNotSplit(self):
        """
        Authorization-style headers contain commas between parameters and are kept whole.
        """
        value = 'Digest username="bob", realm="biloxi.com", nonce="dcd98b", uri="sip:a@b", response="6629f"'
        for name in ("Authorization", "Proxy-Authorization", "WWW-Authenticate", "Proxy-Authenticate",
                     "Authentication-Info"):
            self.assertEqual(Headers([(name, value)]).getAll(name), [value])

    def test_dateSingletonAndUnknownNotSplit(self):
        """
        Date, single-valued headers such as To and Subject, and unknown headers are kept whole.
        """
        headers = Headers([("Date", "Sat, 13 Nov 2010 23:29:00 GMT"), ("To", "Watson, Thomas <sip:a@b>"),
                           ("Subject", "lunch, then"), ("X-List", "a, b")])
        self.assertEqual(len(headers), 4)

    def test_emptyListElementsDropped(self):
        """
        Empty elements of a list are ignored, but an entirely empty list header stays present.
        """
        self.assertEqual(Headers([("Supported", "timer,, 100rel,")]).getAll("Supported"), ["timer", "100rel"])
        self.assertEqual(Headers([("Supported", "")]).getAll("Supported"), [""])
        self.assertEqual(Headers([("Supported", " , ")]).getAll("Supported"), [""])

    def test_addAfterExistingValues(self):
        """
        C{add} puts new values right after the existing values of that name, or at the end.
        """
        headers = Headers([("Route", "<sip:a>"), ("To", "<sip:t>")])
        headers.add("Route", "<sip:b>, <sip:c>")
        headers.add("Subject", "hi")
        self.assertEqual(headers.items(), [("Route", "<sip:a>"), ("Route", "<sip:b>"), ("Route", "<sip:c>"),
                                           ("To", "<sip:t>"), ("Subject", "hi")])

    def test_prependBeforeExistingValues(self):
        """
        C{prepend} puts new values before the existing values of that name, or at the top.
        """
        headers = Headers([("To", "<sip:t>"), ("Via", "SIP/2.0/UDP b")])
        headers.prepend("v", "SIP/2.0/UDP a")
        headers.prepend("Record-Route", "<sip:p;lr>")
        self.assertEqual(headers.items(), [("Record-Route", "<sip:p;lr>"), ("To", "<sip:t>"),
                                           ("Via", "SIP/2.0/UDP a"), ("Via", "SIP/2.0/UDP b")])

    def test_setReplacesInPlace(self):
        """
        C{set} replaces all values by one at the position of the first, or appends.
        """
        headers = Headers([("Max-Forwards", "70"), ("To", "<sip:t>"), ("Max-Forwards", "3")])
        headers.set("max-forwards", 69)
        headers.set("Expires", "60")
        self.assertEqual(headers.items(), [("Max-Forwards", "69"), ("To", "<sip:t>"), ("Expires", "60")])

    def test_removeFirstAndReplaceFirst(self):
        """
        removeFirst pops the top value (None if absent); replaceFirst rewrites it in place, or adds it
        at the top.
        """
        headers = Headers([("To", "b"), ("Via", "SIP/2.0/UDP a, SIP/2.0/UDP c")])
        self.assertEqual(headers.removeFirst("v"), "SIP/2.0/UDP a")
        self.assertIsNone(headers.removeFirst("Route"))
        headers.replaceFirst("Via", "SIP/2.0/UDP c;received=192.0.2.1")
        headers.replaceFirst("Record-Route", "<sip:p;lr>")
        self.assertEqual(headers.items(), [("Record-Route", "<sip:p;lr>"), ("To", "b"),
                                           ("Via", "SIP/2.0/UDP c;received=192.0.2.1")])

    def test_removeAndContains(self):
        """
        C{remove} drops every value of a name, silently if there are none.
        """
        headers = Headers([("Via", "a"), ("To", "b"), ("v", "c")])
        self.assertIn("VIA", headers)
        headers.remove("via")
        headers.remove("Route")
        self.assertNotIn("Via", headers)
        self.assertEqual(headers.items(), [("To", "b")])

    def test_copyIsIndependent(self):
        """
        Changing a copy leaves the original alone, and equal contents compare equal.
        """
        headers = Headers([("To", "b")])
        copy = headers.copy()
        self.assertEqual(copy, headers)
        copy.add("From", "c")
        self.assertNotEqual(copy, headers)
        self.assertEqual(headers.items(), [("To", "b")])

    def test_equalityIgnoresNameSpelling(self):
        """
        Two header sets with the same names (in any spelling) and values in the same order are equal.
        """
        self.assertEqual(Headers([("i", "x"), ("t", "y")]), Headers([("Call-ID", "x"), ("TO", "y")]))
        self.assertNotEqual(Headers([("i", "x"), ("t", "y")]), Headers([("t", "y"), ("i", "x")]))

    def test_valueWithLineBreakRejected(self):
        """
        A value with CR or LF would inject header lines, so code cannot set one.
        """
        headers = Headers()
        self.assertRaises(ValueError, headers.add, "Subject", "a\r\nVia: x")
        self.assertRaises(ValueError, headers.set, "Subject", "a\nb")
        self.assertRaises(ValueError, Headers, [("Subject", "a\rb")])
        self.assertRaises(TypeError, headers.add, "Subject", None)

    def test_badNameRejected(self):
        """
        A header name that is not a token is refused.
        """
        self.assertRaises(ValueError, Headers().add, "Bad Name", "x")
        self.assertRaises(ValueError, Headers().add, "Bad:Name", "x")


class URITests(SynchronousTestCase):
    """
    L{URI} and L{AbsoluteURI} (RFC 3261 sections 19.1 and 25.1, RFC 3966).
    """

    def test_parseFullSIPURI(self):
        """
        Every component of a SIP URI is parsed, in order, with header values unescaped.
        """
        uri = URI.parse("sip:alice:secretword@Atlanta.COM:5061;transport=TCP;lr?subject=project%20x&priority=urgent")
        self.assertEqual(uri, URI("sip", "alice", "secretword", "atlanta.com", 5061,
                                  (("transport", "TCP"), ("lr", None)),
                                  (("subject", "project x"), ("priority", "urgent"))))
        self.assertEqual(uri.hostport, "atlanta.com:5061")
        self.assertEqual(uri.param("transport"), "TCP")
        self.assertIsNone(uri.param("lr"))
        self.assertTrue(uri.hasParam("LR"))
        self.assertEqual(uri.param("maddr", "none"), "none")

    def test_schemeIsCaseInsensitive(self):
        """
        C{SIP:} and C{SiPs:} are the sip and sips schemes.
        """
        self.assertEqual(URI.parse("SIP:a@b").scheme, "sip")
        self.assertEqual(URI.parse("SiPs:b").scheme, "sips")

    def test_telephoneSubscriberWithPassword(self):
        """
        The RFC 3261 section 19.1.3 example with a telephone number as user and a password parses.
        """
        uri = URI.parse("sip:+1-212-555-1212:1234@gateway.com;user=phone")
        self.assertEqual((uri.user, uri.password, uri.host, uri.params),
                         ("+1-212-555-1212", "1234", "gateway.com", (("user", "phone"),)))

    def test_escapesAreUnescapedAndRestored(self):
        """
        %-escapes are undone on parsing and characters outside the allowed set are escaped again by str().
        """
        uri = URI.parse("sip:%61lice%40home%3Aoffice@example.com;na%6De=v%61l%25?h%20x=a%26b")
        self.assertEqual(uri.user, "alice@home:office")
        self.assertEqual(uri.params, (("name", "val%"),))
        self.assertEqual(uri.headers, (("h x", "a&b"),))
        self.assertEqual(str(uri), "sip:alice%40home%3Aoffice@example.com;name=val%25?h%20x=a%26b")
        self.assertEqual(URI.parse(str(uri)), uri)

    def test_userUnreservedKeptLiteral(self):
        """
        Characters a user part may carry unescaped (RFC 3261 section 25.1 user-unreserved) stay literal.
        """
        uri = URI.parse("sip:user;par=u%40example.net@example.com")
        self.assertEqual(uri.user, "user;par=u@example.net")
        self.assertEqual(str(uri), "sip:user;par=u%40example.net@example.com")

    def test_utf8EscapesRoundTrip(self):
        """
        Escaped UTF-8 decodes to text, and escaped bytes that are not UTF-8 survive a round trip.
        """
        uri = URI.parse("sip:J%C3%BCrgen%FF@example.com")
        self.assertEqual(uri.user, "J\u00fcrgen\udcff")
        self.assertEqual(str(uri), "sip:J%C3%BCrgen%FF@example.com")

    def test_ipv6Reference(self):
        """
        An IPv6 reference keeps its brackets, is lower-cased and may carry a port (RFC 5118).
        """
        uri = URI.parse("sip:alice@[2001:DB8::10]:5070;transport=udp")
        self.assertEqual((uri.host, uri.port), ("[2001:db8::10]", 5070))
        self.assertEqual(uri.hostport, "[2001:db8::10]:5070")
        self.assertEqual(str(uri), "sip:alice@[2001:db8::10]:5070;transport=udp")
        self.assertEqual(URI.parse("sip:[::1]").host, "[::1]")

    def test_ipv4AndDefaultPort(self):
        """
        A host without port has port C{None} and a hostport without colon.
        """
        uri = URI.parse("sips:192.0.2.4")
        self.assertEqual((uri.user, uri.host, uri.port, uri.hostport), (None, "192.0.2.4", None, "192.0.2.4"))

    def test_telURI(self):
        """
        A tel URI keeps its number as written in C{user}, with an empty host (RFC 3966).
        """
        uri = URI.parse("tel:+1-201-555-0123;ext=1234;phone-context=example.com")
        self.assertEqual((uri.scheme, uri.user, uri.host, uri.port), ("tel", "+1-201-555-0123", "", None))
        self.assertEqual(uri.params, (("ext", "1234"), ("phone-context", "example.com")))
        self.assertEqual(str(uri), "tel:+1-201-555-0123;ext=1234;phone-context=example.com")
        self.assertEqual(URI.parse("tel:7042;phone-context=example.com").user, "7042")

    def test_unknownSchemeIsAbsoluteURI(self):
        """
        Any other scheme gives an AbsoluteURI with no SIP parameters, not an error.
        """
        uri = URI.parse("HTTP://www.example.com/a?b=c")
        self.assertEqual(uri, AbsoluteURI("http", "//www.example.com/a?b=c"))
        self.assertEqual(str(uri), "http://www.example.com/a?b=c")
        self.assertEqual((uri.params, uri.headers, uri.param("lr", 1)), ((), (), 1))
        self.assertEqual(URI.parse("urn:uuid:f81d4fae-7dec"), AbsoluteURI("urn", "uuid:f81d4fae-7dec"))

    def test_malformedURIsRejected(self):
        """
        Each of these is not a URI, and parsing says so with a ParseError.
        """
        for text in ["", "sip:", "sip:@example.com", "sip:a@", "sip:example.com:99999", "sip:example.com:",
                     "sip:example.com:5o60", "sip:ex ample.com", "sip:a@example.com;", "sip:a@b;x=1;;y",
                     "sip:a@b?x", "sip:a@b?=1", "sip:%zz@example.com", "sip:a%4@b", "<sip:a@b>", " sip:a@b",
                     "sip:a@b ", "sip:[2001:db8::1", "sip:[2001:db8::1]x", "sip:[example.com]", "sip:[1::2::3]",
                     "sip:a b@c", "1sip:a@b", "sip:a@b;x=<y>", "tel:", "tel:+", "tel:abc-x", "tel:1+2",
                     "http:", "http:a b", "mailto:<x>"]:
            self.assertRaises(ParseError, URI.parse, text)

    def test_withParams(self):
        """
        C{withParams} replaces in place, appends new, sets valueless with True and removes with None.
        """
        uri = URI.parse("sip:a@b;transport=udp;maddr=x")
        changed = uri.withParams(transport="tcp", maddr=None, lr=True, ttl=5)
        self.assertEqual(changed.params, (("transport", "tcp"), ("lr", None), ("ttl", "5")))
        self.assertEqual(str(changed), "sip:a@b;transport=tcp;lr;ttl=5")
        self.assertEqual(uri.params, (("transport", "udp"), ("maddr", "x")))

    def test_equivalentURIs(self):
        """
        The equivalent pairs of RFC 3261 section 19.1.4 compare equivalent.
        """
        pairs = [
            ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
            ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
            ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
            ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
            ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
             "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
            ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
             "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
            ("tel:+1-201-555-0123", "tel:+1.201.555.0123"),
        ]
        for left, right in pairs:
            self.assertTrue(URI.parse(left).equivalent(URI.parse(right)), (left, right))
            self.assertTrue(URI.parse(right).equivalent(URI.parse(left)), (right, left))

    def test_nonEquivalentURIs(self):
        """
        The non-equivalent pairs of RFC 3261 section 19.1.4 do not compare equivalent.
        """
        pairs = [
            ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
            ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
            ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
            ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
            ("sip:bob@biloxi.com", "sips:bob@biloxi.com"),
            ("sip:bob@biloxi.com", "http://biloxi.com"),
        ]
        for left, right in pairs:
            self.assertFalse(URI.parse(left).equivalent(URI.parse(right)), (left, right))
            self.assertFalse(URI.parse(right).equivalent(URI.parse(left)), (right, left))


class AddressTests(SynchronousTestCase):
    """
    L{Address}: name-addr and addr-spec with header parameters (RFC 3261 section 20.10).
    """

    def test_quotedDisplayName(self):
        """
        A quoted display name is unquoted and its quoted-pairs resolved.
        """
        address = Address.parse('"Alice \\"Al\\" Smith" <sip:alice@atlanta.com>;tag=88sja8x')
        self.assertEqual(address.displayName, 'Alice "Al" Smith')
        self.assertEqual(address.uri, URI.parse("sip:alice@atlanta.com"))
        self.assertEqual(address.tag, "88sja8x")
        self.assertEqual(str(address), '"Alice \\"Al\\" Smith" <sip:alice@atlanta.com>;tag=88sja8x')

    def test_tokenDisplayName(self):
        """
        An unquoted display name made of tokens is accepted, also without space before C{<}.
        """
        self.assertEqual(Address.parse("Bob <sip:bob@biloxi.com>").displayName, "Bob")
        self.assertEqual(Address.parse("A. G. Bell <sip:agb@bell-tel.com>").displayName, "A. G. Bell")
        self.assertEqual(Address.parse("caller<sip:caller@example.com>").displayName, "caller")
        self.assertIsNone(Address.parse("<sip:bob@biloxi.com>").displayName)
        self.assertEqual(Address.parse('"" <sip:bob@biloxi.com>').displayName, "")

    def test_addrSpecParamsBelongToHeader(self):
        """
        Without angle brackets, parameters after the URI are header parameters (RFC 3261 section 20.10).
        """
        address = Address.parse("sip:+12125551212@server.phone2net.com;tag=887s;unknownparam")
        self.assertEqual(address.uri, URI.parse("sip:+12125551212@server.phone2net.com"))
        self.assertEqual(address.params, (("tag", "887s"), ("unknownparam", None)))

    def test_nameAddrParamsInsideBracketsBelongToURI(self):
        """
        Parameters inside the angle brackets are URI parameters, those after are header parameters.
        """
        address = Address.parse("<sip:gw1.example.net;unknownparam>;expires=60")
        self.assertEqual(address.uri.params, (("unknownparam", None),))
        self.assertEqual(address.params, (("expires", "60"),))
        self.assertEqual(address.param("EXPIRES"), "60")

    def test_lwsAroundParameters(self):
        """
        Whitespace around C{;} and C{=} is allowed, and parameter names are lower-cased.
        """
        address = Address.parse("sip:a@b.com ;   Tag    = 1918181833n ; q = 0.33")
        self.assertEqual(address.params, (("tag", "1918181833n"), ("q", "0.33")))

    def test_quotedParameterValueKeepsQuotes(self):
        """
        A quoted-string parameter value keeps its quotes, so it is written back verbatim.
        """
        value = '"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>"'
        address = Address.parse('<sip:a@b>;+sip.instance=' + value + ';reg-id=1')
        self.assertEqual(address.param("+sip.instance"), value)
        self.assertEqual(Address.parse(str(address)), address)

    def test_strIsAlwaysNameAddr(self):
        """
        str() always writes the name-addr form, quoting any display name.
        """
        address = Address.parse("sip:a@b.com;tag=1")
        self.assertEqual(str(address), "<sip:a@b.com>;tag=1")
        self.assertEqual(str(Address.parse("Bob <sip:b@c>")), '"Bob" <sip:b@c>')
        control = Address(URI.parse("sip:a@b"), "x\x00y\\")
        self.assertEqual(str(control), '"x\\\x00y\\\\" <sip:a@b>')
        self.assertEqual(Address.parse(str(control)), control)

    def test_withParams(self):
        """
        withParams adds a tag to a copy and leaves the original alone.
        """
        address = Address.parse("Bob <sip:bob@biloxi.com>")
        tagged = address.withParams(tag="a6c85cf")
        self.assertEqual(tagged.tag, "a6c85cf")
        self.assertIsNone(address.tag)
        self.assertIsNone(tagged.withParams(tag=None).tag)

    def test_absoluteURIAddress(self):
        """
        Addresses with non-SIP URIs parse (RFC 4475 section 3.3.4).
        """
        self.assertEqual(Address.parse("isbn:2983792873").uri, AbsoluteURI("isbn", "2983792873"))
        self.assertEqual(Address.parse("<http://www.example.com>;tag=3").uri,
                         AbsoluteURI("http", "//www.example.com"))

    def test_wildcard(self):
        """
        WILDCARD is the Contact C{*}; other addresses are not wildcards and Address.parse refuses C{*}.
        """
        self.assertTrue(WILDCARD.isWildcard)
        self.assertEqual(str(WILDCARD), "*")
        self.assertFalse(Address.parse("<sip:a@b>").isWildcard)
        self.assertRaises(ParseError, Address.parse, "*")

    def test_malformedAddressesRejected(self):
        """
        Each of these is not an address, and parsing says so with a ParseError.
        """
        for text in ["", "   ", '"Mr. J. User <sip:j.user@example.com>', "Bell, Alexander <sip:a@b.com>",
                     "< sip:t.watson@example.org >", "<sip:a@b.com", "<sip:a@b.com> junk", '"x" sip:a@b',
                     "sip:user@example.com?Route=%3Csip:sip.example.com%3E", "<sip:a@b>;;", "<sip:a@b>;tag=",
                     "<sip:a@b>;tag=a b", '<sip:a@b>;x="unterminated', "sip:a@b, sip:c@d", "<>", "<sip:a@b>>",
                     "B@d <sip:a@b>"]:
            self.assertRaises(ParseError, Address.parse, text)


class ViaTests(SynchronousTestCase):
    """
    L{Via} (RFC 3261 section 20.42, RFC 3581).
    """

    def test_parse(self):
        """
        Protocol, transport, sent-by and parameters are parsed.
        """
        via = Via.parse("SIP/2.0/UDP erlang.bell-telephone.com:5060;branch=z9hG4bK87asdks7;ttl=16")
        self.assertEqual(via, Via("UDP", "erlang.bell-telephone.com", 5060,
                                  (("branch", "z9hG4bK87asdks7"), ("ttl", "16"))))
        self.assertEqual((via.protocol, via.branch, via.sentBy), ("SIP/2.0", "z9hG4bK87asdks7",
                                                                 "erlang.bell-telephone.com:5060"))
        self.assertIsNone(via.received)
        self.assertIsNone(via.rport)

    def test_lwsAroundSeparators(self):
        """
        The LWS RFC 3261 allows around C{/}, C{:}, C{;} and C{=} is accepted and not kept.
        """
        via = Via.parse("sip  / 2.0  / tcp     spindle.example.com  :  5061 ;  branch  =   z9hG4bK9ikj8")
        self.assertEqual(via, Via("TCP", "spindle.example.com", 5061, (("branch", "z9hG4bK9ikj8"),)))
        self.assertEqual(str(via), "SIP/2.0/TCP spindle.example.com:5061;branch=z9hG4bK9ikj8")

    def test_receivedAndRport(self):
        """
        received is a string; rport is True without a value and an int with one (RFC 3581).
        """
        via = Via.parse("SIP/2.0/UDP 10.1.1.1:4540;received=192.0.2.1;rport=9988;branch=z9hG4bKkjshdyff")
        self.assertEqual((via.received, via.rport), ("192.0.2.1", 9988))
        self.assertIs(Via.parse("SIP/2.0/UDP 10.1.1.1:4540;rport;branch=z9hG4bK1").rport, True)

    def test_withParamsForResponseRouting(self):
        """
        A server fills received and rport in place (RFC 3581 section 4).
        """
        via = Via.parse("SIP/2.0/UDP 10.1.1.1:4540;rport;branch=z9hG4bKkjshdyff")
        filled = via.withParams(received="192.0.2.1", rport=9988)
        self.assertEqual(str(filled), "SIP/2.0/UDP 10.1.1.1:4540;rport=9988;branch=z9hG4bKkjshdyff;received=192.0.2.1")

    def test_ipv6(self):
        """
        An IPv6 sent-by is bracketed and received may be an unbracketed IPv6 address (RFC 5118).
        """
        via = Via.parse("SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111;received=2001:db8::9:255")
        self.assertEqual((via.host, via.port, via.received), ("[2001:db8::9:1]", 6050, "2001:db8::9:255"))
        self.assertEqual(via.sentBy, "[2001:db8::9:1]:6050")

    def test_otherTransportsAndVersions(self):
        """
        Unknown transports and protocol versions parse; the transport is upper-cased.
        """
        self.assertEqual(Via.parse("SIP/2.0/sctp t2.example.com").transport, "SCTP")
        self.assertEqual(Via.parse("SIP/2.0/UNKNOWN t4.example.com").transport, "UNKNOWN")
        self.assertEqual(Via.parse("SIP/7.0/UDP c.example.com").protocol, "SIP/7.0")
        self.assertEqual(Via.parse("SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK").host,
                         "df7jal23ls0d.invalid")

    def test_malformedViasRejected(self):
        """
        Each of these is not a Via value, and parsing says so with a ParseError.
        """
        for text in ["", "SIP/2.0/UDP", "SIP/2.0 host", "SIP/2.0/UDP host:port", "SIP/2.0/UDP host:99999",
                     "SIP/2.0/UDP 192.0.2.15;;", ";", "SIP/2.0/UDP host;branch", "SIP/2.0/UDP host;branch=",
                     "SIP/2.0/UDP host;rport=x", "SIP/2.0/UDP host;ttl=256", "SIP/2.0/UDP host;received=a b",
                     "SIP/2.0/UDP host;received=1::2::3", "SIP/2.0/UDP [::1", "SIP/2.0/UDP host junk",
                     "SIP/2.0/UDP ho st", "SIP/2.0/UDP host;maddr"]:
            self.assertRaises(ParseError, Via.parse, text)


class ParseValidTests(SynchronousTestCase):
    """
    L{parseMessage} on well-formed input (RFC 3261 section 7).
    """

    def test_request(self):
        """
        A request's start line, headers and body are parsed; accessors parse values on demand.
        """
        request = parseMessage(INVITE)
        self.assertIsInstance(request, Request)
        self.assertEqual((request.method, request.uri, request.version, request.body),
                         ("INVITE", URI.parse("sip:bob@biloxi.example.com"), "SIP/2.0", b"v=0\n"))
        self.assertEqual(request.callId, "a84b4c76e66710@pc33.atlanta.example.com")
        self.assertEqual(request.cseq(), (314159, "INVITE"))
        self.assertEqual(request.topVia.branch, "z9hG4bK776asdhds")
        self.assertEqual(request.fromAddress().tag, "1928301774")
        self.assertEqual(request.toAddress().displayName, "Bob")
        self.assertEqual(request.contacts(), [Address.parse("<sip:alice@pc33.atlanta.example.com>")])
        self.assertEqual(request.maxForwards(), 70)

    def test_response(self):
        """
        A response's status line and headers are parsed.
        """
        response = parseMessage(RINGING)
        self.assertIsInstance(response, Response)
        self.assertEqual((response.code, response.reason, response.version, response.body),
                         (180, "Ringing", "SIP/2.0", b""))
        self.assertEqual(response.topVia.received, "192.0.2.1")

    def test_reasonPhraseUTF8AndEmpty(self):
        """
        A reason phrase may be UTF-8 or empty (RFC 3261 section 25.1 Reason-Phrase).
        """
        self.assertEqual(parseMessage(replaceOnce(RINGING, b"180 Ringing", b"180 \xc3\xa7a sonne")).reason,
                         "\u00e7a sonne")
        self.assertEqual(parseMessage(replaceOnce(RINGING, b"180 Ringing", b"180 ")).reason, "")
        self.assertEqual(parseMessage(replaceOnce(RINGING, b"180 Ringing", b"180")).reason, "")

    def test_leadingCRLFsSkipped(self):
        """
        CRLFs before the start line are ignored (RFC 3261 section 7.5).
        """
        self.assertEqual(parseMessage(b"\r\n\r\n\r\n" + INVITE), parseMessage(INVITE))

    def test_foldedHeaderUnfolded(self):
        """
        A header continued on lines starting with whitespace is one value, each fold becoming one space.
        """
        request = parseMessage(replaceOnce(
            INVITE, b"Max-Forwards: 70\r\n", b"Subject: I know\r\n   you're there,\r\n\tpick up\r\nMax-Forwards: 70\r\n"))
        self.assertEqual(request.headers.get("Subject"), "I know you're there, pick up")

    def test_foldedListHeaderSplit(self):
        """
        A folded list header is unfolded, then split.
        """
        request = parseMessage(replaceOnce(
            INVITE, b"Max-Forwards: 70\r\n", b"Supported: timer,\r\n 100rel\r\nMax-Forwards: 70\r\n"))
        self.assertEqual(request.headers.getAll("Supported"), ["timer", "100rel"])

    def test_whitespaceAroundColonAndCompactNames(self):
        """
        Whitespace before and after the colon is allowed, and compact names are expanded.
        """
        request = parseMessage(replaceOnce(INVITE, b"Call-ID: ", b"i  :   "))
        self.assertEqual(request.callId, "a84b4c76e66710@pc33.atlanta.example.com")
        self.assertEqual(request.headers.items()[4][0], "Call-ID")

    def test_datagramWithoutContentLengthTakesRest(self):
        """
        Over a datagram, no Content-Length means the body is the rest of the datagram (RFC 3261 section
        18.3).
        """
        request = parseMessage(replaceOnce(INVITE, b"Content-Length: 4\r\n", b""))
        self.assertEqual(request.body, b"v=0\n")
        self.assertNotIn("Content-Length", request.headers)

    def test_datagramOctetsBeyondContentLengthIgnored(self):
        """
        Octets after Content-Length bytes of body are ignored in a datagram (RFC 3261 section 18.3).
        """
        request = parseMessage(INVITE + b"INVITE sip:x@y SIP/2.0\r\n\r\n")
        self.assertEqual(request.body, b"v=0\n")

    def test_bodyIsBinary(self):
        """
        A body may contain NUL and CRLF-CRLF; only Content-Length frames it.
        """
        body = b"\x00\r\n\r\n\xff\x00"
        request = parseMessage(replaceOnce(INVITE, b"Content-Length: 4\r\n\r\nv=0\n",
                                        b"Content-Length: 7\r\n\r\n" + body))
        self.assertEqual(request.body, body)

    def test_otherVersionParsed(self):
        """
        A SIP version other than 2.0 is kept for the server to answer 505, not a parse error.
        """
        self.assertEqual(parseMessage(replaceOnce(INVITE, b" SIP/2.0\r\n", b" sip/3.0\r\n")).version, "SIP/3.0")

    def test_unknownRequestURISchemeParsed(self):
        """
        An unknown Request-URI scheme gives an AbsoluteURI for the server to answer 416.
        """
        request = parseMessage(replaceOnce(INVITE, b"sip:bob@biloxi.example.com SIP", b"im:bob@biloxi.example.com SIP"))
        self.assertEqual(request.uri, AbsoluteURI("im", "bob@biloxi.example.com"))

    def test_invalidUTF8InHeadersRoundTrips(self):
        """
        Header bytes that are not UTF-8 decode to surrogate escapes and are written back unchanged.
        """
        data = replaceOnce(INVITE, b"Max-Forwards: 70\r\n", b"X-Raw: a\xff\xc3b\r\nMax-Forwards: 70\r\n")
        request = parseMessage(data)
        self.assertEqual(request.headers.get("X-Raw"), "a\udcff\udcc3b")
        self.assertEqual(request.toBytes(), data)

    def test_bytesLikeInput(self):
        """
        A bytearray or memoryview parses like bytes.
        """
        self.assertEqual(parseMessage(bytearray(INVITE)), parseMessage(INVITE))
        self.assertEqual(parseMessage(memoryview(INVITE)), parseMessage(INVITE))

    def test_noHeadersAtAll(self):
        """
        A bare start line with the empty line parses (the missing headers are for validateRequest).
        """
        request = parseMessage(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n")
        self.assertEqual((request.method, len(request.headers), request.body), ("OPTIONS", 0, b""))

    def test_streamModeSingleMessage(self):
        """
        With datagram=False the message must be exactly framed by its Content-Length.
        """
        self.assertEqual(parseMessage(INVITE, datagram=False).body, b"v=0\n")


class ParseInvalidTests(SynchronousTestCase):
    """
    L{parseMessage} on malformed input: a ParseError with a short reason, the status to answer and,
    for requests, a partial message.
    """

    def assertParseError(self, data, status=400, partial=True, **kwargs):
        """
        Parsing C{data} fails with C{status}, a clean reason, and a partial request iff C{partial}.
        """
        error = self.assertRaises(ParseError, parseMessage, data, **kwargs)
        self.assertEqual(error.status, status)
        self.assertTrue(error.reason)
        self.assertNotIn("\r", error.reason)
        self.assertNotIn("\n", error.reason)
        self.assertEqual(str(error), error.reason)
        if partial:
            self.assertIsInstance(error.message, Request)
        else:
            self.assertIsNone(error.message)
        return error

    def test_emptyDatagram(self):
        """
        Nothing, or only CRLFs, is not a message.
        """
        self.assertParseError(b"", partial=False)
        self.assertParseError(b"\r\n\r\n", partial=False)

    def test_missingEmptyLine(self):
        """
        Header fields not ended by an empty line are rejected, with the headers read so far.
        """
        error = self.assertParseError(INVITE.split(b"\r\n\r\n")[0] + b"\r\n")
        self.assertEqual(error.message.callId, "a84b4c76e66710@pc33.atlanta.example.com")

    def test_contentLengthLargerThanDatagram(self):
        """
        A Content-Length beyond the end of the datagram is a 400, answerable (RFC 4475 section 3.1.2.2).
        """
        error = self.assertParseError(replaceOnce(INVITE, b"Content-Length: 4", b"Content-Length: 9999"))
        self.assertEqual(error.message.cseq(), (314159, "INVITE"))
        self.assertEqual(error.message.body, b"")

    def test_negativeOrNonNumericContentLength(self):
        """
        A Content-Length that is not 1*DIGIT is rejected (RFC 4475 section 3.1.2.3).
        """
        for value in [b"-999", b"4x", b"", b"0x4", b"\xd9\xa4"]:
            self.assertParseError(replaceOnce(INVITE, b"Content-Length: 4", b"Content-Length: " + value))

    def test_hugeContentLength(self):
        """
        A Content-Length with a thousand digits is just too large, not a crash.
        """
        self.assertParseError(replaceOnce(INVITE, b"Content-Length: 4", b"Content-Length: " + b"9" * 1000))

    def test_conflictingContentLengths(self):
        """
        Two Content-Length headers make the framing ambiguous (RFC 4475 section 3.3.9).
        """
        self.assertParseError(replaceOnce(INVITE, b"Content-Length: 4\r\n", b"Content-Length: 4\r\nl: 3\r\n"))

    def test_headerLineWithoutColon(self):
        """
        A header line without colon is an error; the partial message still has the headers around it.
        """
        error = self.assertParseError(replaceOnce(INVITE, b"Max-Forwards: 70\r\n", b"Max-Forwards 70\r\n"))
        self.assertEqual(error.reason, "malformed header line")
        self.assertEqual(error.message.topVia.branch, "z9hG4bK776asdhds")
        self.assertEqual(error.message.cseq(), (314159, "INVITE"))

    def test_badHeaderNames(self):
        """
        Header names must be tokens: no spaces inside, no empty name, no leading whitespace.
        """
        for line in [b"Max Forwards: 70", b": 70", b"Max-Forwards\x00: 70", b"M\xc3\xa4x: 70"]:
            self.assertParseError(replaceOnce(INVITE, b"Max-Forwards: 70", line))
        self.assertParseError(replaceOnce(INVITE, b"SIP/2.0\r\nVia", b"SIP/2.0\r\n Via"))

    def test_bareLineBreaks(self):
        """
        A bare LF or CR inside the header section is not a line end and is rejected (in the start line,
        without a partial message).
        """
        self.assertParseError(replaceOnce(INVITE, b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\nX: y\r\n"))
        self.assertParseError(replaceOnce(INVITE, b"Max-Forwards: 70\r\n", b"Max-Forwards: 7\r0\r\n"))
        self.assertParseError(replaceOnce(INVITE, b"SIP/2.0\r\n", b"SIP/2.0\n\r\n"), partial=False)

    def test_requestLineWhitespace(self):
        """
        Extra or trailing spaces in the Request-Line are rejected but still answerable (RFC 4475 sections
        3.1.2.9 and 3.1.2.10).
        """
        for line in [b"INVITE  sip:bob@biloxi.example.com  SIP/2.0", b"INVITE sip:bob@biloxi.example.com SIP/2.0 ",
                     b"INVITE\tsip:bob@biloxi.example.com SIP/2.0", b" INVITE sip:bob@biloxi.example.com SIP/2.0"]:
            error = self.assertParseError(replaceOnce(INVITE, b"INVITE sip:bob@biloxi.example.com SIP/2.0", line))
            self.assertEqual(error.message.method, "INVITE")

    def test_requestLineIncomplete(self):
        """
        A Request-Line with fewer than three elements is rejected without a partial message.
        """
        self.assertParseError(replaceOnce(INVITE, b"INVITE sip:bob@biloxi.example.com SIP/2.0", b"INVITE"),
                              partial=False)

    def test_badMethod(self):
        """
        A method that is not a token is rejected.
        """
        self.assertParseError(replaceOnce(INVITE, b"INVITE sip", b"INV:TE sip"), partial=False)

    def test_malformedRequestURI(self):
        """
        A Request-URI in angle brackets is rejected (RFC 4475 section 3.1.2.7); the partial message has no URI.
        """
        error = self.assertParseError(replaceOnce(INVITE, b"sip:bob@biloxi.example.com SIP",
                                               b"<sip:bob@biloxi.example.com> SIP"))
        self.assertIsNone(error.message.uri)
        self.assertEqual(error.reason, "malformed Request-URI")

    def test_malformedVersion(self):
        """
        A version that is not C{SIP/digits.digits} is a syntax error, not a 505.
        """
        for version in [b"SIP/2", b"HTTP/1.1", b"SIP/2.0a", b"SIP/.0"]:
            self.assertParseError(replaceOnce(INVITE, b" SIP/2.0\r\n", b" " + version + b"\r\n"))

    def test_badStatusLines(self):
        """
        Status codes outside 100-699 or not three digits are rejected; a response is never answered.
        """
        for code in [b"4294967301", b"099", b"700", b"20", b"2x0", b"\xd9\xa2\xd9\xa0\xd9\xa0"]:
            self.assertParseError(replaceOnce(RINGING, b"180", code), partial=False)
        self.assertParseError(replaceOnce(RINGING, b"SIP/2.0 180", b"SIP/2 180"), partial=False)

    def test_responseHeaderErrorNotAnswerable(self):
        """
        A malformed response header gives an error without a message to answer.
        """
        self.assertParseError(replaceOnce(RINGING, b"CSeq: ", b"CSeq "), partial=False)

    def test_tooLarge(self):
        """
        A message over maxSize is a 413, with the partial request so the server can answer.
        """
        error = self.assertParseError(INVITE, status=413, maxSize=len(INVITE) - 1)
        self.assertEqual(error.message.method, "INVITE")
        self.assertEqual(parseMessage(INVITE, maxSize=len(INVITE)).body, b"v=0\n")
        self.assertEqual(DEFAULT_MAX_SIZE, 65535)

    def test_tooLargeHeaderNotScanned(self):
        """
        When even the header section exceeds maxSize, the 413 comes without reading it.
        """
        self.assertParseError(INVITE + b"x" * 100, status=413, partial=False, maxSize=50)

    def test_streamModeNeedsExactFraming(self):
        """
        With datagram=False, Content-Length is mandatory and no octets may follow the body.
        """
        self.assertParseError(replaceOnce(INVITE, b"Content-Length: 4\r\n", b""), datagram=False)
        self.assertParseError(INVITE + b"x", datagram=False)

    def test_reasonIsSanitised(self):
        """
        A ParseError reason never carries control characters, whatever it was built from.
        """
        error = ParseError("bad\r\nVia: injected\x00", 400)
        self.assertEqual(error.reason, "bad??Via: injected?")
        self.assertEqual((error.status, error.message, error.parsed), (400, None, []))


class SerializationTests(SynchronousTestCase):
    """
    C{toBytes} (RFC 3261 section 7).
    """

    def test_requestRoundTrip(self):
        """
        A parsed request in canonical form is written back byte for byte.
        """
        self.assertEqual(parseMessage(INVITE).toBytes(), INVITE)
        self.assertEqual(parseMessage(RINGING).toBytes(), RINGING)

    def test_builtRequest(self):
        """
        A request built by code is written with one line per value and a Content-Length.
        """
        request = Request("OPTIONS", URI.parse("sip:carol@chicago.com"),
                          Headers([("Via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2"),
                                   ("t", "<sip:carol@chicago.com>")]), b"hi")
        self.assertEqual(request.toBytes(),
                         b"OPTIONS sip:carol@chicago.com SIP/2.0\r\n"
                         b"Via: SIP/2.0/UDP a;branch=z9hG4bK1\r\n"
                         b"Via: SIP/2.0/UDP b;branch=z9hG4bK2\r\n"
                         b"To: <sip:carol@chicago.com>\r\n"
                         b"Content-Length: 2\r\n\r\nhi")

    def test_contentLengthCorrected(self):
        """
        A wrong Content-Length is replaced in place and duplicates are dropped.
        """
        request = parseMessage(INVITE)
        request.body = b"v=0\r\no=x\r\n"
        request.headers.add("Content-Length", "4")
        data = request.toBytes()
        self.assertEqual(data.count(b"Content-Length"), 1)
        self.assertIn(b"Content-Type: application/sdp\r\nContent-Length: 10\r\n\r\nv=0", data)

    def test_response(self):
        """
        A response is written with its status line; a CR or LF in the reason becomes a space.
        """
        response = Response(486, "Busy\r\nHere", Headers([("CSeq", "1 INVITE")]))
        self.assertEqual(response.toBytes(), b"SIP/2.0 486 Busy  Here\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")

    def test_copyIsDeep(self):
        """
        Changing the headers of a copy leaves the original alone.
        """
        request = parseMessage(INVITE)
        copy = request.copy()
        self.assertEqual(copy, request)
        copy.headers.prepend("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKx")
        self.assertNotEqual(copy, request)
        self.assertEqual(len(request.vias()), 1)
        response = parseMessage(RINGING)
        self.assertEqual(response.copy(), response)


class AccessorTests(SynchronousTestCase):
    """
    The on-demand accessors of requests and responses.
    """

    def test_viasInOrder(self):
        """
        vias() lists every Via value, split lines and combined lines alike, top first.
        """
        request = parseMessage(replaceOnce(INVITE, b"Via: SIP/2.0/UDP pc33",
                                        b"v: SIP/2.0/TCP p1;branch=z9hG4bK1, SIP/2.0/TLS p2:5061;branch=z9hG4bK2\r\n"
                                        b"Via: SIP/2.0/UDP pc33"))
        self.assertEqual([(via.transport, via.host, via.port) for via in request.vias()],
                         [("TCP", "p1", None), ("TLS", "p2", 5061), ("UDP", "pc33.atlanta.example.com", None)])
        self.assertEqual(request.topVia.host, "p1")

    def test_noVia(self):
        """
        Without Via, topVia is None and vias() is empty.
        """
        request = Request("OPTIONS", URI.parse("sip:a@b"))
        self.assertIsNone(request.topVia)
        self.assertEqual(request.vias(), [])
        self.assertIsNone(request.callId)

    def test_malformedAccessorsRaise(self):
        """
        Accessors raise ParseError for malformed or missing values.
        """
        request = Request("OPTIONS", URI.parse("sip:a@b"), Headers([("Via", "junk"), ("CSeq", "x OPTIONS"),
                                                                   ("Contact", "<sip:a@b")]))
        for accessor in [request.vias, lambda: request.topVia, request.cseq, request.fromAddress,
                         request.toAddress, request.contacts]:
            self.assertRaises(ParseError, accessor)

    def test_cseqLimits(self):
        """
        The CSeq number must fit in 32 bits; leading zeros and folded whitespace are fine.
        """
        def cseq(value):
            return Request("OPTIONS", URI.parse("sip:a@b"), Headers([("CSeq", value)])).cseq()
        self.assertEqual(cseq("0009   OPTIONS"), (9, "OPTIONS"))
        self.assertEqual(cseq("4294967295 OPTIONS"), (4294967295, "OPTIONS"))
        self.assertRaises(ParseError, cseq, "4294967296 OPTIONS")
        self.assertRaises(ParseError, cseq, "1 OPTIONS x")
        self.assertRaises(ParseError, cseq, "OPTIONS")

    def test_contactWildcard(self):
        """
        C{Contact: *} gives [WILDCARD]; C{*} among other contacts is an error; no Contact gives [].
        """
        def contacts(*values):
            return Request("REGISTER", URI.parse("sip:b"), Headers([("Contact", v) for v in values])).contacts()
        self.assertEqual(contacts("*"), [WILDCARD])
        self.assertTrue(contacts("*")[0].isWildcard)
        self.assertRaises(ParseError, contacts, "*", "<sip:a@b>")
        self.assertRaises(ParseError, contacts, "*, <sip:a@b>")
        self.assertEqual(contacts(), [])

    def test_routes(self):
        """
        routes() and recordRoutes() parse each value in order.
        """
        request = parseMessage(replaceOnce(INVITE, b"Max-Forwards: 70\r\n",
                                        b"Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
                                        b"Record-Route: <sip:p3.example.com;lr>\r\nMax-Forwards: 70\r\n"))
        self.assertEqual([str(route.uri) for route in request.routes()],
                         ["sip:p1.example.com;lr", "sip:p2.example.com;lr"])
        self.assertEqual(request.recordRoutes()[0].uri.host, "p3.example.com")

    def test_maxForwards(self):
        """
        maxForwards() is None when absent and rejects values outside 0-255.
        """
        def maxForwards(*values):
            return Request("OPTIONS", URI.parse("sip:b"),
                           Headers([("Max-Forwards", v) for v in values])).maxForwards()
        self.assertIsNone(maxForwards())
        self.assertEqual(maxForwards("0068"), 68)
        for values in [("256",), ("-1",), ("x",), ("1", "2")]:
            self.assertRaises(ParseError, maxForwards, *values)


class MakeResponseTests(SynchronousTestCase):
    """
    L{makeResponse} (RFC 3261 section 8.2.6).
    """

    def test_copiesTransactionHeaders(self):
        """
        Via (all, in order), From, To, Call-ID and CSeq are copied; nothing else is.
        """
        request = parseMessage(replaceOnce(INVITE, b"Via: SIP/2.0/UDP pc33",
                                        b"Via: SIP/2.0/UDP proxy;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP pc33"))
        response = makeResponse(request, 100)
        self.assertEqual(response.toBytes(),
                         b"SIP/2.0 100 Trying\r\n"
                         b"Via: SIP/2.0/UDP proxy;branch=z9hG4bK1\r\n"
                         b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
                         b"To: Bob <sip:bob@biloxi.example.com>\r\n"
                         b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
                         b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
                         b"CSeq: 314159 INVITE\r\n"
                         b"Content-Length: 0\r\n\r\n")

    def test_toTagAddedOnlyIfAbsent(self):
        """
        The To tag is added when given and To has none, and never replaces an existing one.
        """
        request = parseMessage(INVITE)
        self.assertEqual(makeResponse(request, 180, toTag="a6c85cf").toAddress().tag, "a6c85cf")
        tagged = makeResponse(parseMessage(RINGING.replace(b"SIP/2.0 180 Ringing", b"BYE sip:a@b SIP/2.0")),
                              200, toTag="other")
        self.assertEqual(tagged.toAddress().tag, "a6c85cf")

    def test_reasonPhrases(self):
        """
        The default reason phrase comes from REASONS, or is the generic one of the status class.
        """
        request = parseMessage(INVITE)
        self.assertEqual(makeResponse(request, 486).reason, "Busy Here")
        self.assertEqual(makeResponse(request, 499).reason, "Bad Request")
        self.assertEqual(makeResponse(request, 200, "Fine").reason, "Fine")
        self.assertEqual(REASONS[416], "Unsupported URI Scheme")

    def test_answersPartialMessage(self):
        """
        The partial message of a ParseError can be answered, even with an unparseable To.
        """
        error = self.assertRaises(ParseError, parseMessage, replaceOnce(
            replaceOnce(INVITE, b"Content-Length: 4", b"Content-Length: 9999"),
            b"To: Bob <sip:bob@biloxi.example.com>", b'To: "Bob <sip:bob@biloxi.example.com>'))
        response = makeResponse(error.message, error.status, toTag="t1")
        self.assertEqual(response.code, 400)
        self.assertEqual(response.headers.get("To"), '"Bob <sip:bob@biloxi.example.com>')
        self.assertEqual(response.topVia.branch, "z9hG4bK776asdhds")


class StreamParserTests(SynchronousTestCase):
    """
    L{StreamParser}: framing by Content-Length on streams (RFC 3261 section 18.3) and CRLF keep-alives
    (RFC 5626 section 3.5.1).
    """

    def test_singleMessage(self):
        """
        One whole message gives one item equal to the datagram parse.
        """
        self.assertEqual(StreamParser().feed(INVITE), [parseMessage(INVITE)])

    def test_splitAtEveryByteBoundary(self):
        """
        Cutting the stream anywhere, or feeding byte by byte, gives the same messages.
        """
        stream = INVITE + RINGING
        expected = [parseMessage(INVITE), parseMessage(RINGING)]
        for cut in range(len(stream) + 1):
            parser = StreamParser()
            self.assertEqual(parser.feed(stream[:cut]) + parser.feed(stream[cut:]), expected, cut)
        parser = StreamParser()
        items = []
        for index in range(len(stream)):
            items.extend(parser.feed(stream[index:index + 1]))
        self.assertEqual(items, expected)

    def test_pipelined(self):
        """
        Several messages in one chunk, with a body containing CRLF-CRLF, are framed by Content-Length.
        """
        body = b"\r\n\r\nx\r\n\r\n"
        tricky = replaceOnce(INVITE, b"Content-Length: 4\r\n\r\nv=0\n", b"Content-Length: 9\r\n\r\n" + body)
        items = StreamParser().feed(INVITE + tricky + RINGING + INVITE)
        self.assertEqual([type(item) for item in items], [Request, Request, Response, Request])
        self.assertEqual(items[1].body, body)

    def test_keepalivePing(self):
        """
        A CRLF-CRLF between messages is a ping, also when it arrives in pieces.
        """
        parser = StreamParser()
        self.assertEqual(parser.feed(b"\r\n\r\n"), [KEEPALIVE_PING])
        self.assertEqual(parser.feed(b"\r\n"), [])
        self.assertEqual(parser.feed(b"\r"), [])
        self.assertEqual(parser.feed(b"\n" + INVITE + b"\r\n\r\n"), [KEEPALIVE_PING, parseMessage(INVITE),
                                                                    KEEPALIVE_PING])
        self.assertEqual(repr(KEEPALIVE_PING), "KEEPALIVE_PING")

    def test_pongDropped(self):
        """
        A lone CRLF (a pong) before a message is dropped.
        """
        self.assertEqual(StreamParser().feed(b"\r\n" + RINGING), [parseMessage(RINGING)])
        self.assertEqual(StreamParser().feed(b"\r\n\r\n\r\n" + RINGING), [KEEPALIVE_PING, parseMessage(RINGING)])

    def test_missingContentLength(self):
        """
        Content-Length is mandatory on a stream; the error carries the partial request.
        """
        error = self.assertRaises(ParseError, StreamParser().feed, replaceOnce(INVITE, b"Content-Length: 4\r\n", b""))
        self.assertEqual((error.status, error.message.method), (400, "INVITE"))

    def test_malformedHeaders(self):
        """
        Malformed headers on a stream are a 400.
        """
        error = self.assertRaises(ParseError, StreamParser().feed, replaceOnce(INVITE, b"To:", b"To"))
        self.assertEqual(error.status, 400)

    def test_oversizedHeaderBlock(self):
        """
        Headers growing past maxSize without an empty line are a 413 without waiting for more.
        """
        parser = StreamParser(maxSize=1000)
        self.assertEqual(parser.feed(b"INVITE sip:a@b SIP/2.0\r\n"), [])
        error = self.assertRaises(ParseError, parser.feed, b"X-Padding: " + b"x" * 1000)
        self.assertEqual((error.status, error.message), (413, None))

    def test_oversizedBody(self):
        """
        A Content-Length taking the message past maxSize is a 413 with the partial request.
        """
        data = replaceOnce(INVITE, b"Content-Length: 4", b"Content-Length: 1000000")
        error = self.assertRaises(ParseError, StreamParser().feed, data)
        self.assertEqual((error.status, error.message.method), (413, "INVITE"))

    def test_errorIsSticky(self):
        """
        After an error the stream stays unusable; items framed before the error are in error.parsed.
        """
        parser = StreamParser()
        error = self.assertRaises(ParseError, parser.feed, INVITE + b"garbage\r\n\r\n")
        self.assertEqual(error.parsed, [parseMessage(INVITE)])
        self.assertIs(self.assertRaises(ParseError, parser.feed, INVITE), error)

    def test_longStreamStaysLinear(self):
        """
        Thousands of pipelined messages fed in odd-sized chunks all come out, in order.
        """
        stream = (INVITE + RINGING) * 500
        parser = StreamParser()
        items = []
        for index in range(0, len(stream), 997):
            items.extend(parser.feed(stream[index:index + 997]))
        self.assertEqual(len(items), 1000)
        self.assertEqual(items[-1], parseMessage(RINGING))

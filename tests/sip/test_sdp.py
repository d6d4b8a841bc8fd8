"""
Tests for L{appliance.sip.sdp}: RFC 4566 parsing and serialization, the RFC 3264 offer / answer helpers and
the C{a=drm} attribute.
"""

import attrs
from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from appliance.sip.sdp import (
    MAX_MEDIA,
    MAX_SIZE,
    Connection,
    DRMOffer,
    MediaDescription,
    Origin,
    RTPMap,
    SDPError,
    SessionDescription,
    Timing,
    answer,
    answerDRM,
    direction,
    drmOffers,
    formatDRM,
    makeOffer,
    parseDRM,
    parseSDP,
    withDRM,
)

# RFC 4566 section 5, the example.
RFC4566_EXAMPLE = (
    b"v=0\r\n"
    b"o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5\r\n"
    b"s=SDP Seminar\r\n"
    b"i=A Seminar on the session description protocol\r\n"
    b"u=http://www.example.com/seminars/sdp.pdf\r\n"
    b"e=j.doe@example.com (Jane Doe)\r\n"
    b"c=IN IP4 224.2.17.12/127\r\n"
    b"t=2873397496 2873404696\r\n"
    b"a=recvonly\r\n"
    b"m=audio 49170 RTP/AVP 0\r\n"
    b"m=video 51372 RTP/AVP 99\r\n"
    b"a=rtpmap:99 h263-1998/90000\r\n"
)

def lines(text):
    """
    SDP text as written in an RFC (indented, LF) as CRLF octets.
    """
    return b"".join(line.strip().encode("ascii") + b"\r\n" for line in text.strip().splitlines())


# RFC 3264 section 10.1: Alice's offer, Bob's answer, Bob's re-offer.
RFC3264_OFFER = lines("""
    v=0
    o=alice 2890844526 2890844526 IN IP4 host.anywhere.com
    s=
    c=IN IP4 host.anywhere.com
    t=0 0
    m=audio 49170 RTP/AVP 0
    a=rtpmap:0 PCMU/8000
    m=video 51372 RTP/AVP 31
    a=rtpmap:31 H261/90000
    m=video 53000 RTP/AVP 32
    a=rtpmap:32 MPV/90000
""")

RFC3264_ANSWER = lines("""
    v=0
    o=bob 2890844730 2890844730 IN IP4 host.example.com
    s=
    c=IN IP4 host.example.com
    t=0 0
    m=audio 49920 RTP/AVP 0
    a=rtpmap:0 PCMU/8000
    m=video 0 RTP/AVP 31
    m=video 53000 RTP/AVP 32
    a=rtpmap:32 MPV/90000
""")

RFC3264_REOFFER = lines("""
    v=0
    o=bob 2890844730 2890844731 IN IP4 host.example.com
    s=
    c=IN IP4 host.example.com
    t=0 0
    m=audio 65422 RTP/AVP 0
    a=rtpmap:0 PCMU/8000
    m=video 0 RTP/AVP 31
    m=video 53000 RTP/AVP 32
    a=rtpmap:32 MPV/90000
    m=audio 51434 RTP/AVP 110
    a=rtpmap:110 telephone-events/8000
    a=recvonly
""")

# RFC 3264 section 10.2: Alice's inactive offer of three codecs, Bob's answer with two of them, Alice's
# updated offer of one and Bob's answer to it.
RFC3264_ONE_OF_N = [lines(text) for text in ("""
    v=0
    o=alice 2890844526 2890844526 IN IP4 host.anywhere.com
    s=
    c=IN IP4 host.anywhere.com
    t=0 0
    m=audio 62986 RTP/AVP 0 4 18
    a=rtpmap:0 PCMU/8000
    a=rtpmap:4 G723/8000
    a=rtpmap:18 G729/8000
    a=inactive
""", """
    v=0
    o=bob 2890844730 2890844731 IN IP4 host.example.com
    s=
    c=IN IP4 host.example.com
    t=0 0
    m=audio 54344 RTP/AVP 0 4
    a=rtpmap:0 PCMU/8000
    a=rtpmap:4 G723/8000
    a=inactive
""", """
    v=0
    o=alice 2890844526 2890844527 IN IP4 host.anywhere.com
    s=
    c=IN IP4 host.anywhere.com
    t=0 0
    m=audio 62986 RTP/AVP 4
    a=rtpmap:4 G723/8000
    a=sendrecv
""", """
    v=0
    o=bob 2890844730 2890844732 IN IP4 host.example.com
    s=
    c=IN IP4 host.example.com
    t=0 0
    m=audio 54344 RTP/AVP 4
    a=rtpmap:4 G723/8000
    a=sendrecv
""")]

HEAD = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"


def audio(*lines, formats=b"0 8 101", head=HEAD):
    """
    A description with one audio stream on port 4000 and the given media-level lines.
    """
    return parseSDP(head + b"m=audio 4000 RTP/AVP " + formats + b"\r\n"
                    + b"".join(line + b"\r\n" for line in lines))


class ParseTests(SynchronousTestCase):
    """
    L{parseSDP} and L{SessionDescription.toBytes} (RFC 4566 section 5).
    """

    def test_rfc4566Example(self):
        """
        Every field of the RFC 4566 section 5 example is read.
        """
        description = parseSDP(RFC4566_EXAMPLE)
        self.assertEqual(description.version, 0)
        self.assertEqual(description.origin,
                         Origin("jdoe", 2890844526, 2890842807, "IN", "IP4", "10.47.16.5"))
        self.assertEqual(description.name, "SDP Seminar")
        self.assertEqual(description.information, "A Seminar on the session description protocol")
        self.assertEqual(description.uri, "http://www.example.com/seminars/sdp.pdf")
        self.assertEqual(description.emails, ("j.doe@example.com (Jane Doe)",))
        self.assertEqual(description.connection, Connection("IN", "IP4", "224.2.17.12/127"))
        self.assertEqual(description.times, (Timing(2873397496, 2873404696),))
        self.assertEqual(description.attributes, (("recvonly", None),))
        self.assertEqual([(m.media, m.port, m.proto, m.formats) for m in description.media],
                         [("audio", 49170, "RTP/AVP", ("0",)), ("video", 51372, "RTP/AVP", ("99",))])
        self.assertEqual(description.media[1].attributes, (("rtpmap", "99 h263-1998/90000"),))
        self.assertIsNone(description.media[0].connection)
        self.assertEqual(description.connectionFor(description.media[0]), description.connection)

    def test_rfc4566ExampleWrittenBackIdentically(self):
        """
        The RFC 4566 example, already in canonical order with CRLF, is written back octet for octet.
        """
        self.assertEqual(parseSDP(RFC4566_EXAMPLE).toBytes(), RFC4566_EXAMPLE)

    def test_lineFeedsAloneAccepted(self):
        """
        LF-only line ends parse to the same description as CRLF.
        """
        self.assertEqual(parseSDP(RFC4566_EXAMPLE.replace(b"\r\n", b"\n")), parseSDP(RFC4566_EXAMPLE))

    def test_strAccepted(self):
        """
        A str parses like its UTF-8 encoding, non-ASCII text included.
        """
        data = RFC4566_EXAMPLE.replace(b"SDP Seminar", "S\u00e9minaire".encode("utf-8"))
        self.assertEqual(parseSDP(data.decode("utf-8")), parseSDP(data))
        self.assertEqual(parseSDP(data).name, "S\u00e9minaire")

    def test_blanksTolerated(self):
        """
        Trailing blanks, blank lines and runs of spaces between fields are tolerated.
        """
        data = RFC4566_EXAMPLE.replace(b"IN IP4 10", b"IN  IP4 10").replace(b"t=2873397496 2873404696",
                                                                            b"t=2873397496 2873404696  ")
        self.assertEqual(parseSDP(data + b"\r\n\r\n"), parseSDP(RFC4566_EXAMPLE))

    def test_missingTimingReadAsZero(self):
        """
        A description without t= is read as C{t=0 0}, which is written back.
        """
        description = parseSDP(HEAD.replace(b"t=0 0\r\n", b""))
        self.assertEqual(description.times, (Timing(0, 0),))
        self.assertIn(b"\r\nt=0 0\r\n", description.toBytes())

    def test_optionalLines(self):
        """
        p=, b=, r=, z=, k=, port counts and media i= / c= / b= / k= lines are read and written back in order.
        """
        data = (b"v=0\r\no=- 1 2 IN IP6 2001:db8::1\r\ns=x\r\np=+1 617 555-6011\r\nc=IN IP6 2001:db8::2\r\n"
                b"b=CT:128\r\nt=1 2\r\nr=7d 1h 0 25h\r\nt=3 4\r\nz=2882844526 -1h\r\nk=prompt\r\n"
                b"m=audio 4000/2 RTP/AVP 0\r\ni=voice\r\nc=IN IP6 2001:db8::3\r\nb=AS:64\r\nk=clear:x\r\n"
                b"a=ptime:20\r\n")
        description = parseSDP(data)
        self.assertEqual(description.phones, ("+1 617 555-6011",))
        self.assertEqual(description.bandwidths, (("CT", 128),))
        self.assertEqual(description.times, (Timing(1, 2, ["7d 1h 0 25h"]), Timing(3, 4)))
        self.assertEqual((description.timeZones, description.key), ("2882844526 -1h", "prompt"))
        media = description.media[0]
        self.assertEqual((media.port, media.portCount, media.information, media.key), (4000, 2, "voice", "clear:x"))
        self.assertEqual(media.connection, Connection("IN", "IP6", "2001:db8::3"))
        self.assertEqual(media.bandwidths, (("AS", 64),))
        self.assertEqual(description.toBytes(), data)

    def test_attributeForms(self):
        """
        A property attribute has value C{None}, C{a=name:} the empty value, and the value keeps its colons.
        """
        description = audio(b"a=sendonly", b"a=x-empty:", b"a=x-url:sip:a@b:5060")
        self.assertEqual(description.media[0].attributes,
                         (("sendonly", None), ("x-empty", ""), ("x-url", "sip:a@b:5060")))
        self.assertEqual(description.media[0].attributeValues("x-url"), ("sip:a@b:5060",))
        self.assertTrue(description.media[0].hasAttribute("x-empty"))
        self.assertFalse(description.media[0].hasAttribute("x-none"))
        self.assertEqual(parseSDP(description.toBytes()), description)

    def test_emptySessionNameWrittenAsSpace(self):
        """
        An empty s= is read as the empty name and written C{s= } as RFC 4566 section 5.3 suggests.
        """
        description = parseSDP(RFC3264_OFFER)
        self.assertEqual(description.name, "")
        self.assertIn(b"\r\ns= \r\n", description.toBytes())

    def test_builtDescriptionRoundTrips(self):
        """
        A description built from objects parses back equal to itself.
        """
        description = SessionDescription(
            origin=Origin("-", 5, 6, "IN", "IP4", "192.0.2.9"), name="call",
            connection=Connection.forAddress("192.0.2.9"),
            media=[MediaDescription("audio", 7000, "RTP/AVP", ["0"], attributes=[("inactive", None)])])
        self.assertEqual(parseSDP(description.toBytes()), description)

    def test_serializationRefusesLineBreaks(self):
        """
        A value containing CR, LF or NUL cannot be written, so no line can be injected.
        """
        for bad in ("a\r\nm=video 1 RTP/AVP 0", "a\nb", "a\rb", "a\0b"):
            description = SessionDescription(origin=Origin("-", 1, 1), name=bad, connection=Connection.forAddress("::1"))
            self.assertRaises(SDPError, description.toBytes)

    def test_connectionForAddress(self):
        """
        C{Connection.forAddress} picks IP4 or IP6 from the address; host names count as IP4.
        """
        self.assertEqual(Connection.forAddress("2001:db8::1"), Connection("IN", "IP6", "2001:db8::1"))
        self.assertEqual(Connection.forAddress("pbx.example.test"), Connection("IN", "IP4", "pbx.example.test"))

    def test_maximumMediaAccepted(self):
        """
        Exactly L{MAX_MEDIA} media sections are accepted.
        """
        data = HEAD + b"m=audio 0 RTP/AVP 0\r\n" * MAX_MEDIA
        self.assertEqual(len(parseSDP(data).media), MAX_MEDIA)


class ParseErrorTests(SynchronousTestCase):
    """
    L{parseSDP} refuses malformed descriptions with an L{SDPError} that says why.
    """

    def assertRefused(self, data, reason):
        """
        C{data} raises an L{SDPError} whose reason contains C{reason}.
        """
        error = self.assertRaises(SDPError, parseSDP, data)
        self.assertIn(reason, error.reason)
        self.assertIsInstance(error, ValueError)
        return error

    def test_emptyInput(self):
        """
        Empty input is not a description.
        """
        self.assertRefused(b"", "missing")

    def test_versionMustComeFirst(self):
        """
        A description must start with v= (RFC 4566 section 5).
        """
        self.assertRefused(HEAD[5:] + b"v=0\r\n", "where v= is expected")

    def test_originMustBeSecond(self):
        """
        o= must follow v= directly.
        """
        self.assertRefused(b"v=0\r\ns=-\r\no=- 1 1 IN IP4 192.0.2.1\r\nt=0 0\r\n", "where o= is expected")

    def test_sessionNameMustBeThird(self):
        """
        s= must follow o= directly.
        """
        self.assertRefused(HEAD.replace(b"s=-\r\nc=IN IP4 192.0.2.1", b"c=IN IP4 192.0.2.1\r\ns=-"),
                           "where s= is expected")

    def test_onlyVersionZero(self):
        """
        Only SDP version 0 exists.
        """
        self.assertRefused(HEAD.replace(b"v=0", b"v=1"), "version")

    def test_repeatedOrigin(self):
        """
        A second o= line is refused.
        """
        self.assertRefused(HEAD + b"o=- 1 1 IN IP4 192.0.2.1\r\n", "more than one o=")

    def test_sessionLineAfterMedia(self):
        """
        A session-level line (t=) after an m= line is out of order.
        """
        self.assertRefused(HEAD + b"m=audio 1 RTP/AVP 0\r\nt=0 0\r\n", "t= line in a media section")

    def test_unknownLineType(self):
        """
        An unknown type letter makes the whole description unusable (RFC 4566 section 5).
        """
        self.assertRefused(HEAD + b"x=1\r\n", "unknown line")

    def test_spaceBeforeEquals(self):
        """
        Whitespace on either side of the type letter is refused.
        """
        self.assertRefused(HEAD + b"a =recvonly\r\n", "malformed")

    def test_repeatedConnection(self):
        """
        Single-valued lines (here c=) may appear once per section.
        """
        self.assertRefused(HEAD + b"c=IN IP4 192.0.2.2\r\n", "more than one c=")
        self.assertRefused(HEAD + b"m=audio 1 RTP/AVP 0\r\ni=a\r\ni=b\r\n", "more than one i=")

    def test_repeatWithoutTiming(self):
        """
        r= must follow a t= or another r= line.
        """
        self.assertRefused(HEAD + b"a=x\r\nr=1d 1h 0\r\n", "r= line not after")

    def test_mediaWithoutConnection(self):
        """
        A stream with no c= line of its own or at session level is refused (RFC 4566 section 5.7).
        """
        self.assertRefused(HEAD.replace(b"c=IN IP4 192.0.2.1\r\n", b"") + b"m=audio 1 RTP/AVP 0\r\n", "no c=")

    def test_badMediaLines(self):
        """
        Bad ports, port counts, protocols and missing formats are refused.
        """
        for line, reason in [(b"m=audio 65536 RTP/AVP 0", "port"), (b"m=audio -1 RTP/AVP 0", "port"),
                             (b"m=audio 1/x RTP/AVP 0", "port count"), (b"m=audio 1 RTP//AVP 0", "proto"),
                             (b"m=audio 1 RTP/AVP", "m= line"), (b"m=au/dio 1 RTP/AVP 0", "media type")]:
            self.assertRefused(HEAD + line + b"\r\n", reason)

    def test_badOrigin(self):
        """
        o= needs six fields with decimal session id and version.
        """
        self.assertRefused(HEAD.replace(b"o=- 1 1 IN", b"o=- 1 IN"), "o= line")
        self.assertRefused(HEAD.replace(b"o=- 1 1", b"o=- x 1"), "session id")
        self.assertRefused(HEAD.replace(b"o=- 1 1", b"o=- 1 " + b"9" * 5000), "session version")

    def test_badConnectionBandwidthTiming(self):
        """
        c= needs three fields, b= a type and a decimal, t= two decimals.
        """
        self.assertRefused(HEAD.replace(b"c=IN IP4 192.0.2.1", b"c=IN 192.0.2.1"), "c= line")
        self.assertRefused(HEAD + b"b=AS\r\n", "b= line")
        self.assertRefused(HEAD + b"b=AS:x\r\n", "bandwidth")
        self.assertRefused(HEAD.replace(b"t=0 0", b"t=0"), "t= line")

    def test_badAttributeName(self):
        """
        An attribute name must be a token.
        """
        self.assertRefused(HEAD + b"a=:x\r\n", "attribute name")
        self.assertRefused(HEAD + b"a=x y:z\r\n", "attribute name")

    def test_notUTF8(self):
        """
        Octets that are not UTF-8 are refused, as is a str with a lone surrogate.
        """
        self.assertRefused(HEAD + b"a=x:\xff\r\n", "UTF-8")
        self.assertRefused(HEAD.decode("ascii") + "a=x:\udcff\r\n", "UTF-8")

    def test_bareCarriageReturn(self):
        """
        A CR that does not end a line is refused.
        """
        self.assertRefused(HEAD + b"a=x\ra=y\r\n", "bare CR")

    def test_nul(self):
        """
        NUL is never allowed in SDP text.
        """
        self.assertRefused(HEAD + b"a=x:\0\r\n", "NUL")

    def test_tooLarge(self):
        """
        A description over L{MAX_SIZE} octets is refused before being read.
        """
        self.assertRefused(HEAD + b"a=x:" + b"y" * MAX_SIZE + b"\r\n", "larger than")

    def test_tooManyMedia(self):
        """
        More than L{MAX_MEDIA} media sections are refused.
        """
        self.assertRefused(HEAD + b"m=audio 0 RTP/AVP 0\r\n" * (MAX_MEDIA + 1), "media sections")

    def test_reasonIsSafe(self):
        """
        The reason of an error never carries control characters from the input.
        """
        error = self.assertRefused(HEAD.replace(b"o=- 1 1", b"o=- \x1b[31m 1"), "")
        self.assertNotIn("\x1b", error.reason)


class MediaHelperTests(SynchronousTestCase):
    """
    rtpmap / fmtp look-ups and direction attributes (RFC 4566 section 6; RFC 3551; RFC 3264 section 5.1).
    """

    def test_staticPayloadTypesWithoutRtpmap(self):
        """
        PCMU (0) and PCMA (8) are known without an rtpmap; an unknown dynamic type is not.
        """
        media = audio(formats=b"0 8 101").media[0]
        self.assertEqual(media.rtpmap(0), RTPMap(0, "PCMU", 8000))
        self.assertEqual(media.rtpmap(8), RTPMap(8, "PCMA", 8000))
        self.assertIsNone(media.rtpmap(101))
        self.assertEqual(media.codecs(), (RTPMap(0, "PCMU", 8000), RTPMap(8, "PCMA", 8000)))

    def test_dynamicRtpmapAndFmtp(self):
        """
        A dynamic type's rtpmap (with channels) and fmtp are found by number.
        """
        media = audio(b"a=rtpmap:101 telephone-event/8000", b"a=fmtp:101 0-15",
                      b"a=rtpmap:96 opus/48000/2", formats=b"96 101").media[0]
        self.assertEqual(media.rtpmap(101), RTPMap(101, "telephone-event", 8000))
        self.assertEqual(media.rtpmap(96), RTPMap(96, "opus", 48000, 2))
        self.assertEqual(str(media.rtpmap(96)), "96 opus/48000/2")
        self.assertEqual(media.fmtp(101), "0-15")
        self.assertIsNone(media.fmtp(96))
        self.assertEqual([rtpmap.payloadType for rtpmap in media.codecs()], [96, 101])

    def test_malformedRtpmap(self):
        """
        A malformed rtpmap raises L{SDPError} when looked up.
        """
        for line in (b"a=rtpmap:101 telephone-event", b"a=rtpmap:101 x/y", b"a=rtpmap:101 x/8000/1/2"):
            media = audio(line, formats=b"101").media[0]
            self.assertRaises(SDPError, media.rtpmap, 101)
            self.assertRaises(SDPError, media.codecs)

    def test_directionDefaultsToSendrecv(self):
        """
        Without a direction attribute the direction is sendrecv.
        """
        description = audio()
        self.assertEqual(direction(description, description.media[0]), "sendrecv")

    def test_mediaDirectionOverridesSession(self):
        """
        A media-level direction wins over the session-level one, which applies otherwise.
        """
        head = HEAD + b"a=sendonly\r\n"
        self.assertEqual(direction(audio(head=head), audio(head=head).media[0]), "sendonly")
        description = audio(b"a=inactive", head=head)
        self.assertEqual(direction(description, description.media[0]), "inactive")
        self.assertEqual(direction(description), "sendonly")


class DRMTests(SynchronousTestCase):
    """
    The C{a=drm:<type> <address> <port> <transport>} attribute.
    """

    def test_parseAndFormat(self):
        """
        A drm value parses into a L{DRMOffer} and formats back identically, for any address form.
        """
        for value, offer in [("adrm pbx.example.test 8443 TLS", DRMOffer("adrm", "pbx.example.test", 8443, "TLS")),
                             ("clearkey 192.0.2.1 443 HTTPS", DRMOffer("clearkey", "192.0.2.1", 443, "HTTPS")),
                             ("adrm 2001:db8::1 8443 TCP/TLS", DRMOffer("adrm", "2001:db8::1", 8443, "TCP/TLS")),
                             ("adrm 0.0.0.0 0 TLS", DRMOffer("adrm"))]:
            self.assertEqual(parseDRM(value), offer)
            self.assertEqual(formatDRM(offer), value)

    def test_malformedDRM(self):
        """
        Missing or extra fields, bad ports, bad characters and a missing value raise L{SDPError}.
        """
        for value in (None, "", "adrm", "adrm 192.0.2.1 8443", "adrm 192.0.2.1 8443 TLS x",
                      "adrm 192.0.2.1 65536 TLS", "adrm 192.0.2.1 -1 TLS", "adrm 192.0.2.1 port TLS",
                      "a/drm 192.0.2.1 1 TLS", "adrm host/x 1 TLS", "adrm 192.0.2.1 1 TLS/"):
            self.assertRaises(SDPError, parseDRM, value)

    def test_formatRefusesInvalidOffer(self):
        """
        An offer that would not parse back (a space in the address, a port out of range) cannot be written.
        """
        for offer in (DRMOffer("adrm", "a b"), DRMOffer("adrm", port=70000), DRMOffer("ad rm")):
            self.assertRaises(SDPError, formatDRM, offer)

    def test_hasServer(self):
        """
        An offer names a license server only with a non-zero address and port.
        """
        self.assertTrue(DRMOffer("adrm", "192.0.2.1", 8443).hasServer)
        for offer in (DRMOffer("adrm"), DRMOffer("adrm", "192.0.2.1", 0), DRMOffer("adrm", "::", 8443)):
            self.assertFalse(offer.hasServer)

    def test_drmOffersSessionAndMedia(self):
        """
        Session-level offers come first, then each section's, without repeats; a section without its own
        lines inherits the session's.
        """
        description = audio(b"a=drm:clearkey 0.0.0.0 0 HTTPS", b"a=drm:adrm 0.0.0.0 0 TLS",
                            head=HEAD + b"a=drm:adrm 0.0.0.0 0 TLS\r\n")
        self.assertEqual(drmOffers(description), (DRMOffer("adrm"), DRMOffer("clearkey", transport="HTTPS")))
        self.assertEqual(drmOffers(description, description.media[0]),
                         (DRMOffer("clearkey", transport="HTTPS"), DRMOffer("adrm")))
        inherited = audio(head=HEAD + b"a=drm:adrm 0.0.0.0 0 TLS\r\n")
        self.assertEqual(drmOffers(inherited, inherited.media[0]), (DRMOffer("adrm"),))
        self.assertEqual(drmOffers(audio()), ())

    def test_drmOffersMalformed(self):
        """
        A malformed a=drm line in a description raises L{SDPError}.
        """
        self.assertRaises(SDPError, drmOffers, audio(b"a=drm:adrm 1 TLS"))
        self.assertRaises(SDPError, drmOffers, audio(b"a=drm"))

    def test_answerPicksFirstSupportedInOfferOrder(self):
        """
        The answer is the first offer (the offerer's preference) that the answerer supports, whatever the
        order of the answerer's list.
        """
        offers = [DRMOffer("widevine"), DRMOffer("adrm"), DRMOffer("clearkey")]
        self.assertEqual(answerDRM(offers, ["clearkey", "adrm"]), DRMOffer("adrm"))
        self.assertEqual(answerDRM(offers, ["CLEARKEY"]), DRMOffer("clearkey"))

    def test_answerNamesAnswerersServer(self):
        """
        A supported L{DRMOffer} with a server answers with that server; matching also needs the transport.
        """
        mine = DRMOffer("adrm", "pbx.example.test", 8443, "TLS")
        offers = [DRMOffer("adrm", transport="HTTPS"), DRMOffer("adrm", transport="tls")]
        self.assertEqual(answerDRM(offers, [mine]), mine)
        self.assertEqual(answerDRM([DRMOffer("adrm", "lic.example.test", 443)], [DRMOffer("adrm")]),
                         DRMOffer("adrm", "lic.example.test", 443))

    def test_answerRefusalForm(self):
        """
        With nothing supported the answer keeps the first offered type and transport with address
        C{0.0.0.0} and port 0; with nothing offered there is no answer.
        """
        offers = [DRMOffer("widevine", "192.0.2.7", 443, "HTTPS"), DRMOffer("adrm")]
        refusal = answerDRM(offers, ["playready"])
        self.assertEqual(refusal, DRMOffer("widevine", "0.0.0.0", 0, "HTTPS"))
        self.assertFalse(refusal.hasServer)
        self.assertEqual(answerDRM(offers, []), refusal)
        self.assertEqual(answerDRM([DRMOffer("adrm", transport="HTTPS")], [DRMOffer("adrm", transport="TLS")]),
                         DRMOffer("adrm", transport="HTTPS"))
        self.assertIsNone(answerDRM([], ["adrm"]))

    def test_withDRM(self):
        """
        C{withDRM} replaces the a=drm lines of the session or of one section, keeping other attributes.
        """
        description = audio(b"a=drm:old 0.0.0.0 0 TLS", head=HEAD + b"a=tool:x\r\na=drm:old 0.0.0.0 0 TLS\r\n")
        offers = [DRMOffer("adrm"), DRMOffer("clearkey", "192.0.2.1", 443, "HTTPS")]
        changed = withDRM(description, offers)
        self.assertEqual(changed.attributes, (("tool", "x"), ("drm", "adrm 0.0.0.0 0 TLS"),
                                              ("drm", "clearkey 192.0.2.1 443 HTTPS")))
        self.assertEqual(changed.media, description.media)
        inMedia = withDRM(description, offers[:1], media=0)
        self.assertEqual(inMedia.media[0].attributeValues("drm"), ("adrm 0.0.0.0 0 TLS",))
        self.assertIn(b"\r\na=drm:clearkey 192.0.2.1 443 HTTPS\r\n", changed.toBytes())
        self.assertEqual(parseSDP(changed.toBytes()), changed)

    def test_offerAnswerCarriesDRM(self):
        """
        An offer made with DRM offers is answered with one a=drm line, or the refusal form.
        """
        offer = parseSDP(makeOffer("192.0.2.1", 4000, drm=[DRMOffer("adrm"), DRMOffer("clearkey")],
                                   sessionId=1).toBytes())
        mine = DRMOffer("clearkey", "pbx.example.test", 8443, "TLS")
        accepted = answer(offer, "192.0.2.2", 5000, drm=[mine], sessionId=2)
        self.assertEqual(drmOffers(accepted), (mine,))
        refused = answer(offer, "192.0.2.2", 5000, drm=(), sessionId=2)
        self.assertEqual(refused.attributeValues("drm"), ("adrm 0.0.0.0 0 TLS",))
        self.assertEqual(answer(offer, "192.0.2.2", 5000, sessionId=2).attributeValues("drm"), ())

    def test_mediaLevelDRMAnsweredInMedia(self):
        """
        a=drm offers of the accepted stream are answered in that stream.
        """
        offer = audio(b"a=drm:adrm 0.0.0.0 0 TLS")
        result = answer(offer, "192.0.2.2", 5000, drm=["adrm"], sessionId=2)
        self.assertEqual(result.attributes, ())
        self.assertEqual(result.media[0].attributeValues("drm"), ("adrm 0.0.0.0 0 TLS",))


class OfferAnswerTests(SynchronousTestCase):
    """
    L{makeOffer} and L{answer} (RFC 3264 sections 5, 6 and 10).
    """

    def assertSameAnswer(self, ours, theirs):
        """
        Two answers agree on everything but the session name.
        """
        self.assertEqual(attrs.evolve(ours, name=theirs.name), theirs)

    def test_rfc3264BasicExchange(self):
        """
        Bob's answer of RFC 3264 section 10.1 is reproduced, except that this user agent, taking only audio,
        also rejects the second video stream (port 0, formats kept).
        """
        result = answer(parseSDP(RFC3264_OFFER), "host.example.com", 49920, supportedCodecs=["PCMU"],
                        sessionId=2890844730, sessionVersion=2890844730, username="bob")
        bob = parseSDP(RFC3264_ANSWER)
        self.assertEqual(result.media[0], attrs.evolve(bob.media[0], attributes=bob.media[0].attributes
                                                       + (("sendrecv", None),)))
        self.assertEqual(result.media[1], bob.media[1])
        self.assertEqual(result.media[2], MediaDescription("video", 0, "RTP/AVP", ["32"]))
        bob = attrs.evolve(bob, media=result.media)
        self.assertSameAnswer(result, bob)

    def test_rfc3264ReOffer(self):
        """
        Bob's re-offer of RFC 3264 section 10.1 is answered with its four streams in order: the first audio
        accepted, the refused video kept refused, the others rejected (one RTP endpoint, events alone).
        """
        result = answer(parseSDP(RFC3264_REOFFER), "host.anywhere.com", 49170, sessionId=2890844526,
                        sessionVersion=2890844527, username="alice")
        self.assertEqual([(m.media, m.port, m.formats) for m in result.media],
                         [("audio", 49170, ("0",)), ("video", 0, ("31",)), ("video", 0, ("32",)),
                          ("audio", 0, ("110",))])
        self.assertEqual(result.media[0].attributes, (("rtpmap", "0 PCMU/8000"), ("sendrecv", None)))

    def test_rfc3264OneOfN(self):
        """
        Both answers of RFC 3264 section 10.2 are reproduced by an answerer supporting PCMU and G.723,
        the inactive offer answered inactive.
        """
        offer, bobAnswer, update, bobFinal = [parseSDP(data) for data in RFC3264_ONE_OF_N]
        for received, expected in [(offer, bobAnswer), (update, bobFinal)]:
            result = answer(received, "host.example.com", 54344, supportedCodecs=["PCMU", "G723"],
                            sessionId=2890844730, sessionVersion=expected.origin.sessionVersion,
                            username="bob")
            self.assertSameAnswer(result, expected)

    def test_offererOrderKept(self):
        """
        The common codecs keep the offerer's order and payload types, with the offered fmtp copied.
        """
        offer = audio(b"a=rtpmap:96 telephone-event/8000", b"a=fmtp:96 0-15", formats=b"96 8 18 0")
        media = answer(offer, "192.0.2.2", 5000, sessionId=1).media[0]
        self.assertEqual(media.formats, ("96", "8", "0"))
        self.assertEqual(media.fmtp(96), "0-15")
        self.assertEqual(media.rtpmap(96), RTPMap(96, "telephone-event", 8000))

    def test_eventsAloneRejected(self):
        """
        A stream whose only common codec is telephone-event, or none, is rejected with port 0.
        """
        for formats, lines in [(b"101", [b"a=rtpmap:101 telephone-event/8000"]), (b"18", [])]:
            media = answer(audio(*lines, formats=formats), "192.0.2.2", 5000, sessionId=1).media[0]
            self.assertEqual((media.port, media.formats, media.attributes), (0, (formats.decode(),), ()))

    def test_clockRateMustMatch(self):
        """
        A codec at another clock rate (telephone-event/48000) is not a match.
        """
        offer = audio(b"a=rtpmap:101 telephone-event/48000", formats=b"0 101")
        self.assertEqual(answer(offer, "192.0.2.2", 5000, sessionId=1).media[0].formats, ("0",))

    def test_directionMirrored(self):
        """
        The answer mirrors the offered direction within the answerer's own (RFC 3264 section 6.1).
        """
        expected = {
            ("sendrecv", "sendrecv"): "sendrecv", ("sendonly", "sendrecv"): "recvonly",
            ("recvonly", "sendrecv"): "sendonly", ("inactive", "sendrecv"): "inactive",
            ("sendrecv", "recvonly"): "recvonly", ("sendonly", "recvonly"): "recvonly",
            ("recvonly", "recvonly"): "inactive", ("sendrecv", "sendonly"): "sendonly",
            ("sendonly", "sendonly"): "inactive", ("recvonly", "inactive"): "inactive",
        }
        for (offered, ours), mirrored in expected.items():
            offer = audio(b"a=" + offered.encode("ascii"))
            media = answer(offer, "192.0.2.2", 5000, direction=ours, sessionId=1).media[0]
            self.assertEqual(direction(offer, media), mirrored, (offered, ours))

    def test_holdWithZeroAddress(self):
        """
        An offer with C{c=IN IP4 0.0.0.0} (RFC 3264 section 8.4) is answered without sending.
        """
        offer = audio(head=HEAD.replace(b"c=IN IP4 192.0.2.1", b"c=IN IP4 0.0.0.0"))
        self.assertEqual(answer(offer, "192.0.2.2", 5000, sessionId=1).media[0].attributes[-1], ("recvonly", None))

    def test_onlyFirstUsableAudioAccepted(self):
        """
        Streams with port 0, another protocol, another media type, or after the accepted one are rejected,
        and the media count and order are kept.
        """
        offer = parseSDP(HEAD + b"m=audio 0 RTP/AVP 0\r\nm=audio 4000 RTP/SAVP 0\r\nm=video 4002 RTP/AVP 31\r\n"
                         b"m=audio 4004 RTP/AVP 8\r\nm=audio 4006 RTP/AVP 0\r\n")
        result = answer(offer, "192.0.2.2", 5000, sessionId=1)
        self.assertEqual([(m.media, m.port, m.proto, m.formats) for m in result.media],
                         [("audio", 0, "RTP/AVP", ("0",)), ("audio", 0, "RTP/SAVP", ("0",)),
                          ("video", 0, "RTP/AVP", ("31",)), ("audio", 5000, "RTP/AVP", ("8",)),
                          ("audio", 0, "RTP/AVP", ("0",))])

    def test_answerParsesBack(self):
        """
        An answer is a valid description: IPv6 addresses give IP6 lines, and it parses back equal.
        """
        result = answer(parseSDP(RFC3264_OFFER), "2001:db8::2", 5000, sessionId=3, sessionVersion=4)
        self.assertEqual(result.connection, Connection("IN", "IP6", "2001:db8::2"))
        self.assertEqual(result.origin, Origin("-", 3, 4, "IN", "IP6", "2001:db8::2"))
        self.assertEqual(parseSDP(result.toBytes()), result)

    def test_malformedOfferRtpmap(self):
        """
        An offer with a malformed rtpmap for an offered payload type raises L{SDPError}.
        """
        self.assertRaises(SDPError, answer, audio(b"a=rtpmap:0 PCMU"), "192.0.2.2", 5000)

    def test_makeOffer(self):
        """
        The default offer lists PCMU, PCMA and telephone-event with rtpmaps, fmtp and sendrecv.
        """
        self.assertEqual(makeOffer("192.0.2.1", 4000, sessionId=7).toBytes(), (
            b"v=0\r\no=- 7 0 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
            b"m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
            b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n"))

    def test_makeOfferOptions(self):
        """
        Other codecs get dynamic payload types from 96; direction and ptime are written; a bad direction is
        a C{ValueError}.
        """
        offer = makeOffer("192.0.2.1", 4000, codecs=["opus/48000/2", "G722", "iLBC"], direction="recvonly",
                          ptime=20, sessionId=7, sessionVersion=2)
        media = offer.media[0]
        self.assertEqual(media.formats, ("96", "9", "97"))
        self.assertEqual(media.rtpmap(96), RTPMap(96, "opus", 48000, 2))
        self.assertEqual(media.attributeValues("ptime"), ("20",))
        self.assertEqual(direction(offer, media), "recvonly")
        self.assertEqual(offer.origin.sessionVersion, 2)
        self.assertIsInstance(makeOffer("192.0.2.1", 4000).origin.sessionId, int)
        self.assertRaises(ValueError, makeOffer, "192.0.2.1", 4000, direction="both")
        self.assertRaises(ValueError, answer, offer, "192.0.2.1", 4000, direction="both")

    def test_offerAnswerRoundTrip(self):
        """
        Our own offer, answered by our own answerer with PCMA only, gives PCMA and telephone-event.
        """
        offer = parseSDP(makeOffer("192.0.2.1", 4000, sessionId=7).toBytes())
        result = parseSDP(answer(offer, "192.0.2.2", 5000, ["PCMA", "telephone-event"], sessionId=8).toBytes())
        self.assertEqual(result.media[0].formats, ("8", "101"))
        self.assertEqual(result.media[0].fmtp(101), "0-16")


VALID = [RFC4566_EXAMPLE, RFC3264_OFFER, RFC3264_ANSWER, RFC3264_REOFFER, *RFC3264_ONE_OF_N,
         makeOffer("192.0.2.1", 4000, drm=[DRMOffer("adrm"), DRMOffer("clearkey", "h.example", 443)],
                   sessionId=1).toBytes()]


@st.composite
def mutated(draw):
    """
    A valid description with a few octets replaced, inserted or deleted, or lines swapped or repeated.
    """
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["replace", "insert", "delete", "lines"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if action == "replace" and data:
            data[position] = draw(st.sampled_from(b" :/=\r\n\x00\xff0aAm9-") | st.integers(0, 255))
        elif action == "insert":
            data[position:position] = draw(st.sampled_from([b"\r\n", b"m=audio 1 RTP/AVP 0\r\n", b"a=drm:x",
                                                            b" ", b"9" * 30, b"/", b"\xc3"]))
        elif action == "delete":
            del data[position:position + draw(st.integers(1, 8))]
        else:
            lines = bytes(data).split(b"\r\n")
            first, second = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[first], lines[second] = lines[second], lines[first]
            data = bytearray(b"\r\n".join(lines))
    return bytes(data)


class FuzzTests(SynchronousTestCase):
    """
    Whatever the input, the parser and the helpers raise nothing but L{SDPError}.
    """

    def check(self, data):
        """
        Parse C{data}; on success check the round trip and run every helper on the result.
        """
        try:
            description = parseSDP(data)
        except SDPError:
            return
        written = description.toBytes()
        self.assertEqual(parseSDP(written), description)
        self.assertEqual(parseSDP(written).toBytes(), written)
        for helper in (lambda: drmOffers(description),
                       lambda: answer(description, "192.0.2.2", 5000, drm=["adrm"], sessionId=1),
                       lambda: [media.codecs() for media in description.media]):
            try:
                helper()
            except SDPError:
                pass

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=400))
    def test_randomBytes(self, data):
        """
        Random octets only ever raise L{SDPError}.
        """
        self.check(data)

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=200).map(lambda text: "v=0\no=- 1 1 IN IP4 h\ns=" + text))
    def test_randomText(self, data):
        """
        Random text after a valid start only ever raises L{SDPError}.
        """
        self.check(data)

    @settings(max_examples=300, deadline=None)
    @given(mutated())
    def test_mutatedDescriptions(self, data):
        """
        Mutations of valid descriptions parse to something that round-trips, or raise L{SDPError}.
        """
        self.check(data)

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=80))
    def test_randomDRMValues(self, value):
        """
        Any a=drm value parses to an offer that formats back identically, or raises L{SDPError}.
        """
        try:
            offer = parseDRM(value)
        except SDPError:
            return
        self.assertEqual(parseDRM(formatDRM(offer)), offer)

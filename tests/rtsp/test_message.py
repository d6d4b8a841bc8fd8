"""
Tests for L{appliance.rtsp.message}.
"""

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from appliance.rtsp import message
from appliance.rtsp.message import ParseError, StreamParser

OPTIONS = b"OPTIONS rtsp://127.0.0.1:8554/bob/inbox/1.au RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: t\r\n\r\n"


class StreamParserTests(SynchronousTestCase):
    """
    Framing of requests, responses and interleaved frames (RFC 2326
    sections 4, 6, 7 and 10.12).
    """

    def test_request(self):
        """
        A request is parsed into method, URI, version and headers.
        """
        [request] = StreamParser().feed(OPTIONS)
        self.assertEqual((request.method, request.uri, request.cseq),
                         ("OPTIONS", "rtsp://127.0.0.1:8554/bob/inbox/1.au", "1"))
        self.assertEqual(request.headers.get("user-agent"), "t")

    def test_byteByByte(self):
        """
        A message split into single bytes is framed the same way, with its
        body read by Content-Length.
        """
        data = b"ANNOUNCE rtsp://h/x RTSP/1.0\r\nCSeq: 2\r\nContent-Length: 4\r\n\r\nv=0\n" + OPTIONS
        parser = StreamParser()
        items = []
        for byte in data:
            items.extend(parser.feed(bytes([byte])))
        self.assertEqual([i.method for i in items], ["ANNOUNCE", "OPTIONS"])
        self.assertEqual(items[0].body, b"v=0\n")

    def test_interleavedMixed(self):
        """
        Interleaved frames and requests mix in any order on one stream.
        """
        data = message.frame(1, b"rtcp") + OPTIONS + message.frame(0, b"") + b"\r\n" + OPTIONS
        items = StreamParser().feed(data)
        self.assertEqual(items[0], message.InterleavedFrame(1, b"rtcp"))
        self.assertEqual(items[1].method, "OPTIONS")
        self.assertEqual(items[2], message.InterleavedFrame(0, b""))
        self.assertEqual(items[3].method, "OPTIONS")

    def test_response(self):
        """
        A response is parsed, and serialises back with its Content-Length.
        """
        data = b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nContent-Length: 2\r\n\r\nhi"
        [response] = StreamParser().feed(data)
        self.assertEqual((response.code, response.reason, response.body), (200, "OK", b"hi"))
        self.assertEqual(response.toBytes(), data)

    def test_responseHelper(self):
        """
        L{message.response} copies the CSeq and uses the standard reason.
        """
        [request] = StreamParser().feed(OPTIONS)
        out = message.response(request, 454, [("Server", "x")])
        self.assertEqual(out.toBytes(), b"RTSP/1.0 454 Session Not Found\r\nCSeq: 1\r\nServer: x\r\n\r\n")

    def test_badVersion(self):
        """
        Another RTSP version gets 505, and the CSeq is kept for the answer.
        """
        error = self.assertRaises(ParseError, StreamParser().feed, b"OPTIONS * RTSP/2.0\r\nCSeq: 7\r\n\r\n")
        self.assertEqual((error.status, error.cseq), (505, "7"))

    def test_malformed(self):
        """
        Malformed request lines, header lines and lengths get 400.
        """
        for data in [
            b"OPTIONS\r\n\r\n", b"OPTIONS * RTSP/1.0\r\nno colon\r\n\r\n",
            b"OPTIONS * RTSP/1.0\r\nContent-Length: x\r\n\r\n",
            b"OPTIONS * RTSP/1.0\r\nCSeq: abc\r\n\r\n", b"OP(TIONS * RTSP/1.0\r\n\r\n",
            b"OPTIONS * HTTP/1.1\r\n\r\n", b"OPTIONS * RTSP/1.0\r\nX: \x01\r\n\r\n",
        ]:
            error = self.assertRaises(ParseError, StreamParser().feed, data)
            self.assertEqual(error.status, 400, data)

    def test_limits(self):
        """
        Oversized header blocks, too many headers and oversized bodies are
        refused, even before the end of the headers arrives.
        """
        parser = StreamParser(maxHeaderSize=100, maxHeaders=3, maxBody=10)
        self.assertRaises(ParseError, parser.feed, b"OPTIONS * RTSP/1.0\r\nX: " + b"a" * 200)
        many = b"OPTIONS * RTSP/1.0\r\n" + b"A: b\r\n" * 4 + b"\r\n"
        self.assertRaises(ParseError, StreamParser(maxHeaders=3).feed, many)
        big = b"ANNOUNCE * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 11\r\n\r\n"
        self.assertEqual(self.assertRaises(ParseError, StreamParser(maxBody=10).feed, big).status, 413)

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300))
    def test_fuzzRandomBytes(self, data):
        """
        Random bytes only ever produce items or raise L{ParseError}.
        """
        try:
            StreamParser(maxHeaderSize=200).feed(data)
        except ParseError:
            pass

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.sampled_from([
        b"OPTIONS", b" ", b"rtsp://h/a", b"RTSP/1.0", b"RTSP/2.0", b"\r\n", b"\n", b":",
        b"CSeq", b"Content-Length", b"1", b"x", b"$", b"\x00", b"\xff", b"\t", b"Transport",
    ]), max_size=40))
    def test_fuzzTokens(self, pieces):
        """
        Streams of protocol-like tokens only ever produce items or raise
        L{ParseError}.
        """
        try:
            StreamParser().feed(b"".join(pieces))
        except ParseError:
            pass


class HeaderGrammarTests(SynchronousTestCase):
    """
    Transport, Range, Session, Authorization and SDP (RFC 2326 section 12).
    """

    def test_transportUDP(self):
        """
        A UDP transport gives its client ports and mode, in any case and
        quoted or not.
        """
        [spec] = message.parseTransport('RTP/AVP;unicast;client_port=4588-4589;mode="RECORD"')
        self.assertEqual((spec.protocol, spec.clientPorts, spec.mode), ("RTP/AVP", (4588, 4589), "record"))
        self.assertEqual(spec.format(server_port="30000-30001"),
                         'RTP/AVP;unicast;client_port=4588-4589;mode="RECORD";server_port=30000-30001')

    def test_transportAlternatives(self):
        """
        Alternatives are separated by commas; TCP gives interleaved channels.
        """
        specs = message.parseTransport("RTP/AVP/TCP;unicast;interleaved=0-1, RTP/AVP;multicast")
        self.assertEqual((specs[0].protocol, specs[0].interleaved), ("RTP/AVP/TCP", (0, 1)))
        self.assertFalse(specs[1].unicast)

    def test_transportMalformed(self):
        """
        Malformed port ranges give 461.
        """
        for value in ["RTP/AVP;client_port=a-b", "RTP/AVP;client_port=70000", "", "RTP/AVP/TCP;interleaved=300"]:
            self.assertEqual(self.assertRaises(ParseError, message.parseTransport, value).status, 461)

    def test_range(self):
        """
        npt ranges: open, closed, now, hh:mm:ss; others give 457.
        """
        self.assertEqual(message.parseRange("npt=3-"), (3.0, None))
        self.assertEqual(message.parseRange("npt=0.500-2.25"), (0.5, 2.25))
        self.assertEqual(message.parseRange("npt=now-"), (None, None))
        self.assertEqual(message.parseRange("npt=0:01:02.5-"), (62.5, None))
        self.assertEqual(message.parseRange("npt=-5"), (0.0, 5.0))
        for value in ["smpte=0-", "npt=x-", "npt=5-1", "npt=3"]:
            self.assertEqual(self.assertRaises(ParseError, message.parseRange, value).status, 457)

    def test_session(self):
        """
        The session id stops at the timeout parameter.
        """
        self.assertEqual(message.parseSession("abc123;timeout=60"), "abc123")

    def test_authorization(self):
        """
        Digest parameters, quoted or not, with escapes.
        """
        scheme, params = message.parseAuthorization(
            'Digest username="bob", realm="example.test", nonce="n\\"1", uri="rtsp://h/x", '
            'response="abc", qop=auth, nc=00000001'
        )
        self.assertEqual(scheme, "digest")
        self.assertEqual(params["nonce"], 'n"1')
        self.assertEqual(params["qop"], "auth")
        self.assertRaises(ParseError, message.parseAuthorization, 'Digest username="bob" ,, "')

    def test_sdpWithAndWithoutRtpmap(self):
        """
        Audio descriptions with an rtpmap, or with a static payload type
        only, give the G.711 encoding; others give 415.
        """
        withMap = b"v=0\r\nm=audio 0 RTP/AVP 96\r\na=rtpmap:96 PCMA/8000\r\na=control:streamid=0\r\n"
        self.assertEqual(message.parseAudioDescription(withMap),
                         message.AudioDescription(96, "PCMA", 8000, "streamid=0"))
        static = b"v=0\r\nm=video 0 RTP/AVP 26\r\nm=audio 0 RTP/AVP 0\r\n"
        self.assertEqual(message.parseAudioDescription(static).encoding, "PCMU")
        self.assertEqual(self.assertRaises(
            ParseError, message.parseAudioDescription, b"v=0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 opus/48000/2\r\n"
        ).status, 415)
        self.assertEqual(self.assertRaises(ParseError, message.parseAudioDescription, b"junk").status, 400)

    def test_describe(self):
        """
        The SDP of a message has its control, range and rtpmap.
        """
        sdp = message.describeAudio(2.5).decode("ascii")
        self.assertIn("a=range:npt=0-2.500\r\n", sdp)
        self.assertIn("m=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=control:trackID=0\r\n", sdp)

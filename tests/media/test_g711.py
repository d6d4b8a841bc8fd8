"""
Tests for L{appliance.media.g711}.
"""

import struct

from hypothesis import given, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from appliance.media import g711


class G711Tests(SynchronousTestCase):
    """
    mu-law and A-law companding (ITU-T G.711).
    """

    def test_knownValues(self):
        """
        Reference points of G.711: silence and full scale of both laws.
        """
        self.assertEqual(g711.ulawToLinear(0xFF), 0)
        self.assertEqual(g711.ulawToLinear(0x00), -32124)
        self.assertEqual(g711.ulawToLinear(0x80), 32124)
        self.assertEqual(g711.alawToLinear(0xD5), 8)
        self.assertEqual(g711.alawToLinear(0xAA), 32256)
        self.assertEqual(g711.linearToUlaw(0), 0xFF)
        self.assertEqual(g711.linearToAlaw(0), 0xD5)

    def test_roundTripEveryCode(self):
        """
        Decoding then encoding any code gives it back (mu-law's negative
        zero 0x7F comes back as positive zero 0xFF).
        """
        codes = bytes(range(256))
        self.assertEqual(g711.encode(g711.decode(codes, "PCMA"), "PCMA"), codes)
        expected = codes.replace(b"\x7f", b"\xff")
        self.assertEqual(g711.encode(g711.decode(codes, "PCMU"), "PCMU"), expected)

    def test_decodeIsLittleEndian(self):
        """
        L{g711.decode} gives signed 16-bit little-endian samples.
        """
        self.assertEqual(g711.decode(b"\x80\x00", "PCMU"), struct.pack("<2h", 32124, -32124))

    def test_transcode(self):
        """
        Transcoding maps each code through linear PCM, and is the identity
        for the same law.
        """
        codes = bytes(range(256))
        viaLinear = g711.encode(g711.decode(codes, "PCMU"), "PCMA")
        self.assertEqual(g711.transcode(codes, "PCMU", "PCMA"), viaLinear)
        self.assertEqual(g711.transcode(codes, "PCMA", "PCMA"), codes)

    @given(st.lists(st.integers(-32768, 32767), max_size=50))
    def test_encodingErrorIsBounded(self, samples):
        """
        The quantisation error of either law stays within its step size
        (under 1/16 of the sample's magnitude plus a small constant).
        """
        pcm = struct.pack("<%dh" % len(samples), *samples)
        for law in ("PCMU", "PCMA"):
            back = struct.unpack("<%dh" % len(samples), g711.decode(g711.encode(pcm, law), law))
            for original, decoded in zip(samples, back):
                self.assertLessEqual(abs(original - decoded), abs(original) / 16 + 140)

    def test_swapAndSilence(self):
        """
        L{g711.swap16} swaps byte pairs; L{g711.silence} gives the zero code.
        """
        self.assertEqual(g711.swap16(b"\x01\x02\x03\x04"), b"\x02\x01\x04\x03")
        self.assertEqual(g711.silence("PCMU", 2), b"\xff\xff")
        self.assertEqual(g711.silence("PCMA", 1), b"\xd5")
        self.assertEqual(g711.silence("L16", 2), b"\0\0")

"""
Tests for L{appliance.drm.package}: the protected message format.
"""

import io
import os

from twisted.trial.unittest import SynchronousTestCase

from appliance.drm.package import (
    DEFAULT_CHUNK_SIZE, PackageError, chunkOffset, decryptChunks, encryptChunks, newHeader, newKey,
    parseHeader, protect, readHeader, unprotect,
)

URL = "https://127.0.0.1:8443/drm/license"


class PackageTests(SynchronousTestCase):
    """
    Packaging, unpacking and tamper detection.
    """

    def header(self, chunkSize=DEFAULT_CHUNK_SIZE):
        return newHeader(URL, {"format": "au", "codec": "PCMU", "rate": 8000, "channels": 1,
                               "duration": 2.5}, "audio/basic", chunkSize)

    def test_roundTrip(self):
        """
        unprotect with the key gives back the exact plaintext and the header fields.
        """
        audio = os.urandom(20001)
        key, header = newKey(), self.header()
        package = protect(audio, key, header)
        parsed, plaintext = unprotect(package, key)
        self.assertEqual(plaintext, audio)
        self.assertEqual(parsed.keyId, header.keyId)
        self.assertEqual(parsed.contentId, header.contentId)
        self.assertEqual(parsed.licenseUrl, URL)
        self.assertEqual(parsed.media["codec"], "PCMU")
        self.assertEqual(parsed.contentType, "audio/basic")

    def test_emptyAndExactMultiple(self):
        """
        An empty message and one of exactly N chunks both round-trip.
        """
        key = newKey()
        for size in (0, 1, 16, 32, 48):
            header = self.header(16)
            self.assertEqual(unprotect(protect(b"x" * size, key, header), key)[1], b"x" * size)

    def test_streaming(self):
        """
        encryptChunks yields the header then one sealed chunk per full chunk as input arrives.
        """
        key, header = newKey(), self.header(100)
        out = list(encryptChunks(header, key, [b"a" * 150, b"b" * 150]))
        self.assertEqual(out[0], header.raw)
        self.assertEqual(len(out), 1 + 3)
        self.assertEqual(unprotect(b"".join(out), key)[1], b"a" * 150 + b"b" * 150)

    def test_ciphertextHidesAudio(self):
        """
        The plaintext does not appear in the package.
        """
        audio = b"secret message " * 100
        package = protect(audio, newKey(), self.header())
        self.assertNotIn(b"secret message", package)

    def test_tamperEveryByte(self):
        """
        Flipping any single bit of any byte of a small package makes unpacking fail with
        PackageError, never a different plaintext.
        """
        audio = os.urandom(40)
        key = newKey()
        package = protect(audio, key, self.header(16))
        for position in range(len(package)):
            for mask in (0x01, 0x80):
                altered = bytearray(package)
                altered[position] ^= mask
                try:
                    result = unprotect(bytes(altered), key)
                except PackageError:
                    continue
                self.fail("byte %d mask %#x: accepted, gave %r" % (position, mask, result[1]))

    def test_truncationAndExtension(self):
        """
        Dropping the final chunk, cutting anywhere, or appending data is detected.
        """
        key = newKey()
        package = protect(os.urandom(50), key, self.header(16))
        for length in range(len(package)):
            self.assertRaises(PackageError, unprotect, package[:length], key)
        self.assertRaises(PackageError, unprotect, package + b"\0", key)

    def test_chunkSwapDetected(self):
        """
        Reordering two full chunks is detected.
        """
        key, header = newKey(), self.header(16)
        package = protect(os.urandom(48), key, header)
        start, size = len(header.raw), 4 + 16 + 16
        first, second = package[start:start + size], package[start + size:start + 2 * size]
        swapped = package[:start] + second + first + package[start + 2 * size:]
        self.assertRaises(PackageError, unprotect, swapped, key)

    def test_wrongKey(self):
        """
        Another key fails with a message saying so.
        """
        package = protect(b"audio", newKey(), self.header())
        e = self.assertRaises(PackageError, unprotect, package, newKey())
        self.assertIn("altered or the key is wrong", str(e))

    def test_notAPackage(self):
        """
        Other files are refused with a clear reason.
        """
        e = self.assertRaises(PackageError, parseHeader, b"RIFF\0\0\0\0WAVEfmt ")
        self.assertIn("bad magic", str(e))
        self.assertRaises(PackageError, parseHeader, b"AD")
        self.assertRaises(PackageError, readHeader, io.BytesIO(b"ADRM\x02\x00\x00\x02{}"))

    def test_seek(self):
        """
        chunkOffset gives the file position of the chunk holding an audio offset, from which
        decryption can start.
        """
        key, header = newKey(), self.header(10)
        audio = bytes(range(95))
        package = protect(audio, key, header)
        offset, index = chunkOffset(header, 42)
        self.assertEqual(index, 4)
        stream = io.BytesIO(package)
        stream.seek(offset)
        self.assertEqual(b"".join(decryptChunks(stream, key, header, first=index)), audio[40:])

    def test_headerSizeLimits(self):
        """
        Chunk sizes out of range are refused when making a header.
        """
        self.assertRaises(ValueError, newHeader, URL, chunkSize=0)
        self.assertRaises(ValueError, protect, b"", b"short", self.header())

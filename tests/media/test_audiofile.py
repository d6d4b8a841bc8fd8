"""
Tests for L{appliance.media.audiofile}.
"""

import os
import struct

from twisted.trial.unittest import SynchronousTestCase

from appliance.media import audiofile, g711


def _tone(length=800):
    return bytes((i * 7) & 0xFF for i in range(length))


class AudioFileTests(SynchronousTestCase):
    """
    Sun .au and RIFF .wav reading and incremental writing.
    """

    def setUp(self):
        self.directory = self.mktemp()
        os.makedirs(self.directory)

    def path(self, name):
        return os.path.join(self.directory, name)

    def test_auRoundTrip(self):
        """
        A mu-law .au file written incrementally reads back with its format,
        length, duration and data, and carries the final size in its header.
        """
        path = self.path("m.au")
        with audiofile.AudioWriter(path, "PCMU") as writer:
            writer.write(_tone(400))
            writer.write(_tone(400))
        with open(path, "rb") as f:
            header = f.read(24)
        self.assertEqual(header[:4], b".snd")
        self.assertEqual(struct.unpack(">5I", header[4:]), (24, 800, 1, 8000, 1))
        data, reader = audiofile.readFile(path)
        self.assertEqual((reader.encoding, reader.rate, reader.channels), ("PCMU", 8000, 1))
        self.assertEqual(data, _tone(400) * 2)
        self.assertEqual(reader.duration, 0.1)

    def test_auCutShortKeepsData(self):
        """
        An .au file whose writer never closed (a crash) has the unknown size
        in its header and reads up to the end of the file.
        """
        path = self.path("crash.au")
        writer = audiofile.AudioWriter(path, "PCMU")
        writer.write(_tone(320))
        data, reader = audiofile.readFile(path)
        self.assertEqual(data, _tone(320))
        writer.close()

    def test_auBigEndianLinear(self):
        """
        16-bit .au data is big-endian on disk and little-endian in memory.
        """
        path = self.path("l.au")
        audiofile.writeFile(path, struct.pack("<2h", 1, -2), "L16")
        with open(path, "rb") as f:
            self.assertEqual(f.read()[24:], struct.pack(">2h", 1, -2))
        data, reader = audiofile.readFile(path)
        self.assertEqual(data, struct.pack("<2h", 1, -2))

    def test_wavEncodings(self):
        """
        .wav files in mu-law, A-law and 16-bit PCM read back, and convert to
        mu-law on request.
        """
        pcm = g711.decode(_tone(160), "PCMU")
        for encoding, data in [("PCMU", _tone(160)), ("PCMA", g711.encode(pcm, "PCMA")), ("L16", pcm)]:
            path = self.path("m-%s.wav" % encoding)
            audiofile.writeFile(path, data, encoding)
            read, reader = audiofile.readFile(path)
            self.assertEqual((read, reader.encoding), (data, encoding))
            converted, _ = audiofile.readFile(path, "PCMU")
            self.assertEqual(len(converted), 160)

    def test_wavUnknownChunksSkipped(self):
        """
        RIFF chunks other than fmt and data (LIST, odd-sized ones with their
        pad byte) are skipped.
        """
        fmt = struct.pack("<HHIIHH", 7, 1, 8000, 8000, 1, 8)
        body = (
            b"WAVE" + b"LIST" + struct.pack("<I", 3) + b"abc\0"
            + b"fmt " + struct.pack("<I", 16) + fmt
            + b"fact" + struct.pack("<I", 4) + b"\0\0\0\0"
            + b"data" + struct.pack("<I", 4) + b"\x01\x02\x03\x04"
        )
        path = self.path("x.wav")
        with open(path, "wb") as f:
            f.write(b"RIFF" + struct.pack("<I", len(body)) + body)
        data, reader = audiofile.readFile(path)
        self.assertEqual((data, reader.encoding), (b"\x01\x02\x03\x04", "PCMU"))

    def test_incrementalRead(self):
        """
        L{AudioReader.read} hands out the data in pieces.
        """
        path = self.path("r.au")
        audiofile.writeFile(path, _tone(500))
        with audiofile.AudioReader(path) as reader:
            pieces = [reader.read(160) for _ in range(4)]
        self.assertEqual([len(p) for p in pieces], [160, 160, 160, 20])
        self.assertEqual(b"".join(pieces), _tone(500))

    def test_badFiles(self):
        """
        Files that are not audio, or in unsupported formats, raise
        L{AudioFormatError}.
        """
        for name, content in [
            ("a.au", b"nope"),
            ("b.au", b".snd" + struct.pack(">5I", 24, 0, 5, 8000, 1)),
            ("c.wav", b"RIFF\0\0\0\0WAVEdata\0\0\0\0"),
            ("d.wav", b"RIFX"),
        ]:
            with open(self.path(name), "wb") as f:
                f.write(content)
            self.assertRaises(audiofile.AudioFormatError, audiofile.AudioReader, self.path(name))
        self.assertRaises(audiofile.AudioFormatError, audiofile.formatFor, "x.mp3")

"""
Audio files of the media store: Sun C{.au} and RIFF C{.wav}.

Sun / NeXT audio (the C{.au} format of Sun's audio_filehdr.h): a 24-byte
big-endian header C{".snd", data offset, data size, encoding, rate,
channels}; encoding 1 is 8-bit G.711 mu-law, 27 is 8-bit A-law, 3 is 16-bit
linear. A data size of C{0xffffffff} means "unknown: up to the end of the
file", which is what L{AudioWriter} writes first, so a recording cut short
by a crash is still a valid file with everything written so far.

RIFF WAVE: C{fmt } format tag 1 (16-bit PCM), 6 (A-law) or 7 (mu-law);
other chunks (C{LIST}, C{fact}, ...) are skipped.

Encodings are named as RTP names them (RFC 3551): C{'PCMU'}, C{'PCMA'} and
C{'L16'}; L16 sample data is handed out little-endian whatever the file.
"""

import os
import struct

from appliance.media import g711

AU_MAGIC = b".snd"
AU_UNKNOWN_SIZE = 0xFFFFFFFF
_AU_ENCODINGS = {1: "PCMU", 27: "PCMA", 3: "L16"}
_AU_CODES = {name: code for code, name in _AU_ENCODINGS.items()}
_WAV_ENCODINGS = {7: "PCMU", 6: "PCMA", 1: "L16"}
_WAV_CODES = {name: code for code, name in _WAV_ENCODINGS.items()}
SAMPLE_WIDTH = {"PCMU": 1, "PCMA": 1, "L16": 2}


class AudioFormatError(ValueError):
    """
    A file that is not a supported C{.au} or C{.wav} file; the message
    says why.
    """


def formatFor(path):
    """
    The container of C{path} by its extension: C{'au'} or C{'wav'}.

    @raise AudioFormatError: for any other extension.
    """
    extension = os.path.splitext(path)[1].lower()
    if extension in (".au", ".snd"):
        return "au"
    if extension == ".wav":
        return "wav"
    raise AudioFormatError("unsupported file type %r" % (extension,))


class AudioReader:
    """
    Incremental reading of the sample data of an audio file.

    @ivar encoding: C{'PCMU'}, C{'PCMA'} or C{'L16'}.
    @ivar rate: samples per second.
    @ivar channels: the channel count.
    @ivar length: the size of the sample data in bytes.
    """

    def __init__(self, path):
        self._file = open(path, "rb")
        try:
            if formatFor(path) == "au":
                self._readAuHeader(os.fstat(self._file.fileno()).st_size)
            else:
                self._readWavHeader()
        except BaseException:
            self._file.close()
            raise
        self._remaining = self.length

    def _readAuHeader(self, fileSize):
        header = self._file.read(24)
        if len(header) < 24 or header[:4] != AU_MAGIC:
            raise AudioFormatError("not a Sun audio file")
        offset, size, code, self.rate, self.channels = struct.unpack(">5I", header[4:])
        if code not in _AU_ENCODINGS:
            raise AudioFormatError("unsupported .au encoding %d" % (code,))
        if offset < 24 or offset > fileSize:
            raise AudioFormatError("bad .au data offset %d" % (offset,))
        self.encoding = _AU_ENCODINGS[code]
        self._bigEndian = True
        available = fileSize - offset
        self.length = available if size == AU_UNKNOWN_SIZE else min(size, available)
        self._file.seek(offset)

    def _readWavHeader(self):
        riff = self._file.read(12)
        if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
            raise AudioFormatError("not a RIFF WAVE file")
        fmt = None
        while True:
            chunk = self._file.read(8)
            if len(chunk) < 8:
                raise AudioFormatError("no data chunk")
            name, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if name == b"fmt ":
                fmt = self._file.read(size + (size & 1))
                if len(fmt) < 16:
                    raise AudioFormatError("short fmt chunk")
            elif name == b"data":
                break
            else:
                self._file.seek(size + (size & 1), os.SEEK_CUR)
        if fmt is None:
            raise AudioFormatError("data chunk before fmt chunk")
        tag, self.channels, self.rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
        if tag not in _WAV_ENCODINGS or bits != 8 * SAMPLE_WIDTH[_WAV_ENCODINGS[tag]]:
            raise AudioFormatError("unsupported .wav format %d / %d bits" % (tag, bits))
        self.encoding = _WAV_ENCODINGS[tag]
        self._bigEndian = False
        here = self._file.tell()
        available = os.fstat(self._file.fileno()).st_size - here
        # Streams written without knowing their length carry 0 or 0xffffffff.
        self.length = available if size in (0, AU_UNKNOWN_SIZE) else min(size, available)

    @property
    def duration(self):
        """
        The length in seconds.
        """
        return self.length / float(SAMPLE_WIDTH[self.encoding] * self.channels * self.rate)

    def read(self, size=-1):
        """
        Read up to C{size} bytes of sample data (all that is left for a
        negative size), in the file's encoding; L16 comes out little-endian.
        """
        if size < 0 or size > self._remaining:
            size = self._remaining
        if self.encoding == "L16":
            size &= ~1
        data = self._file.read(size)
        self._remaining -= len(data)
        if self.encoding == "L16" and self._bigEndian:
            data = g711.swap16(data)
        return data

    def readAs(self, encoding, size=-1):
        """
        Read sample data converted to C{encoding} (C{'PCMU'} or
        C{'PCMA'}); C{size} counts bytes of the file's encoding.
        """
        data = self.read(size)
        if self.encoding == "L16":
            return g711.encode(data, encoding)
        return g711.transcode(data, self.encoding, encoding)

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class AudioWriter:
    """
    Incremental writing of an audio file: every L{write} reaches the file
    (and the operating system) at once, and the header is complete from the
    start, so a file cut short by a crash holds everything written so far.

    @param path: the file, created or replaced; C{.au} or C{.wav}.
    @param encoding: C{'PCMU'}, C{'PCMA'} or C{'L16'} (16-bit samples are
        given little-endian).
    """

    def __init__(self, path, encoding="PCMU", rate=8000, channels=1):
        self.path = path
        self.encoding = encoding
        self.rate = rate
        self.channels = channels
        self.length = 0
        self._format = formatFor(path)
        if encoding not in SAMPLE_WIDTH:
            raise AudioFormatError("unsupported encoding %r" % (encoding,))
        self._file = open(path, "wb")
        if self._format == "au":
            self._file.write(
                AU_MAGIC + struct.pack(
                    ">5I", 24, AU_UNKNOWN_SIZE, _AU_CODES[encoding], rate, channels
                )
            )
        else:
            self._file.write(self._wavHeader(AU_UNKNOWN_SIZE))
        self._file.flush()

    def _wavHeader(self, dataSize):
        width = SAMPLE_WIDTH[self.encoding]
        fmt = struct.pack(
            "<HHIIHH", _WAV_CODES[self.encoding], self.channels, self.rate,
            self.rate * self.channels * width, self.channels * width, 8 * width,
        )
        riffSize = AU_UNKNOWN_SIZE if dataSize == AU_UNKNOWN_SIZE else 4 + 24 + 8 + dataSize
        return (
            b"RIFF" + struct.pack("<I", riffSize) + b"WAVE"
            + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", dataSize)
        )

    def write(self, data):
        """
        Append sample data in the writer's encoding.
        """
        if self.encoding == "L16" and self._format == "au":
            data = g711.swap16(data)
        self._file.write(data)
        self._file.flush()
        self.length += len(data)

    def close(self):
        """
        Write the final sizes into the header and close the file.
        """
        if self._file.closed:
            return
        if self._format == "au":
            self._file.seek(8)
            self._file.write(struct.pack(">I", self.length))
        else:
            self._file.seek(0)
            self._file.write(self._wavHeader(self.length))
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def writeFile(path, data, encoding="PCMU", rate=8000):
    """
    Write a whole file at once.
    """
    with AudioWriter(path, encoding, rate) as writer:
        writer.write(data)


def readFile(path, encoding=None):
    """
    Read all sample data of a file, converted to C{encoding} when given.

    @return: C{(data, reader)}: the reader (closed) tells the format.
    """
    with AudioReader(path) as reader:
        data = reader.readAs(encoding) if encoding else reader.read()
    return data, reader

"""
The protected message file format (docs/drm.md, "Package format").

A package is a header followed by encrypted chunks::

    offset  size  field
    0       4     magic b"ADRM"
    4       1     format version, 1
    5       1     flags, 0 (reserved)
    6       2     header length N, big-endian
    8       N     header: UTF-8 JSON object (keys below), canonical form
    8+N     ...   chunks, each: 4-octet big-endian word (bit 31: final chunk,
                  bits 0-30: ciphertext length L), then L octets of
                  AES-GCM ciphertext including its 16-octet tag

Header keys: C{key_id} (UUID), C{content_id} (UUID), C{license_url},
C{cipher} (C{"AES-256-GCM"}), C{nonce} (8 random octets, hex), C{chunk_size}
(plaintext octets per chunk; every chunk but the last has exactly that many),
C{media}: C{{"format": "au" | "wav" | "raw", "codec", "rate", "channels",
"duration"}}, and C{content_type}.

Chunk I{i} (from 0) is sealed with the nonce C{nonce || i} (4 octets,
big-endian) and the additional data C{SHA-256(magic .. header) || i || final}
so that changing any header octet, reordering, dropping, truncating or
extending chunks, or altering any media octet makes decryption fail with
L{PackageError}; plaintext is only handed out after its tag verified.

No Twisted imports: bytes in, bytes or L{PackageError} out.
"""

import hashlib
import io
import json
import os
import struct
import uuid

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"ADRM"
VERSION = 1
CIPHER = "AES-256-GCM"
KEY_SIZE = 32
TAG_SIZE = 16
#: One second of 8 kHz G.711, or an eighth of a second of 16-bit 32 kHz PCM.
DEFAULT_CHUNK_SIZE = 8000
MAX_CHUNK_SIZE = 1 << 20
MAX_HEADER_SIZE = 16384
_FINAL = 0x80000000
_PREFIX = struct.Struct(">4sBBH")
_WORD = struct.Struct(">I")


class PackageError(ValueError):
    """
    The package is malformed, altered, or the key does not open it; the
    message says which, and no plaintext of a failing chunk is returned.
    """


@attrs.frozen
class Header:
    """
    A package header.

    @ivar raw: the header octets as they appear in the file (prefix and
        JSON), which the chunks authenticate.
    """

    keyId: str
    contentId: str
    licenseUrl: str
    nonce: bytes
    chunkSize: int
    media: dict = attrs.field(factory=dict, eq=False)
    contentType: str = "application/octet-stream"
    raw: bytes = b""

    @property
    def digest(self):
        return hashlib.sha256(self.raw).digest()

    def fields(self):
        """
        The header as the JSON object written to the file.
        """
        return {
            "key_id": self.keyId,
            "content_id": self.contentId,
            "license_url": self.licenseUrl,
            "cipher": CIPHER,
            "nonce": self.nonce.hex(),
            "chunk_size": self.chunkSize,
            "media": self.media,
            "content_type": self.contentType,
        }


def newHeader(licenseUrl, media=None, contentType="application/octet-stream",
              chunkSize=DEFAULT_CHUNK_SIZE, keyId=None, contentId=None):
    """
    A header with a fresh random key id, content id and nonce, and its
    encoded form in C{raw}.
    """
    if not 0 < chunkSize <= MAX_CHUNK_SIZE:
        raise ValueError("chunk size must be from 1 to %d" % (MAX_CHUNK_SIZE,))
    header = Header(
        keyId=keyId or str(uuid.uuid4()), contentId=contentId or str(uuid.uuid4()),
        licenseUrl=licenseUrl, nonce=os.urandom(8), chunkSize=chunkSize,
        media=dict(media or {}), contentType=contentType,
    )
    body = json.dumps(header.fields(), sort_keys=True, separators=(",", ":")).encode("utf-8")
    if len(body) > MAX_HEADER_SIZE:
        raise ValueError("header too long")
    return attrs.evolve(header, raw=_PREFIX.pack(MAGIC, VERSION, 0, len(body)) + body)


def newKey():
    """
    A fresh random content key.
    """
    return AESGCM.generate_key(bit_length=KEY_SIZE * 8)


def _checkUUID(value, name):
    if not isinstance(value, str):
        raise PackageError("header field %s is not a UUID" % (name,))
    try:
        if str(uuid.UUID(value)) != value:
            raise ValueError(value)
    except ValueError:
        raise PackageError("header field %s is not a UUID" % (name,))
    return value


def parseHeader(data):
    """
    Parse the header at the start of C{data}.

    @return: C{(Header, length in octets)}.
    @raise PackageError: with the reason.
    """
    if len(data) < _PREFIX.size:
        raise PackageError("not a protected message: file too short")
    magic, version, flags, length = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise PackageError("not a protected message: bad magic")
    if version != VERSION:
        raise PackageError("unsupported package version %d" % (version,))
    if flags != 0:
        raise PackageError("unsupported package flags %d" % (flags,))
    if length > MAX_HEADER_SIZE or len(data) < _PREFIX.size + length:
        raise PackageError("truncated or oversized header")
    raw = bytes(data[:_PREFIX.size + length])
    try:
        fields = json.loads(raw[_PREFIX.size:].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise PackageError("malformed header")
    if not isinstance(fields, dict):
        raise PackageError("malformed header")
    if fields.get("cipher") != CIPHER:
        raise PackageError("unsupported cipher %r" % (fields.get("cipher"),))
    try:
        nonce = bytes.fromhex(fields["nonce"])
        chunkSize = fields["chunk_size"]
        licenseUrl = fields["license_url"]
        media = fields.get("media", {})
        contentType = fields.get("content_type", "application/octet-stream")
    except (KeyError, TypeError, ValueError):
        raise PackageError("malformed header")
    if (len(nonce) != 8 or type(chunkSize) is not int or not 0 < chunkSize <= MAX_CHUNK_SIZE
            or not isinstance(licenseUrl, str) or not isinstance(media, dict)
            or not isinstance(contentType, str)):
        raise PackageError("malformed header")
    header = Header(
        keyId=_checkUUID(fields.get("key_id"), "key_id"),
        contentId=_checkUUID(fields.get("content_id"), "content_id"),
        licenseUrl=licenseUrl, nonce=nonce, chunkSize=chunkSize, media=media,
        contentType=contentType, raw=raw,
    )
    return header, len(raw)


def readHeader(stream):
    """
    Read and parse the header from a binary file object, leaving it at the
    first chunk.
    """
    prefix = stream.read(_PREFIX.size)
    if len(prefix) < _PREFIX.size:
        raise PackageError("not a protected message: file too short")
    length = _PREFIX.unpack(prefix)[3] if prefix[:4] == MAGIC else 0
    body = stream.read(min(length, MAX_HEADER_SIZE + 1))
    return parseHeader(prefix + body)[0]


def _aad(header, index, final):
    return header.digest + struct.pack(">IB", index, 1 if final else 0)


def _nonce(header, index):
    return header.nonce + struct.pack(">I", index)


def encryptChunks(header, key, chunks):
    """
    Encrypt plaintext C{chunks} (an iterable of bytes of any sizes), yielding
    the package octets: the header, then each sealed chunk as soon as a
    full one is available (streaming).
    """
    if len(key) != KEY_SIZE:
        raise ValueError("the content key must be %d octets" % (KEY_SIZE,))
    aead = AESGCM(key)
    size = header.chunkSize
    yield header.raw
    pending = b""
    index = 0
    for data in chunks:
        if pending:
            data = pending + data
        view, offset = memoryview(data), 0
        # Keep at least one octet back: the last chunk must be marked final.
        while len(view) - offset > size:
            yield _seal(aead, header, index, view[offset:offset + size], False)
            offset += size
            index += 1
        pending = bytes(view[offset:])
    yield _seal(aead, header, index, pending, True)


def _seal(aead, header, index, plaintext, final):
    if index >= 1 << 32:
        raise ValueError("message too long")
    sealed = aead.encrypt(_nonce(header, index), plaintext, _aad(header, index, final))
    return _WORD.pack(len(sealed) | (_FINAL if final else 0)) + sealed


def protect(data, key, header):
    """
    Encrypt C{data} in one go; return the package octets.
    """
    return b"".join(encryptChunks(header, key, [data]))


def decryptChunks(stream, key, header=None, first=0):
    """
    Read a package from a binary file object and yield its plaintext chunk
    by chunk, each only once its tag verified.

    @param header: the already read L{Header} (the stream then stands at the
        first chunk), or C{None} to read it here.
    @raise PackageError: when anything is altered, truncated, extended or the
        key is wrong; the chunks yielded before stay genuine, and callers
        must discard them (L{unprotect} and the player do).
    @param first: the index of the chunk the stream stands at, after a seek
        to L{chunkOffset}.
    """
    if header is None:
        header = readHeader(stream)
    if len(key) != KEY_SIZE:
        raise PackageError("the license key has the wrong length")
    aead = AESGCM(key)
    index = first
    while True:
        word = stream.read(_WORD.size)
        if len(word) < _WORD.size:
            raise PackageError("truncated package: chunk %d missing" % (index,))
        value = _WORD.unpack(word)[0]
        final, length = bool(value & _FINAL), value & ~_FINAL
        if length < TAG_SIZE or length > header.chunkSize + TAG_SIZE:
            raise PackageError("corrupt chunk %d: bad length" % (index,))
        if not final and length != header.chunkSize + TAG_SIZE:
            raise PackageError("corrupt chunk %d: bad length" % (index,))
        sealed = stream.read(length)
        if len(sealed) < length:
            raise PackageError("truncated package in chunk %d" % (index,))
        try:
            plaintext = aead.decrypt(_nonce(header, index), sealed, _aad(header, index, final))
        except InvalidTag:
            raise PackageError(
                "chunk %d fails authentication: the package was altered or the key is wrong"
                % (index,))
        yield plaintext
        if final:
            break
        index += 1
    if stream.read(1):
        raise PackageError("trailing data after the final chunk")


def unprotect(package, key):
    """
    Decrypt a whole package held in memory.

    @return: C{(Header, plaintext)}.
    @raise PackageError: see L{decryptChunks}.
    """
    stream = io.BytesIO(package)
    header = readHeader(stream)
    return header, b"".join(decryptChunks(stream, key, header))


def chunkOffset(header, position):
    """
    The file offset of the chunk holding plaintext octet C{position}, and
    that chunk's index, for seeking (every chunk but the last is full).
    """
    index = position // header.chunkSize
    return len(header.raw) + index * (_WORD.size + header.chunkSize + TAG_SIZE), index

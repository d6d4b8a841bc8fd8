"""
G.711 (ITU-T G.711) mu-law and A-law companding in pure Python.

The standard library's C{audioop} is gone from newer Pythons, so this
module builds lookup tables once at import time and converts whole buffers
with C{bytes.translate} and table indexing. Linear PCM here is signed 16-bit
little-endian, the native order of C{.wav} files; L{swap16} converts to and
from the big-endian order of Sun C{.au} files.

The encoders follow the classic Sun reference implementation (g711.c), the
same one SoX and FFmpeg agree with, so a decode / encode round trip of any
G.711 byte is the identity.
"""

import array
import sys

_ULAW_BIAS = 0x84
_ULAW_CLIP = 32635
_ALAW_SEGMENT_ENDS = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)

#: The value of silence in each encoding (what a zero sample encodes to).
SILENCE = {"PCMU": 0xFF, "PCMA": 0xD5}


def ulawToLinear(code):
    """
    Decode one mu-law byte to a signed 16-bit sample.
    """
    code = ~code & 0xFF
    sample = (((code & 0x0F) << 3) + _ULAW_BIAS) << ((code >> 4) & 0x07)
    sample -= _ULAW_BIAS
    return -sample if code & 0x80 else sample


def linearToUlaw(sample):
    """
    Encode one signed 16-bit sample as a mu-law byte.
    """
    sign = 0
    if sample < 0:
        sample = -sample
        sign = 0x80
    sample = min(sample, _ULAW_CLIP) + _ULAW_BIAS
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not sample & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def alawToLinear(code):
    """
    Decode one A-law byte to a signed 16-bit sample.
    """
    code ^= 0x55
    value = (code & 0x0F) << 4
    segment = (code & 0x70) >> 4
    if segment == 0:
        value += 8
    else:
        value = (value + 0x108) << (segment - 1)
    return value if code & 0x80 else -value


def linearToAlaw(sample):
    """
    Encode one signed 16-bit sample as an A-law byte.
    """
    sample >>= 3
    if sample >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        sample = -sample - 1
    for segment, end in enumerate(_ALAW_SEGMENT_ENDS):
        if sample <= end:
            break
    else:
        return 0x7F ^ mask
    value = segment << 4
    if segment < 2:
        value |= (sample >> 1) & 0x0F
    else:
        value |= (sample >> segment) & 0x0F
    return value ^ mask


def _decodeTables(decode):
    values = [decode(code) & 0xFFFF for code in range(256)]
    return bytes(v & 0xFF for v in values), bytes(v >> 8 for v in values)


def _encodeTable(encode):
    # Indexed by the sample as an unsigned 16-bit number.
    return bytes(encode(n - 65536 if n >= 32768 else n) for n in range(65536))


_ULAW_LOW, _ULAW_HIGH = _decodeTables(ulawToLinear)
_ALAW_LOW, _ALAW_HIGH = _decodeTables(alawToLinear)
_ULAW_ENCODE = _encodeTable(linearToUlaw)
_ALAW_ENCODE = _encodeTable(linearToAlaw)
_ULAW_TO_ALAW = bytes(_ALAW_ENCODE[ulawToLinear(c) & 0xFFFF] for c in range(256))
_ALAW_TO_ULAW = bytes(_ULAW_ENCODE[alawToLinear(c) & 0xFFFF] for c in range(256))

_DECODE = {"PCMU": (_ULAW_LOW, _ULAW_HIGH), "PCMA": (_ALAW_LOW, _ALAW_HIGH)}
_ENCODE = {"PCMU": _ULAW_ENCODE, "PCMA": _ALAW_ENCODE}


def decode(data, encoding):
    """
    Decode G.711 bytes (C{encoding} C{'PCMU'} or C{'PCMA'}) to 16-bit
    little-endian linear PCM.
    """
    low, high = _DECODE[encoding]
    out = bytearray(2 * len(data))
    out[0::2] = data.translate(low)
    out[1::2] = data.translate(high)
    return bytes(out)


def encode(pcm, encoding):
    """
    Encode 16-bit little-endian linear PCM as G.711 (C{'PCMU'} or
    C{'PCMA'}); a trailing odd byte is ignored.
    """
    table = _ENCODE[encoding]
    view = memoryview(pcm)[: len(pcm) & ~1].cast("H")
    if sys.byteorder == "big":
        samples = array.array("H", view)
        samples.byteswap()
        view = samples
    return bytes([table[n] for n in view])


def transcode(data, source, target):
    """
    Convert G.711 bytes from one law to the other (or return them as they
    are when C{source == target}).
    """
    if source == target:
        return bytes(data)
    table = _ULAW_TO_ALAW if source == "PCMU" else _ALAW_TO_ULAW
    return bytes(data).translate(table)


def swap16(pcm):
    """
    Swap the byte order of 16-bit samples (little- to big-endian and back).
    """
    out = bytearray(len(pcm) & ~1)
    out[0::2] = pcm[1::2][: len(out) // 2]
    out[1::2] = pcm[0::2][: len(out) // 2]
    return bytes(out)


def silence(encoding, length):
    """
    C{length} bytes of silence in C{encoding} (C{'PCMU'}, C{'PCMA'} or
    C{'L16'}).
    """
    if encoding == "L16":
        return bytes(length)
    return bytes([SILENCE[encoding]]) * length

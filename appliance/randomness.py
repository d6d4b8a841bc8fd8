"""
Random tokens for protocol identifiers (SIP tags and branches), from the
system's cryptographic random source, read in blocks.

RFC 3261 section 19.3 wants tags with at least 32 bits of cryptographic
randomness. Each token is taken from C{os.urandom}, but a call per token
costs a system call on the hot path of every request; a block of 4 KiB
serves hundreds of tokens. Keys and secrets do not come from here: they use
C{os.urandom} or L{secrets} directly.
"""

import os

_BLOCK = 4096


class _Pool:
    def __init__(self):
        self._buffer = b""
        self._position = 0

    def take(self, count):
        end = self._position + count
        if end > len(self._buffer):
            self._buffer = os.urandom(max(_BLOCK, count))
            self._position, end = 0, count
        chunk = self._buffer[self._position:end]
        self._position = end
        return chunk


_pool = _Pool()


def tokenHex(count):
    """
    C{count} random bytes as hexadecimal (like L{secrets.token_hex}).
    """
    return _pool.take(count).hex()

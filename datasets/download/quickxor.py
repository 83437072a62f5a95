"""QuickXorHash, the only content hash OneDrive for Business / SharePoint reports for a file.

Microsoft's documented algorithm: a 160-bit state; the byte at stream position ``n`` is XORed into the state at
bit offset ``(n * 11) mod 160``, wrapping around the top (so the state is a circular 160-bit register); at the end
the total length, as a little-endian 64-bit integer, is XORed into the last 8 bytes of the 20-byte little-endian
digest, which is reported base64-encoded (``file.hashes.quickXorHash``).

Because ``160 * 11 = 0 (mod 160)``, all bytes whose positions agree modulo 160 land at the same offset. ``update``
therefore folds a buffer to 160 bytes with a vectorised XOR and places only those 160 bytes, so hashing runs at
memory speed: GeneBody archives are tens of gigabytes and a per-byte Python loop would take hours.
"""
from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

WIDTH_BITS = 160
SHIFT = 11
_MASK = (1 << WIDTH_BITS) - 1
_ROW = WIDTH_BITS // 8  # 20 bytes: the digest size
_FOLD = WIDTH_BITS  # positions p and p + 160 share a bit offset


class QuickXorHash:
    """Incremental QuickXorHash (hashlib-like: ``update``, ``digest``, ``b64digest``)."""

    digest_size = _ROW

    def __init__(self, data: bytes | bytearray | memoryview | None = None):
        self._state = 0  # the 160-bit register as a Python int, bit k = bit (k mod 8) of byte k // 8
        self._length = 0
        if data is not None:
            self.update(data)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        buf = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)  # (n,)
        n = buf.size
        if n == 0:
            return
        full = n - n % _FOLD
        folded = np.zeros(_FOLD, dtype=np.uint8)  # (160,) XOR of all bytes at each position mod 160
        if full:
            # 160 bytes = 20 uint64 words, so fold whole rows eight bytes at a time
            rows = buf[:full].view(np.uint64).reshape(-1, _FOLD // 8)  # (full/160, 20)
            folded ^= np.bitwise_xor.reduce(rows, axis=0).view(np.uint8)
        folded[: n - full] ^= buf[full:]
        start = (self._length * SHIFT) % WIDTH_BITS
        state = self._state
        for r in np.flatnonzero(folded).tolist():
            shifted = int(folded[r]) << ((start + r * SHIFT) % WIDTH_BITS)
            state ^= (shifted & _MASK) | (shifted >> WIDTH_BITS)  # rotate the byte into the circular register
        self._state = state
        self._length += n

    def digest(self) -> bytes:
        out = bytearray(self._state.to_bytes(_ROW, "little"))
        for i, b in enumerate((self._length & (2**64 - 1)).to_bytes(8, "little")):
            out[_ROW - 8 + i] ^= b
        return bytes(out)

    def b64digest(self) -> str:
        """The digest as SharePoint reports it (base64, 28 characters)."""
        return base64.b64encode(self.digest()).decode("ascii")

    def copy(self) -> "QuickXorHash":
        other = QuickXorHash()
        other._state, other._length = self._state, self._length
        return other


def quickxor_file(path: str | Path, chunk_size: int = 16 << 20) -> str:
    """Base64 QuickXorHash of a file's contents, read in ``chunk_size`` blocks."""
    h = QuickXorHash()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk_size)
            if not block:
                break
            h.update(block)
    return h.b64digest()

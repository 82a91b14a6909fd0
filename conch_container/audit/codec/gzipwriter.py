"""A gzip writer that spends compression effort only where it pays.

zlib's deflate at level 1 searches data that has few repeats as hard as
text, and slows down on it. Measured on 32 KiB chunks on the machine where
the gateway downloads at about 47 MB/s, it compresses text (to 0.24 of its
size) at 136-168 MB/s, but base64 (0.78) at 21-36 MB/s, hex (0.59) at 47-91
MB/s and random bytes (1.0) at 40-50 MB/s: an audited download of such data
would wait for its own record. Deflate without the search
(``Z_HUFFMAN_ONLY``) does 100-166 MB/s on all of them, and compresses
base64 and hex better than full deflate does (0.75, 0.51), text worse
(0.58); storing (level 0) is a copy and a checksum, 750-850 MB/s.

So deflate's ratio is measured over a probe window: below
:data:`DEFLATE_BELOW` deflate stays; up to :data:`STORE_FROM` the next
:data:`SPAN` bytes are Huffman-coded only; above it they are stored. Then
deflate is probed again, so a session that switches from a download to a
shell compresses again within a few megabytes.

Where Intel's ISA-L is installed (the ``isal`` package, a dependency with
wheels for the usual platforms) its deflate replaces zlib's for levels up to
3: the same level-1 ratios at about 380 MB/s on random bytes, 500 MB/s on
base64 and several GB/s on text, outside the GIL, and its CRC-32 at 45 GB/s
instead of 4. It compresses data with few repeats faster than zlib's
Huffman coding does, so with it that middle mode is deflate too, and only
what does not compress at all is stored.

The output is one ordinary gzip member: the header, one deflate stream
whose blocks come from three zlib compressors (each switch is a full flush,
which ends on a byte boundary and drops the history, so that none refers
back into another's data), and the CRC-32 and length trailer. Any gzip
reader reads it, ContainerSSH's included.
"""

from __future__ import annotations

import importlib
import struct
import zlib
from types import ModuleType
from typing import Any

_isal: ModuleType | None
try:
    _isal = importlib.import_module("isal.isal_zlib")
except ImportError:  # no wheel for this platform: zlib does it all
    _isal = None

#: A gzip header: deflate, no file name, no modification time, unknown OS.
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
#: Input over which deflate's ratio (output over input) is measured.
PROBE_WINDOW = 256 * 1024
#: Input Huffman-coded or stored before deflate is probed again.
SPAN = 8 * 1024 * 1024
#: Deflate's ratio under which it is kept.
DEFLATE_BELOW = 0.5
#: Deflate's ratio from which data is stored rather than Huffman-coded.
STORE_FROM = 0.9
_RAW_DEFLATE = -zlib.MAX_WBITS


#: ISA-L's highest level.
ISAL_MAX_LEVEL = 3


def _raw(level: int, strategy: int = zlib.Z_DEFAULT_STRATEGY) -> Any:
    return zlib.compressobj(level, zlib.DEFLATED, _RAW_DEFLATE, 8, strategy)


def _isal_raw(level: int) -> Any | None:
    """ISA-L's raw deflate at ``level``, if installed and it has that level."""
    if _isal is not None and 0 < level <= ISAL_MAX_LEVEL:
        return _isal.compressobj(level, _isal.DEFLATED, _RAW_DEFLATE)
    return None


class StoredBlocks:
    """Deflate's stored blocks, written directly: data that does not compress, copied once.

    zlib's level 0 does the same through its window, at about a third of the
    speed of a copy. Every switch to this mode follows a full flush, which
    leaves the stream on a byte boundary, where a stored block may start; its
    own blocks end on one too, so a flush has nothing to add.
    """

    #: The most a stored block holds.
    MAX_BLOCK = 0xFFFF

    def compress(self, data: bytes) -> bytes:
        view = memoryview(data)
        parts: list[bytes | memoryview] = []
        for start in range(0, len(view), self.MAX_BLOCK):
            block = view[start : start + self.MAX_BLOCK]
            parts.append(struct.pack("<BHH", 0, len(block), len(block) ^ 0xFFFF))
            parts.append(block)
        return b"".join(parts)

    def flush(self, mode: int = zlib.Z_FINISH) -> bytes:
        if mode == zlib.Z_FINISH:
            return b"\x01\x00\x00\xff\xff"  # an empty, final stored block
        return b""


#: The CRC-32 of gzip's trailer, ISA-L's when installed (same values).
crc32 = _isal.crc32 if _isal is not None else zlib.crc32


class GzipWriter:
    """Compress into one gzip member, choosing deflate, Huffman coding or storing.

    :param level: the zlib level for data that compresses.
    """

    def __init__(self, level: int, probe_window: int = PROBE_WINDOW, span: int = SPAN) -> None:
        isal = _isal_raw(level)
        self._deflate = isal if isal is not None else _raw(level)
        self._modes = {
            "deflate": self._deflate,
            "huffman": _raw(level, zlib.Z_HUFFMAN_ONLY),
            "store": StoredBlocks(),
        }
        # ISA-L's deflate outruns zlib's Huffman coding: with it, deflate
        # stays for all that compresses, and the middle mode is never chosen.
        self._deflate_below = STORE_FROM if isal is not None else DEFLATE_BELOW
        self._active = self._deflate
        self._probe_window = probe_window
        self._span = span
        self._seen = 0  # input since the probe window (or the span) started
        self._made = 0  # deflate's output over the probe window
        self._crc = 0
        self._size = 0
        self._header = GZIP_HEADER

    @property
    def mode(self) -> str:
        """How incoming data is written now: ``deflate``, ``huffman`` or ``store``."""
        return next(name for name, c in self._modes.items() if c is self._active)

    def compress(self, data: bytes) -> bytes:
        """Take ``data``; return the output ready so far (possibly nothing)."""
        self._crc = crc32(data, self._crc)
        self._size += len(data)
        out = self._active.compress(data)
        self._seen += len(data)
        if self._active is self._deflate:
            if self._seen < self._probe_window:
                self._made += len(out)
            else:
                # Deflate holds back up to 16 K symbols: a flush makes the
                # measure exact, for a few bytes a window.
                out += self._deflate.flush(zlib.Z_SYNC_FLUSH)
                ratio = (self._made + len(out)) / self._seen
                if ratio >= STORE_FROM:
                    out += self._switch(self._modes["store"])
                elif ratio >= self._deflate_below:
                    out += self._switch(self._modes["huffman"])
                self._seen = self._made = 0
        elif self._seen >= self._span:
            out += self._switch(self._deflate)
            self._seen = self._made = 0
        return self._started(out)

    def flush(self) -> bytes:
        """Output that makes all data so far decompressible (a sync flush)."""
        out = self._active.flush(zlib.Z_SYNC_FLUSH)
        if self._active is self._deflate:
            self._made += len(out)
        return self._started(out)

    def finish(self) -> bytes:
        """The last block and the trailer (CRC-32 and length modulo 2**32)."""
        out = self._active.flush(zlib.Z_FINISH)
        return self._started(out + struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))

    def _switch(self, compressor: Any) -> bytes:
        out = bytes(self._active.flush(zlib.Z_FULL_FLUSH))
        self._active = compressor
        return out

    def _started(self, out: bytes) -> bytes:
        if self._header:
            out, self._header = self._header + out, b""
        return out

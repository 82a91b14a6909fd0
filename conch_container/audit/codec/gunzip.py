"""A gzip stream read lazily, that tells how it ended instead of failing.

Python's :mod:`gzip` refuses a stream without its end marker, but every log
ContainerSSH writes lacks one (it never closes its gzip writer), and so does
the file of a gateway killed mid-write. This reader hands out what can be
decompressed and then says whether the stream was complete, cut short or
damaged; the CBOR decoder reads from it as from a file.
"""

from __future__ import annotations

import zlib
from typing import BinaryIO

_GZIP_WBITS = 16 + zlib.MAX_WBITS
#: Compressed bytes read from the file at a time, and decompressed bytes
#: produced at a time: what bounds memory, whatever the size of the log.
READ_SIZE = 16 * 1024
OUTPUT_SIZE = 256 * 1024


class GzipBody:
    """The decompressed content of the gzip stream(s) read from ``source``.

    Concatenated gzip members are read as one stream, as ``gzip -d`` and Go's
    reader do.

    :ivar position: decompressed bytes handed out so far.
    :ivar complete: the last member's end marker was read and nothing follows.
    :ivar error: why the compressed data could not be decompressed, if so.
    """

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._inflater = zlib.decompressobj(_GZIP_WBITS)
        self._input = b""
        self._source_ended = False
        self._buffer = b""
        self._offset = 0
        self.position = 0
        self.complete = False
        self.error: str | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        """No: so the CBOR decoder reads no further than the item it decodes."""
        return False

    def read(self, size: int) -> bytes:
        """``size`` bytes, or fewer at the end of what can be decompressed."""
        available = len(self._buffer) - self._offset
        if available >= size:
            data = self._buffer[self._offset : self._offset + size]
            self._offset += size
        else:
            parts = [self._buffer[self._offset :]]
            self._buffer, self._offset = b"", 0
            wanted = size - available
            while wanted > 0 and self._fill():
                part = self._buffer[:wanted]
                self._offset = len(part)
                parts.append(part)
                wanted -= len(part)
            data = b"".join(parts)
        self.position += len(data)
        return data

    def peek_byte(self) -> int | None:
        """The next byte without taking it; ``None`` at the end."""
        if self._offset == len(self._buffer):
            self._buffer, self._offset = b"", 0
            if not self._fill():
                return None
        return self._buffer[self._offset]

    def _fill(self) -> bool:
        """Put newly decompressed bytes in the (empty) buffer; ``False`` at the end."""
        while self.error is None:
            if self._inflater.eof:
                self._input = self._inflater.unused_data or self._read_source()
                if not self._input:
                    self.complete = True
                    return False
                self._inflater = zlib.decompressobj(_GZIP_WBITS)
            if not self._input:
                self._input = self._read_source()
                if not self._input:
                    return False
            before = self._inflater.copy()
            try:
                data = self._inflater.decompress(self._input, OUTPUT_SIZE)
            except zlib.error as error:
                self.error = f"the compressed data is damaged ({error})"
                data, self._input = _salvage(before, self._input), b""
                self._buffer, self._offset = data, 0
                return bool(data)
            self._input = self._inflater.unconsumed_tail
            if data:
                self._buffer, self._offset = data, 0
                return True
        return False

    def _read_source(self) -> bytes:
        if self._source_ended:
            return b""
        data = self._source.read(READ_SIZE)
        if not data:
            self._source_ended = True
        return data


def _salvage(inflater: zlib._Decompress, data: bytes) -> bytes:
    """What ``inflater`` makes of ``data`` before the byte where it fails.

    zlib discards the output of a call that fails, so the part before the
    damage is recovered one input byte at a time: at most one read's worth.
    """
    parts = []
    for index in range(len(data)):
        try:
            parts.append(inflater.decompress(data[index : index + 1]))
        except zlib.error:
            break
    return b"".join(parts)

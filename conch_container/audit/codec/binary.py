"""The ``binary`` format: ContainerSSH's CBOR + gzip audit log, version 2.

A stream is a 40-byte header (``ContainerSSH-Auditlog`` padded with zeros to
32 bytes, then the version as a little-endian uint64) followed by one gzip
stream holding one CBOR map per message. ContainerSSH's decoder reads what
this writes, and :mod:`.binaryread` reads what ContainerSSH writes.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

import cbor2
from zope.interface import implementer

from conch_container.audit.codec.gzipwriter import GzipWriter
from conch_container.audit.message import AuditMessage
from conch_container.interfaces import IAuditCodec, IAuditEncoder

MAGIC = b"ContainerSSH-Auditlog".ljust(32, b"\0")
HEADER_SIZE = len(MAGIC) + 8
#: The version this writes: a sequence of top-level CBOR maps (version 1 was
#: one indefinite-length array of them).
VERSION = 2
READABLE_VERSIONS = (1, 2)

#: zlib's fastest level. Encoding and compressing 32 KiB I/O messages, with a
#: flush every 8, on a machine where the gateway downloads at about 47 MB/s:
#:
#: ===============  ============  ============  ===================
#: output           gzip level 1  gzip level 6  this encoder, ratio
#: ===============  ============  ============  ===================
#: shell-like text  158-168 MB/s  34-42 MB/s    149-173 MB/s, 0.24
#: random bytes     40-46 MB/s    41 MB/s       761-800 MB/s, 1.00
#: base64           31-36 MB/s    30-32 MB/s    133-135 MB/s, 0.76
#: hex              84-91 MB/s    23-28 MB/s    91-138 MB/s, 0.51
#: zeros            430-568 MB/s  221-287 MB/s  503-682 MB/s, 0.01
#: ===============  ============  ============  ===================
#:
#: Level 6 makes text 0.20 of its size instead of 0.24, but is slower than
#: the download itself, so an audited session would be held back by its own
#: record. At level 1 text has three times the headroom, and what level 1
#: handles slowly (data with few repeats) is Huffman-coded or stored by
#: :class:`~.gzipwriter.GzipWriter` instead. CBOR encoding is negligible next
#: to any of it (about 8 GB/s for such messages).
#:
#: Even so, zlib costs a download a CPU-second every few hundred megabytes,
#: which a gateway whose cores are busy with the SSH data path pays in
#: throughput: where ISA-L is installed, the writer uses its deflate instead
#: (see :mod:`.gzipwriter`).
COMPRESSION_LEVEL = 1


def file_header(version: int = VERSION) -> bytes:
    """The 40 bytes a binary audit stream starts with."""
    return MAGIC + struct.pack("<Q", version)


def message_to_cbor(message: AuditMessage) -> dict[str, Any]:
    """The map ContainerSSH's encoder writes for ``message`` (its JSON tags as keys)."""
    return {
        "connectionId": message.connection_id,
        "timestamp": message.timestamp,
        "type": int(message.type),
        "payload": _cbor_payload(message.payload),
        "channelId": message.channel_id,
    }


def _cbor_payload(payload: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if payload is None:
        return None
    # cbor2 writes a memoryview as an array of integers, not as a byte string.
    return {
        key: bytes(value) if isinstance(value, memoryview) else value
        for key, value in payload.items()
    }


@implementer(IAuditEncoder)
class BinaryEncoder:
    """One connection's stream in the ``binary`` format.

    Messages go through one gzip stream (:class:`~.gzipwriter.GzipWriter`);
    :meth:`flush` ends the deflate block with a sync marker, so that
    everything encoded so far can be decompressed from the bytes returned so
    far, even if nothing more ever comes (a killed gateway). The recorder
    flushes once per batch of messages rather than per message, which keeps
    the compression ratio up and the per-flush overhead (a few bytes) down.
    """

    def __init__(self, level: int = COMPRESSION_LEVEL) -> None:
        self._compressor = GzipWriter(level)
        self._header: bytes | None = file_header()
        self._finished = False

    def encode(self, message: AuditMessage) -> bytes:
        """The compressed CBOR of ``message``; often empty until :meth:`flush`."""
        self._check_open()
        return self._emit(self._compressor.compress(cbor2.dumps(message_to_cbor(message))))

    def flush(self) -> bytes:
        """What makes every message encoded so far decodable."""
        self._check_open()
        return self._emit(self._compressor.flush())

    def finish(self) -> bytes:
        """The rest of the stream and the gzip trailer (its end marker)."""
        self._check_open()
        self._finished = True
        return self._emit(self._compressor.finish())

    def _check_open(self) -> None:
        if self._finished:
            raise RuntimeError("the audit stream is finished")

    def _emit(self, data: bytes) -> bytes:
        if self._header is not None:
            data, self._header = self._header + data, None
        return data


@implementer(IAuditCodec)
class BinaryCodec:
    """``audit.format: binary``."""

    name = "binary"

    def encoder(self, connection_id: str, start_time_ns: int) -> BinaryEncoder:
        """A new :class:`BinaryEncoder`; the messages carry everything it writes."""
        return BinaryEncoder()

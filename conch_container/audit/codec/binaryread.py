"""Reading ``binary`` audit logs, versions 1 and 2, as far as they go.

A log is read lazily, one message at a time, so a log of any size reads in
little memory. A log that stops early (ContainerSSH never writes the gzip end
marker; a killed gateway stops anywhere) gives every whole message it holds,
then :attr:`BinaryLogReader.end` says how it ended and
:attr:`BinaryLogReader.warning` says so in words: the caller prints that, and
never sees an exception for it. Only a file that is no audit log at all
raises (:class:`AuditLogFormatError`), and before any message.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator, Mapping
from typing import IO, Any, BinaryIO, TypeGuard, cast

import cbor2

from conch_container.audit.codec.binary import HEADER_SIZE, MAGIC, READABLE_VERSIONS
from conch_container.audit.codec.gunzip import GzipBody
from conch_container.audit.message import AuditMessage

_ARRAY_START = 0x9F
_BREAK = 0xFF


class AuditLogFormatError(Exception):
    """The data is not a binary audit log this reader knows (magic or version)."""


class StreamEnd(enum.Enum):
    """How a log ended."""

    #: After its last message, with the gzip end marker.
    COMPLETE = "complete"
    #: After a whole message, without the gzip end marker: as ContainerSSH
    #: writes every log, or as a gateway killed between two messages leaves it.
    UNTERMINATED = "unterminated"
    #: Inside a message (or its header): a gateway killed mid-write.
    TRUNCATED = "truncated"
    #: At data that does not decode.
    CORRUPT = "corrupt"


class BinaryLogReader:
    """The messages of one binary audit log; iterate once.

    :param source: the log, opened for reading in binary mode; read in
        chunks, never whole.
    :raises AuditLogFormatError: the header is not an audit log's.

    :ivar version: the log's format version (1 or 2); ``None`` if the header
        itself was cut short.
    :ivar end: how it ended, once iteration is over.
    :ivar detail: for a damaged log, what was wrong.
    """

    def __init__(self, source: BinaryIO) -> None:
        self.version = _read_header(source)
        self._body = GzipBody(source)
        self.end: StreamEnd | None = None if self.version is not None else StreamEnd.TRUNCATED
        self.detail = "" if self.version is not None else "inside the file header"
        #: Messages read so far.
        self.count = 0

    @property
    def warning(self) -> str | None:
        """A sentence for the operator if the log did not end properly, else ``None``."""
        read = _messages(self.count)
        if self.end is StreamEnd.UNTERMINATED:
            return f"the stream ended without its end marker, after {read}"
        if self.end is StreamEnd.TRUNCATED:
            where = self.detail or f"inside message {self.count + 1}"
            return f"the stream ended early, {where}; {read} read"
        if self.end is StreamEnd.CORRUPT:
            return f"the stream is damaged after {read}: {self.detail}"
        return None

    def __iter__(self) -> Iterator[AuditMessage]:
        if self.version == 1:
            return self._version_1()
        if self.version == 2:
            return self._version_2()
        return iter(())

    def _version_2(self) -> Iterator[AuditMessage]:
        decoder = _cbor_decoder(self._body)
        while self.end is None:
            message = self._next(decoder)
            if message is not None:
                yield message

    def _version_1(self) -> Iterator[AuditMessage]:
        body = self._body
        first = body.peek_byte()
        if first is None:
            self._stop_at_end_of_data(body.position)
            return
        if first != _ARRAY_START:
            self._stop(StreamEnd.CORRUPT, "a version 1 log must hold one array of messages")
            return
        body.read(1)
        decoder = _cbor_decoder(body)
        while self.end is None:
            if body.peek_byte() == _BREAK:
                body.read(1)
                self._stop_at_end_of_array()
                return
            # cbor2 reads no further than the item it decodes from a stream
            # that cannot seek, so the peek above sees the byte after each.
            message = self._next(decoder)
            if message is not None:
                yield message

    def _next(self, decoder: cbor2.CBORDecoder) -> AuditMessage | None:
        start = self._body.position
        try:
            item = decoder.decode()
        except (cbor2.CBORDecodeEOF, EOFError):
            self._stop_at_end_of_data(start)
            return None
        except Exception as error:  # cbor2 raises several kinds on hostile input
            self._stop(StreamEnd.CORRUPT, self._body.error or f"undecodable CBOR ({error})")
            return None
        try:
            message = _to_message(item)
        except ValueError as error:
            self._stop(StreamEnd.CORRUPT, f"message {self.count + 1}: {error}")
            return None
        self.count += 1
        return message

    def _stop_at_end_of_data(self, start: int) -> None:
        body = self._body
        if body.error is not None:
            self._stop(StreamEnd.CORRUPT, body.error)
        elif body.position != start:
            self._stop(StreamEnd.TRUNCATED, "")
        elif body.complete and self.version == 2:
            self._stop(StreamEnd.COMPLETE, "")
        else:
            self._stop(StreamEnd.UNTERMINATED, "")

    def _stop_at_end_of_array(self) -> None:
        body = self._body
        if body.peek_byte() is not None:
            self._stop(StreamEnd.CORRUPT, "data follows the array of messages")
        elif body.error is not None:
            self._stop(StreamEnd.CORRUPT, body.error)
        elif body.complete:
            self._stop(StreamEnd.COMPLETE, "")
        else:
            self._stop(StreamEnd.UNTERMINATED, "")

    def _stop(self, end: StreamEnd, detail: str) -> None:
        self.end, self.detail = end, detail


def _cbor_decoder(body: GzipBody) -> cbor2.CBORDecoder:
    # Text that is not UTF-8 (Go strings are bytes) is kept, with U+FFFD,
    # rather than ending the log there.
    return cbor2.CBORDecoder(cast(IO[bytes], body), str_errors="replace")


def _messages(count: int) -> str:
    return "1 whole message" if count == 1 else f"{count} whole messages"


def _read_header(source: BinaryIO) -> int | None:
    """The version; ``None`` if the data ends inside a plausible header."""
    header = b""
    while len(header) < HEADER_SIZE:
        data = source.read(HEADER_SIZE - len(header))
        if not data:
            break
        header += data
    magic = header[: len(MAGIC)]
    if magic != MAGIC[: len(magic)]:
        raise AuditLogFormatError("not an audit log (it does not start with ContainerSSH-Auditlog)")
    if len(header) < HEADER_SIZE:
        return None
    (version,) = struct.unpack("<Q", header[len(MAGIC) :])
    if version not in READABLE_VERSIONS:
        raise AuditLogFormatError(
            f"audit log format version {version} is not supported (only 1 and 2 are)"
        )
    return int(version)


def _to_message(item: Any) -> AuditMessage:
    """An :class:`AuditMessage` from a decoded map; payload fields are kept as they are."""
    if not isinstance(item, Mapping):
        raise ValueError(f"not a map but {type(item).__name__}")
    connection_id = item.get("connectionId", "")
    timestamp = item.get("timestamp", 0)
    message_type = item.get("type")
    payload = item.get("payload")
    channel_id = item.get("channelId")
    if not isinstance(connection_id, str):
        raise ValueError("connectionId is not text")
    if not _is_int(timestamp):
        raise ValueError("timestamp is not an integer")
    if not _is_int(message_type):
        raise ValueError("type is missing or not an integer")
    if payload is not None and not isinstance(payload, Mapping):
        raise ValueError("payload is not a map")
    if channel_id is not None and not _is_int(channel_id):
        raise ValueError("channelId is not an integer")
    return AuditMessage(
        connection_id=connection_id,
        timestamp=timestamp,
        type=message_type,
        payload=payload,
        channel_id=channel_id,
    )


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)

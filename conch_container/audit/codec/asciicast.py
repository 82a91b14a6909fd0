"""The ``asciinema`` format: a connection's terminal output as an asciicast v2 file.

What ContainerSSH writes for ``format: asciinema``: a header line (terminal
size and type from the pty request, environment from setenv requests, the
command), written at the first exec, shell, subsystem or I/O message, then
one ``[seconds, "o", text]`` line per stdout or stderr chunk of any channel.
Standard input is never written (it would replay typed passwords). The file
plays with ``asciinema play`` and prints with ``asciinema cat``.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator
from typing import Any

from zope.interface import implementer

from conch_container.audit.message import STDERR, STDOUT, AuditMessage, MessageType
from conch_container.interfaces import IAuditCodec, IAuditEncoder

#: The command a header names when a shell or subsystem starts the recording.
SHELL = "/bin/sh"
_NS = 1_000_000_000
_UTF8 = codecs.getincrementaldecoder("utf-8")


@implementer(IAuditEncoder)
class AsciicastEncoder:
    """One connection's asciicast.

    Output bytes are decoded as UTF-8 per channel and stream, carrying an
    incomplete character over to that stream's next chunk, so that a
    character split between two chunks is written whole; bytes that are not
    UTF-8 become U+FFFD.

    :param start_time_ns: when the client connected; frame times count from
        there (a ``connect`` message sets it again, as in ContainerSSH).
    """

    def __init__(self, start_time_ns: int) -> None:
        self._start = start_time_ns
        self._last = start_time_ns
        self._header: dict[str, Any] = {
            "version": 2,
            "width": 80,
            "height": 25,
            "timestamp": start_time_ns // _NS,
            "command": "",
            "title": "",
            "env": {},
        }
        self._header_written = False
        self._decoders: dict[tuple[int | None, int], codecs.IncrementalDecoder] = {}
        self._finished = False

    def encode(self, message: AuditMessage) -> bytes:
        """The lines ``message`` adds: none, the header, a frame, or both."""
        if self._finished:
            raise RuntimeError("the audit stream is finished")
        payload = message.payload or {}
        self._last = message.timestamp
        if message.type == MessageType.CONNECT:
            self._start = message.timestamp
            self._header["timestamp"] = message.timestamp // _NS
        elif message.type == MessageType.SETENV:
            self._header["env"][str(payload.get("name", ""))] = str(payload.get("value", ""))
        elif message.type == MessageType.PTY:
            self._header["env"]["TERM"] = str(payload.get("term", ""))
            self._header["width"] = _uint(payload.get("columns"))
            self._header["height"] = _uint(payload.get("rows"))
        elif message.type == MessageType.EXEC:
            return self._start_recording(str(payload.get("program", "")))
        elif message.type in (MessageType.SHELL, MessageType.SUBSYSTEM):
            return self._start_recording(SHELL)
        elif message.type == MessageType.IO:
            header = self._start_recording(SHELL)
            stream = payload.get("stream")
            data = payload.get("data")
            if stream in (STDOUT, STDERR) and isinstance(data, bytes | bytearray | memoryview):
                text = self._decoder(message.channel_id, stream).decode(data)
                return header + self._frame(message.timestamp, text)
            return header
        return b""

    def flush(self) -> bytes:
        """Nothing: every line is returned whole by :meth:`encode`."""
        return b""

    def finish(self) -> bytes:
        """The header if nothing started a program, and any incomplete characters."""
        data = self._start_recording("")
        for decoder in self._decoders.values():
            data += self._frame(self._last, decoder.decode(b"", final=True))
        self._finished = True
        return data

    def _start_recording(self, command: str) -> bytes:
        if self._header_written:
            return b""
        self._header_written = True
        self._header["command"] = command
        self._header["env"] = dict(sorted(self._header["env"].items()))
        return _line(self._header)

    def _decoder(self, channel_id: int | None, stream: int) -> codecs.IncrementalDecoder:
        key = (channel_id, stream)
        decoder = self._decoders.get(key)
        if decoder is None:
            decoder = self._decoders[key] = _UTF8(errors="replace")
        return decoder

    def _frame(self, timestamp: int, text: str) -> bytes:
        if not text:
            return b""
        return _line([(timestamp - self._start) / _NS, "o", text])


def _uint(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _line(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


@implementer(IAuditCodec)
class AsciicastCodec:
    """``audit.format: asciinema``."""

    name = "asciinema"

    def encoder(self, connection_id: str, start_time_ns: int) -> AsciicastEncoder:
        """A new :class:`AsciicastEncoder` for a client connected at ``start_time_ns``."""
        return AsciicastEncoder(start_time_ns)


def asciicast_from_messages(messages: Iterable[AuditMessage]) -> Iterator[bytes]:
    """The asciicast of a recorded connection, e.g. one read from a ``binary`` log.

    Frame times count from the first message (the ``connect`` message of a
    whole log). Without any message, it is a header alone, as ContainerSSH
    writes for a connection that ran nothing.
    """
    encoder: AsciicastEncoder | None = None
    for message in messages:
        if encoder is None:
            encoder = AsciicastEncoder(message.timestamp)
        data = encoder.encode(message)
        if data:
            yield data
    yield (encoder or AsciicastEncoder(0)).finish()

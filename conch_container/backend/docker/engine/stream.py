"""A program's stream in the reactor: demultiplexing, PID handshake, EOF.

Without a TTY the engine multiplexes stdout and stderr into frames: an 8-byte
header (byte 0 the stream, 1 stdout or 2 stderr; bytes 4-7 the payload length,
big-endian) and the payload. With a TTY the stream is the raw terminal output.

With the guest agent, the agent's PID comes first
(:mod:`conch_container.backend.agentprotocol`): the first four raw bytes with
a TTY, the first four stdout payload bytes without.

This is the data path of every download, so the per-chunk work is kept to a
few comparisons and at most one slice per frame boundary; payload that fills a
whole chunk is passed on without copying.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, cast

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IConsumer,
    IHalfCloseableProtocol,
    IPushProducer,
    ITransport,
)
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from conch_container.backend.agentprotocol import PidReader, TerminalPidReader, plausible_pid

Sink = Callable[[bytes], Any]

STDOUT = 1
STDERR = 2
_HEADER = struct.Struct(">BxxxL")
HEADER_SIZE = _HEADER.size

_CONNECTION_DONE = Failure(ConnectionDone())


class StreamProtocolError(Exception):
    """The engine sent something that is not a valid multiplexed stream."""


class FrameDemuxer:
    """Split Docker's multiplexed stream into stdout and stderr payloads.

    Chunks may split frames (and headers) anywhere; :meth:`feed` keeps only a
    partial header between calls. Stream 0 (stdin echo) is treated as stdout.

    :param stdout: called with each stdout payload piece.
    :param stderr: called with each stderr payload piece.
    """

    def __init__(self, stdout: Sink, stderr: Sink) -> None:
        self._sinks: list[Sink] = [stdout, stdout, stderr]
        self._stream = STDOUT
        self._sink: Sink = stdout
        self._remaining = 0
        self._header = bytearray()

    def set_sinks(self, stdout: Sink, stderr: Sink) -> None:
        """Send further payload elsewhere (the current frame's rest included)."""
        self._sinks = [stdout, stdout, stderr]
        self._sink = self._sinks[self._stream]

    @property
    def in_frame(self) -> bool:
        """Whether the stream stopped in the middle of a frame or header."""
        return bool(self._remaining or self._header)

    def feed(self, data: bytes) -> None:
        """Process one chunk from the engine.

        :raises StreamProtocolError: for a header naming an unknown stream.
        """
        end = len(data)
        pos = 0
        while pos < end:
            remaining = self._remaining
            if remaining:
                available = end - pos
                if remaining >= available:
                    self._remaining = remaining - available
                    self._sink(data if pos == 0 else data[pos:])
                    return
                self._remaining = 0
                self._sink(data[pos : pos + remaining])
                pos += remaining
                continue
            if self._header or end - pos < HEADER_SIZE:
                take = min(HEADER_SIZE - len(self._header), end - pos)
                self._header += data[pos : pos + take]
                pos += take
                if len(self._header) < HEADER_SIZE:
                    return
                stream, length = _HEADER.unpack(self._header)
                self._header.clear()
            else:
                stream, length = _HEADER.unpack_from(data, pos)
                pos += HEADER_SIZE
            if stream > STDERR:
                raise StreamProtocolError(f"unknown stream {stream} in frame header")
            self._stream = stream
            self._sink = self._sinks[stream]
            self._remaining = length


class StreamEvents:
    """What an :class:`ExecStreamProtocol` reports besides output (the exec session)."""

    def pid_received(self, pid: int) -> None:
        raise NotImplementedError

    def pid_failed(self, reason: str) -> None:
        raise NotImplementedError

    def output_ended(self, error: str | None) -> None:
        """The engine closed the stream; ``error`` says what was wrong, if anything."""
        raise NotImplementedError

    def stream_closed(self) -> None:
        """The connection is fully closed (after :meth:`output_ended`)."""
        raise NotImplementedError


@implementer(IHalfCloseableProtocol)
class ExecStreamProtocol(Protocol):
    """Reads one program's output from its engine connection.

    Stdin goes the other way through ``transport.write`` and
    ``transport.loseWriteConnection`` (done by the session), paced by the
    producer given to :meth:`register_input`. When the engine
    ends the stream, the read side closes first (``readConnectionLost``); the
    protocol then closes the connection itself, since a half-closed socket
    would otherwise stay open forever.

    :param stdout: receives stdout (everything, with a TTY); called directly
        from the data path, so pass the consumer's own method.
    :param stderr: receives stderr (never called with a TTY).
    :param events: gets the PID and the end of the stream.
    :param tty: whether the stream is raw terminal output.
    :param expect_pid: whether the agent's PID comes first.
    """

    transport: ITransport

    def __init__(
        self,
        stdout: Sink,
        stderr: Sink,
        events: StreamEvents,
        *,
        tty: bool,
        expect_pid: bool,
    ) -> None:
        self._stdout = stdout
        self._stderr = stderr
        self._events = events
        self._expect_pid = expect_pid
        self._failed: str | None = None
        self._output_ended = False
        self._demuxer: FrameDemuxer | None = None
        self._input: IPushProducer | None = None
        self._feed: Sink
        if tty:
            self._feed = (
                TerminalPidReader(self._got_pid, self._after_pid).feed if expect_pid else stdout
            )
        else:
            if expect_pid:
                pid_reader = PidReader(self._got_pid, self._after_pid)
                self._demuxer = FrameDemuxer(pid_reader.feed, self._stderr_before_pid)
            else:
                self._demuxer = FrameDemuxer(stdout, stderr)
            self._feed = self._demuxer.feed

    # -- stdin

    def register_input(self, producer: IPushProducer) -> None:
        """Register stdin's ``producer`` with the stream's transport.

        The transport pauses a streaming producer while more than its
        ``bufferSize`` waits to be written to the engine and resumes it once
        that was written. The protocol keeps the producer itself, rather than
        asking the transport for it later, because no interface says a
        transport exposes it (a TLS transport keeps its own privately).
        """
        cast(IConsumer, self.transport).registerProducer(producer, True)
        self._input = producer

    def release_input(self) -> None:
        """Unregister and stop stdin's producer, if one is registered.

        A reactor transport whose producer is paused when its buffer drains
        resumes the producer instead of finishing a pending close or
        half-close, and then waits for a write that never comes; with no
        producer registered the close goes ahead. Stopping the producer tells
        the SSH side that stdin is no longer taken.
        """
        producer, self._input = self._input, None
        if producer is None:
            return
        cast(IConsumer, self.transport).unregisterProducer()
        producer.stopProducing()

    # -- PID handshake

    def _got_pid(self, pid: int) -> None:
        if not plausible_pid(pid):
            self._fail_pid(f"the first bytes of the output are not a PID ({pid})")
            return
        self._expect_pid = False
        if self._demuxer is not None:
            self._demuxer.set_sinks(self._stdout, self._stderr)
        else:
            self._feed = self._stdout
        self._events.pid_received(pid)

    def _after_pid(self, data: bytes) -> None:
        """Output that arrived in the same piece as the PID."""
        if self._failed is None:
            self._stdout(data)

    def _stderr_before_pid(self, data: bytes) -> None:
        self._fail_pid("output on stderr before the PID")

    def _fail_pid(self, reason: str) -> None:
        self._discard(reason)
        self._events.pid_failed(reason)

    def _discard(self, reason: str) -> None:
        """Stop forwarding output and drop the connection."""
        self._failed = reason
        self._feed = _ignore
        if self._demuxer is not None:
            self._demuxer.set_sinks(_ignore, _ignore)
        self._close()

    def _close(self) -> None:
        self.release_input()
        self.transport.loseConnection()

    # -- Protocol

    def dataReceived(self, data: bytes) -> None:
        try:
            self._feed(data)
        except StreamProtocolError as e:
            if self._expect_pid and self._failed is None:
                # Before the PID the session waits for the handshake's result.
                self._fail_pid(str(e))
            else:
                self._discard(str(e))

    def readConnectionLost(self) -> None:
        self._end_output(None)
        self._close()

    def writeConnectionLost(self) -> None:
        """Stdin was closed; output keeps flowing."""

    def connectionLost(self, reason: Failure = _CONNECTION_DONE) -> None:
        # Every reactor transport stopped and dropped its producer already.
        self._input = None
        self._end_output(reason)
        self._events.stream_closed()

    def _end_output(self, reason: Failure | None) -> None:
        if self._output_ended:
            return
        self._output_ended = True
        if self._expect_pid and self._failed is None:
            self._failed = "the output ended before the PID"
            self._events.pid_failed(self._failed)
        error = self._failed
        if error is None and self._demuxer is not None and self._demuxer.in_frame:
            error = "the output ended in the middle of a frame"
        if error is None and reason is not None and reason.check(ConnectionDone) is None:
            error = reason.getErrorMessage()
        self._events.output_ended(error)


def _ignore(data: bytes) -> None:
    return None

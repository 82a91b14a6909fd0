"""Tests for conch_container.backend.docker.engine.stream: demultiplexing and the PID handshake."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from conch_container.backend.agentprotocol import plausible_pid
from conch_container.backend.docker.engine.stream import (
    ExecStreamProtocol,
    FrameDemuxer,
    StreamEvents,
    StreamProtocolError,
)


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for p in points:
        pieces.append(data[start:p])
        start = p
    pieces.append(data[start:])
    return pieces


frames_strategy = st.lists(
    st.tuples(st.sampled_from([0, 1, 2]), st.binary(max_size=300)), max_size=12
)
cuts_strategy = st.lists(st.integers(min_value=0, max_value=10_000), max_size=30)


class Collector:
    def __init__(self) -> None:
        self.out = bytearray()
        self.err = bytearray()
        self.calls = 0

    def stdout(self, data: bytes) -> None:
        self.calls += 1
        self.out += data

    def stderr(self, data: bytes) -> None:
        self.calls += 1
        self.err += data


class DemuxerTests(SynchronousTestCase):
    @given(frames_strategy, cuts_strategy)
    def test_any_split(self, frames: list[tuple[int, bytes]], cuts: list[int]) -> None:
        """However the stream is cut into chunks, each stream gets its payloads in order."""
        data = b"".join(frame(s, p) for s, p in frames)
        sink = Collector()
        demuxer = FrameDemuxer(sink.stdout, sink.stderr)
        for piece in split_at(data, cuts):
            demuxer.feed(piece)
        self.assertEqual(bytes(sink.out), b"".join(p for s, p in frames if s in (0, 1)))
        self.assertEqual(bytes(sink.err), b"".join(p for s, p in frames if s == 2))
        self.assertFalse(demuxer.in_frame)

    def test_whole_chunk_not_copied(self) -> None:
        """A chunk that is all payload is passed on as the same object."""
        seen: list[bytes] = []
        demuxer = FrameDemuxer(seen.append, seen.append)
        demuxer.feed(struct.pack(">BxxxL", 1, 10))
        chunk = b"0123456789"
        demuxer.feed(chunk)
        self.assertIs(seen[0], chunk)

    def test_partial_frame(self) -> None:
        """in_frame tells when the stream stopped inside a header or payload."""
        demuxer = FrameDemuxer(Collector().stdout, Collector().stderr)
        demuxer.feed(frame(1, b"abc")[:5])
        self.assertTrue(demuxer.in_frame)
        demuxer.feed(frame(1, b"abc")[5:9])
        self.assertTrue(demuxer.in_frame)
        demuxer.feed(b"bc")
        self.assertFalse(demuxer.in_frame)

    def test_unknown_stream(self) -> None:
        """A header naming stream 3 or more is a protocol error."""
        demuxer = FrameDemuxer(Collector().stdout, Collector().stderr)
        self.assertRaises(StreamProtocolError, demuxer.feed, frame(3, b"x"))

    def test_set_sinks_mid_frame(self) -> None:
        """New sinks take over the rest of the current frame."""
        first, second = Collector(), Collector()
        demuxer = FrameDemuxer(first.stdout, first.stderr)
        data = frame(2, b"abcdef")
        demuxer.feed(data[:10])
        demuxer.set_sinks(second.stdout, second.stderr)
        demuxer.feed(data[10:])
        self.assertEqual((bytes(first.err), bytes(second.err)), (b"ab", b"cdef"))


class Events(StreamEvents):
    def __init__(self) -> None:
        self.log: list[tuple[str, object]] = []

    def pid_received(self, pid: int) -> None:
        self.log.append(("pid", pid))

    def pid_failed(self, reason: str) -> None:
        self.log.append(("pid_failed", reason))

    def output_ended(self, error: str | None) -> None:
        self.log.append(("output_ended", error))

    def stream_closed(self) -> None:
        self.log.append(("stream_closed", None))


def connect(
    *, tty: bool, expect_pid: bool
) -> tuple[ExecStreamProtocol, Collector, Events, StringTransport]:
    sink, events = Collector(), Events()
    protocol = ExecStreamProtocol(sink.stdout, sink.stderr, events, tty=tty, expect_pid=expect_pid)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, sink, events, transport


PID = (4242).to_bytes(4, "little")


class ProtocolTests(SynchronousTestCase):
    def test_half_closeable(self) -> None:
        """The protocol provides IHalfCloseableProtocol."""
        protocol, *_ = connect(tty=False, expect_pid=False)
        verifyObject(IHalfCloseableProtocol, protocol)

    def test_read_eof_closes_connection(self) -> None:
        """When the engine ends the output the protocol reports it and closes the connection."""
        protocol, sink, events, transport = connect(tty=False, expect_pid=False)
        protocol.dataReceived(frame(1, b"out") + frame(2, b"err"))
        protocol.readConnectionLost()
        self.assertEqual((bytes(sink.out), bytes(sink.err)), (b"out", b"err"))
        self.assertEqual(events.log, [("output_ended", None)])
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(events.log, [("output_ended", None), ("stream_closed", None)])

    def test_tty_raw(self) -> None:
        """With a TTY the bytes go to stdout unchanged."""
        protocol, sink, _, _ = connect(tty=True, expect_pid=False)
        protocol.dataReceived(b"\x01\x00\x00\x00raw")
        self.assertEqual(bytes(sink.out), b"\x01\x00\x00\x00raw")

    def test_abrupt_loss_reported(self) -> None:
        """A connection lost without an orderly EOF ends the output with an error."""
        protocol, _, events, _ = connect(tty=False, expect_pid=False)
        protocol.connectionLost(Failure(ConnectionLost("reset")))
        self.assertEqual(events.log[0][0], "output_ended")
        self.assertIsNotNone(events.log[0][1])

    def test_eof_inside_frame(self) -> None:
        """An EOF in the middle of a frame is reported as an output error."""
        protocol, _, events, _ = connect(tty=False, expect_pid=False)
        protocol.dataReceived(frame(1, b"abc")[:-1])
        protocol.readConnectionLost()
        self.assertEqual(
            events.log, [("output_ended", "the output ended in the middle of a frame")]
        )

    def test_bad_stream_drops_connection(self) -> None:
        """A malformed frame stops forwarding and drops the connection."""
        protocol, sink, events, transport = connect(tty=False, expect_pid=False)
        protocol.dataReceived(frame(7, b"x") + frame(1, b"never"))
        self.assertEqual(bytes(sink.out), b"")
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertIn("unknown stream", str(events.log[0][1]))


class PidHandshakeTests(SynchronousTestCase):
    @given(st.binary(max_size=50), st.binary(max_size=50), cuts_strategy)
    def test_non_tty(self, first_rest: bytes, more: bytes, cuts: list[int]) -> None:
        """Without a TTY the first 4 stdout payload bytes are the PID, the rest is output."""
        protocol, sink, events, _ = connect(tty=False, expect_pid=True)
        data = frame(1, PID + first_rest) + frame(2, b"e") + frame(1, more)
        for piece in split_at(data, cuts):
            protocol.dataReceived(piece)
        self.assertEqual(events.log, [("pid", 4242)])
        self.assertEqual(bytes(sink.out), first_rest + more)
        self.assertEqual(bytes(sink.err), b"e")

    def test_non_tty_pid_across_frames(self) -> None:
        """A PID split over two stdout frames is still read."""
        protocol, sink, events, _ = connect(tty=False, expect_pid=True)
        protocol.dataReceived(frame(1, PID[:1]) + frame(1, PID[1:] + b"x"))
        self.assertEqual((events.log, bytes(sink.out)), ([("pid", 4242)], b"x"))

    @given(st.binary(max_size=50), cuts_strategy)
    def test_tty(self, rest: bytes, cuts: list[int]) -> None:
        """With a TTY the first 4 raw bytes are the PID."""
        protocol, sink, events, _ = connect(tty=True, expect_pid=True)
        for piece in split_at(PID + rest, cuts):
            protocol.dataReceived(piece)
        self.assertEqual(events.log, [("pid", 4242)])
        self.assertEqual(bytes(sink.out), rest)

    def test_stderr_first(self) -> None:
        """Output on stderr before the PID fails the handshake and nothing is forwarded."""
        protocol, sink, events, transport = connect(tty=False, expect_pid=True)
        protocol.dataReceived(frame(2, b"agent: error") + frame(1, PID))
        self.assertEqual(events.log[0][0], "pid_failed")
        self.assertEqual((bytes(sink.out), bytes(sink.err)), (b"", b""))
        self.assertTrue(transport.disconnecting)

    def test_engine_error_text(self) -> None:
        """An engine error message in place of the PID fails the handshake, unforwarded."""
        protocol, sink, events, _ = connect(tty=False, expect_pid=True)
        protocol.dataReceived(frame(1, b"OCI runtime exec failed: no such file\r\n"))
        self.assertEqual(events.log[0][0], "pid_failed")
        self.assertEqual(bytes(sink.out), b"")
        protocol.readConnectionLost()
        self.assertEqual([name for name, _ in events.log], ["pid_failed", "output_ended"])

    def test_eof_before_pid(self) -> None:
        """Output that ends before four bytes fails the handshake once."""
        protocol, _, events, _ = connect(tty=True, expect_pid=True)
        protocol.dataReceived(b"ab")
        protocol.readConnectionLost()
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(
            [name for name, _ in events.log], ["pid_failed", "output_ended", "stream_closed"]
        )

    def test_plausible_pid(self) -> None:
        """Only 1 .. 2**22 can be a Linux PID."""
        self.assertFalse(plausible_pid(0))
        self.assertTrue(plausible_pid(1))
        self.assertTrue(plausible_pid(1 << 22))
        self.assertFalse(plausible_pid((1 << 22) + 1))

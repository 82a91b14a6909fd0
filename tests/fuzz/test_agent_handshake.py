"""Fuzzing the guest agent's PID handshake and the engine's stream framing.

``ExecStreamProtocol`` reads what the engine sends for one exec: Docker's
multiplexed frames (or raw terminal output), and, with the guest agent, the
program's PID in the first four bytes. Whatever arrives, split however the
network splits it, no exception may escape, the result may not depend on the
split, it must equal a plain reading of the whole stream, and with the agent
the session must hear exactly once whether the handshake worked before it
hears that the output ended.
"""

from __future__ import annotations

import struct
from typing import Any

import attrs
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.agentprotocol import PID_MAX, plausible_pid
from conch_container.backend.docker.engine.stream import ExecStreamProtocol, StreamEvents
from tests.fuzz import fuzz, note
from tests.fuzz.strategies import split


@attrs.frozen
class Outcome:
    """What a stream produced: events (name and whether it carried an error), output."""

    events: tuple[tuple[str, Any], ...]
    stdout: bytes
    stderr: bytes


class _Events(StreamEvents):
    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []

    def pid_received(self, pid: int) -> None:
        self.log.append(("pid", pid))

    def pid_failed(self, reason: str) -> None:
        self.log.append(("pid_failed", None))

    def output_ended(self, error: str | None) -> None:
        self.log.append(("output_ended", error is not None))

    def stream_closed(self) -> None:
        self.log.append(("stream_closed", None))


def run_protocol(pieces: list[bytes], *, tty: bool, expect_pid: bool) -> Outcome:
    """Feed ``pieces`` to a protocol, end the stream as the engine does, collect the result."""
    stdout, stderr = bytearray(), bytearray()
    events = _Events()
    protocol = ExecStreamProtocol(
        stdout.extend, stderr.extend, events, tty=tty, expect_pid=expect_pid
    )
    protocol.makeConnection(StringTransport())
    for piece in pieces:
        protocol.dataReceived(piece)
    protocol.readConnectionLost()
    protocol.connectionLost(Failure(ConnectionDone()))
    return Outcome(tuple(events.log), bytes(stdout), bytes(stderr))


# ---------------------------------------------------------------------------
# The reference: the whole stream, read in one go


def _frames(data: bytes) -> tuple[list[tuple[int, bytes]], bool]:
    """The frames of a multiplexed stream, and whether it stops inside one."""
    frames: list[tuple[int, bytes]] = []
    position = 0
    while position < len(data):
        if len(data) - position < 8:
            return frames, True
        stream, length = struct.unpack_from(">BxxxL", data, position)
        payload = data[position + 8 : position + 8 + length]
        frames.append((stream, payload))
        position += 8 + length
        if len(payload) < length:
            return frames, True
    return frames, False


def reference(data: bytes, *, tty: bool, expect_pid: bool) -> Outcome:
    """What the whole stream means, read without any incremental state."""
    events: list[tuple[str, Any]] = []
    out, err = bytearray(), bytearray()
    failed = False
    if tty:
        rest = data
        if expect_pid:
            pid, position = bytearray(), 0
            while len(pid) < 4 and position < len(data):
                if data[position] == 0x0D and position + 1 == len(data):
                    break  # a CR at the very end: a CR LF may still be on its way
                if data[position : position + 2] == b"\r\n":
                    pid.append(0x0A)
                    position += 2
                else:
                    pid.append(data[position])
                    position += 1
            rest = b""
            if len(pid) < 4:
                events.append(("pid_failed", None))
            elif plausible_pid(int.from_bytes(pid, "little")):
                events.append(("pid", int.from_bytes(pid, "little")))
                rest = data[position:]
            else:
                events.append(("pid_failed", None))
        out += rest
        error = bool(events and events[0][0] == "pid_failed")
        return Outcome((*events, ("output_ended", error), ("stream_closed", None)), bytes(out), b"")

    frames, partial = _frames(data)
    pid = bytearray()
    waiting = expect_pid
    for stream, payload in frames:
        if stream > 2:
            if waiting:
                events.append(("pid_failed", None))
            failed = True
            break
        if waiting:
            if stream == 2:
                if payload:
                    events.append(("pid_failed", None))
                    failed = True
                    break
                continue
            need = 4 - len(pid)
            pid += payload[:need]
            if len(pid) < 4:
                continue
            value = int.from_bytes(pid, "little")
            if not plausible_pid(value):
                events.append(("pid_failed", None))
                failed = True
                break
            events.append(("pid", value))
            waiting = False
            out += payload[need:]
        elif stream == 2:
            err += payload
        else:
            out += payload
    if waiting and not failed:
        events.append(("pid_failed", None))
    error = failed or partial or waiting
    return Outcome(
        (*events, ("output_ended", error), ("stream_closed", None)), bytes(out), bytes(err)
    )


# ---------------------------------------------------------------------------
# Streams


def _frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


pids = st.integers(1, PID_MAX) | st.sampled_from([0, PID_MAX + 1, 0x0A0A, 0x0D0A0D, 2**32 - 1])


@st.composite
def framed_streams(draw: st.DrawFn) -> bytes:
    """A multiplexed stream: mostly well-formed frames, the agent's PID often first."""
    frames: list[bytes] = []
    scenario = draw(st.sampled_from(["agent", "agent", "stderr first", "no agent"]))
    if scenario != "no agent":
        if scenario == "stderr first":
            frames.append(_frame(2, draw(st.binary(max_size=10))))
        pid = draw(pids).to_bytes(4, "little")
        cut = draw(st.integers(0, 4))
        frames.append(_frame(1, pid[:cut]))
        frames.append(
            _frame(draw(st.sampled_from([0, 1])), pid[cut:] + draw(st.binary(max_size=20)))
        )
    for _ in range(draw(st.integers(0, 5))):
        stream = draw(st.sampled_from([0, 1, 2]) | st.integers(0, 255))
        frames.append(_frame(stream, draw(st.binary(max_size=40))))
    data = b"".join(frames)
    if draw(st.integers(0, 3)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data


@st.composite
def terminal_streams(draw: st.DrawFn) -> bytes:
    """Terminal output: the PID with each LF turned into CR LF (``onlcr``), then output."""
    prefix = b""
    if draw(st.integers(0, 3)) > 0:
        prefix = draw(pids).to_bytes(4, "little").replace(b"\n", b"\r\n")
    rest = draw(
        st.binary(max_size=40) | st.lists(st.sampled_from([b"\r", b"\n", b"x"])).map(b"".join)
    )
    return prefix + rest


@st.composite
def agent_framed(draw: st.DrawFn) -> bytes:
    """What a working agent sends without a TTY: a PID in one or two stdout frames, then output."""
    pid = draw(st.integers(1, PID_MAX)).to_bytes(4, "little")
    cut = draw(st.integers(0, 4))
    frames = [_frame(1, pid[:cut]), _frame(1, pid[cut:] + draw(st.binary(max_size=20)))]
    for _ in range(draw(st.integers(0, 3))):
        frames.append(_frame(draw(st.sampled_from([1, 2])), draw(st.binary(max_size=40))))
    return b"".join(frames)


@st.composite
def agent_terminal(draw: st.DrawFn) -> bytes:
    """What a working agent sends on a TTY: its PID (LF as CR LF), then output."""
    pid = draw(st.integers(1, PID_MAX)).to_bytes(4, "little").replace(b"\n", b"\r\n")
    return pid + draw(st.binary(max_size=40))


def mostly(strategy: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """``strategy`` three times in four, arbitrary bytes otherwise."""
    return st.integers(0, 3).flatmap(lambda k: st.binary(max_size=100) if k == 0 else strategy)


class HandshakeCase(SynchronousTestCase):
    def check(self, data: bytes, pieces: list[bytes], *, tty: bool, expect_pid: bool) -> None:
        self.assertEqual(b"".join(pieces), data)
        whole = run_protocol([data], tty=tty, expect_pid=expect_pid)
        chunked = run_protocol(pieces, tty=tty, expect_pid=expect_pid)
        self.assertEqual(chunked, whole, "the result depends on how the stream was split")
        self.assertEqual(whole, reference(data, tty=tty, expect_pid=expect_pid))
        names = [name for name, _ in whole.events]
        self.assertEqual(names[-2:], ["output_ended", "stream_closed"])
        if expect_pid:
            # Exactly one handshake result, before the end of the output.
            self.assertEqual(len(names), 3, names)
            self.assertIn(names[0], ("pid", "pid_failed"))
            note(names[0])
        else:
            self.assertEqual(len(names), 2, names)
            note("no agent")


class HandshakeTests(HandshakeCase):
    @fuzz(
        st.one_of(
            agent_framed().map(lambda data: (data, True)),
            mostly(framed_streams()).map(lambda data: (data, True)),
            mostly(framed_streams()).map(lambda data: (data, False)),
        ),
        st.data(),
        expect=("pid", "pid_failed", "no agent"),
    )
    def test_framed(self, stream: tuple[bytes, bool], draw: st.DataObject) -> None:
        """A multiplexed stream, split anywhere: one result, the reference's."""
        data, expect_pid = stream
        pieces = draw.draw(split(data), label="pieces")
        self.check(data, pieces, tty=False, expect_pid=expect_pid)

    @fuzz(
        st.one_of(
            agent_terminal().map(lambda data: (data, True)),
            mostly(terminal_streams()).map(lambda data: (data, True)),
            mostly(terminal_streams()).map(lambda data: (data, False)),
        ),
        st.data(),
        expect=("pid", "pid_failed", "no agent"),
    )
    def test_terminal(self, stream: tuple[bytes, bool], draw: st.DataObject) -> None:
        """Terminal output, split anywhere: one result, the reference's."""
        data, expect_pid = stream
        pieces = draw.draw(split(data), label="pieces")
        self.check(data, pieces, tty=True, expect_pid=expect_pid)


class RegressionTests(HandshakeCase):
    """Streams the fuzz targets found or that sit on an edge of the handshake."""

    def test_unknown_stream_before_pid(self) -> None:
        """A malformed first frame fails the handshake: the session hears it exactly once."""
        data = _frame(7, b"")
        self.check(data, [data], tty=False, expect_pid=True)
        self.assertEqual(
            run_protocol([data], tty=False, expect_pid=True).events[0], ("pid_failed", None)
        )

    def test_carriage_return_last(self) -> None:
        """A CR as the last byte so far may be half of a CR LF: the PID waits for the next byte."""
        data = b"\r\n\x00\x00\x00out"  # PID 10, its LF written as CR LF
        self.check(data, [data[:1], data[1:]], tty=True, expect_pid=True)
        self.assertEqual(
            run_protocol([data[:1], data[1:]], tty=True, expect_pid=True),
            Outcome(
                (("pid", 10), ("output_ended", False), ("stream_closed", None)),
                b"out",
                b"",
            ),
        )

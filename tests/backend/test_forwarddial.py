"""A forwarded connection's dialler: the helper's protocol, and the fallback to
nc or socat, against scripted backend sessions (the real helper and engine
are in tests.integration.test_forwarding)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.forwarddial import (
    DIAL_TIMEOUT,
    HELPER_PATH,
    ForwardDialSession,
    ForwardHelper,
    HelperKind,
)
from conch_container.backend.forwardprotocol import (
    Packet,
    PacketDecoder,
    PacketType,
    decode_map,
    encode_packet,
)
from conch_container.errors import ContainerSSHError
from conch_container.interfaces import ExitStatus, ProgramRequest
from conch_container.log.logger import CodeLogger
from conch_container.testing.sessionio import RecordingSessionIO


class Producer:
    """A push producer that records whether it is paused."""

    paused = False

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        pass


class ScriptedSession(Producer):
    """A backend session whose program a test plays (its output stream is the producer)."""

    def __init__(self) -> None:
        self.program: ProgramRequest | None = None
        self.io: Any = None
        self.written = bytearray()
        self.stdin_closed = False
        self.closed = False
        self.input_producer: Any = None
        self.killed: bool | None = None

    def start(self, program: ProgramRequest, io: Any) -> Deferred[None]:
        self.program, self.io = program, io
        io.register_producer(self)
        return succeed(None)

    def write(self, data: bytes) -> None:
        self.written += data

    def close_stdin(self) -> None:
        self.stdin_closed = True

    def register_input_producer(self, producer: Any) -> None:
        self.input_producer = producer

    def close(self) -> Deferred[None]:
        return self.shutdown(kill=True)

    def shutdown(self, *, kill: bool) -> Deferred[None]:
        self.closed = True
        self.killed = kill
        return succeed(None)

    def packets(self) -> list[Packet]:
        packets: list[Packet] = []
        PacketDecoder(packets.append).feed(bytes(self.written))
        return packets

    def reply(self, kind: int, connection_id: int = 0, payload: bytes = b"") -> None:
        self.io.stdout(encode_packet(kind, connection_id, payload))


class DialTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.events = EventLoggingObserver()
        self.log = CodeLogger("tests", observer=self.events)
        self.sessions: list[ScriptedSession] = []
        self.helper = ForwardHelper(self.clock, "/usr/bin/containerssh-agent", self.log)

    def open_session(self) -> ScriptedSession:
        session = ScriptedSession()
        self.sessions.append(session)
        return session

    def dial(self) -> tuple[ForwardDialSession, RecordingSessionIO, Deferred[None]]:
        forward = self.helper.dial(
            self.open_session, "db.internal", 5432, originator=("192.0.2.1", 40000)
        )
        io = RecordingSessionIO()
        started = forward.start(ProgramRequest("exec", "ignored"), io)
        return forward, io, started

    def connect(self) -> tuple[ForwardDialSession, RecordingSessionIO, ScriptedSession]:
        forward, io, started = self.dial()
        inner = self.sessions[-1]
        inner.reply(PacketType.SUCCESS, 0)
        inner.reply(PacketType.SUCCESS, 1)
        self.successResultOf(started)
        return forward, io, inner

    def test_setup_and_dial(self) -> None:
        """The helper gets a dial setup and the connection; the start waits for both answers."""
        _forward, io, started = self.dial()
        inner = self.sessions[0]
        assert inner.program is not None
        self.assertIn(HELPER_PATH, inner.program.command)
        self.assertIn("/usr/bin/containerssh-agent forward-server", inner.program.command)
        setup, new = inner.packets()
        self.assertEqual((setup.type, setup.connection_id), (PacketType.SETUP, 0))
        self.assertEqual(decode_map(setup.payload)["ConnectionType"], 2)
        self.assertEqual((new.type, new.connection_id), (PacketType.NEW_CONNECTION, 1))
        self.assertEqual(
            decode_map(new.payload),
            {
                "Protocol": "tcp",
                "ConnectedAddress": "db.internal",
                "ConnectedPort": 5432,
                "OriginatorAddress": "192.0.2.1",
                "OriginatorPort": 40000,
            },
        )
        # The channel holds output until the start is answered: the helper must
        # not be paused by it before then.
        self.assertIsNone(io.producer)
        inner.reply(PacketType.SUCCESS, 0)
        self.assertNoResult(started)
        inner.reply(PacketType.SUCCESS, 1)
        self.successResultOf(started)
        self.assertIs(io.producer, inner)
        self.assertIs(self.helper.kind, HelperKind.HELPER)
        self.assertEqual([e.get("code") for e in self.events], ["SSH_FORWARD_HELPER"])

    def test_bytes_both_ways(self) -> None:
        forward, io, inner = self.connect()
        inner.written.clear()
        forward.write(b"request")
        forward.close_stdin()
        self.assertEqual(
            inner.packets(),
            [Packet(PacketType.DATA, 1, b"request"), Packet(PacketType.CLOSE_WRITE, 1)],
        )
        self.assertFalse(inner.stdin_closed)
        inner.reply(PacketType.DATA, 1, b"answer")
        inner.reply(PacketType.DATA, 99, b"not ours")
        self.assertEqual(io.stdout_data, b"answer")
        producer = object()
        forward.register_input_producer(producer)
        self.assertIs(inner.input_producer, producer)

    def test_far_side_closes(self) -> None:
        """CLOSE_CONNECTION: EOF to the client, the answer, then the helper's stdin ends."""
        _forward, io, inner = self.connect()
        inner.written.clear()
        inner.reply(PacketType.CLOSE_WRITE, 1)
        self.assertTrue(io.closed)
        inner.reply(PacketType.CLOSE_CONNECTION, 1)
        self.assertEqual(inner.packets(), [Packet(PacketType.SUCCESS, 1)])
        self.assertTrue(inner.stdin_closed)
        inner.io.exited(ExitStatus(code=0))
        self.assertEqual(io.status, ExitStatus(code=0))

    def test_connect_refused(self) -> None:
        """ERROR for the connection: the start fails with the helper's reason."""
        _forward, _io, started = self.dial()
        inner = self.sessions[0]
        inner.reply(PacketType.SUCCESS, 0)
        inner.reply(PacketType.ERROR, 1, b"connect db.internal:5432: Connection refused")
        error = self.failureResultOf(started, ContainerSSHError).value
        self.assertEqual(error.code.code, "SSH_FORWARD_FAILED")
        self.assertIn("Connection refused", error.explanation)
        self.assertTrue(inner.stdin_closed)
        self.assertIs(self.helper.kind, HelperKind.HELPER)

    def test_no_helper_falls_back_once(self) -> None:
        """A helper that is not there: nc or socat, and the next dial goes there directly."""
        forward, io, started = self.dial()
        probe = self.sessions[0]
        probe.io.stderr(b"sh: /usr/bin/containerssh-agent: not found\n")
        probe.io.exited(ExitStatus(code=127))
        self.successResultOf(started)
        self.assertTrue(probe.closed)
        plain = self.sessions[1]
        assert plain.program is not None
        self.assertIn("nc db.internal 5432", plain.program.command)
        self.assertIs(plain.io, io)
        self.assertIs(self.helper.kind, HelperKind.PLAIN)
        (selected,) = [e for e in self.events if e.get("code") == "SSH_FORWARD_HELPER"]
        self.assertIn("not found", selected["reason"])
        forward.write(b"raw")
        self.assertEqual(bytes(plain.written), b"raw")
        forward.close_stdin()
        self.assertTrue(plain.stdin_closed)

        self.dial()
        self.assertEqual(len(self.sessions), 3)
        assert self.sessions[2].program is not None
        self.assertIn("nc db.internal 5432", self.sessions[2].program.command)

    def test_something_else_answers(self) -> None:
        """An agent without forward-server prints its usage: that is no helper either."""
        _forward, _io, started = self.dial()
        self.sessions[0].io.stdout(b"Usage: containerssh-agent MODE\n")
        self.successResultOf(started)
        self.assertIs(self.helper.kind, HelperKind.PLAIN)

    def test_deadline(self) -> None:
        _forward, _io, started = self.dial()
        self.clock.advance(DIAL_TIMEOUT)
        error = self.failureResultOf(started, ContainerSSHError).value
        self.assertIn("did not finish", error.explanation)
        self.assertTrue(self.sessions[0].closed)

    def test_protocol_broken_while_running(self) -> None:
        _forward, _io, inner = self.connect()
        inner.io.stdout(b"\xff garbage")
        self.assertTrue(inner.closed)
        self.assertIn("SSH_FORWARD_FAILED", [e.get("code") for e in self.events])

    def test_close(self) -> None:
        """The helper ends with its stdin: its stream closes without a kill."""
        forward, _io, inner = self.connect()
        self.successResultOf(forward.close())
        self.assertTrue(inner.closed)
        self.assertTrue(inner.stdin_closed)
        self.assertFalse(inner.killed)
        forward.write(b"late")  # dropped, no error

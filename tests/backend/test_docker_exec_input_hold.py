"""Stdin typed into a terminal before the guest agent's PID is held until the PID came.

A terminal echoes what it is given. Input that reached the program's terminal
before the agent wrote its PID would be echoed ahead of the PID and read as
the PID, and the session would fail; a client that types (or pipes) right
after its shell request is answered hits exactly that. So the exec session
holds stdin, and pauses the client's, until the handshake is over.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import ILogObserver
from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.docker.agent import AgentKind, GuestAgent
from conch_container.backend.docker.connectionmode.execsession import DockerExecSession
from conch_container.interfaces import ProgramRequest, PtyRequest
from conch_container.log.logger import CodeLogger
from conch_container.testing.conformance import CountingProducer
from conch_container.testing.sessionio import RecordingSessionIO
from tests.backend.helpers import make_config
from tests.backend.test_docker_sessionmode_fake import EngineTransport, FakeStream

PID = (4321).to_bytes(4, "little")


class FakeEngine:
    """Creates and starts every exec at once; its streams are :class:`FakeStream` s."""

    def __init__(self) -> None:
        self.taken: list[tuple[None, Any, EngineTransport]] = []

    def exec_create(self, container_id: str, cmd: Any, env: Any, tty: bool) -> Deferred[str]:
        return succeed("exec-1")

    def exec_attach(self, exec_id: str, tty: bool) -> Deferred[FakeStream]:
        return succeed(FakeStream(self.taken))

    def exec_resize(self, exec_id: str, rows: int, columns: int) -> Deferred[None]:
        return succeed(None)


class InputHoldTests(SynchronousTestCase):
    def start(self, *, tty: bool) -> tuple[DockerExecSession, Any, EngineTransport]:
        self.engine = FakeEngine()
        self.events: list[dict[str, Any]] = []
        session = DockerExecSession(
            reactor=MemoryReactorClock(),
            engine=self.engine,  # type: ignore[arg-type]
            container_id="cid",
            docker_config=make_config(disableAgent=False).docker,
            log=CodeLogger("tests.hold", observer=cast(ILogObserver, self.events.append)),
            channel_id=0,
            agent=GuestAgent(AgentKind.IMAGE, "/usr/bin/containerssh-agent"),
        )
        if tty:
            session.set_pty(PtyRequest("xterm", 80, 25, 0, 0, b""))
        self.io = RecordingSessionIO()
        self.successResultOf(session.start(ProgramRequest("shell"), self.io))
        [(_, protocol, transport)] = self.engine.taken
        return session, protocol, transport

    def test_input_waits_for_the_pid(self) -> None:
        """Typed before the PID: nothing reaches the terminal, the client waits; then all of it."""
        session, protocol, transport = self.start(tty=True)
        producer = CountingProducer()
        session.register_input_producer(producer)
        session.write(b"exec /bin/sh\n")
        session.write(b"echo hi\n")
        self.assertEqual(transport.value(), b"")
        self.assertEqual((producer.pauses, producer.resumes), (1, 0))
        protocol.dataReceived(PID + b"$ ")
        self.assertEqual(transport.value(), b"exec /bin/sh\necho hi\n")
        self.assertEqual(producer.resumes, 1)
        self.assertEqual(self.successResultOf(session.pid_known()), 4321)
        self.assertEqual(self.io.stdout_data, b"$ ")
        session.write(b"more\n")
        self.assertEqual(transport.value(), b"exec /bin/sh\necho hi\nmore\n")

    def test_held_input_dropped_when_the_handshake_fails(self) -> None:
        """Output that is no PID fails the session; what was held goes nowhere."""
        session, protocol, transport = self.start(tty=True)
        session.write(b"secret\n")
        protocol.dataReceived(b"\xff\xff\xff\xff")
        self.assertEqual(transport.value(), b"")
        codes = [e.get("code") for e in self.events]
        self.assertIn("DOCKER_EXEC_PID_READ_FAILED", codes)

    def test_without_a_terminal_nothing_is_held(self) -> None:
        """Without a terminal nothing echoes: stdin flows from the start."""
        session, _, transport = self.start(tty=False)
        producer = CountingProducer()
        session.register_input_producer(producer)
        session.write(b"data")
        self.assertEqual(transport.value(), b"data")
        self.assertEqual(producer.pauses, 0)

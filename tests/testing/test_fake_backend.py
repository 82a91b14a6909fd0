"""The fake backend's own behaviour, beyond the conformance suite."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from conch_container import messages
from conch_container.errors import ContainerSSHError
from conch_container.interfaces import (
    ExitStatus,
    IBackendConnection,
    IBackendSession,
    IContainerBackend,
    ProgramRequest,
    PtyRequest,
)
from conch_container.testing.backend import FakeBackend
from conch_container.testing.conformance import CollectingIO
from tests.testing.test_fake_backend_conformance import fake_context


class FakeBackendTests(SynchronousTestCase):
    """:class:`FakeBackend`."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.backend = FakeBackend(self.clock, subsystems={"upper": "cat"})

    def connect(self) -> Any:
        return self.successResultOf(self.backend.connect(fake_context()))

    def start(self, command: str, kind: str = "exec", pty: PtyRequest | None = None) -> Any:
        session = self.connect().open_session(0)
        if pty is not None:
            session.set_pty(pty)
        io = CollectingIO()
        self.successResultOf(session.start(ProgramRequest(kind, command), io))  # type: ignore[arg-type]
        return session, io

    def test_interfaces(self) -> None:
        """The fake provides the backend interfaces."""
        verifyObject(IContainerBackend, self.backend)
        connection = self.connect()
        verifyObject(IBackendConnection, connection)
        verifyObject(IBackendSession, connection.open_session(0))

    def test_containers_are_recorded(self) -> None:
        """Containers created and removed are recorded."""
        connection = self.connect()
        self.assertEqual(self.backend.live_containers, ["fake0001"])
        self.successResultOf(connection.close())
        self.assertEqual(self.backend.removed, ["fake0001"])
        self.assertEqual(self.backend.live_containers, [])

    def test_connect_error(self) -> None:
        """``connect_error`` makes ``connect`` fail."""
        self.backend.connect_error = ContainerSSHError(
            messages.DOCKER_CONTAINER_CREATE_FAILED, "u", "e"
        )
        self.failureResultOf(self.backend.connect(fake_context()), ContainerSSHError)
        self.assertEqual(self.backend.created, [])

    def test_held_connect(self) -> None:
        """``hold_connects`` keeps ``connect`` waiting until released."""
        self.backend.hold_connects = True
        d = Deferred.fromCoroutine(self.backend.connect(fake_context()))
        self.assertNoResult(d)
        self.backend.release_connects()
        self.successResultOf(d)

    def test_start_error(self) -> None:
        """``start_error`` makes ``start`` fail."""
        self.backend.start_error = ContainerSSHError(messages.DOCKER_EXEC_CREATE_FAILED, "u", "e")
        session = self.connect().open_session(0)
        self.failureResultOf(session.start(ProgramRequest("exec", "true"), CollectingIO()))

    def test_environment_from_authentication(self) -> None:
        """Variables authentication added are in the program's environment."""
        _, io = self.start("printenv FROM_AUTH")
        self.assertEqual(bytes(io.stdout_data), b"yes\n")

    def test_sleep_uses_the_clock(self) -> None:
        """``sleep`` ends when the clock says so."""
        _, io = self.start("sleep 5 && echo done")
        self.clock.advance(4.9)
        self.assertIsNone(io.status)
        self.clock.advance(0.1)
        self.assertEqual(bytes(io.stdout_data), b"done\n")
        self.assertEqual(io.status, ExitStatus(code=0))

    def test_signal_ends_the_program(self) -> None:
        """A signal ends the program with an exit signal."""
        session, io = self.start("sleep 100")
        self.successResultOf(session.signal("INT"))
        self.assertEqual(io.status, ExitStatus(signal="INT"))
        self.assertEqual(session.signals, ["INT"])
        self.failureResultOf(session.signal("INT"), ContainerSSHError)

    def test_terminal_echo_and_newlines(self) -> None:
        """A terminal echoes input, turns newlines into CRLF and merges stderr."""
        session, io = self.start("", kind="shell", pty=PtyRequest("xterm", 80, 24))
        session.write(b"nope\r")
        self.assertEqual(bytes(io.stdout_data), b"$ nope\r\nsh: nope: not found\r\n$ ")
        self.assertEqual(bytes(io.stderr_data), b"")

    def test_ctrl_c_interrupts_the_foreground_command(self) -> None:
        """Ctrl-C stops the running command; the shell goes on with status 130."""
        session, io = self.start("", kind="shell", pty=PtyRequest("xterm", 80, 24))
        session.write(b"sleep 100\n")
        session.write(b"\x03")
        session.write(b"echo $?\n")
        self.assertIn(b"^C\r\n$ echo $?\r\n130\r\n", bytes(io.stdout_data))
        session.write(b"\x04")
        self.assertEqual(io.status, ExitStatus(code=0))

    def test_subsystem(self) -> None:
        """A configured subsystem runs its command line; others are refused."""
        session, io = self.start("upper", kind="subsystem")
        session.write(b"data")
        session.close_stdin()
        self.assertEqual(bytes(io.stdout_data), b"data")
        other = self.connect().open_session(1)
        failure = self.failureResultOf(
            other.start(ProgramRequest("subsystem", "sftp"), CollectingIO()), ContainerSSHError
        )
        self.assertEqual(failure.value.code, messages.DOCKER_SUBSYSTEM_NOT_SUPPORTED)

    def test_close_stops_silently(self) -> None:
        """After ``close`` the program produces nothing more."""
        session, io = self.start("sleep 1; echo late")
        self.successResultOf(session.close())
        self.clock.advance(2)
        self.assertEqual(bytes(io.stdout_data), b"")
        self.assertIsNone(io.status)
        self.assertEqual(self.backend.errors, [])

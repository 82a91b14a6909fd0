"""Tests for conch_container.backend.programsession: a request's argv and the codes a session logs.

The state machine itself is exercised through the Docker sessions (both modes,
tests/backend/test_docker_*); here a bare session on a memory transport shows
that it logs the codes it is given and resizes the same way for every backend.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver
from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.backend.docker.sessionbase import DOCKER_SESSION_CODES
from conch_container.backend.programsession import (
    ProgramSession,
    SessionCodes,
    State,
    program_command,
)
from conch_container.codes import Level
from conch_container.errors import ContainerSSHError, RequestRejected
from conch_container.interfaces import ISessionIO, ProgramRequest
from conch_container.log.logger import CodeLogger
from conch_container.testing.sessionio import RecordingSessionIO

SHELL = ("/bin/bash",)
SUBSYSTEMS = {"sftp": "/usr/lib/openssh/sftp-server"}

#: Codes of another backend, so that nothing here can pass on Docker's by chance
#: (it has no codes of its own for stdin and output failures: one stands in).
CODES = SessionCodes(
    already_running=messages.KUBERNETES_PROGRAM_ALREADY_RUNNING,
    not_running=messages.KUBERNETES_PROGRAM_NOT_RUNNING,
    input_failed=messages.KUBERNETES_CLOSE_OUTPUT_FAILED,
    close_input_failed=messages.KUBERNETES_CLOSE_OUTPUT_FAILED,
    resize=messages.KUBERNETES_EXEC_RESIZE,
    resize_failed=messages.KUBERNETES_EXEC_RESIZE_FAILED,
    output_failed=messages.KUBERNETES_CLOSE_OUTPUT_FAILED,
    subsystem_not_supported=messages.KUBERNETES_SUBSYSTEM_NOT_SUPPORTED,
)


class Ended(Exception):
    """A call failure that says the program already ended."""


class CallFailed(Exception):
    """Any other call failure."""


class Gate:
    def __init__(self) -> None:
        self.producer: Any = None

    def register_input(self, producer: Any) -> None:
        self.producer = producer

    def release_input(self) -> None:
        self.producer = None


class BareSession(ProgramSession):
    """A session whose program starts at once and whose resize is the test's Deferred."""

    _call_errors = (Ended, CallFailed)

    def __init__(self, clock: Clock, log: CodeLogger) -> None:
        super().__init__(reactor=clock, codes=CODES, resize_timeout=5.0, on_closed=None)
        self.log = log
        self.resizes: list[tuple[int, int, Deferred[None]]] = []
        self.transport = StringTransport()
        #: Makes the next resize call fail at once.
        self.resize_error: Exception | None = None

    @property
    def _log(self) -> CodeLogger:
        return self.log

    async def _start(self, program: ProgramRequest, io: ISessionIO) -> None:
        self._refuse_if_started()
        self._io = io
        self._adopt_stream(self.transport, Gate())
        self._state = State.RUNNING

    def _request_resize(self, columns: int, rows: int) -> Deferred[None]:
        if self.resize_error is not None:
            return fail(self.resize_error)
        d: Deferred[None] = Deferred()
        self.resizes.append((columns, rows, d))
        return d

    def _resize_error_means_ended(self, error: Exception) -> bool:
        return isinstance(error, Ended)

    async def _release(self, kill: bool) -> None:
        self._mark_closed()


class ProgramCommandTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.log = CodeLogger("tests", observer=cast(ILogObserver, self.events.append))

    def test_configured_subsystem(self) -> None:
        """A configured subsystem runs its binary; nothing is logged."""
        argv = program_command(
            ProgramRequest("subsystem", "sftp"),
            SHELL,
            SUBSYSTEMS,
            self.log,
            messages.DOCKER_SUBSYSTEM_NOT_SUPPORTED,
        )
        self.assertEqual(argv, ["/usr/lib/openssh/sftp-server"])
        self.assertEqual(self.events, [])

    def test_unknown_subsystem_rejected(self) -> None:
        """An unconfigured subsystem is a RequestRejected, logged with its name first."""
        for code in (
            DOCKER_SESSION_CODES.subsystem_not_supported,
            messages.KUBERNETES_SUBSYSTEM_NOT_SUPPORTED,
        ):
            self.events.clear()
            with self.assertRaises(RequestRejected) as caught:
                program_command(
                    ProgramRequest("subsystem", "nope"), SHELL, SUBSYSTEMS, self.log, code
                )
            self.assertEqual(caught.exception.code, code)
            self.assertEqual(caught.exception.user_message, "Subsystem not supported.")
            [event] = self.events
            self.assertEqual(event["code"], code.code)
            self.assertEqual(event["subsystem"], "nope")
            self.assertIn("'nope'", event["reason"])


class ProgramSessionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.events: list[dict[str, Any]] = []
        self.session = BareSession(
            self.clock, CodeLogger("tests", observer=cast(ILogObserver, self.events.append))
        )
        self.io = RecordingSessionIO()

    def logged(self, code: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["code"] == code]

    def start(self) -> None:
        self.successResultOf(self.session.start(ProgramRequest("shell", ""), self.io))

    def test_refusals_use_the_codes(self) -> None:
        """Out-of-order requests are refused with the backend's codes."""
        error = self.failureResultOf(self.session.resize(80, 25), ContainerSSHError).value
        self.assertEqual(error.code, messages.KUBERNETES_PROGRAM_NOT_RUNNING)
        self.start()
        self.assertRaises(ContainerSSHError, self.session.set_env, "A", "b")
        self.assertEqual(
            [e["code"] for e in self.events],
            ["KUBERNETES_PROGRAM_NOT_RUNNING", "KUBERNETES_PROGRAM_ALREADY_RUNNING"],
        )

    def test_resize_logged_then_awaited(self) -> None:
        """A resize is logged with its size, then the backend's call is made once."""
        self.start()
        resized = self.session.resize(120, 40)
        [event] = self.logged("KUBERNETES_EXEC_RESIZE")
        self.assertEqual((event["width"], event["height"]), (120, 40))
        [(columns, rows, d)] = self.session.resizes
        self.assertEqual((columns, rows), (120, 40))
        d.callback(None)
        self.successResultOf(resized)
        self.assertEqual(self.logged("KUBERNETES_EXEC_RESIZE_FAILED"), [])

    def test_resize_failures(self) -> None:
        """A failed call or a timeout is a warning; a call saying the program ended, debug only."""
        self.start()
        levels = []
        for failure in (CallFailed("refused"), Ended("exited"), None):
            resized = self.session.resize(80, 25)
            _, _, d = self.session.resizes[-1]
            if failure is None:
                self.clock.advance(5)
            else:
                d.errback(failure)
            error = self.failureResultOf(resized, ContainerSSHError).value
            self.assertEqual(error.code, messages.KUBERNETES_EXEC_RESIZE_FAILED)
            levels.append(self.logged("KUBERNETES_EXEC_RESIZE_FAILED")[-1]["cs_level"])
        self.assertEqual(levels, [Level.WARNING, Level.DEBUG, Level.WARNING])

    def test_other_errors_pass_through(self) -> None:
        """A failure that is none of the backend's call errors is not taken for a resize failure."""
        self.start()
        self.session.resize_error = KeyError("bug")
        self.failureResultOf(self.session.resize(80, 25), KeyError)
        self.assertEqual(self.logged("KUBERNETES_EXEC_RESIZE_FAILED"), [])

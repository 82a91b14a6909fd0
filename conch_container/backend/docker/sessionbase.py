"""What a session channel's program does alike in both Docker modes.

A program runs as an exec in the connection's container
(:class:`~conch_container.backend.docker.connectionmode.execsession.DockerExecSession`) or as
its own container
(:class:`~conch_container.backend.docker.sessionmode.session.DockerContainerSession`).
The channel's side of either is the backend-neutral
:class:`~conch_container.backend.programsession.ProgramSession`;
:class:`DockerSessionBase` adds what is Docker's: the ``DOCKER_*`` codes
(:data:`DOCKER_SESSION_CODES`), the ``docker`` config section, the program's
stream (an engine stream read by
:class:`~conch_container.backend.docker.engine.stream.ExecStreamProtocol`),
and which engine errors a call may fail with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from conch_container import messages
from conch_container.backend.docker.engine.errors import EngineError
from conch_container.backend.docker.engine.stream import ExecStreamProtocol, StreamEvents
from conch_container.backend.docker.engine.upgrade import UpgradedStream
from conch_container.backend.programsession import (
    START_FAILED_MESSAGE,
    ProgramSession,
    SessionCodes,
    program_command,
)
from conch_container.codes import MessageCode
from conch_container.interfaces import ProgramRequest

if TYPE_CHECKING:
    from conch_container.config import DockerConfig

#: The codes a Docker session logs for what every backend's session does.
DOCKER_SESSION_CODES = SessionCodes(
    already_running=messages.DOCKER_PROGRAM_ALREADY_RUNNING,
    not_running=messages.DOCKER_PROGRAM_NOT_RUNNING,
    input_failed=messages.DOCKER_STREAM_INPUT_FAILED,
    close_input_failed=messages.DOCKER_CLOSE_INPUT_FAILED,
    resize=messages.DOCKER_EXEC_RESIZE,
    resize_failed=messages.DOCKER_EXEC_RESIZE_FAILED,
    output_failed=messages.DOCKER_STREAM_OUTPUT_FAILED,
    subsystem_not_supported=messages.DOCKER_SUBSYSTEM_NOT_SUPPORTED,
)


class DockerSessionBase(ProgramSession, StreamEvents):
    """A :class:`~conch_container.backend.programsession.ProgramSession` on a Docker engine.

    Subclasses provide what :class:`ProgramSession` leaves open and the
    :class:`~conch_container.backend.docker.engine.stream.StreamEvents` that
    differ (``pid_received``, ``pid_failed``, ``output_ended``).

    :param reactor: provides the clock and the connections to the engine.
    :param docker_config: the connection's ``docker`` config section.
    :param on_closed: called with the session once it is closed.
    """

    _call_errors: ClassVar[tuple[type[Exception], ...]] = (EngineError,)

    def __init__(
        self,
        *,
        reactor: Any,
        docker_config: DockerConfig,
        on_closed: Callable[[Any], object] | None,
    ) -> None:
        super().__init__(
            reactor=reactor,
            codes=DOCKER_SESSION_CODES,
            resize_timeout=docker_config.timeouts.window,
            on_closed=on_closed,
        )
        self._execution = docker_config.execution
        self._timeouts = docker_config.timeouts

    def _program_argv(self, program: ProgramRequest) -> list[str]:
        """The argv of ``program`` under ``docker.execution``; refuses an unknown subsystem."""
        return program_command(
            program,
            self._execution.shell_command,
            self._execution.subsystems,
            self._log,
            self._codes.subsystem_not_supported,
        )

    def _take_stream(
        self, stream: UpgradedStream, tty: bool, *, expect_pid: bool, failure_code: MessageCode
    ) -> None:
        """Give the program's stream to its protocol; its output goes to the channel."""
        io = self._io
        protocol = ExecStreamProtocol(io.stdout, io.stderr, self, tty=tty, expect_pid=expect_pid)
        try:
            transport = stream.attach(protocol)
        except Exception as e:
            stream.close()
            raise self._error(failure_code, START_FAILED_MESSAGE, str(e)) from e
        self._adopt_stream(transport, protocol)

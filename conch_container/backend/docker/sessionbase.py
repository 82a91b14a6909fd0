"""What a session channel's program does alike in both modes.

A program runs as an exec in the connection's container
(:class:`~conch_container.backend.docker.connectionmode.execsession.DockerExecSession`) or as
its own container
(:class:`~conch_container.backend.docker.sessionmode.session.DockerContainerSession`).
Either way the channel's requests arrive in the same order, the output is one
engine stream read by the reactor
(:class:`~conch_container.backend.docker.engine.stream.ExecStreamProtocol`), and
closing happens once: :class:`SessionBase` holds that part, the subclasses
how the program is started, resized, signalled, and how it ends.

Also here: :func:`program_command`, the argv of a request (an unconfigured
subsystem is refused), and :func:`logged_error`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IPushProducer

from conch_container import messages
from conch_container.backend.docker.engine.errors import EngineError
from conch_container.backend.docker.engine.stream import ExecStreamProtocol, StreamEvents
from conch_container.backend.docker.engine.upgrade import UpgradedStream
from conch_container.backend.program import UnknownSubsystem, program_argv
from conch_container.codes import Level, MessageCode
from conch_container.deferreds import DeadlineExceeded, Once, with_deadline
from conch_container.errors import ContainerSSHError, RequestRejected
from conch_container.interfaces import ISessionIO, ProgramRequest, PtyRequest
from conch_container.log.logger import CodeLogger

if TYPE_CHECKING:
    from conch_container.config import DockerConfig, DockerExecutionConfig

START_FAILED_MESSAGE = "Failed to start the program."


def logged_error(
    log: CodeLogger,
    code: MessageCode,
    user_message: str,
    explanation: str,
    *,
    level: Level | None = None,
    **details: Any,
) -> ContainerSSHError:
    """A :class:`ContainerSSHError`, logged, for the caller to raise."""
    error = ContainerSSHError(code, user_message, explanation, **details)
    if level is None:
        error.log(log)
    else:
        log.event(code, "{reason}", reason=explanation, level=level, **details)
    return error


def program_command(
    program: ProgramRequest, execution: DockerExecutionConfig, log: CodeLogger
) -> list[str]:
    """The argv of ``program`` under the ``docker.execution`` settings ``execution``.

    :raises RequestRejected: (logged as ``DOCKER_SUBSYSTEM_NOT_SUPPORTED``)
        for a subsystem that is not configured, so the client's request gets
        a plain failure reply, as OpenSSH answers a subsystem it does not
        serve; nothing is started.
    """
    try:
        return program_argv(
            program,
            shell_command=execution.shell_command,
            subsystems=execution.subsystems,
        )
    except UnknownSubsystem as e:
        rejection = RequestRejected(
            messages.DOCKER_SUBSYSTEM_NOT_SUPPORTED,
            "Subsystem not supported.",
            f"the requested subsystem {e.name!r} is not configured",
            subsystem=e.name,
        )
        rejection.log(log)
        raise rejection from None


class State(enum.Enum):
    """Where a session's program is in its life."""

    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    ENDED = "ended"
    CLOSED = "closed"


class SessionBase(StreamEvents):
    """The channel side of a session, common to both modes.

    Subclasses provide :attr:`_log`, ``_start``, ``_resize``, ``_signal``,
    ``_release`` and the :class:`~conch_container.backend.docker.engine.stream.StreamEvents`
    that differ (``pid_received``, ``pid_failed``, ``output_ended``).

    :param reactor: provides the clock and the connections to the engine.
    :param docker_config: the connection's ``docker`` config section.
    :param on_closed: called with the session once it is closed.
    """

    def __init__(
        self,
        *,
        reactor: Any,
        docker_config: DockerConfig,
        on_closed: Callable[[Any], object] | None,
    ) -> None:
        self._reactor = reactor
        self._execution = docker_config.execution
        self._timeouts = docker_config.timeouts
        self._on_closed = on_closed
        self._env: dict[str, str] = {}
        self._pty: PtyRequest | None = None
        self._state = State.NEW
        self._io: Any = None
        #: The stream's transport (TCP, UNIX or TLS): write, half-close, produce output.
        self._transport: Any = None
        #: The protocol reading the stream; it also holds stdin's producer.
        self._stream_protocol: ExecStreamProtocol | None = None
        #: Stdin held back until the guest agent's PID has come through a
        #: terminal (None: nothing held): the terminal echoes what it is given,
        #: and an echo ahead of the PID would be read as the PID.
        self._held_input: list[bytes] | None = None
        self._input_producer: IPushProducer | None = None
        self._producer_registered = False
        self._stream_closed: Once[None] = Once()
        self._start_d: Deferred[None] | None = None
        self._exit_d: Deferred[None] | None = None
        #: The signals delivered to the program, to tell a death by signal from an exit code.
        self._delivered: set[str] = set()
        self._close_once: Once[None] | None = None

    @property
    def _log(self) -> CodeLogger:
        """The session's logger."""
        raise NotImplementedError

    # -- before start

    def set_env(self, name: str, value: str) -> None:
        self._refuse_if_started()
        self._env[name] = value

    def set_pty(self, pty: PtyRequest) -> None:
        self._refuse_if_started()
        self._pty = pty

    def _refuse_if_started(self) -> None:
        if self._state is not State.NEW:
            raise self._error(
                messages.DOCKER_PROGRAM_ALREADY_RUNNING,
                "A program is already running on this channel.",
                "the client sent a request that is only valid before the program starts",
            )

    # -- start

    def start(self, program: ProgramRequest, io: ISessionIO) -> Deferred[None]:
        """Start ``program``; output may reach ``io`` before the result fires."""
        d = Deferred.fromCoroutine(self._start(program, io))
        if not d.called:
            self._start_d = d
        return d

    async def _start(self, program: ProgramRequest, io: ISessionIO) -> None:
        raise NotImplementedError

    def _take_stream(
        self, stream: UpgradedStream, tty: bool, *, expect_pid: bool, failure_code: MessageCode
    ) -> None:
        """Give the program's stream to its protocol; its output goes to the channel."""
        io = self._io
        protocol = ExecStreamProtocol(io.stdout, io.stderr, self, tty=tty, expect_pid=expect_pid)
        try:
            self._transport = stream.attach(protocol)
        except Exception as e:
            stream.close()
            raise self._error(failure_code, START_FAILED_MESSAGE, str(e)) from e
        self._stream_protocol = protocol
        io.register_producer(self._transport)
        self._producer_registered = True

    async def _resize_to_pty(self) -> None:
        """Give a program that just started the terminal size requested; never fails."""
        if self._pty is None:
            return
        try:
            await self._resize(self._pty.columns, self._pty.rows)
        except ContainerSSHError:
            pass  # logged; the program runs with the engine's default size
        except CancelledError:
            pass  # closed meanwhile; the program did start

    # -- while running

    def write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or self._state is not State.RUNNING:
            return
        if self._held_input is not None:
            # At most the client's window: its producer is paused meanwhile.
            self._held_input.append(data)
            return
        try:
            transport.write(data)
        except Exception as e:
            self._log.event(
                messages.DOCKER_STREAM_INPUT_FAILED,
                "Failed to forward input: {reason}",
                reason=str(e),
            )

    def register_input_producer(self, producer: IPushProducer) -> None:
        """Pause the client's stdin while the stream holds more than it has sent on.

        The stream's transport pauses a streaming producer while more than its
        ``bufferSize`` waits to be written to the engine, that is while the
        program reads slower than the client sends, and resumes it once that
        was written.
        """
        protocol = self._stream_protocol
        if protocol is None or self._state is not State.RUNNING:
            producer.stopProducing()
            return
        protocol.register_input(producer)
        self._input_producer = producer
        if self._held_input is not None:
            producer.pauseProducing()

    def _hold_input_until_pid(self) -> None:
        """Keep stdin from the program until :meth:`_release_held_input`."""
        self._held_input = []

    def _release_held_input(self, *, deliver: bool) -> None:
        """Pass on (or, without ``deliver``, drop) the held stdin and let more come."""
        held, self._held_input = self._held_input, None
        if held is None:
            return
        producer = self._input_producer
        if producer is not None:
            # Resumed before the writes: the stream's transport pauses it again
            # if they fill its buffer.
            producer.resumeProducing()
        if deliver:
            for data in held:
                self.write(data)

    def close_stdin(self) -> None:
        transport = self._transport
        protocol = self._stream_protocol
        if transport is None or protocol is None or self._state is not State.RUNNING:
            return
        if self._pty is not None:
            # A terminal has no end of input (a user types ^D), and the engine
            # answers a half-closed TTY stream by dropping the output (an exec
            # then never reports an exit code; a container's program keeps
            # running); so, like sshd with a pty, ignore it.
            return
        # Without a TTY the engine closes the program's stdin and keeps its
        # output flowing; the half-close waits for no producer (see
        # ExecStreamProtocol.release_input).
        try:
            protocol.release_input()
            transport.loseWriteConnection()
        except Exception as e:
            raise self._error(
                messages.DOCKER_CLOSE_INPUT_FAILED, "Failed to close the input.", str(e)
            ) from e

    def resize(self, columns: int, rows: int, width: int = 0, height: int = 0) -> Deferred[None]:
        return Deferred.fromCoroutine(self._resize_running(columns, rows))

    async def _resize_running(self, columns: int, rows: int) -> None:
        self._require_running()
        await self._resize(columns, rows)

    async def _resize(self, columns: int, rows: int) -> None:
        raise NotImplementedError

    async def _await_resize(
        self, resizing: Deferred[Any], columns: int, rows: int, *, conflict_ends: bool = False
    ) -> None:
        """Wait for the engine's ``resizing`` at most ``timeouts.window``.

        A failure or a timeout is raised as ``DOCKER_EXEC_RESIZE_FAILED``.

        :param conflict_ends: an engine conflict (409) means the program
            already ended; it is then logged at debug level only.
        """
        try:
            await with_deadline(self._reactor, self._timeouts.window, resizing)
        except (EngineError, DeadlineExceeded) as e:
            ended = conflict_ends and isinstance(e, EngineError) and e.status == 409
            raise self._error(
                messages.DOCKER_EXEC_RESIZE_FAILED,
                "Failed to resize the terminal.",
                getattr(e, "message", str(e)),
                level=Level.DEBUG if ended else None,
                width=columns,
                height=rows,
            ) from None

    def signal(self, name: str) -> Deferred[None]:
        return Deferred.fromCoroutine(self._signal(name))

    async def _signal(self, name: str) -> None:
        raise NotImplementedError

    def _require_running(self) -> None:
        if self._state is not State.RUNNING:
            raise self._error(
                messages.DOCKER_PROGRAM_NOT_RUNNING,
                "No program is running.",
                "the request needs a running program",
            )

    # -- StreamEvents (called by the protocol)

    def stream_closed(self) -> None:
        self._stream_closed.fire(None)

    def _unregister_producer(self) -> None:
        if self._producer_registered:
            self._producer_registered = False
            try:
                self._io.unregister_producer()
            except Exception as e:
                self._log.event(
                    messages.DOCKER_STREAM_OUTPUT_FAILED,
                    "Could not unregister the output stream: {reason}",
                    reason=str(e),
                    level=Level.DEBUG,
                )

    # -- close

    def close(self) -> Deferred[None]:
        """End the program if it still runs and release what it holds; idempotent."""
        return self.shutdown(kill=True)

    def shutdown(self, *, kill: bool) -> Deferred[None]:
        """Close; a running program is ended first only if ``kill``.

        Without ``kill`` the whole connection is going, and with it whatever
        the program runs in.
        """
        if self._close_once is None:
            once: Once[None] = Once()
            self._close_once = once
            Deferred.fromCoroutine(self._close(kill)).addBoth(once.fire)
        return self._close_once.wait()

    async def _close(self, kill: bool) -> None:
        try:
            await self._release(kill)
        finally:
            if self._on_closed is not None:
                self._on_closed(self)

    async def _release(self, kill: bool) -> None:
        raise NotImplementedError

    # -- errors

    def _error(
        self,
        code: MessageCode,
        user_message: str,
        explanation: str,
        *,
        level: Level | None = None,
        **details: Any,
    ) -> ContainerSSHError:
        """A logged error for the caller to raise."""
        return logged_error(self._log, code, user_message, explanation, level=level, **details)

"""One session channel's program as its own container (Docker ``session`` mode).

Reference section 6.3. ``start`` creates a container whose ``Cmd`` is the
program (:func:`~conch_container.backend.docker.sessionops.session_create_request`),
puts authentication's ``files`` into it, attaches to its streams *before*
starting it, so that not a byte of output is missed, starts it and hands the
attach connection to the reactor, where the exec stream's
:class:`~conch_container.backend.docker.stream.ExecStreamProtocol` reads it
(there is no PID handshake: the program is the container's main process).
With a terminal the container is resized. The whole start is bounded by
``timeouts.containerStart``.

While it runs, ``window-change`` resizes the container and ``signal`` goes
through the engine's kill API. When the output ends the exit code is read
from the container's state. Then, and whenever the channel closes, the
container is removed (ContainerSSH leaves session containers behind); a
program still running on close is stopped first, with a short grace. Every
failure path removes what was created, including a container whose create
call returns after the start was given up.

The engine side of that life (create, files, attach, start, stop, removal)
is :class:`~conch_container.backend.docker.sessioncontainer.SessionContainer`;
this module is the channel side: requests, the stream, the exit status.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import ITCPTransport
from zope.interface import implementer

from conch_container import messages
from conch_container.backend.docker.containerconfig import CreateRequest
from conch_container.backend.docker.containerops import ContainerOps
from conch_container.backend.docker.deferutil import DeadlineExceeded, Once, with_deadline
from conch_container.backend.docker.engine import Engine, EngineError, HijackedStream
from conch_container.backend.docker.execops import SIGNALS, exit_status
from conch_container.backend.docker.sessioncontainer import (
    START_FAILED_MESSAGE,
    STOP_GRACE,
    SessionContainer,
    logged_error,
)
from conch_container.backend.docker.sessionops import (
    fetch_container_exit_code,
    session_create_request,
)
from conch_container.backend.docker.stream import ExecStreamProtocol, StreamEvents, adopt
from conch_container.backend.program import UnknownSubsystem, program_argv
from conch_container.errors import ContainerSSHError
from conch_container.interfaces import (
    IBackendSession,
    ISessionIO,
    ProgramRequest,
    PtyRequest,
)
from conch_container.log.codes import MessageCode
from conch_container.log.levels import Level
from conch_container.log.logger import CodeLogger


@attrs.frozen
class SessionTemplate:
    """What every session container of one connection is made from.

    :ivar request: the connection's container request: the configured
        container with the connection's labels and authentication environment.
    :ivar files: authentication's ``files`` (path to
        :class:`~conch_container.metadata.FileValue`).
    """

    request: CreateRequest
    files: Mapping[str, object] = attrs.field(factory=dict)


class _State(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    ENDED = "ended"
    CLOSED = "closed"


@implementer(IBackendSession)
class DockerContainerSession(StreamEvents):
    """An :class:`~conch_container.interfaces.IBackendSession` that is one container.

    :param reactor: provides the clock and ``adoptStreamConnection``.
    :param engine: the connection's engine.
    :param template: the connection's :class:`SessionTemplate`.
    :param docker_config: the connection's ``docker`` config section.
    :param log: bound to the connection; the channel id is added here.
    :param retry_interval: seconds between removal attempts.
    :param on_closed: called once the session is closed.
    :param stop_grace: see :data:`STOP_GRACE`.
    :param ops: the container calls (default: :class:`ContainerOps` on ``engine``).
    """

    def __init__(
        self,
        *,
        reactor: Any,
        engine: Engine,
        template: SessionTemplate,
        docker_config: Any,
        log: CodeLogger,
        channel_id: object,
        retry_interval: float,
        on_closed: Callable[[DockerContainerSession], object] | None = None,
        stop_grace: int = STOP_GRACE,
        ops: ContainerOps | None = None,
    ) -> None:
        self._reactor = reactor
        self._ops = ops if ops is not None else ContainerOps(engine)
        self._template = template
        self._execution = docker_config.execution
        self._timeouts = docker_config.timeouts
        self._on_closed = on_closed
        self._container = SessionContainer(
            clock=reactor,
            engine=engine,
            ops=self._ops,
            timeouts=self._timeouts,
            retry_interval=retry_interval,
            log=log.bind(channelId=channel_id),
            stop_grace=stop_grace,
        )
        self._env: dict[str, str] = {}
        self._pty: PtyRequest | None = None
        self._state = _State.NEW
        self._io: Any = None
        self._transport: ITCPTransport | None = None
        self._producer_registered = False
        self._stream_closed: Once[None] = Once()
        self._start_d: Deferred[None] | None = None
        self._exit_d: Deferred[None] | None = None
        #: The signals delivered to the program, for :func:`exit_status`.
        self._delivered: set[str] = set()
        self._close_once: Once[None] | None = None

    @property
    def container_id(self) -> str | None:
        """The session's container, once its create call returned."""
        return self._container.container_id

    @property
    def _log(self) -> CodeLogger:
        return self._container.log

    # -- before start

    def set_env(self, name: str, value: str) -> None:
        self._refuse_if_started()
        self._env[name] = value

    def set_pty(self, pty: PtyRequest) -> None:
        self._refuse_if_started()
        self._pty = pty

    def _refuse_if_started(self) -> None:
        if self._state is not _State.NEW:
            raise self._error(
                messages.DOCKER_PROGRAM_ALREADY_RUNNING,
                "A program is already running on this channel.",
                "the client sent a request that is only valid before the program starts",
            )

    # -- start

    def start(self, program: ProgramRequest, io: ISessionIO) -> Deferred[None]:
        """Create, attach to and start the program's container.

        Output may reach ``io`` before the result fires.
        """
        d = Deferred.fromCoroutine(self._start(program, io))
        if not d.called:
            self._start_d = d
        return d

    async def _start(self, program: ProgramRequest, io: ISessionIO) -> None:
        self._refuse_if_started()
        argv = self._command(program)
        self._state = _State.STARTING
        self._io = io
        tty = self._pty is not None
        request = session_create_request(self._template.request, argv, self._env.items(), self._pty)
        container = self._container
        launch = container.launch(program.kind, request, self._template.files)
        try:
            stream = await with_deadline(self._reactor, self._timeouts.container_start, launch)
            self._adopt(stream, tty)
        except BaseException as e:
            container.abandon()
            if self._state is _State.CLOSED:
                raise self._error(
                    container.step_failure,
                    START_FAILED_MESSAGE,
                    "the channel was closed while the program was starting",
                    level=Level.DEBUG,
                ) from None
            self._state = _State.ENDED
            if isinstance(e, DeadlineExceeded):
                raise self._error(
                    container.step_failure,
                    START_FAILED_MESSAGE,
                    f"the program's container did not start within containerStart ({e})",
                ) from None
            raise
        self._state = _State.RUNNING
        if self._pty is not None:
            try:
                await self._resize(self._pty.columns, self._pty.rows)
            except ContainerSSHError:
                pass  # logged; the program runs with the engine's default size
            except CancelledError:
                pass  # closed meanwhile; the program did start

    def _command(self, program: ProgramRequest) -> list[str]:
        try:
            return program_argv(
                program,
                shell_command=self._execution.shell_command,
                subsystems=self._execution.subsystems,
            )
        except UnknownSubsystem as e:
            raise self._error(
                messages.DOCKER_SUBSYSTEM_NOT_SUPPORTED,
                "Subsystem not supported.",
                "the requested subsystem is not configured",
                subsystem=e.name,
            ) from None

    def _adopt(self, stream: HijackedStream, tty: bool) -> None:
        io = self._io
        protocol = ExecStreamProtocol(io.stdout, io.stderr, self, tty=tty, expect_pid=False)
        try:
            self._transport = adopt(self._reactor, stream.fd, stream.family, protocol)
        except Exception as e:
            self._container.step_failure = messages.DOCKER_CONTAINER_ATTACH_FAILED
            raise self._error(
                messages.DOCKER_CONTAINER_ATTACH_FAILED, START_FAILED_MESSAGE, str(e)
            ) from e
        finally:
            stream.close()
        io.register_producer(self._transport)
        self._producer_registered = True
        if stream.leftover:
            protocol.dataReceived(stream.leftover)

    # -- while running

    def write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or self._state is not _State.RUNNING:
            return
        try:
            transport.write(data)
        except Exception as e:
            self._log.event(
                messages.DOCKER_STREAM_INPUT_FAILED,
                "Failed to forward input: {reason}",
                reason=str(e),
            )

    def close_stdin(self) -> None:
        transport = self._transport
        if transport is None or self._state is not _State.RUNNING:
            return
        if self._pty is not None:
            # The engine answers a half-closed TTY attach stream by dropping the
            # output while the program keeps running; a terminal has no end of
            # input anyway (a user types ^D), so, like sshd with a pty, ignore it.
            return
        # Without a TTY the engine closes the program's stdin (StdinOnce) and
        # keeps its output flowing.
        try:
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
        assert self.container_id is not None
        self._log.event(
            messages.DOCKER_EXEC_RESIZE,
            "Resizing the terminal of container {containerId} to {width}x{height}",
            width=columns,
            height=rows,
        )
        try:
            await with_deadline(
                self._reactor,
                self._timeouts.window,
                self._ops.resize(self.container_id, rows, columns),
            )
        except (EngineError, DeadlineExceeded) as e:
            # 409: the program already ended (an instant one, before the first resize).
            ended = isinstance(e, EngineError) and e.status == 409
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
        self._require_running()
        if name not in SIGNALS:
            raise self._error(
                messages.DOCKER_CONTAINER_SIGNAL_FAILED,
                "Unsupported signal.",
                "the signal is not one ContainerSSH delivers",
                signal=name,
            )
        assert self.container_id is not None
        self._log.event(
            messages.DOCKER_CONTAINER_SIGNAL,
            "Sending signal {signal} to container {containerId}",
            signal=name,
        )
        try:
            await with_deadline(
                self._reactor, self._timeouts.signal, self._ops.kill(self.container_id, name)
            )
        except (EngineError, DeadlineExceeded) as e:
            raise self._error(
                messages.DOCKER_CONTAINER_SIGNAL_FAILED,
                "Failed to deliver the signal.",
                getattr(e, "message", str(e)),
                signal=name,
            ) from None
        self._delivered.add(name)

    def _require_running(self) -> None:
        if self._state is not _State.RUNNING:
            raise self._error(
                messages.DOCKER_PROGRAM_NOT_RUNNING,
                "No program is running.",
                "the request needs a running program",
            )

    # -- StreamEvents (called by the protocol)

    def pid_received(self, pid: int) -> None:
        """Not used: the stream carries no PID in session mode."""

    def pid_failed(self, reason: str) -> None:
        """Not used: the stream carries no PID in session mode."""

    def output_ended(self, error: str | None) -> None:
        self._unregister_producer()
        if self._state is _State.CLOSED:
            return
        if error is not None:
            self._log.event(
                messages.DOCKER_STREAM_OUTPUT_FAILED,
                "The output stream failed: {reason}",
                reason=error,
            )
        self._state = _State.ENDED
        self._io.output_closed()
        self._exit_d = Deferred.fromCoroutine(self._report_exit())

    def stream_closed(self) -> None:
        self._stream_closed.fire(None)

    async def _report_exit(self) -> None:
        assert self.container_id is not None
        try:
            code = await fetch_container_exit_code(
                self._reactor, self._ops, self.container_id, self._log
            )
        except CancelledError:
            return
        if self._state is not _State.CLOSED:
            self._io.exited(exit_status(code, self._delivered))
        # The program is over: the container goes now, not when the channel closes.
        self._container.remove(stop=False)

    # -- close

    def close(self) -> Deferred[None]:
        """Stop the program if it still runs and remove its container; idempotent."""
        return self.shutdown(kill=True)

    def shutdown(self, *, kill: bool) -> Deferred[None]:
        """Close; a running program is stopped gracefully only if ``kill``.

        Without ``kill`` (the whole connection is going) the container is
        force-removed at once.
        """
        if self._close_once is None:
            once: Once[None] = Once()
            self._close_once = once
            Deferred.fromCoroutine(self._close(kill)).addBoth(once.fire)
        return self._close_once.wait()

    async def _close(self, kill: bool) -> None:
        try:
            await self._release(kill)
        except Exception as e:
            self._log.event(
                messages.DOCKER_CONTAINER_REMOVE_FAILED,
                "Unexpected failure while closing the session: {reason}",
                reason=str(e),
            )
        finally:
            if self._on_closed is not None:
                self._on_closed(self)

    async def _release(self, kill: bool) -> None:
        previous, self._state = self._state, _State.CLOSED
        container = self._container
        for d in (self._start_d, self._exit_d):
            if d is not None and not d.called:
                d.cancel()
        transport = self._transport
        if transport is not None and not self._stream_closed.done:
            self._unregister_producer()
            transport.abortConnection()
            await self._stream_closed.wait()
        if previous is _State.RUNNING:
            self._log.event(
                messages.DOCKER_CONTAINER_SHUTTING_DOWN,
                "Shutting down container {containerId}: its program still runs",
            )
            await container.remove(stop=kill)
            return
        # Whatever was started is not wanted; a create still running is waited
        # for (within containerStop), and removed even if it returns later.
        container.abandon()
        await container.settle(self._reactor.seconds() + self._timeouts.container_stop)
        if container.container_id is not None:
            await container.remove(stop=False)

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

"""One session channel's program as its own container (Docker ``session`` mode).

Reference section 6.3. ``start`` creates a container whose ``Cmd`` is the
program (:func:`~conch_container.backend.docker.sessionmode.ops.session_create_request`),
puts authentication's ``files`` into it, attaches to its streams *before*
starting it, so that not a byte of output is missed, starts it and hands the
attach connection to the reactor, where the exec stream's
:class:`~conch_container.backend.docker.engine.stream.ExecStreamProtocol` reads it
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
is :class:`~conch_container.backend.docker.sessionmode.container.SessionContainer`;
this module is the channel side: requests, the stream, the exit status
(what both modes do alike is
:class:`~conch_container.backend.docker.sessionbase.DockerSessionBase`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
from twisted.internet.defer import CancelledError, Deferred
from zope.interface import implementer

from conch_container import messages
from conch_container.backend.docker.containerconfig import CreateRequest
from conch_container.backend.docker.engine.api import Engine
from conch_container.backend.docker.engine.errors import EngineError
from conch_container.backend.docker.execops import SIGNALS, exit_status
from conch_container.backend.docker.sessionbase import DockerSessionBase
from conch_container.backend.docker.sessionmode.container import STOP_GRACE, SessionContainer
from conch_container.backend.docker.sessionmode.ops import (
    fetch_container_exit_code,
    session_create_request,
)
from conch_container.backend.programsession import START_FAILED_MESSAGE, State
from conch_container.codes import Level
from conch_container.deferreds import DeadlineExceeded, with_deadline
from conch_container.interfaces import IBackendSession, ISessionIO, ProgramRequest
from conch_container.log.logger import CodeLogger

if TYPE_CHECKING:
    from conch_container.config import DockerConfig


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


@implementer(IBackendSession)
class DockerContainerSession(DockerSessionBase):
    """An :class:`~conch_container.interfaces.IBackendSession` that is one container.

    :param reactor: provides the clock and the connections to the engine.
    :param engine: the connection's engine (every call of the container's life).
    :param template: the connection's :class:`SessionTemplate`.
    :param docker_config: the connection's ``docker`` config section.
    :param log: bound to the connection; the channel id is added here.
    :param retry_interval: seconds between removal attempts.
    :param on_closed: called once the session is closed.
    :param stop_grace: see :data:`STOP_GRACE`.
    :param removal_failed: called when the container could not be removed.
    """

    _resize_format: ClassVar[str] = (
        "Resizing the terminal of container {containerId} to {width}x{height}"
    )

    def __init__(
        self,
        *,
        reactor: Any,
        engine: Engine,
        template: SessionTemplate,
        docker_config: DockerConfig,
        log: CodeLogger,
        channel_id: object,
        retry_interval: float,
        on_closed: Callable[[DockerContainerSession], object] | None = None,
        stop_grace: int = STOP_GRACE,
        removal_failed: Callable[[], object] = lambda: None,
    ) -> None:
        super().__init__(reactor=reactor, docker_config=docker_config, on_closed=on_closed)
        self._engine = engine
        self._template = template
        self._container = SessionContainer(
            clock=reactor,
            engine=engine,
            timeouts=self._timeouts,
            retry_interval=retry_interval,
            log=log.bind(channelId=channel_id),
            stop_grace=stop_grace,
            removal_failed=removal_failed,
        )

    @property
    def container_id(self) -> str | None:
        """The session's container, once its create call returned."""
        return self._container.container_id

    @property
    def _log(self) -> CodeLogger:
        return self._container.log

    # -- start

    async def _start(self, program: ProgramRequest, io: ISessionIO) -> None:
        self._refuse_if_started()
        argv = self._program_argv(program)
        self._state = State.STARTING
        self._io = io
        tty = self._pty is not None
        request = session_create_request(self._template.request, argv, self._env.items(), self._pty)
        container = self._container
        launch = container.launch(program.kind, request, self._template.files)
        try:
            stream = await with_deadline(self._reactor, self._timeouts.container_start, launch)
            self._take_stream(
                stream,
                tty,
                expect_pid=False,
                failure_code=messages.DOCKER_CONTAINER_ATTACH_FAILED,
            )
        except BaseException as e:
            container.abandon()
            if self._state is State.CLOSED:
                raise self._error(
                    container.step_failure,
                    START_FAILED_MESSAGE,
                    "the channel was closed while the program was starting",
                    level=Level.DEBUG,
                ) from None
            self._state = State.ENDED
            if isinstance(e, DeadlineExceeded):
                raise self._error(
                    container.step_failure,
                    START_FAILED_MESSAGE,
                    f"the program's container did not start within containerStart ({e})",
                ) from None
            raise
        self._state = State.RUNNING
        await self._resize_to_pty()

    # -- while running

    def _request_resize(self, columns: int, rows: int) -> Deferred[None]:
        assert self.container_id is not None
        return self._engine.container_resize(self.container_id, rows, columns)

    def _resize_error_means_ended(self, error: Exception) -> bool:
        # A conflict: the program already ended (an instant one, before the first resize).
        return isinstance(error, EngineError) and error.status == 409

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
                self._reactor,
                self._timeouts.signal,
                self._engine.container_kill(self.container_id, name),
            )
        except (EngineError, DeadlineExceeded) as e:
            raise self._error(
                messages.DOCKER_CONTAINER_SIGNAL_FAILED,
                "Failed to deliver the signal.",
                getattr(e, "message", str(e)),
                signal=name,
            ) from None
        self._delivered.add(name)

    # -- StreamEvents (called by the protocol)

    def pid_received(self, pid: int) -> None:
        """Not used: the stream carries no PID in session mode."""

    def pid_failed(self, reason: str) -> None:
        """Not used: the stream carries no PID in session mode."""

    def output_ended(self, error: str | None) -> None:
        if not self._output_over(error):
            return
        self._exit_d = Deferred.fromCoroutine(self._report_exit())

    async def _report_exit(self) -> None:
        assert self.container_id is not None
        try:
            code = await fetch_container_exit_code(
                self._reactor, self._engine, self.container_id, self._log
            )
        except CancelledError:
            return
        if self._state is not State.CLOSED:
            self._io.exited(exit_status(code, self._delivered))
        # The program is over: the container goes now, not when the channel closes.
        self._container.remove(stop=False)

    # -- close

    async def _release(self, kill: bool) -> None:
        """Drop the stream and remove the container; never fails.

        A running program is stopped gracefully first only if ``kill``;
        without it (the whole connection is going) the container is
        force-removed at once.
        """
        try:
            await self._remove_container(kill)
        except Exception as e:
            self._log.event(
                messages.DOCKER_CONTAINER_REMOVE_FAILED,
                "Unexpected failure while closing the session: {reason}",
                reason=str(e),
            )

    async def _remove_container(self, kill: bool) -> None:
        previous = self._mark_closed()
        container = self._container
        if self._stream_open:
            await self._drop_stream()
        if previous is State.RUNNING:
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

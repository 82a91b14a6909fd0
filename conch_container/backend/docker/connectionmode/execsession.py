"""One session channel's program, run as a Docker exec in the connection's container.

Lifecycle (reference section 6.2): ``start`` creates the exec (prefixed with
the guest agent's ``console --pid --`` unless the agent is disabled; see
:mod:`~conch_container.backend.docker.agent`), starts it with an
HTTP upgrade made from the reactor (:mod:`..engine.upgrade`), and hands the upgraded
connection to :class:`~conch_container.backend.docker.engine.stream.ExecStreamProtocol`;
with a terminal, the exec is then resized. Output flows to the
:class:`~conch_container.interfaces.ISessionIO` with the stream's transport
registered as its producer, so a full SSH window stops reading from the engine.
When the engine ends the stream the exit code is read with ``exec inspect``;
it is reported as the signal the gateway delivered when it says the program
died of that signal (:func:`~conch_container.backend.docker.execops.exit_status`).

What both modes do alike (stdin, EOF, resizing, closing once) is
:class:`~conch_container.backend.docker.sessionbase.DockerSessionBase`, on
the backend-neutral :class:`~conch_container.backend.programsession.ProgramSession`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

from twisted.internet.defer import CancelledError, Deferred
from zope.interface import implementer

from conch_container import messages
from conch_container.backend.docker.agent import GuestAgent
from conch_container.backend.docker.engine.api import Engine
from conch_container.backend.docker.engine.errors import EngineError
from conch_container.backend.docker.engine.upgrade import UpgradedStream
from conch_container.backend.docker.execops import (
    SIGNALS,
    UNKNOWN_EXIT_CODE,
    deliver_signal,
    exit_status,
    fetch_exit_code,
    start_signal,
)
from conch_container.backend.docker.sessionbase import DockerSessionBase
from conch_container.backend.programsession import START_FAILED_MESSAGE, SignalCodes, State
from conch_container.codes import Level, MessageCode
from conch_container.deferreds import (
    DeadlineExceeded,
    Once,
    await_resource,
    with_deadline,
)
from conch_container.errors import ContainerSSHError
from conch_container.interfaces import (
    ExitStatus,
    IBackendSession,
    ISessionIO,
    ProgramRequest,
    PtyRequest,
)
from conch_container.log.logger import CodeLogger

if TYPE_CHECKING:
    from conch_container.config import DockerConfig


#: The codes of a signal the guest agent cannot deliver.
DOCKER_SIGNAL_CODES = SignalCodes(
    no_agent=messages.DOCKER_EXEC_SIGNAL_FAILED_NO_AGENT,
    unsupported=messages.DOCKER_EXEC_SIGNAL_FAILED,
    no_pid=messages.DOCKER_SIGNAL_FAILED_NO_PID,
)


class _Agent(enum.Enum):
    #: The agent the configuration implies (``agentPath``, or none if disabled).
    CONFIGURED = "configured"


@implementer(IBackendSession)
class DockerExecSession(DockerSessionBase):
    """An :class:`~conch_container.interfaces.IBackendSession` backed by a Docker exec.

    :param reactor: provides the clock and the connections to the engine.
    :param engine: the engine the container lives on.
    :param container_id: the connection's container.
    :param docker_config: the connection's ``docker`` config section.
    :param log: bound to the connection; the channel id is added here.
    :param agent: the container's guest agent
        (:func:`~conch_container.backend.docker.agent.select_agent`), None if
        disabled; by default the image's agent at ``agentPath``, unless the
        configuration disables it.
    :param env: variables the program gets on top of the container's own.
    """

    def __init__(
        self,
        *,
        reactor: Any,
        engine: Engine,
        container_id: str,
        docker_config: DockerConfig,
        log: CodeLogger,
        channel_id: object,
        on_closed: Callable[[DockerExecSession], object] | None = None,
        agent: GuestAgent | Literal[_Agent.CONFIGURED] | None = _Agent.CONFIGURED,
        env: Iterable[tuple[str, str]] = (),
    ) -> None:
        super().__init__(reactor=reactor, docker_config=docker_config, on_closed=on_closed)
        # The connection's own variables (a warm pool container's user's); the
        # client's env requests may still replace them, as they would replace
        # the container's.
        self._env.update(env)
        self._engine = engine
        self._container_id = container_id
        self._agent = (
            GuestAgent.configured(self._execution) if agent is _Agent.CONFIGURED else agent
        )
        self._channel_log = log.bind(channelId=channel_id)
        self._exec_id: str | None = None
        self._pid: int | None = None
        self._pid_failed = False
        #: Deliveries in progress (the program may end before the agent reports success).
        self._deliveries: set[Once[None]] = set()
        #: Fires when the PID handshake succeeded or failed.
        self._handshake: Once[None] = Once()
        self._start_failure_code: MessageCode = messages.DOCKER_EXEC_CREATE_FAILED

    @property
    def agent(self) -> GuestAgent | None:
        """The guest agent programs run through (None if disabled)."""
        return self._agent

    @property
    def pid(self) -> int | None:
        """The program's process id in the container, once the guest agent reported it."""
        return self._pid

    @property
    def _log(self) -> CodeLogger:
        return self._channel_log

    @property
    def _use_agent(self) -> bool:
        return self._agent is not None

    # -- before start

    def set_pty(self, pty: PtyRequest) -> None:
        super().set_pty(pty)
        self._env["TERM"] = pty.term

    # -- start

    async def _start(self, program: ProgramRequest, io: ISessionIO) -> None:
        self._refuse_if_started()
        self._state = State.STARTING
        self._io = io
        try:
            cmd = self._command(program)
            tty = self._pty is not None
            env = [f"{name}={value}" for name, value in self._env.items()]
            self._log.event(
                messages.DOCKER_EXEC,
                "Starting {program} program in container {containerId}",
                program=program.kind,
                containerId=self._container_id,
            )
            try:
                stream = await with_deadline(
                    self._reactor,
                    self._timeouts.command_start,
                    self._create_and_attach(cmd, env, tty),
                )
            except DeadlineExceeded as e:
                raise self._error(self._start_failure_code, START_FAILED_MESSAGE, str(e)) from None
            if tty and self._use_agent:
                self._hold_input_until_pid()
            self._take_stream(
                stream,
                tty,
                expect_pid=self._use_agent,
                failure_code=messages.DOCKER_EXEC_ATTACH_FAILED,
            )
        except CancelledError:
            if self._state is not State.CLOSED:
                raise
            raise self._error(
                messages.DOCKER_EXEC_ATTACH_FAILED,
                START_FAILED_MESSAGE,
                "the channel was closed while the program was starting",
                level=Level.DEBUG,
            ) from None
        except BaseException:
            if self._state is State.STARTING:
                self._state = State.NEW
            raise
        self._state = State.RUNNING
        # The agent's PID handshake is not awaited here: it is the first output,
        # and the channel reads output only once the start has been answered.
        # A signal waits for it instead (_signal), and with a terminal stdin is
        # held until it came (a terminal would echo typed input ahead of it).
        await self._resize_to_pty()

    def pid_known(self) -> Deferred[int | None]:
        """Fires with :attr:`pid` once the agent's handshake succeeded, or None if it failed.

        Never fires without the agent. The handshake is read as output, so it
        needs the output to flow (the channel's start reply sent).
        """
        return self._handshake.wait().addCallback(lambda _: self._pid)

    def _command(self, program: ProgramRequest) -> list[str]:
        argv = self._program_argv(program)
        if self._agent is not None:
            return self._agent.console(argv)
        return argv

    async def _create_and_attach(self, cmd: list[str], env: list[str], tty: bool) -> UpgradedStream:
        self._start_failure_code = messages.DOCKER_EXEC_CREATE_FAILED
        self._log.event(messages.DOCKER_EXEC_CREATE, "Creating exec")
        try:
            exec_id = await self._engine.exec_create(self._container_id, cmd, env, tty)
        except EngineError as e:
            raise self._error(
                messages.DOCKER_EXEC_CREATE_FAILED, START_FAILED_MESSAGE, e.message
            ) from None
        self._exec_id = exec_id
        self._start_failure_code = messages.DOCKER_EXEC_ATTACH_FAILED
        self._log.event(
            messages.DOCKER_EXEC_ATTACH, "Starting and attaching to exec {execId}", execId=exec_id
        )
        try:
            # A stream that arrives after the deadline (or after close) is not
            # taken: dropping it ends the program's attachment.
            return await await_resource(
                self._engine.exec_attach(exec_id, tty), UpgradedStream.close
            )
        except EngineError as e:
            raise self._error(
                messages.DOCKER_EXEC_ATTACH_FAILED, START_FAILED_MESSAGE, e.message
            ) from None

    # -- while running

    def _request_resize(self, columns: int, rows: int) -> Deferred[None]:
        assert self._exec_id is not None
        return self._engine.exec_resize(self._exec_id, rows, columns)

    async def _signal(self, name: str) -> None:
        await self._pid_for_signal(
            name,
            agent=self._use_agent,
            supported=SIGNALS,
            handshake=self._handshake,
            pid=lambda: self._pid,
            timeout=self._timeouts.signal,
            codes=DOCKER_SIGNAL_CODES,
        )
        await self._deliver_signal(name)

    async def _deliver_signal(self, name: str) -> None:
        assert self._pid is not None and self._agent is not None
        delivery: Once[None] = Once()
        self._deliveries.add(delivery)
        try:
            await deliver_signal(
                self._reactor,
                self._engine,
                container_id=self._container_id,
                cmd=self._agent.signal(self._pid, name),
                name=name,
                timeout=self._timeouts.signal,
                log=self._log,
            )
            self._delivered.add(name)
        finally:
            self._deliveries.discard(delivery)
            delivery.fire(None)

    async def _kill_without_waiting(self) -> None:
        """Start the agent's ``KILL`` for a closing channel; its outcome is nobody's concern."""
        assert self._pid is not None and self._agent is not None
        await start_signal(
            self._reactor,
            self._engine,
            container_id=self._container_id,
            cmd=self._agent.signal(self._pid, "KILL"),
            name="KILL",
            timeout=self._timeouts.signal,
            log=self._log,
        )

    # -- StreamEvents (called by the protocol)

    def pid_received(self, pid: int) -> None:
        self._pid = pid
        self._handshake.fire(None)
        self._release_held_input(deliver=True)

    def pid_failed(self, reason: str) -> None:
        self._pid_failed = True
        self._handshake.fire(None)
        self._release_held_input(deliver=False)
        self._log.event(
            messages.DOCKER_EXEC_PID_READ_FAILED,
            "Failed to read the program's process id from the guest agent: {reason}",
            reason=reason,
        )

    def output_ended(self, error: str | None) -> None:
        # After a failed handshake the output was cut on purpose (already logged).
        if not self._output_over(None if self._pid_failed else error):
            return
        if self._pid_failed:
            self._io.exited(ExitStatus(code=UNKNOWN_EXIT_CODE))
            return
        self._exit_d = Deferred.fromCoroutine(self._report_exit())

    async def _report_exit(self) -> None:
        assert self._exec_id is not None
        try:
            code = await fetch_exit_code(self._reactor, self._engine, self._exec_id, self._log)
            # A signal that ended the program counts once its delivery is confirmed.
            for delivery in list(self._deliveries):
                await delivery.wait()
        except CancelledError:
            return
        if self._state is not State.CLOSED:
            self._io.exited(exit_status(code, self._delivered))

    # -- close

    async def _release(self, kill: bool) -> None:
        """Kill a running program first if ``kill`` (the agent delivers ``KILL``); drop the stream.

        Without ``kill`` the container is about to go, and the program with it.
        """
        previous = self._mark_closed()
        if not self._stream_open:
            return
        if kill and previous is State.RUNNING and self._use_agent and self._pid is not None:
            try:
                await self._kill_without_waiting()
            except ContainerSSHError:
                pass  # logged; dropping the stream below is all that is left to do
        await self._drop_stream()

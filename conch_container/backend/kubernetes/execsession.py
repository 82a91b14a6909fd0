"""One session channel's program, run as an exec in the connection's pod (``connection`` mode).

The program runs in the console container through the guest agent
(``console --pid --env NAME=VALUE ... -- PROGRAM``: a Kubernetes exec carries
no environment of its own, so the channel's variables are the agent's
flags), over a :class:`~.websocket.ChannelStream` opened within
``timeouts.commandStart``. The agent's PID is the first output; signals are
new execs of the agent's ``signal`` command, bounded by ``timeouts.signal``.
The exit status comes from the stream's error channel; a program that died
of a signal the gateway delivered is reported as that signal.

The state machine (stdin, EOF, resizing, closing once) is the backend-neutral
:class:`~conch_container.backend.programsession.ProgramSession`, with the
``KUBERNETES_*`` codes of :data:`KUBERNETES_SESSION_CODES`; what an exec
session shares with a session-mode pod (opening and taking the stream,
resizing, signals through the agent) is :class:`KubernetesProgramSession`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar

from twisted.internet.defer import CancelledError, Deferred, succeed

from conch_container import messages
from conch_container.backend.docker.agent import GuestAgent
from conch_container.backend.docker.execops import SIGNALS, UNKNOWN_EXIT_CODE, exit_status
from conch_container.backend.kubernetes.errors import KubernetesError
from conch_container.backend.kubernetes.podlifecycle import PodRef
from conch_container.backend.kubernetes.websocket import ChannelStream
from conch_container.backend.programsession import (
    START_FAILED_MESSAGE,
    ProgramSession,
    SessionCodes,
    SignalCodes,
    State,
    program_command,
)
from conch_container.codes import Level
from conch_container.deferreds import DeadlineExceeded, Once, with_deadline
from conch_container.interfaces import ExitStatus, ISessionIO, ProgramRequest, PtyRequest
from conch_container.log.logger import CodeLogger

if TYPE_CHECKING:
    from conch_container.backend.kubernetes.client import ClusterClient
    from conch_container.config.kubernetes import KubernetesConfig

#: The codes a Kubernetes session logs for what every backend's session does.
KUBERNETES_SESSION_CODES = SessionCodes(
    already_running=messages.KUBERNETES_PROGRAM_ALREADY_RUNNING,
    not_running=messages.KUBERNETES_PROGRAM_NOT_RUNNING,
    input_failed=messages.KUBERNETES_EXEC_FAILED,
    close_input_failed=messages.KUBERNETES_EXEC_FAILED,
    resize=messages.KUBERNETES_EXEC_RESIZE,
    resize_failed=messages.KUBERNETES_EXEC_RESIZE_FAILED,
    output_failed=messages.KUBERNETES_EXEC_FAILED,
    subsystem_not_supported=messages.KUBERNETES_SUBSYSTEM_NOT_SUPPORTED,
)


#: The codes of a signal the guest agent cannot deliver.
KUBERNETES_SIGNAL_CODES = SignalCodes(
    no_agent=messages.KUBERNETES_EXEC_SIGNAL_FAILED_NO_AGENT,
    unsupported=messages.KUBERNETES_EXEC_SIGNAL_FAILED,
    no_pid=messages.KUBERNETES_SIGNAL_FAILED_NO_PID,
)


class _Finished:
    """The events of a helper exec (a signal): only its end matters."""

    def __init__(self) -> None:
        self.ended: Once[str | None] = Once()

    def pid_received(self, pid: int) -> None:
        pass

    def pid_failed(self, reason: str) -> None:
        pass

    def output_ended(self, error: str | None) -> None:
        self.ended.fire(error)

    def stream_closed(self) -> None:
        self.ended.fire(None)


class HelperExec:
    """A short exec of the guest agent (a signal, a file write) in a pod's container."""

    def __init__(self, cluster: ClusterClient, pod: PodRef, container: str) -> None:
        self._cluster = cluster
        self._pod = pod
        self._container = container

    async def run(self, command: list[str], stdin: bytes, timeout: float) -> str | None:
        """Run ``command`` with ``stdin`` (then closed); why it failed, or None if it exited 0."""
        events = _Finished()
        stream = await self._cluster.open_stream(
            self._pod.namespace,
            self._pod.name,
            self._container,
            command,
            tty=False,
            stdout=lambda data: None,
            stderr=lambda data: None,
            events=events,
            timeout=timeout,
        )
        try:
            stream.write(stdin)
            stream.loseWriteConnection()
            error = await events.ended.wait()
        finally:
            stream.abortConnection()
        status = stream.exit_status
        if status is not None and status.exit_code == 0:
            return None
        return error or "the guest agent failed"


class KubernetesProgramSession(ProgramSession):
    """What a Kubernetes session does alike in every mode: codes, terminal, signals.

    A subclass sets :attr:`_stream` once its program's stream is open.

    :param config: the connection's ``kubernetes`` config section.
    :param agent: the guest agent programs run through (None if disabled).
    """

    _call_errors: ClassVar[tuple[type[Exception], ...]] = (KubernetesError,)

    def __init__(
        self,
        *,
        reactor: Any,
        cluster: ClusterClient,
        config: KubernetesConfig,
        agent: GuestAgent | None,
        log: CodeLogger,
        channel_id: object,
        on_closed: Callable[[Any], object] | None = None,
    ) -> None:
        super().__init__(
            reactor=reactor,
            codes=KUBERNETES_SESSION_CODES,
            resize_timeout=config.timeouts.window,
            on_closed=on_closed,
        )
        self._cluster = cluster
        self._pod_config = config.pod
        self._timeouts = config.timeouts
        self._agent = agent
        self._channel_log = log.bind(channelId=channel_id)
        self._stream: ChannelStream | None = None

    @property
    def _log(self) -> CodeLogger:
        return self._channel_log

    def set_pty(self, pty: PtyRequest) -> None:
        super().set_pty(pty)
        self._env["TERM"] = pty.term

    async def _take_stream(
        self, opening: Awaitable[ChannelStream], *, hold_input: bool, failed: State
    ) -> None:
        """Take the program's stream once ``opening`` opened it.

        :param hold_input: keep stdin back until :meth:`_release_held_input`.
        :param failed: the state a start that fails is left in.
        :raises ContainerSSHError: at debug level if the channel closed meanwhile.
        """
        try:
            stream = await opening
            self._stream = stream
            if hold_input:
                self._hold_input_until_pid()
            self._adopt_stream(stream, stream)
        except CancelledError:
            if self._state is not State.CLOSED:
                raise
            raise self._error(
                messages.KUBERNETES_EXEC_FAILED,
                START_FAILED_MESSAGE,
                "the channel was closed while the program was starting",
                level=Level.DEBUG,
            ) from None
        except BaseException:
            if self._state is State.STARTING:
                self._state = failed
            raise

    # The stream's events, besides stream_closed (ProgramSession's).

    def pid_received(self, pid: int) -> None:
        raise NotImplementedError

    def pid_failed(self, reason: str) -> None:
        raise NotImplementedError

    def output_ended(self, error: str | None) -> None:
        raise NotImplementedError

    async def _open_stream(
        self,
        pod: PodRef,
        container: str,
        command: list[str] | None,
        io: ISessionIO,
        *,
        expect_pid: bool,
    ) -> ChannelStream:
        """An exec of ``command`` (None: an attach) with the channel's terminal and streams."""
        try:
            return await self._cluster.open_stream(
                pod.namespace,
                pod.name,
                container,
                command,
                tty=self._pty is not None,
                stdout=io.stdout,
                stderr=io.stderr,
                events=self,
                expect_pid=expect_pid,
                timeout=self._timeouts.command_start,
            )
        except KubernetesError as e:
            raise self._error(e.code, START_FAILED_MESSAGE, e.explanation) from None

    def _request_resize(self, columns: int, rows: int) -> Deferred[None]:
        assert self._stream is not None
        self._stream.resize(columns, rows)
        return succeed(None)

    async def _deliver_signal(self, pod: PodRef, container: str, pid: int, name: str) -> None:
        """Send signal ``name`` to process ``pid`` through the agent (``timeouts.signal``)."""
        self._log.event(messages.KUBERNETES_EXEC_SIGNAL, "Sending signal {signal}", signal=name)
        self._delivered.add(name)
        try:
            error = await with_deadline(
                self._reactor, self._timeouts.signal, self._run_signal(pod, container, pid, name)
            )
        except (KubernetesError, DeadlineExceeded) as e:
            error = e.explanation if isinstance(e, KubernetesError) else str(e)
        if error is not None:
            self._delivered.discard(name)
            raise self._error(
                messages.KUBERNETES_EXEC_SIGNAL_FAILED,
                "Failed to deliver the signal.",
                error,
                signal=name,
            )
        self._log.event(
            messages.KUBERNETES_EXEC_SIGNAL_SUCCESSFUL, "Delivered signal {signal}", signal=name
        )

    async def _run_signal(self, pod: PodRef, container: str, pid: int, name: str) -> str | None:
        """Run the agent's ``signal`` command; why it failed, or None."""
        assert self._agent is not None
        helper = HelperExec(self._cluster, pod, container)
        return await helper.run(self._agent.signal(pid, name), b"", self._timeouts.signal)


class KubernetesExecSession(KubernetesProgramSession):
    """An :class:`~conch_container.interfaces.IBackendSession` backed by an exec into the pod.

    :param cluster: the API server the pod is on.
    :param pod: the connection's pod.
    :param container: the console container's name.
    :param config: the connection's ``kubernetes`` config section.
    :param agent: the guest agent programs run through (None if disabled).
    """

    def __init__(
        self,
        *,
        reactor: Any,
        cluster: ClusterClient,
        pod: PodRef,
        container: str,
        config: KubernetesConfig,
        agent: GuestAgent | None,
        log: CodeLogger,
        channel_id: object,
        on_closed: Callable[[Any], object] | None = None,
    ) -> None:
        super().__init__(
            reactor=reactor,
            cluster=cluster,
            config=config,
            agent=agent,
            log=log,
            channel_id=channel_id,
            on_closed=on_closed,
        )
        self._pod = pod
        self._container = container
        self._pid: int | None = None
        self._handshake: Once[None] = Once()
        #: The output's end when it came before the start returned the stream: (error,).
        self._early_end: tuple[str | None] | None = None

    # -- start

    def _command(self, program: ProgramRequest) -> list[str]:
        argv = program_command(
            program,
            self._pod_config.shell_command,
            self._pod_config.subsystems,
            self._log,
            self._codes.subsystem_not_supported,
        )
        if self._agent is None:
            return argv
        flags = [item for name, value in self._env.items() for item in ("--env", f"{name}={value}")]
        return self._agent.command("console", "--pid", *flags, "--", *argv)

    async def _start(self, program: ProgramRequest, io: ISessionIO) -> None:
        self._refuse_if_started()
        self._state = State.STARTING
        self._io = io
        await self._take_stream(
            self._open_exec(program, io),
            hold_input=self._pty is not None and self._agent is not None,
            failed=State.NEW,
        )
        self._state = State.RUNNING
        if self._early_end is not None:
            # A program that ended at once may end before the stream is handed over.
            self.output_ended(self._early_end[0])
            return
        await self._resize_to_pty()

    async def _open_exec(self, program: ProgramRequest, io: ISessionIO) -> ChannelStream:
        command = self._command(program)
        self._log.event(
            messages.KUBERNETES_EXEC,
            "Starting {program} program in pod {pod}",
            program=program.kind,
            pod=self._pod.name,
        )
        return await self._open_stream(
            self._pod, self._container, command, io, expect_pid=self._agent is not None
        )

    # -- while running

    async def _signal(self, name: str) -> None:
        if self._state is State.ENDED:
            # ContainerSSH tells this apart from "no program was started".
            raise self._error(
                messages.KUBERNETES_SIGNAL_FAILED_EXITED,
                "The program already exited.",
                "the program exited before the signal came",
                signal=name,
            )
        pid = await self._pid_for_signal(
            name,
            agent=self._agent is not None,
            supported=SIGNALS,
            handshake=self._handshake,
            pid=lambda: self._pid,
            timeout=self._timeouts.signal,
            codes=KUBERNETES_SIGNAL_CODES,
        )
        await self._deliver_signal(self._pod, self._container, pid, name)

    # -- the stream's events

    def pid_received(self, pid: int) -> None:
        self._pid = pid
        self._handshake.fire(None)
        self._release_held_input(deliver=True)
        self._log.event(messages.KUBERNETES_PID_RECEIVED, "Program has PID {pid}", pid=pid)

    def pid_failed(self, reason: str) -> None:
        self._handshake.fire(None)
        self._release_held_input(deliver=False)
        self._log.event(
            messages.KUBERNETES_EXEC_FAILED,
            "Failed to read the program's process id from the guest agent: {reason}",
            reason=reason,
        )

    def output_ended(self, error: str | None) -> None:
        if self._state is State.STARTING:
            self._early_end = (error,)
            return
        stream = self._stream
        status = None if stream is None else stream.exit_status
        code = None if status is None else status.exit_code
        if not self._output_over(None if code is not None else error):
            return
        if code is None:
            self._log.event(
                messages.KUBERNETES_EXIT_CODE_FAILED,
                "The program's exit code is not known: {reason}",
                reason=error or "no exit status",
            )
            self._io.exited(ExitStatus(code=UNKNOWN_EXIT_CODE))
            return
        self._io.exited(exit_status(code, self._delivered))

    # -- close

    async def _release(self, kill: bool) -> None:
        previous = self._mark_closed()
        if not self._stream_open:
            return
        if kill and previous is State.RUNNING and self._agent is not None and self._pid is not None:
            # The stream's end does not end the program: the agent kills it.
            d = Deferred.fromCoroutine(
                with_deadline(
                    self._reactor,
                    self._timeouts.signal,
                    self._run_signal(self._pod, self._container, self._pid, "KILL"),
                )
            )
            d.addErrback(lambda _: None)
        await self._drop_stream()

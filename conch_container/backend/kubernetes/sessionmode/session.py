"""One session channel's program as its own pod (Kubernetes ``session`` mode).

Reference section 6.4 ("session"). ``start`` creates the channel's pod
(:mod:`.manifest`) and waits until it runs (within ``timeouts.podStart``; an
image that cannot be pulled is reported at once), writes authentication's
files through the guest agent, attaches to the console container
(``KUBERNETES_POD_ATTACH``, within ``timeouts.commandStart``), sizes the
terminal and only then releases the program with an empty line: the agent
holds it (``console --wait``), so not a byte of output is missed. Stdin the
client sends meanwhile is held back and follows the release.

There is no PID handshake: the program is the container's main process, so
its PID is 1, and a signal is an exec of the agent's ``signal --pid 1``
(bounded by ``timeouts.signal``). As for any PID 1, the kernel drops a
signal the program has no handler for (``KILL`` included).

When the output ends the exit code is read from
``status.containerStatuses[console].state.terminated.exitCode``, polled
within ``timeouts.podStop``; a pod that is gone meanwhile means 137, and an
exit code that cannot be read is logged (``KUBERNETES_EXIT_CODE_FAILED``)
and reported as 137. Then, and whenever the channel closes, the pod is
deleted; a pod still being created when the channel closes is waited for
and deleted too, so that none outlives its channel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from twisted.internet.defer import CancelledError, Deferred, succeed

from conch_container import messages
from conch_container.backend.docker.agent import GuestAgent
from conch_container.backend.docker.execops import SIGNALS, UNKNOWN_EXIT_CODE, exit_status
from conch_container.backend.kubernetes.errors import KubernetesError
from conch_container.backend.kubernetes.execsession import (
    KUBERNETES_SESSION_CODES,
    KUBERNETES_SIGNAL_CODES,
    HelperExec,
)
from conch_container.backend.kubernetes.files import write_files
from conch_container.backend.kubernetes.podlifecycle import PodRef, launch_pod, remove_pod
from conch_container.backend.kubernetes.sessionmode.manifest import (
    console_command,
    session_pod_manifest,
)
from conch_container.backend.kubernetes.websocket import ChannelStream
from conch_container.backend.programsession import (
    START_FAILED_MESSAGE,
    ProgramSession,
    State,
    program_command,
)
from conch_container.codes import Level
from conch_container.deferreds import DeadlineExceeded, Once, with_deadline
from conch_container.interfaces import ISessionIO, ProgramRequest, PtyRequest
from conch_container.log.logger import CodeLogger
from conch_container.metadata import ConnectionMetadata, FileValue

if TYPE_CHECKING:
    from conch_container.backend.kubernetes.client import ClusterClient
    from conch_container.config.kubernetes import KubernetesConfig

#: The PID of the program: the console container's main process.
PROGRAM_PID = 1
#: What releases a program the agent holds (``console --wait``).
RELEASE = b"\n"
#: The exit code of a program whose pod went away before it was read (reference 6.4).
POD_GONE_EXIT_CODE = 137


class KubernetesPodSession(ProgramSession):
    """An :class:`~conch_container.interfaces.IBackendSession` that is one pod.

    :param cluster: the API server the pod goes to.
    :param config: the connection's ``kubernetes`` config section.
    :param metadata: the connection (labels, environment of the pod).
    :param files: authentication's ``files``, written before the program starts.
    :param agent: the guest agent the program runs through (None if disabled).
    :param instance_id: this gateway's identity, a label of the pod.
    :param removal_failed: called when the pod could not be deleted.
    """

    _call_errors: ClassVar[tuple[type[Exception], ...]] = (KubernetesError,)

    def __init__(
        self,
        *,
        reactor: Any,
        cluster: ClusterClient,
        config: KubernetesConfig,
        metadata: ConnectionMetadata,
        files: Mapping[str, FileValue],
        agent: GuestAgent | None,
        instance_id: str,
        log: CodeLogger,
        channel_id: object,
        on_closed: Callable[[Any], object] | None = None,
        removal_failed: Callable[[], object] = lambda: None,
    ) -> None:
        super().__init__(
            reactor=reactor,
            codes=KUBERNETES_SESSION_CODES,
            resize_timeout=config.timeouts.window,
            on_closed=on_closed,
        )
        self._cluster = cluster
        self._config = config
        self._timeouts = config.timeouts
        self._metadata = metadata
        self._files = files
        self._agent = agent
        self._instance_id = instance_id
        self._removal_failed = removal_failed
        spec = config.pod.spec["containers"][config.pod.console_container_number]
        self._container = str(spec["name"])
        self._channel_log = log.bind(channelId=channel_id)
        self._stream: ChannelStream | None = None
        #: The pod once it was created and ran; None until then, or if it never did.
        self.pod: PodRef | None = None
        #: The pod's launch: the pod, or None if it failed.
        self._launched: Once[PodRef | None] | None = None
        self._removed: Once[None] | None = None
        #: The output's end when it came before the start returned the stream: (error,).
        self._early_end: tuple[str | None] | None = None

    @property
    def _log(self) -> CodeLogger:
        return self._channel_log

    def set_pty(self, pty: PtyRequest) -> None:
        super().set_pty(pty)
        self._env["TERM"] = pty.term

    # -- start

    async def _start(self, program: ProgramRequest, io: ISessionIO) -> None:
        self._refuse_if_started()
        self._state = State.STARTING
        self._io = io
        tty = self._pty is not None
        try:
            argv = program_command(
                program,
                self._config.pod.shell_command,
                self._config.pod.subsystems,
                self._log,
                self._codes.subsystem_not_supported,
            )
            pod = await self._launch(console_command(self._agent, argv), tty)
            await write_files(
                self._reactor,
                self._cluster,
                pod,
                self._container,
                self._agent,
                self._files,
                timeout=self._timeouts.command_start,
                log=self._log,
            )
            stream = await self._attach(pod, tty, io)
            self._stream = stream
            if self._agent is not None:
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
                self._state = State.ENDED
                self._remove()
            raise
        self._state = State.RUNNING
        if self._early_end is not None:
            self.output_ended(self._early_end[0])
            return
        await self._resize_to_pty()
        if self._agent is not None and self._state is State.RUNNING:
            # The terminal has its size: the agent may start the program now.
            stream.write(RELEASE)
            self._release_held_input(deliver=True)

    async def _launch(self, command: list[str], tty: bool) -> PodRef:
        """Create the pod and wait until it runs (logged by :func:`launch_pod` if not).

        The launch is not cancelled with the start: a pod it creates must be
        known, so that :meth:`_remove` deletes it.
        """
        manifest = session_pod_manifest(
            self._config.pod,
            self._metadata,
            command=command,
            env=self._env,
            tty=tty,
            instance_id=self._instance_id,
            log=self._log,
        )
        launched: Once[PodRef | None] = Once()
        self._launched = launched
        failures: list[KubernetesError] = []

        async def launch() -> PodRef | None:
            try:
                pod = await launch_pod(
                    self._reactor,
                    self._cluster.pods,
                    manifest,
                    timeout=self._timeouts.pod_start,
                    stop_timeout=self._timeouts.pod_stop,
                    log=self._log,
                )
            except KubernetesError as e:
                failures.append(e)
                return None
            self.pod = pod
            return pod

        Deferred.fromCoroutine(launch()).addBoth(launched.fire)
        pod = await launched.wait()
        if pod is None:
            raise failures[0]
        return pod

    async def _attach(self, pod: PodRef, tty: bool, io: ISessionIO) -> ChannelStream:
        self._log.event(
            messages.KUBERNETES_POD_ATTACH,
            "Attaching to pod {pod}",
            pod=pod.name,
        )
        try:
            return await self._cluster.open_stream(
                pod.namespace,
                pod.name,
                self._container,
                None,
                tty=tty,
                stdout=io.stdout,
                stderr=io.stderr,
                events=self,
                timeout=self._timeouts.command_start,
            )
        except KubernetesError as e:
            raise self._error(e.code, START_FAILED_MESSAGE, e.explanation) from None

    # -- while running

    def _request_resize(self, columns: int, rows: int) -> Deferred[None]:
        assert self._stream is not None
        self._stream.resize(columns, rows)
        return succeed(None)

    async def _signal(self, name: str) -> None:
        handshake: Once[None] = Once()
        handshake.fire(None)
        await self._pid_for_signal(
            name,
            agent=self._agent is not None,
            supported=SIGNALS,
            handshake=handshake,
            pid=lambda: PROGRAM_PID,
            timeout=self._timeouts.signal,
            codes=KUBERNETES_SIGNAL_CODES,
        )
        pod = self.pod
        assert pod is not None and self._agent is not None
        self._log.event(messages.KUBERNETES_EXEC_SIGNAL, "Sending signal {signal}", signal=name)
        self._delivered.add(name)
        helper = HelperExec(self._cluster, pod, self._container)
        command = self._agent.signal(PROGRAM_PID, name)
        try:
            error = await with_deadline(
                self._reactor,
                self._timeouts.signal,
                helper.run(command, b"", self._timeouts.signal),
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

    # -- the stream's events

    def pid_received(self, pid: int) -> None:
        """Not used: the stream carries no PID in session mode."""

    def pid_failed(self, reason: str) -> None:
        """Not used: the stream carries no PID in session mode."""

    def output_ended(self, error: str | None) -> None:
        if self._state is State.STARTING:
            self._early_end = (error,)
            return
        if not self._output_over(error):
            return
        self._exit_d = Deferred.fromCoroutine(self._report_exit())

    async def _report_exit(self) -> None:
        pod = self.pod
        assert pod is not None
        try:
            code = await self._cluster.pods.wait_until_terminated(
                pod.namespace, pod.name, self._container, self._timeouts.pod_stop
            )
        except CancelledError:
            return
        except KubernetesError as e:
            if e.status == 404:
                code = POD_GONE_EXIT_CODE
            else:
                self._log.event(
                    messages.KUBERNETES_EXIT_CODE_FAILED,
                    "The program's exit code is not known: {reason}",
                    reason=e.explanation,
                )
                code = UNKNOWN_EXIT_CODE
        if self._state is not State.CLOSED:
            self._io.exited(exit_status(code, self._delivered))
        # The program is over: the pod goes now, not when the channel closes.
        self._remove()

    # -- close

    async def _release(self, kill: bool) -> None:
        """Drop the stream and delete the pod (waiting for one being created); never fails."""
        self._mark_closed()
        if self._stream_open:
            await self._drop_stream()
        await self._remove()

    def _remove(self) -> Deferred[None]:
        """Delete the pod once it is known (within ``timeouts.podStop``); once."""
        if self._removed is None:
            removed: Once[None] = Once()
            self._removed = removed
            Deferred.fromCoroutine(self._remove_pod()).addErrback(lambda _: None).addBoth(
                removed.fire
            )
        return self._removed.wait()

    async def _remove_pod(self) -> None:
        launched = self._launched
        if launched is None:
            return
        pod = await launched.wait()
        if pod is None:
            return
        removed = await remove_pod(
            self._reactor,
            self._cluster.pods,
            pod,
            timeout=self._timeouts.pod_stop,
            log=self._log,
        )
        if not removed:
            self._removal_failed()

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
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import CancelledError, Deferred

from conch_container import messages
from conch_container.backend.docker.agent import GuestAgent
from conch_container.backend.docker.execops import SIGNALS, UNKNOWN_EXIT_CODE, exit_status
from conch_container.backend.kubernetes.errors import KubernetesError
from conch_container.backend.kubernetes.execsession import (
    KUBERNETES_SIGNAL_CODES,
    KubernetesProgramSession,
)
from conch_container.backend.kubernetes.files import write_files
from conch_container.backend.kubernetes.podlifecycle import PodRef, launch_pod, remove_pod
from conch_container.backend.kubernetes.podmanifest import console_container_name
from conch_container.backend.kubernetes.sessionmode.manifest import (
    console_command,
    session_pod_manifest,
)
from conch_container.backend.kubernetes.websocket import ChannelStream
from conch_container.backend.programsession import (
    State,
    program_command,
)
from conch_container.deferreds import Once
from conch_container.interfaces import ISessionIO, ProgramRequest
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


class KubernetesPodSession(KubernetesProgramSession):
    """An :class:`~conch_container.interfaces.IBackendSession` that is one pod.

    :param cluster: the API server the pod goes to.
    :param config: the connection's ``kubernetes`` config section.
    :param metadata: the connection (labels, environment of the pod).
    :param files: authentication's ``files``, written before the program starts.
    :param agent: the guest agent the program runs through (None if disabled).
    :param instance_id: this gateway's identity, a label of the pod.
    :param removal_failed: called when the pod could not be deleted.
    """

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
            cluster=cluster,
            config=config,
            agent=agent,
            log=log,
            channel_id=channel_id,
            on_closed=on_closed,
        )
        self._metadata = metadata
        self._files = files
        self._instance_id = instance_id
        self._removal_failed = removal_failed
        self._container = console_container_name(config.pod)
        #: The pod once it was created and ran; None until then, or if it never did.
        self.pod: PodRef | None = None
        #: The pod's launch: the pod, or None if it failed.
        self._launched: Once[PodRef | None] | None = None
        self._removed: Once[None] | None = None
        #: The output's end when it came before the start returned the stream: (error,).
        self._early_end: tuple[str | None] | None = None

    # -- start

    async def _start(self, program: ProgramRequest, io: ISessionIO) -> None:
        self._refuse_if_started()
        self._state = State.STARTING
        self._io = io
        try:
            await self._take_stream(
                self._open_pod(program, io), hold_input=self._agent is not None, failed=State.ENDED
            )
        except BaseException:
            self._remove()
            raise
        self._state = State.RUNNING
        if self._early_end is not None:
            # Without the agent the program may end before the stream is handed over.
            self.output_ended(self._early_end[0])
            return
        await self._resize_to_pty()
        if self._agent is not None and self._stream is not None and self._state is State.RUNNING:
            # The terminal has its size: the agent may start the program now.
            self._stream.write(RELEASE)
            self._release_held_input(deliver=True)

    async def _launch(self, command: list[str], tty: bool) -> PodRef:
        """Create the pod and wait until it runs (logged by :func:`launch_pod` if not).

        The launch is not cancelled with the start: a pod it creates must be
        known, so that :meth:`_remove` deletes it.
        """
        manifest = session_pod_manifest(
            self._pod_config,
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

    async def _open_pod(self, program: ProgramRequest, io: ISessionIO) -> ChannelStream:
        """Make the pod, write the files, attach: the program's stream (the program waits)."""
        argv = program_command(
            program,
            self._pod_config.shell_command,
            self._pod_config.subsystems,
            self._log,
            self._codes.subsystem_not_supported,
        )
        pod = await self._launch(console_command(self._agent, argv), self._pty is not None)
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
        self._log.event(messages.KUBERNETES_POD_ATTACH, "Attaching to pod {pod}", pod=pod.name)
        return await self._open_stream(pod, self._container, None, io, expect_pid=False)

    # -- while running

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
        assert self.pod is not None
        await self._deliver_signal(self.pod, self._container, PROGRAM_PID, name)

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

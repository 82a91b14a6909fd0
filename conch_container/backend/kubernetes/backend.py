"""The Kubernetes backend (``backend: kubernetes``), ``connection`` mode.

At connect a pod is made for the connection (:mod:`.podmanifest`,
:mod:`.podlifecycle`) within ``timeouts.podStart``; each session channel is
an exec into its console container (:mod:`.execsession`); at disconnect
the pod is deleted within ``timeouts.podStop``. The backend keeps the pods
it made: :meth:`KubernetesBackend.stop` deletes what is left, and
:meth:`KubernetesBackend.start` deletes the pods a previous run of the same
instance left (found by the instance label, so never another replica's).

The programs run through the project's guest agent passed inline to
``/bin/sh -c`` (:class:`~conch_container.backend.docker.agent.GuestAgent`),
so an image needs a shell but no agent of its own; ``disableAgent`` runs
programs directly, without signals.

In ``persistent`` mode (:mod:`.persistent`) every connection execs into one
named pod, found or created at connect; closing the connection ends its
programs and keeps the pod, which no clean-up here ever deletes. In
``session`` mode nothing is made at connect: each session channel gets a pod
of its own (:mod:`.sessionmode`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import CancelledError, Deferred, DeferredList, succeed
from twisted.python.failure import Failure
from zope.interface import implementer

from conch_container import messages
from conch_container.backend.forwarddial import ForwardDialSession, ForwardHelper
from conch_container.backend.forwardlisten import ForwardListener, ListenRequest
from conch_container.backend.kubernetes.agents import pod_agent, runs_agent
from conch_container.backend.kubernetes.client import ClusterClient, KubernetesClient
from conch_container.backend.kubernetes.errors import KubernetesError
from conch_container.backend.kubernetes.execsession import KubernetesExecSession
from conch_container.backend.kubernetes.files import write_files
from conch_container.backend.kubernetes.persistent import persistent_pod
from conch_container.backend.kubernetes.podlifecycle import (
    PodRef,
    launch_pod,
    remove_leftovers,
    remove_pod,
)
from conch_container.backend.kubernetes.podmanifest import console_container_name, pod_manifest
from conch_container.backend.kubernetes.sessionmode.connection import KubernetesSessionConnection
from conch_container.backend.kubernetes.sessionowner import SessionOwner
from conch_container.backend.logging import connection_logger
from conch_container.deferreds import DeadlineExceeded, with_deadline
from conch_container.errors import GENERIC_USER_MESSAGE, ContainerSSHError
from conch_container.interfaces import (
    ConnectionContext,
    IBackendConnection,
    IBackendLifecycle,
    IBackendMetrics,
    IContainerBackend,
)
from conch_container.log.logger import CodeLogger
from conch_container.metadata import FileValue
from conch_container.metrics.recorders import NULL_BACKEND_RECORDER, BackendRecorder

if TYPE_CHECKING:
    from conch_container.config.kubernetes import KubernetesConfig, KubernetesConnectionConfig


@implementer(IBackendConnection)
class KubernetesConnection(SessionOwner[KubernetesExecSession]):
    """The pod of one SSH connection and the sessions running in it.

    :param keep_pod: the pod is not the connection's own (persistent mode):
        closing ends the connection's programs and leaves the pod running.
    :param pod_runs_agent: the gateway started the pod with an idle command
        that runs ``agentPath``, so the image has that agent (see :func:`~.agents.pod_agent`).
    """

    _closing_explanation = "the connection's pod is being removed"

    def __init__(
        self,
        *,
        reactor: Any,
        cluster: ClusterClient,
        pod: PodRef,
        config: KubernetesConfig,
        log: CodeLogger,
        on_closed: Callable[[KubernetesConnection], object],
        removal_failed: Callable[[], object],
        keep_pod: bool = False,
        pod_runs_agent: bool = False,
    ) -> None:
        super().__init__(log.bind(pod=pod.name), on_closed)
        self._reactor = reactor
        self._cluster = cluster
        self.pod = pod
        self._config = config
        self._removal_failed = removal_failed
        self._keep_pod = keep_pod
        self._kill_on_close = keep_pod
        self._container = console_container_name(config.pod)
        self._agent = pod_agent(config, pod_runs_agent=pod_runs_agent)
        #: How this pod dials forwarded connections, once the first found out.
        self._forward_helper: ForwardHelper | None = None
        if self._agent is None:
            self._log.event(
                messages.KUBERNETES_GUEST_AGENT_DISABLED,
                "The guest agent is disabled: signals and file writes are not available",
            )
        else:
            self._log.event(
                messages.KUBERNETES_GUEST_AGENT_SELECTED,
                "Using the {agent} guest agent ({agentPath})",
                agent=self._agent.kind.value,
                agentPath=self._agent.path,
            )

    async def write_files(self, files: Mapping[str, FileValue]) -> None:
        """Write authentication's ``files`` before any program runs (failures are warnings)."""
        await write_files(
            self._reactor,
            self._cluster,
            self.pod,
            self._container,
            self._agent,
            files,
            timeout=self._config.timeouts.command_start,
            log=self._log,
        )

    def open_forward(
        self, channel_id: object, host: str, port: int, *, unix: bool = False
    ) -> ForwardDialSession:
        """A session for a forwarded connection's dialler: execs in the connection's pod."""
        return self._forwarding().dial(lambda: self.open_session(channel_id), host, port, unix=unix)

    def open_listener(self, request: ListenRequest, on_connection: Any) -> ForwardListener:
        """A port, socket or X11 display the pod listens on for the client,
        served by the forwarding helper."""
        label = f"listen {request.kind.name.lower()} {request.bind_host}:{request.bind_port}"
        return self._forwarding().listen(lambda: self.open_session(label), request, on_connection)

    def _forwarding(self) -> ForwardHelper:
        if self._forward_helper is None:
            agent = self._agent
            path = agent.installed_path if agent is not None else None
            self._forward_helper = ForwardHelper(self._reactor, path, self._log)
        return self._forward_helper

    def open_session(
        self, channel_id: object, *, log: CodeLogger | None = None
    ) -> KubernetesExecSession:
        """A new exec session for a session channel.

        :param log: the logger of the SSH connection the session belongs to, when
            that is not the one this pod was made for (a pod shared by key); the
            pod's name is added to it.
        """
        self._refuse_if_closing(channel_id)
        session = KubernetesExecSession(
            reactor=self._reactor,
            cluster=self._cluster,
            pod=self.pod,
            container=self._container,
            config=self._config,
            agent=self._agent,
            log=self._log if log is None else log.bind(pod=self.pod.name),
            channel_id=channel_id,
            on_closed=self._sessions.discard,
        )
        return self._track(session)

    async def still_running(self) -> bool:
        """Whether the pod is still running (a kept one may have waited for minutes).
        Only a definite answer says no; an API server that does not answer is given
        the benefit of the doubt (removing a kept pod on a hiccup would lose work)."""
        try:
            pod = await self._cluster.pods.get_pod(self.pod.namespace, self.pod.name)
        except Exception:
            return True
        if pod is None or (pod.get("metadata") or {}).get("deletionTimestamp"):
            return False
        return bool((pod.get("status") or {}).get("phase") == "Running")

    async def _after_sessions(self) -> None:
        """Delete the pod (within ``timeouts.podStop``), unless it is kept."""
        if self._keep_pod:
            self._log.event(messages.KUBERNETES_POD_KEPT, "Leaving pod {pod} running")
            return
        removed = await remove_pod(
            self._reactor,
            self._cluster.pods,
            self.pod,
            timeout=self._config.timeouts.pod_stop,
            log=self._log,
        )
        if not removed:
            self._removal_failed()


@implementer(IContainerBackend, IBackendLifecycle, IBackendMetrics)
class KubernetesBackend:
    """Runs each SSH connection in its own Kubernetes pod (``backend: kubernetes``).

    :param reactor: the reactor (threads, time, connections to the API server).
    :param log: the backend's logger.
    :param instance_id: this gateway's identity, put on every pod as a label;
        :meth:`start` deletes the pods that carry it.
    :param startup_config: the gateway's own ``kubernetes`` section: the API
        server and namespace :meth:`start` and :meth:`remove_all` look in.
    """

    name = "kubernetes"

    def __init__(
        self,
        reactor: Any,
        log: CodeLogger,
        *,
        instance_id: str,
        startup_config: KubernetesConfig | None = None,
        client: KubernetesClient | None = None,
    ) -> None:
        self._reactor = reactor
        self._log = log.bind(backend=self.name)
        self.instance_id = instance_id
        self._startup_config = startup_config
        self._client = client if client is not None else KubernetesClient(reactor)
        self._connections: set[KubernetesConnection | KubernetesSessionConnection] = set()
        #: Every API server and namespace a pod was made in, for the clean-up.
        self._places: dict[tuple[KubernetesConnectionConfig, str], KubernetesConfig] = {}
        self._running = False
        #: Whether this run asked for pods: then stopping looks for strays.
        self._made_pods = False
        #: The start-up clean-up while it runs; :meth:`stop` cancels it.
        self._reconciling: Deferred[int] | None = None
        self._recorder: BackendRecorder = NULL_BACKEND_RECORDER

    def record_with(self, recorder: BackendRecorder) -> None:
        """Count the pods this backend gives up removing on ``recorder``."""
        self._recorder = recorder

    # -- lifecycle

    def start(self, *, reconcile: bool = True) -> Deferred[int]:
        """Start the client; delete the pods a previous run of this instance left.

        :return: fires with how many were deleted (0 when :meth:`stop` came
            first and cancelled the clean-up: a slow API server never holds
            up the gateway's shutdown).
        """
        self._client.start()
        self._running = True
        config = self._startup_config
        if config is None or not reconcile:
            return succeed(0)
        self._remember(config)
        d = Deferred.fromCoroutine(self._remove_everywhere())
        self._reconciling = d

        def done(result: int | Failure) -> int | Failure:
            self._reconciling = None
            if isinstance(result, Failure):
                result.trap(CancelledError)  # stop() during start-up
                return 0
            return result

        return d.addBoth(done)

    def stop(self) -> Deferred[None]:
        """Close every connection (deleting its pod, unless persistent), delete whatever
        else carries this instance's label where it made pods, then release the client."""
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if not self._running:
            return
        self._running = False
        if self._reconciling is not None:
            self._reconciling.cancel()
        await DeferredList([c.close() for c in list(self._connections)], consumeErrors=True)
        if self._made_pods:
            # A create whose answer came too late (the login gave up or was
            # retried) may have made a pod no connection holds: it carries the
            # label. Bounded: a slow API server must not hold up the shutdown
            # (the next start of this instance looks again).
            limit = max(config.timeouts.pod_stop for config in self._places.values())
            try:
                await with_deadline(
                    self._reactor, limit, Deferred.fromCoroutine(self._remove_everywhere())
                )
            except DeadlineExceeded:
                self._log.event(
                    messages.KUBERNETES_POD_LIST_FAILED,
                    "Gave up looking for this gateway's pods after {seconds} s",
                    seconds=limit,
                )
        await self._client.stop()

    def remove_all(self) -> Deferred[int]:
        """Delete every pod labelled with this instance, wherever this backend made pods."""
        return Deferred.fromCoroutine(self._remove_everywhere())

    async def _remove_everywhere(self) -> int:
        removed = 0
        for (_, namespace), config in list(self._places.items()):
            try:
                cluster = await self._client.cluster_for(config)
            except KubernetesError as e:
                e.log(self._log)
                continue
            removed += await remove_leftovers(
                self._reactor,
                cluster.pods,
                [namespace],
                self.instance_id,
                timeout=config.timeouts.pod_stop,
                log=self._log,
            )
        return removed

    def _remember(self, config: KubernetesConfig) -> None:
        namespace = str(config.pod.metadata.get("namespace") or "default")
        self._places.setdefault((config.connection, namespace), config)

    # -- connections

    def connect(
        self, context: ConnectionContext
    ) -> Deferred[KubernetesConnection | KubernetesSessionConnection]:
        """Make the connection's pod and wait until it is ready."""
        return Deferred.fromCoroutine(self._connect(context))

    async def _connect(
        self, context: ConnectionContext
    ) -> KubernetesConnection | KubernetesSessionConnection:
        config: KubernetesConfig = context.config.kubernetes
        log = connection_logger(
            context.log, "conch_container.backend.kubernetes", backend=self.name
        )
        if not self._running:
            raise _logged(log, "the Kubernetes backend is not running")
        if config.pod.mode not in ("connection", "session", "persistent"):
            raise _logged(log, f"kubernetes.pod.mode {config.pod.mode!r} is not supported yet")
        try:
            cluster = await self._client.cluster_for(config)
        except KubernetesError as e:
            e.log(log)
            raise
        self._remember(config)
        self._made_pods = True
        if config.pod.mode == "session":
            return self._session_connection(context, cluster, config, log)
        persistent = config.pod.mode == "persistent"
        if persistent:
            pod = await persistent_pod(
                self._reactor, cluster.pods, config, context.metadata, log=log
            )
        else:
            manifest = pod_manifest(
                config.pod, context.metadata, instance_id=self.instance_id, log=log
            )
            pod = await launch_pod(
                self._reactor,
                cluster.pods,
                manifest,
                timeout=config.timeouts.pod_start,
                stop_timeout=config.timeouts.pod_stop,
                log=log,
            )
        connection = KubernetesConnection(
            reactor=self._reactor,
            cluster=cluster,
            pod=pod,
            config=config,
            log=log,
            on_closed=self._connections.discard,
            removal_failed=lambda: self._recorder.removal_failed(),
            keep_pod=persistent,
            # A persistent pod may have been made by anyone, from anything.
            pod_runs_agent=not persistent and runs_agent(config),
        )
        self._connections.add(connection)
        try:
            await connection.write_files(context.metadata.files)
        except BaseException:
            await connection.close()
            raise
        return connection

    def _session_connection(
        self,
        context: ConnectionContext,
        cluster: ClusterClient,
        config: KubernetesConfig,
        log: CodeLogger,
    ) -> KubernetesSessionConnection:
        """A connection in session mode: its pods are made per session channel."""
        connection = KubernetesSessionConnection(
            reactor=self._reactor,
            cluster=cluster,
            config=config,
            metadata=context.metadata,
            instance_id=self.instance_id,
            log=log,
            on_closed=self._connections.discard,
            removal_failed=lambda: self._recorder.removal_failed(),
        )
        self._connections.add(connection)
        return connection


def _logged(log: CodeLogger, explanation: str) -> ContainerSSHError:
    error = ContainerSSHError(messages.KUBERNETES_CONFIG_ERROR, GENERIC_USER_MESSAGE, explanation)
    error.log(log)
    return error

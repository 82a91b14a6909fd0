"""The Docker backend: one object for the gateway's lifetime.

It owns a bounded thread pool (named ``docker``) on which every docker-py call
runs, and a cache of docker-py clients keyed by engine endpoint settings.
Everything else is read per connection from the connection's config, because
the config webhook may change it for one user.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import CancelledError, Deferred, DeferredList, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from conch_container import messages
from conch_container.backend.docker.connection import DockerConnection, launch_error
from conch_container.backend.docker.containerconfig import (
    LABEL_CONNECTION_ID,
    LABEL_INSTANCE,
    LABEL_IP,
    LABEL_USERNAME,
    ContainerConfigError,
    CreateRequest,
    execution_create_request,
)
from conch_container.backend.docker.engine.api import Engine
from conch_container.backend.docker.engine.client import EngineSettings, thd_connect
from conch_container.backend.docker.engine.errors import EngineError
from conch_container.backend.docker.pull import PullPolicy, registry_auth
from conch_container.backend.docker.reconcile import Sweep, remove_leftovers
from conch_container.backend.docker.warmpool import TemplatePool, WarmPools
from conch_container.backend.logging import connection_logger
from conch_container.codes import Level
from conch_container.deferreds import DeadlineExceeded, Once, with_deadline
from conch_container.errors import GENERIC_USER_MESSAGE, ContainerSSHError
from conch_container.interfaces import (
    ConnectionContext,
    IBackendLifecycle,
    IBackendMetrics,
    IContainerBackend,
)
from conch_container.log.logger import CodeLogger
from conch_container.metadata import exposed_metadata
from conch_container.metrics.recorders import NULL_BACKEND_RECORDER, BackendRecorder, PoolCounts

if TYPE_CHECKING:
    from conch_container.config import DockerConfig, DockerExecutionConfig
    from conch_container.metadata import ConnectionMetadata

#: ContainerSSH retries backend calls every 10 seconds within the step's timeout.
RETRY_INTERVAL = 10.0
#: The idle command ContainerSSH uses by default (it needs the guest agent).
AGENT_IDLE_COMMAND = ("/usr/bin/containerssh-agent", "wait-signal")


@implementer(IContainerBackend, IBackendLifecycle, IBackendMetrics)
class DockerBackend:
    """Runs each SSH connection in its own Docker container (``backend: docker``).

    :param reactor: the reactor (threads, time, connections to the engine).
    :param log: the backend's logger.
    :param instance_id: this gateway's identity, put on every container as the
        ``conch_container_instance`` label so :meth:`remove_all` can find them.
        No other running gateway may have it (see :mod:`conch_container.instance`):
        :meth:`start` removes every container that carries it.
    :param max_threads: the size of the thread pool for engine calls.
    :param retry_interval: seconds between attempts of a retried engine call.
    """

    name = "docker"

    def __init__(
        self,
        reactor: Any,
        log: CodeLogger,
        *,
        instance_id: str,
        startup_config: DockerConfig | None = None,
        max_threads: int = 20,
        retry_interval: float = RETRY_INTERVAL,
    ) -> None:
        self._reactor = reactor
        self._log = log.bind(backend=self.name)
        self.instance_id = instance_id
        self._max_threads = max_threads
        self._retry_interval = retry_interval
        self._startup_config = startup_config
        self._pool = ThreadPool(minthreads=0, maxthreads=max_threads, name="docker")
        self._engines: dict[EngineSettings, Once[Engine]] = {}
        self._connections: set[DockerConnection] = set()
        self._tls_root: str | None = None
        self._running = False
        #: The gateway's own ``docker`` section, given to :meth:`start`.
        self._default_config: DockerConfig | None = None
        self._reconciling: Deferred[int] | None = None
        self._recorder: BackendRecorder = NULL_BACKEND_RECORDER
        self._pools = self._new_pools()

    def _new_pools(self) -> WarmPools:
        return WarmPools(
            self._reactor,
            self._log,
            retry_interval=self._retry_interval,
            make_connection=self._pool_connection,
            engine_source=lambda config: self._engine_source(EngineSettings.from_config(config)),
        )

    def _engine_source(self, settings: EngineSettings) -> Callable[[], Deferred[Engine]]:
        return lambda: self.engine_for(settings)

    def _pool_connection(
        self,
        docker_config: DockerConfig,
        log: CodeLogger,
        on_closed: Callable[[DockerConnection], object],
    ) -> DockerConnection:
        return DockerConnection(
            reactor=self._reactor,
            docker_config=docker_config,
            log=log,
            retry_interval=self._retry_interval,
            on_closed=on_closed,
            removal_failed=lambda: self._recorder.removal_failed(),
        )

    @property
    def pool_counts(self) -> PoolCounts:
        """Warm pool containers ready and starting, over every template."""
        return self._pools.counts

    def pool_ready_ids(self) -> list[str | None]:
        """The ready warm pool containers, each template's next to be taken first."""
        return self._pools.ready_ids()

    def record_with(self, recorder: BackendRecorder) -> None:
        """Count the containers this backend gives up removing, and its warm pools,
        on ``recorder``."""
        self._recorder = recorder
        recorder.watch_pool(lambda: self._pools.counts)

    # -- lifecycle

    def start(
        self, docker_config: DockerConfig | None = None, *, reconcile: bool = True
    ) -> Deferred[None]:
        """Start the thread pool; call once before :meth:`connect`.

        :param docker_config: the gateway's ``docker`` config section (by
            default the ``startup_config`` given to the constructor). Its engine
            is the one :meth:`remove_all` always sweeps, and, with ``reconcile``,
            the containers a previous run of this gateway left there are removed
            (:func:`~conch_container.backend.docker.reconcile.remove_leftovers`,
            bounded by ``timeouts.containerStop``) before the result fires.
        :param reconcile: False to leave whatever carries this instance id alone.
        :return: fires once the backend is ready; an unreachable engine does
            not fail it (``DOCKER_CONNECTION_FAILED`` is logged).
        """
        if self._running:
            return succeed(None)
        self._tls_root = tempfile.mkdtemp(prefix="conch-container-docker-")
        self._pool.start()
        self._running = True
        if docker_config is None:
            docker_config = self._startup_config
        if docker_config is None:
            return succeed(None)
        self._default_config = docker_config
        if not reconcile:
            self._log.event(
                messages.DOCKER_CONTAINER_RECONCILE,
                "Not looking for containers left behind by a previous run of this gateway: "
                "they stay until removed by hand",
                level=Level.WARNING,
            )
            self._warm(docker_config)
            return succeed(None)
        settings = EngineSettings.from_config(docker_config)
        d = Deferred.fromCoroutine(
            remove_leftovers(
                lambda: self.engine_for(settings),
                self.instance_id,
                self._log,
                self._reactor,
                docker_config.timeouts.container_stop,
            )
        )
        self._reconciling = d

        def done(result: object) -> None:
            self._reconciling = None
            if isinstance(result, Failure):
                result.trap(CancelledError)  # stop() during start-up
                return
            # Only now: the sweep above removes whatever carries this instance id.
            self._warm(docker_config)

        return d.addBoth(done)

    def _warm(self, docker_config: DockerConfig) -> None:
        """Fill the static configuration's warm pool, if it has one."""
        if docker_config.pool.size <= 0 or not self._running:
            return
        execution = docker_config.execution
        why_not = _pool_unavailable(docker_config)
        if why_not is None:
            try:
                policy = PullPolicy.parse(execution.image_pull_policy)
                template = self._template_request(execution)
            except (ValueError, ContainerConfigError) as e:
                why_not = str(e)
        if why_not is not None:
            self._log.event(
                messages.DOCKER_POOL_UNAVAILABLE,
                "docker.pool.size is set, but no warm pool is kept: {reason}",
                reason=why_not,
            )
            return
        self._pools.pool_for(docker_config, template, policy, registry_auth(execution.auth))

    def stop(self) -> Deferred[None]:
        """Close every connection, release the clients and stop the pool."""
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if not self._running:
            return
        self._running = False
        if self._reconciling is not None:
            self._reconciling.cancel()
        pools, self._pools = self._pools, self._new_pools()
        await DeferredList(
            [pools.stop(), *(c.close() for c in list(self._connections))], consumeErrors=True
        )
        engines, self._engines = self._engines, {}
        for once in engines.values():
            if once.done:
                try:
                    engine = await once.wait()
                    await engine.close()
                except Exception:
                    pass  # a client that never connected has nothing to release
        # Joining the pool's threads blocks until their calls return, so it is
        # done from a thread of the reactor's own pool.
        await deferToThreadPool(self._reactor, self._reactor.getThreadPool(), self._pool.stop)
        if self._tls_root is not None:
            shutil.rmtree(self._tls_root, ignore_errors=True)
            self._tls_root = None

    # -- engines

    def engine_for(self, settings: EngineSettings) -> Deferred[Engine]:
        """The (cached) engine for ``settings``; a failed attempt is not cached."""
        once = self._engines.get(settings)
        if once is None:
            if not self._running or self._tls_root is None:
                return Deferred.fromCoroutine(
                    _raise(EngineError("the Docker backend is not running"))
                )
            once = Once()
            self._engines[settings] = once
            d = deferToThreadPool(
                self._reactor, self._pool, thd_connect, settings, self._tls_root, self._max_threads
            )

            def connected(result: tuple[Any, str | None]) -> Engine:
                client, tls_dir = result
                return Engine(self._reactor, self._pool, client, settings, tls_dir)

            def failed(failure: Failure) -> Failure:
                if self._engines.get(settings) is once:
                    del self._engines[settings]
                if failure.check(EngineError):
                    return failure
                # docker-py's own errors (no socket, no answer): the engine is
                # unreachable, which callers retry and log as such.
                return Failure(EngineError(failure.getErrorMessage() or repr(failure.value)))

            engine_d: Deferred[Engine] = d.addCallbacks(connected, failed)
            engine_d.addBoth(once.fire)
        return once.wait()

    # -- connections

    def connect(self, context: ConnectionContext) -> Deferred[DockerConnection]:
        """Create and start the connection's container (see :class:`DockerConnection`)."""
        return Deferred.fromCoroutine(self._connect(context))

    async def _connect(self, context: ConnectionContext) -> DockerConnection:
        metadata: Any = context.metadata
        config = context.config
        docker_config = config.docker
        execution = docker_config.execution
        log = connection_logger(context.log, "conch_container.backend.docker", backend=self.name)
        if not self._running:
            raise _not_running(log)
        if execution.mode not in ("connection", "session"):
            raise _config_error(log, f"unknown execution mode {execution.mode!r}")
        # In session mode no container is made here: each session channel gets
        # its own, running the program itself, and the guest agent is not used.
        session_mode = execution.mode == "session"
        try:
            policy = PullPolicy.parse(execution.image_pull_policy)
        except ValueError as e:
            raise _config_error(log, str(e)) from None
        if execution.disable_agent and not session_mode:
            log.event(
                messages.DOCKER_GUEST_AGENT_DISABLED,
                "The guest agent is disabled: signals and file writes are not available",
            )
            if tuple(execution.idle_command[:2]) == AGENT_IDLE_COMMAND:
                log.event(
                    messages.DOCKER_GUEST_AGENT_DISABLED,
                    "The guest agent is disabled but the idle command still runs it",
                )
        if not session_mode:
            handed_over = await self._from_pool(context, policy, log)
            if handed_over is not None:
                return handed_over
        request = self._create_request(execution, metadata, log)
        settings = EngineSettings.from_config(docker_config)
        connection = DockerConnection(
            reactor=self._reactor,
            docker_config=docker_config,
            log=log,
            retry_interval=self._retry_interval,
            on_closed=self._connections.discard,
            removal_failed=lambda: self._recorder.removal_failed(),
        )
        self._connections.add(connection)
        try:
            await connection.launch(
                lambda: self.engine_for(settings),
                request,
                policy,
                registry_auth(execution.auth),
                metadata.files,
                timeout=docker_config.timeouts.container_start,
            )
        except BaseException as e:
            await connection.close()
            raise launch_error(e, connection) from None
        return connection

    async def _from_pool(
        self, context: ConnectionContext, policy: PullPolicy, log: CodeLogger
    ) -> DockerConnection | None:
        """The connection in a warm pool container, or None when there is none to take."""
        docker_config = context.config.docker
        pool = self._pool_for(docker_config, policy)
        if pool is None:
            return None
        connection = pool.take()
        while connection is not None and not await connection.still_running():
            log.event(
                messages.DOCKER_POOL_STALE,
                "Warm pool container {staleContainerId} has stopped: removing it, taking another",
                staleContainerId=connection.container_id,
                poolTemplate=pool.key,
            )
            pool.discard(connection)
            connection = pool.take()
        if connection is not None and not self._running:
            # The gateway began to stop during the check: the pool no longer
            # holds this container, so nothing else would remove it.
            await connection.close()
            raise _not_running(log)
        if connection is None:
            self._recorder.pool_miss()
            log.event(
                messages.DOCKER_POOL_EMPTY,
                "No warm pool container is ready ({starting} starting): creating one for "
                "this connection",
                starting=pool.counts.starting,
                poolTemplate=pool.key,
            )
            return None
        metadata: Any = context.metadata
        connection.hand_over(
            docker_config=docker_config,
            log=log,
            env=self._connection_env(docker_config.execution, metadata, log),
            on_closed=self._connections.discard,
        )
        self._recorder.pool_handover()
        self._connections.add(connection)
        try:
            await with_deadline(
                self._reactor,
                docker_config.timeouts.container_start,
                connection.write_files(metadata.files),
            )
        except BaseException as e:
            await connection.close()
            raise launch_error(e, connection) from None
        return connection

    def _pool_for(self, docker_config: DockerConfig, policy: PullPolicy) -> TemplatePool | None:
        if docker_config.pool.size <= 0 or _pool_unavailable(docker_config) is not None:
            return None
        execution = docker_config.execution
        try:
            template = self._template_request(execution)
        except ContainerConfigError:
            return None  # the launch without the pool reports it
        return self._pools.pool_for(docker_config, template, policy, registry_auth(execution.auth))

    def _template_request(self, execution: DockerExecutionConfig) -> CreateRequest:
        """A warm pool container's create request: nothing of any one user in it."""
        return execution_create_request(
            execution, labels={LABEL_INSTANCE: self.instance_id}, env=[]
        )

    @staticmethod
    def _connection_env(
        execution: DockerExecutionConfig, metadata: ConnectionMetadata, log: CodeLogger
    ) -> list[tuple[str, str]]:
        """The variables authentication gives this connection's programs."""
        env: list[tuple[str, str]] = []
        if execution.expose_auth_metadata_as_env:
            env.extend(exposed_metadata(metadata.metadata, log))
        env.extend((name, value.value) for name, value in metadata.environment.items())
        return env

    def _create_request(
        self, execution: DockerExecutionConfig, metadata: ConnectionMetadata, log: CodeLogger
    ) -> CreateRequest:
        labels = {
            LABEL_CONNECTION_ID: metadata.connection_id,
            LABEL_IP: metadata.remote_ip,
            LABEL_USERNAME: metadata.username,
            LABEL_INSTANCE: self.instance_id,
        }
        env = self._connection_env(execution, metadata, log)
        try:
            return execution_create_request(execution, labels=labels, env=env)
        except ContainerConfigError as e:
            # A loaded configuration always has an image; this guards a
            # backend given an execution section built some other way.
            raise _config_error(log, str(e)) from None

    # -- clean-up

    def remove_all(self, docker_config: DockerConfig | None = None) -> Deferred[int]:
        """Remove every container labelled with this gateway's instance id.

        Looks on every engine this backend has talked to, on the one of the
        ``docker`` section given to :meth:`start`, and on the one
        ``docker_config`` (a ``docker`` config section) names, if given; the
        containers of one engine are removed concurrently, within that
        section's ``timeouts.containerStop``. Failures are logged; the result
        is the number of containers removed.
        """
        return Deferred.fromCoroutine(self._remove_all(docker_config))

    async def _remove_all(self, docker_config: DockerConfig | None) -> int:
        settings = set(self._engines)
        timeout = 60.0
        for config in (self._default_config, docker_config):
            if config is not None:
                settings.add(EngineSettings.from_config(config))
                timeout = float(config.timeouts.container_stop)
        removed = 0
        for item in settings:
            try:
                engine = await with_deadline(self._reactor, timeout, self.engine_for(item))
                sweep = Sweep(engine, self.instance_id, self._log)
                await with_deadline(self._reactor, timeout, sweep.find())
            except (EngineError, DeadlineExceeded) as e:
                self._log.event(
                    messages.DOCKER_CONTAINER_REMOVE_FAILED,
                    "Cannot list this gateway's containers: {reason}",
                    reason=e.message if isinstance(e, EngineError) else str(e),
                )
                continue
            try:
                await with_deadline(self._reactor, timeout, sweep.remove_found())
            except DeadlineExceeded:
                self._log.event(
                    messages.DOCKER_CONTAINER_REMOVE_FAILED,
                    "{count} container(s) of this gateway were not removed within {timeout} s",
                    count=sweep.unfinished,
                    timeout=timeout,
                )
            removed += sweep.removed
        return removed


def _not_running(log: CodeLogger) -> ContainerSSHError:
    error = ContainerSSHError(
        messages.DOCKER_CONNECTION_FAILED, GENERIC_USER_MESSAGE, "the Docker backend is not running"
    )
    error.log(log)
    return error


def _pool_unavailable(docker_config: DockerConfig) -> str | None:
    """Why ``docker_config`` cannot have a warm pool, or None."""
    execution = docker_config.execution
    if execution.mode != "connection":
        return "session mode creates a container per session channel"
    if execution.containername:
        return "a fixed containername allows one container at a time"
    return None


async def _raise(error: Exception) -> Any:
    raise error


def _config_error(log: CodeLogger, explanation: str) -> ContainerSSHError:
    error = ContainerSSHError(messages.DOCKER_CONFIG_ERROR, GENERIC_USER_MESSAGE, explanation)
    error.log(log)
    return error

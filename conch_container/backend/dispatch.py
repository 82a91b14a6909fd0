"""One backend per ``backend`` name, chosen per connection.

A configuration server may answer a connection with a ``backend`` other than
the static file's (ContainerSSH allows it). :class:`DispatchingBackend` is
the gateway's one :class:`~conch_container.interfaces.IContainerBackend`: it
routes each connection to the backend its own configuration names.

The static configuration's backend is built at once and started with the
gateway, as a single backend would be (a failure stops the start-up). Any
other backend is built and started on the first connection that needs it,
with that connection's configuration (so its clean-up of what a killed run
of this gateway left behind runs there too), once, within
:data:`START_DEADLINE`; connections arriving meanwhile wait for the same
start. A backend that is not installed (``sshproxy`` in this version), whose
plugin refuses the connection's settings, or that cannot start refuses only
the connections that asked for it, under ``BACKEND_CONFIG_ERROR``; it is
stopped and forgotten, so a later connection tries again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.python.failure import Failure
from zope.interface import implementer

from conch_container import messages
from conch_container.backend.registry import BackendNotAvailable, find_backend_factory
from conch_container.backend.shared import SharedContainers
from conch_container.config import AppConfig, ConfigError
from conch_container.deferreds import DeadlineExceeded, Once, settled_within, with_deadline
from conch_container.errors import GENERIC_USER_MESSAGE, ContainerSSHError
from conch_container.interfaces import (
    ConnectionContext,
    IBackendFactory,
    IBackendLifecycle,
    IBackendMetrics,
    IContainerBackend,
)
from conch_container.log.logger import CodeLogger
from conch_container.metrics import NULL_METRICS, Metrics

#: How long a backend started for a connection may take (its clean-up included).
START_DEADLINE = 60.0


@implementer(IContainerBackend, IBackendLifecycle)
class DispatchingBackend:
    """Routes each connection to the backend named by its configuration.

    :param reactor: what the backends run on (and the clock of the start deadline).
    :param log: the gateway's logger.
    :param instance_id: this gateway's instance id, handed to every backend.
    :param config: the static configuration; its ``backend`` is built now.
    :param metrics: each backend reports to its own ``backend`` label.
    :param factory_for: finds a backend's factory by name (the installed plugins).
    :param start_deadline: bounds the start of a backend started for a connection.
    """

    def __init__(
        self,
        reactor: Any,
        log: CodeLogger,
        instance_id: str,
        config: AppConfig,
        *,
        metrics: Metrics = NULL_METRICS,
        factory_for: Callable[[str], IBackendFactory] = find_backend_factory,
        start_deadline: float = START_DEADLINE,
    ) -> None:
        self._reactor = reactor
        self._log = log
        self._instance_id = instance_id
        self._metrics = metrics
        self._factory_for = factory_for
        self._start_deadline = start_deadline
        self.name = config.backend
        #: The backends built so far, by name.
        self._built: dict[str, Any] = {}
        #: The backends that started, ready for connections.
        self._ready: dict[str, Any] = {}
        #: Starts under way, awaited by the connections that need them and by :meth:`stop`.
        self._starting: dict[str, Once[Any]] = {}
        #: Containers shared by connections with the same key (session.containerKey).
        self.shared = SharedContainers(reactor)
        metrics.watch_shared_containers(lambda: self.shared.counts)
        self._stopped = False
        self._build(self.name, factory_for(self.name), config)

    def backend(self, name: str) -> Any:
        """The backend built for ``name``, or None."""
        return self._built.get(name)

    def _build(self, name: str, factory: IBackendFactory, config: AppConfig) -> Any:
        backend = factory.build(self._reactor, self._log, self._instance_id, config)
        metered = IBackendMetrics(backend, None)
        if metered is not None:
            metered.record_with(self._metrics.backend(name))
        self._built[name] = backend
        return backend

    # -- lifecycle

    def start(self) -> Deferred[None]:
        """Start the static configuration's backend; its failure fails the gateway's start."""
        backend = self._built[self.name]
        lifecycle = IBackendLifecycle(backend, None)
        started = maybeDeferred(lifecycle.start) if lifecycle is not None else succeed(None)

        def ready(_: object) -> None:
            self._ready[self.name] = backend

        return started.addCallback(ready)

    def stop(self) -> Deferred[None]:
        """Wait for the starts under way (each bounded), then stop every backend that started."""
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        self._stopped = True
        await DeferredList([once.wait() for once in self._starting.values()], consumeErrors=True)
        # Kept containers first: their backends are still there to remove them.
        await self.shared.stop()
        names = list(self._ready)
        stops = []
        for name in names:
            lifecycle = IBackendLifecycle(self._ready[name], None)
            stops.append(maybeDeferred(lifecycle.stop) if lifecycle is not None else succeed(None))
        self._ready.clear()
        results = await DeferredList(stops, consumeErrors=True)
        for name, (ok, result) in zip(names, results, strict=True):
            if not ok:
                self._log.event(
                    messages.BACKEND_STOP_FAILED,
                    "Stopping the {backend} backend failed: {reason}",
                    backend=name,
                    reason=result.getErrorMessage(),
                    failure=result,
                )

    def remove_all(self) -> Deferred[int]:
        """Every started backend's ``remove_all`` (the last resort); the number removed in all."""
        return Deferred.fromCoroutine(self._remove_all())

    async def _remove_all(self) -> int:
        sweeps = []
        for backend in list(self._ready.values()):
            lifecycle = IBackendLifecycle(backend, None)
            if lifecycle is not None:
                sweeps.append(maybeDeferred(lifecycle.remove_all))
        results = await DeferredList(sweeps, consumeErrors=True)
        return sum(result for ok, result in results if ok and isinstance(result, int))

    # -- connections

    async def connect(self, context: ConnectionContext) -> Any:
        """Connect through the backend ``context.config.backend`` names, started if need be.

        :raises ContainerSSHError: ``BACKEND_CONFIG_ERROR``, logged on the
            connection's log, when that backend cannot serve it.
        """
        try:
            backend = await self._backend_for(context)
        except ContainerSSHError as error:
            error.log(context.log)
            raise
        return await self.shared.connect(context.config.backend, backend.connect, context)

    async def _backend_for(self, context: ConnectionContext) -> Any:
        name = context.config.backend
        if self._stopped:
            raise _refusal(name, f"the {name} backend was requested during shutdown")
        if name == self.name:
            # Started with the gateway, before the first connection.
            return self._built[name]
        # The plugin's own checks ran at start-up for the static configuration
        # only; each connection's own settings for another backend are checked here.
        factory = self._checked_factory(name, context.config)
        ready = self._ready.get(name)
        if ready is not None:
            return ready
        once = self._starting.get(name)
        if once is None:
            once = self._starting[name] = Once()
            Deferred.fromCoroutine(self._start_for(name, factory, context)).addBoth(
                self._started, name, once
            )
        return await once.wait()

    def _checked_factory(self, name: str, config: AppConfig) -> IBackendFactory:
        """The factory of ``name``, which accepts ``config``; else a refusal."""
        try:
            factory = self._factory_for(name)
            factory.check_config(config)
        except (BackendNotAvailable, ConfigError) as error:
            raise _refusal(
                name, f"the configuration server chose a backend this gateway cannot use: {error}"
            ) from None
        return factory

    async def _start_for(
        self, name: str, factory: IBackendFactory, context: ConnectionContext
    ) -> Any:
        """Build and start ``name`` with the configuration of the first connection that needs it."""
        self._log.event(
            messages.BACKEND_STARTING,
            "Starting the {backend} backend for the first connection that uses it",
            backend=name,
        )
        try:
            backend = self._build(name, factory, context.config)
        except Exception as error:
            raise _refusal(name, f"the {name} backend cannot be built: {error}") from None
        lifecycle = IBackendLifecycle(backend, None)
        if lifecycle is None:
            return backend
        try:
            await with_deadline(self._reactor, self._start_deadline, maybeDeferred(lifecycle.start))
        except Exception as error:
            reason = (
                f"it did not start within {self._start_deadline:g} s"
                if isinstance(error, DeadlineExceeded)
                else str(error) or type(error).__name__
            )
            # Whatever half-started is released (bounded: a stop that hangs must
            # not hold the connections waiting for this start, nor the shutdown).
            await settled_within(self._reactor, self._start_deadline, maybeDeferred(lifecycle.stop))
            del self._built[name]
            raise _refusal(name, f"the {name} backend cannot start: {reason}") from None
        return backend

    def _started(self, result: Any, name: str, once: Once[Any]) -> None:
        del self._starting[name]
        if not isinstance(result, Failure):
            # Also during shutdown: stop() waits for this start and stops the backend.
            self._ready[name] = result
            if self._stopped:
                result = Failure(_refusal(name, f"the {name} backend started during shutdown"))
        once.fire(result)


def _refusal(name: str, explanation: str) -> ContainerSSHError:
    """The refusal of a connection whose backend ``name`` cannot serve it."""
    return ContainerSSHError(
        messages.BACKEND_CONFIG_ERROR, GENERIC_USER_MESSAGE, explanation, backend=name
    )

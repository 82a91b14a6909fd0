"""The service tree: ordered asynchronous start and stop, and the session registry.

Twisted's :class:`~twisted.application.service.MultiService` starts children
without waiting for them and swallows their failures. The gateway's parts
depend on each other (the SSH listener needs the backend's thread pool, the
shutdown must close sessions before the pools go away), so
:class:`GatewayService` starts children one after the other, awaiting each,
and stops them in reverse order, logging ContainerSSH's ``SERVICE_*`` codes.

:class:`SessionRegistry` knows every live connection's teardown, so that a
graceful stop can wait (bounded by a deadline) until every container is gone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from conch_container import messages
from conch_container.deferreds import as_deferred, settled_within
from conch_container.log import CodeLogger


class ComponentService(Service):
    """Adapts a component with ``start()``/``stop()`` methods to a named service.

    Either callable may return an awaitable; ``stop`` is only called after a
    successful ``start`` and only once.
    """

    def __init__(
        self,
        name: str,
        start: Callable[[], Any] | None = None,
        stop: Callable[[], Any] | None = None,
    ) -> None:
        self.setName(name)
        self._start = start
        self._stop = stop
        self._started = False

    def startService(self) -> Deferred[Any]:
        Service.startService(self)
        d = maybeDeferred(self._start) if self._start else as_deferred(None)

        def started(result: object) -> object:
            self._started = True
            return result

        return d.addCallback(started)

    def stopService(self) -> Deferred[Any]:
        Service.stopService(self)
        if not self._started or self._stop is None:
            return as_deferred(None)
        self._started = False
        return maybeDeferred(self._stop)


class GatewayService(MultiService):
    """The root service: starts children in order, stops them in reverse.

    :param log: where ``SERVICE_*`` events go.
    :param on_crash: called with the failure when a child fails to start; the
        tap uses it to stop the process with a non-zero exit status.
    """

    def __init__(self, log: CodeLogger, on_crash: Callable[[Failure], None] | None = None) -> None:
        super().__init__()
        self._log = log.bind(module="service")
        self._on_crash = on_crash
        self._started_children: list[Any] = []
        self._stopping: Deferred[None] | None = None

    def startService(self) -> Deferred[None]:
        Service.startService(self)
        return Deferred.fromCoroutine(self._start_children())

    async def _start_children(self) -> None:
        self._log.event(messages.SERVICE_POOL_STARTING, "Starting services")
        for child in list(self):
            name = child.name or type(child).__name__
            self._log.event(messages.SERVICE_STARTING, "Starting service {service}", service=name)
            try:
                await maybeDeferred(child.startService)
            except Exception:
                failure = Failure()
                self._log.failure(
                    messages.SERVICE_CRASHED,
                    "Service {service} failed to start: {reason}",
                    failure,
                    service=name,
                )
                await self.stopService()
                if self._on_crash is not None:
                    self._on_crash(failure)
                return
            self._started_children.append(child)
            self._log.event(messages.SERVICE_RUNNING, "Service {service} is running", service=name)
        self._log.event(messages.SERVICE_POOL_RUNNING, "All services are running")

    def all_running(self) -> bool:
        """Whether the tree is up: every child started and none stopped since.

        False while starting, after a child failed to start, once stopping
        began, and while any child is stopped on its own (its ``running``
        flag is down). The health endpoint answers with this.
        """
        if not self.running or self._stopping is not None:
            return False
        children = list(self)
        return len(self._started_children) == len(children) and all(
            child.running for child in children
        )

    def stopService(self) -> Deferred[None]:
        # Idempotent: twistd's shutdown trigger and a crash may both ask.
        if self._stopping is None:
            Service.stopService(self)
            self._stopping = Deferred.fromCoroutine(self._stop_children())
        return self._stopping

    async def _stop_children(self) -> None:
        self._log.event(messages.SERVICE_POOL_STOPPING, "Stopping services")
        while self._started_children:
            child = self._started_children.pop()
            name = child.name or type(child).__name__
            self._log.event(messages.SERVICE_STOPPING, "Stopping service {service}", service=name)
            try:
                await maybeDeferred(child.stopService)
            except Exception:
                self._log.failure(
                    messages.SERVICE_CRASHED,
                    "Service {service} failed while stopping: {reason}",
                    service=name,
                )
                continue
            self._log.event(messages.SERVICE_STOPPED, "Service {service} stopped", service=name)
        self._log.event(messages.SERVICE_POOL_STOPPED, "All services stopped")


class SessionRegistry(Service):
    """Tracks live connections and their teardowns, for a bounded graceful stop.

    The SSH layer checks :attr:`accepting` before admitting a connection and
    calls :meth:`track` with each connection's asynchronous teardown
    (closing sessions, removing the container). On stop the registry closes
    every connection through the registered closers and waits for all
    teardowns, at most ``deadline`` seconds; then it runs the last-resort
    hooks (e.g. removing every container of this gateway by label).

    :param clock: the reactor's time provider.
    :param deadline: seconds a graceful stop may take (ContainerSSH: 20 s).
    """

    name = "sessions"

    def __init__(self, clock: IReactorTime, log: CodeLogger, deadline: float = 20.0) -> None:
        self._clock = clock
        self._log = log.bind(module="service")
        self.deadline = deadline
        self.accepting = True
        self._pending: set[Deferred[Any]] = set()
        self._closers: list[Callable[[], Awaitable[Any] | Deferred[Any] | None]] = []
        self._last_resort: list[Callable[[], Awaitable[Any] | Deferred[Any] | None]] = []

    def track(self, teardown: Deferred[Any], what: str = "connection") -> None:
        """Remember a teardown until it finishes; its failure is logged, not raised."""
        self._pending.add(teardown)

        def done(result: object) -> None:
            self._pending.discard(teardown)
            if isinstance(result, Failure):
                self._log.failure(
                    messages.UNKNOWN_ERROR,
                    "Teardown of {what} failed: {reason}",
                    result,
                    what=what,
                )

        teardown.addBoth(done)

    @property
    def pending(self) -> int:
        """How many teardowns are still running."""
        return len(self._pending)

    def add_closer(self, closer: Callable[[], Any]) -> None:
        """Register something that closes live connections when stopping (the SSH factory)."""
        self._closers.append(closer)

    def add_last_resort(self, hook: Callable[[], Any]) -> None:
        """Register cleanup to run when the deadline expired (remove containers by label)."""
        self._last_resort.append(hook)

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        return Deferred.fromCoroutine(self._drain())

    async def _drain(self) -> None:
        self.accepting = False
        started = self._clock.seconds()
        closing = [maybeDeferred(closer) for closer in self._closers]
        everything = DeferredList([*closing], consumeErrors=True)
        await settled_within(self._clock, self.deadline, everything)
        # Closing connections registers their teardowns; wait for all of them.
        while self._pending:
            remaining = self.deadline - (self._clock.seconds() - started)
            if remaining <= 0:
                break
            pending = DeferredList(list(self._pending), consumeErrors=True)
            await settled_within(self._clock, remaining, pending)
        if self._pending:
            self._log.event(
                messages.SERVICE_SHUTDOWN_DEADLINE,
                "Shutdown deadline of {deadline}s expired with {count} teardowns running",
                deadline=self.deadline,
                count=len(self._pending),
            )
            hooks = [maybeDeferred(hook) for hook in self._last_resort]
            await DeferredList(hooks, consumeErrors=True)

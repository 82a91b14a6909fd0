"""The warm pool: containers created and started before anyone asks for one.

A login without the pool waits for the engine to create and start a
container, which costs about what ``docker run`` does. With ``docker.pool.size``
set, the backend keeps that many containers of each *template* ready: the
create request of a connection's ``docker`` section made without anything that
belongs to one user (the environment from authentication, files, the labels
naming the user and the connection). A connection whose template matches
takes a ready container, which is then made its own: its environment is given
to every program it runs, its files are written, and its log lines name the
container. The pool starts another one in the background.

Rules that keep this safe:

- a container is handed to exactly one connection and never goes back: the
  connection removes it when it ends, as any other;
- pool containers carry the gateway's instance label, so the start-up sweep
  and the shutdown sweep remove them like the others, and :meth:`WarmPools.stop`
  removes the ready ones at shutdown;
- refills are bounded: at most ``refillConcurrency`` creations at once per
  template, and after a failed one the pool waits the retry interval before
  the next (a broken engine or image is not hammered);
- at most :data:`MAX_TEMPLATES` templates have a pool; the least recently used
  one is emptied to make room for another.

A :class:`~conch_container.backend.docker.connection.DockerConnection` is what
the pool keeps: launched as a connection would be (pull policy, create, guest
agent, start), with no sessions, then re-bound to its user by
:meth:`~conch_container.backend.docker.connection.DockerConnection.hand_over`.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet.defer import Deferred, DeferredList

from conch_container import messages
from conch_container.backend.docker.connection import DockerConnection
from conch_container.backend.docker.containerconfig import CreateRequest
from conch_container.backend.docker.engine.api import Engine
from conch_container.backend.docker.pull import PullPolicy
from conch_container.log.logger import CodeLogger
from conch_container.metrics.recorders import PoolCounts

if TYPE_CHECKING:
    from conch_container.config import DockerConfig

#: Label on pool containers: the template they were made from.
LABEL_POOL = "conch_container_pool"
#: Templates with a pool at once; more evict the least recently used.
MAX_TEMPLATES = 16


def template_key(docker_config: DockerConfig, request: CreateRequest) -> str:
    """A short digest of everything that makes a pool container what it is."""
    execution = docker_config.execution
    material = {
        "engine": attrs.asdict(docker_config.connection),
        "body": request.body,
        "name": request.name,
        "platform": request.platform,
        "pull": [execution.image_pull_policy, execution.auth],
        "agent": [execution.disable_agent, execution.agent_path],
    }
    encoded = json.dumps(material, sort_keys=True, default=repr).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


class TemplatePool:
    """The ready containers of one template, and their refills.

    :param make: a new pool container's :class:`DockerConnection`, not
        launched yet, whose close calls the callable it is given.
    :param launch: launches one (pull policy, create, agent, start); its
        failures are logged by the connection.
    :param size: containers to keep ready.
    :param concurrency: creations at once, at most.
    :param retry_interval: seconds to wait after a failed creation.
    """

    def __init__(
        self,
        reactor: Any,
        key: str,
        make: Callable[[Callable[[DockerConnection], object]], DockerConnection],
        launch: Callable[[DockerConnection], Awaitable[None]],
        *,
        size: int,
        concurrency: int,
        retry_interval: float,
        log: CodeLogger,
    ) -> None:
        self._reactor = reactor
        self.key = key
        self._make = make
        self._launch = launch
        self.size = size
        self._concurrency = concurrency
        self._retry_interval = retry_interval
        self._log = log.bind(poolTemplate=key)
        self._ready: deque[DockerConnection] = deque()
        self._starting: set[DockerConnection] = set()
        self._retry_call: Any = None
        self._stopped = False
        #: Closes of containers taken but not handed over (found stopped).
        self._discarding: set[Deferred[None]] = set()

    @property
    def counts(self) -> PoolCounts:
        return PoolCounts(ready=len(self._ready), starting=len(self._starting))

    @property
    def ready_ids(self) -> list[str | None]:
        """The ready containers' ids, the next to be taken first."""
        return [c.container_id for c in self._ready]

    def take(self) -> DockerConnection | None:
        """A ready container for a connection, or None; a refill starts either way."""
        taken = self._ready.popleft() if self._ready else None
        self.fill()
        return taken

    def discard(self, connection: DockerConnection) -> None:
        """Remove a taken container that cannot be handed over; :meth:`stop` waits for it."""
        closed = connection.close()
        self._discarding.add(closed)
        closed.addBoth(lambda _: self._discarding.discard(closed))

    def fill(self) -> None:
        """Start creations until the pool is full or as many run as allowed."""
        if self._stopped or self._retry_call is not None:
            return
        while (
            len(self._ready) + len(self._starting) < self.size
            and len(self._starting) < self._concurrency
        ):
            connection = self._make(self._forget)
            self._starting.add(connection)
            self._log.event(
                messages.DOCKER_POOL_FILL,
                "Starting a container for the warm pool ({ready} ready, {starting} starting)",
                ready=len(self._ready),
                starting=len(self._starting),
            )
            Deferred.fromCoroutine(self._start_one(connection))

    async def _start_one(self, connection: DockerConnection) -> None:
        try:
            await self._launch(connection)
        except BaseException as e:
            self._starting.discard(connection)
            await connection.close()
            if self._stopped:
                return
            self._log.event(
                messages.DOCKER_POOL_FILL_FAILED,
                "A warm pool container did not start: {reason}; trying again in {retryIn} s",
                reason=getattr(e, "explanation", None) or str(e) or type(e).__name__,
                retryIn=self._retry_interval,
            )
            if self._retry_call is None:
                self._retry_call = self._reactor.callLater(self._retry_interval, self._retry)
            return
        self._starting.discard(connection)
        if self._stopped:
            await connection.close()
            return
        self._ready.append(connection)
        self._log.event(
            messages.DOCKER_POOL_READY,
            "Warm pool container {containerId} is ready ({ready} ready)",
            containerId=connection.container_id,
            ready=len(self._ready),
        )
        self.fill()

    def _retry(self) -> None:
        self._retry_call = None
        self.fill()

    def _forget(self, connection: DockerConnection) -> None:
        # A ready container closed by itself (never while handed over: the
        # connection's own on_closed replaces this one).
        if connection in self._ready:
            self._ready.remove(connection)
            self.fill()

    def stop(self) -> Deferred[Any]:
        """Remove every container of the pool, ready or starting; no more refills."""
        self._stopped = True
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None
        closing = [c.close() for c in [*self._ready, *self._starting]]
        closing.extend(self._discarding)
        if closing:
            self._log.event(
                messages.DOCKER_POOL_DRAIN,
                "Removing {count} warm pool container(s)",
                count=len(closing),
            )
        self._ready.clear()
        return DeferredList(closing, consumeErrors=True)


class WarmPools:
    """Every template's pool of one Docker backend.

    :param make_connection: a new, not yet launched :class:`DockerConnection`
        for ``docker_config`` whose close calls ``on_closed``.
    :param engine_source: for a ``docker`` section, what gives its engine.
    """

    def __init__(
        self,
        reactor: Any,
        log: CodeLogger,
        *,
        retry_interval: float,
        make_connection: Callable[
            [DockerConfig, CodeLogger, Callable[[DockerConnection], object]], DockerConnection
        ],
        engine_source: Callable[[DockerConfig], Callable[[], Awaitable[Engine]]],
    ) -> None:
        self._reactor = reactor
        self._log = log
        self._retry_interval = retry_interval
        self._make_connection = make_connection
        self._engine_source = engine_source
        self._pools: OrderedDict[str, TemplatePool] = OrderedDict()
        self._stopping: list[Deferred[Any]] = []
        self._stopped = False

    @property
    def counts(self) -> PoolCounts:
        ready = starting = 0
        for pool in self._pools.values():
            counts = pool.counts
            ready += counts.ready
            starting += counts.starting
        return PoolCounts(ready=ready, starting=starting)

    def ready_ids(self) -> list[str | None]:
        """Every template's ready containers' ids (for inspection and tests)."""
        return [cid for pool in self._pools.values() for cid in pool.ready_ids]

    def pool_for(
        self,
        docker_config: DockerConfig,
        request: CreateRequest,
        policy: PullPolicy,
        registry_auth: dict[str, str],
    ) -> TemplatePool | None:
        """The pool of ``request``'s template (made and filled if new), or None
        when ``docker_config`` asks for none."""
        size = docker_config.pool.size
        if size <= 0 or self._stopped:
            return None
        key = template_key(docker_config, request)
        pool = self._pools.get(key)
        if pool is not None:
            self._pools.move_to_end(key)
            pool.size = size
            return pool
        if len(self._pools) >= MAX_TEMPLATES:
            _, evicted = self._pools.popitem(last=False)
            self._stopping = [d for d in self._stopping if not d.called]
            self._stopping.append(evicted.stop())
        template = attrs.evolve(
            request, body={**request.body, "Labels": {**request.body.get("Labels", {}),
                                                      LABEL_POOL: key}}
        )  # fmt: skip
        log = self._log.bind(poolTemplate=key)
        engine_source = self._engine_source(docker_config)
        timeout = docker_config.timeouts.container_start

        def make(on_closed: Callable[[DockerConnection], object]) -> DockerConnection:
            return self._make_connection(docker_config, log, on_closed)

        def launch(connection: DockerConnection) -> Awaitable[None]:
            return connection.launch(
                engine_source, template, policy, registry_auth, {}, timeout=timeout
            )

        pool = TemplatePool(
            self._reactor,
            key,
            make,
            launch,
            size=size,
            concurrency=docker_config.pool.refill_concurrency,
            retry_interval=self._retry_interval,
            log=self._log,
        )
        self._pools[key] = pool
        self._log.event(
            messages.DOCKER_POOL_STARTED,
            "Warm pool for template {poolTemplate}: keeping {size} container(s) of {image} ready",
            poolTemplate=key,
            size=size,
            image=request.image,
        )
        pool.fill()
        return pool

    def stop(self) -> Deferred[Any]:
        """Empty every pool; fires once their containers are removed."""
        self._stopped = True
        stopping = [pool.stop() for pool in self._pools.values()] + self._stopping
        self._pools.clear()
        self._stopping = []
        return DeferredList(stopping, consumeErrors=True)

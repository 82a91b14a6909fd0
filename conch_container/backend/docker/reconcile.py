"""Finding and removing a gateway instance's containers by their label.

Every container the backend creates carries ``conch_container_instance`` with
the gateway's instance id, so a gateway can always find its own containers,
whatever became of the connections they belonged to. The id is one no other
running gateway has, and the one of the killed run a restarted gateway
succeeds (see :mod:`conch_container.instance`): whatever carries it belongs
to this process or to a dead one, never to a live neighbour.

- :func:`remove_leftovers` runs once at start-up, before the SSH listener
  accepts a connection, and removes what a previous run of the same gateway
  left behind when it was killed (``SIGKILL``, the out-of-memory killer, a
  power cut: no graceful stop could run). It never fails the start: with the
  engine down it logs ``DOCKER_CONNECTION_FAILED`` and the gateway starts
  anyway; those containers then stay until the next start or until an
  operator removes them (see ``docs/docker.md``).
- :class:`Sweep` is the one pass both that and the last-resort
  :meth:`~conch_container.backend.docker.backend.DockerBackend.remove_all`
  make over one engine: list every container carrying the label, in every
  state, and force-remove them with their anonymous volumes, concurrently on
  the backend's thread pool (whose size bounds how many calls run at once).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from conch_container import messages
from conch_container.backend.docker.containerconfig import LABEL_INSTANCE
from conch_container.backend.docker.engine.api import Engine
from conch_container.backend.docker.engine.errors import EngineError
from conch_container.codes import Level
from conch_container.deferreds import DeadlineExceeded, with_deadline
from conch_container.log.logger import CodeLogger


class Sweep:
    """Removes every container of one instance from one engine.

    The counters stay meaningful when a deadline cancels the sweep halfway:
    removals already answered are counted, the rest are neither removed nor
    failed (their engine calls finish in the pool regardless).

    :param engine: the engine to sweep.
    :param instance_id: the value of the ``conch_container_instance`` label.
    :param log: the backend's logger; per-container events bind ``containerId``.
    """

    def __init__(self, engine: Engine, instance_id: str, log: CodeLogger) -> None:
        self._engine = engine
        self._instance_id = instance_id
        self._log = log
        #: The ids :meth:`find` listed.
        self.found: list[str] = []
        #: How many of them are gone (removed now, or already gone).
        self.removed = 0
        #: How many the engine refused to remove.
        self.failed = 0

    @property
    def unfinished(self) -> int:
        """Containers listed but neither removed nor refused (the deadline came first)."""
        return len(self.found) - self.removed - self.failed

    async def find(self) -> list[str]:
        """List the instance's containers, running or not.

        :raises EngineError: when the engine cannot be asked.
        """
        self.found = list(await self._engine.list_labelled(LABEL_INSTANCE, self._instance_id))
        return self.found

    async def remove_found(self) -> None:
        """Force-remove every container :meth:`find` listed, all at once."""
        removals = [Deferred.fromCoroutine(self._remove(cid)) for cid in self.found]
        # A cancelled DeferredList still "succeeds" with its members' failures;
        # the first one (the cancellation) is raised, so a deadline is seen.
        for _ok, result in await DeferredList(removals, consumeErrors=True):
            if isinstance(result, Failure):
                result.raiseException()

    async def _remove(self, container_id: str) -> None:
        log = self._log.bind(containerId=container_id)
        log.event(messages.DOCKER_CONTAINER_REMOVE, "Removing container {containerId}")
        try:
            existed = await self._engine.remove_container(container_id)
        except EngineError as e:
            self.failed += 1
            log.event(
                messages.DOCKER_CONTAINER_REMOVE_FAILED,
                "Failed to remove container {containerId}: {reason}",
                reason=e.message,
            )
            return
        self.removed += 1
        log.event(
            messages.DOCKER_CONTAINER_REMOVE_SUCCESSFUL,
            "Removed container {containerId}"
            if existed
            else "Container {containerId} was already gone",
        )


async def remove_leftovers(
    engine_source: Callable[[], Awaitable[Engine]],
    instance_id: str,
    log: CodeLogger,
    clock: IReactorTime,
    timeout: float,
) -> int:
    """Remove the containers a previous run of this gateway left behind.

    Logs ``DOCKER_CONTAINER_RECONCILE`` with their number and ids before
    removing them. Everything (reaching the engine, listing, removing) is
    bounded by ``timeout`` (``docker.timeouts.containerStop``). Never raises
    except :class:`~twisted.internet.defer.CancelledError` when cancelled.

    :param engine_source: gives the engine of the gateway's ``docker`` section.
    :return: how many containers were removed.
    """
    deadline = clock.seconds() + timeout

    def remaining() -> float:
        return max(deadline - clock.seconds(), 0.0)

    try:
        engine = await with_deadline(clock, remaining(), _awaited(engine_source))
    except (EngineError, DeadlineExceeded) as e:
        log.event(
            messages.DOCKER_CONNECTION_FAILED,
            "Cannot reach the Docker engine to look for containers a previous run left "
            "behind: {reason}; starting without removing them",
            reason=_reason(e),
        )
        return 0
    sweep = Sweep(engine, instance_id, log)
    try:
        found = await with_deadline(clock, remaining(), sweep.find())
    except (EngineError, DeadlineExceeded) as e:
        log.event(
            messages.DOCKER_CONTAINER_REMOVE_FAILED,
            "Cannot list the containers a previous run left behind: {reason}; "
            "starting without removing them",
            reason=_reason(e),
        )
        return 0
    if not found:
        log.event(
            messages.DOCKER_CONTAINER_RECONCILE,
            "No containers left behind by a previous run of this gateway",
            count=0,
            level=Level.DEBUG,
        )
        return 0
    log.event(
        messages.DOCKER_CONTAINER_RECONCILE,
        "Removing {count} container(s) left behind by a previous run of this gateway: "
        "{containerIds}",
        count=len(found),
        containerIds=", ".join(found),
    )
    try:
        await with_deadline(clock, remaining(), sweep.remove_found())
    except DeadlineExceeded:
        pass  # reported below with the counts
    if sweep.failed or sweep.unfinished:
        log.event(
            messages.DOCKER_CONTAINER_REMOVE_FAILED,
            "{left} of {count} container(s) left behind by a previous run are still there "
            "({failed} refused, {unfinished} unanswered within {timeout} s)",
            left=sweep.failed + sweep.unfinished,
            count=len(found),
            failed=sweep.failed,
            unfinished=sweep.unfinished,
            timeout=timeout,
        )
    return sweep.removed


async def _awaited(source: Callable[[], Awaitable[Engine]]) -> Engine:
    return await source()


def _reason(error: Exception) -> str:
    if isinstance(error, EngineError):
        return error.message
    return str(error)

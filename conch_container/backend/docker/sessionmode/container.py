"""The container of one session channel in Docker ``session`` mode: made, started, removed.

:class:`SessionContainer` runs the engine side of a session's life: create
(``DOCKER_CONTAINER_CREATE``), put authentication's files in, attach
(``DOCKER_CONTAINER_ATTACH``) *before* the start so no output is missed, start
(``DOCKER_CONTAINER_START``); and, whatever happened, remove it: stopping it
first with a short grace when its program still runs
(``DOCKER_CONTAINER_STOP``), force-removing it with retries within
``timeouts.containerStop`` (``DOCKER_CONTAINER_REMOVE``).

A create call cannot be interrupted: once the container is :meth:`abandoned
<SessionContainer.abandon>`, a create that returns later has its container
removed as soon as it is known, and an attach that answers later has its
stream released, so nothing outlives the session.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from conch_container import messages
from conch_container.backend.docker.containerconfig import CreateRequest
from conch_container.backend.docker.engine.api import Engine
from conch_container.backend.docker.engine.errors import EngineError
from conch_container.backend.docker.engine.upgrade import UpgradedStream
from conch_container.backend.docker.sessionmode.ops import place_files, remove_container
from conch_container.backend.programsession import START_FAILED_MESSAGE, logged_error
from conch_container.codes import MessageCode
from conch_container.deferreds import (
    DeadlineExceeded,
    Once,
    await_resource,
    with_deadline,
)
from conch_container.log.logger import CodeLogger

if TYPE_CHECKING:
    from conch_container.config.docker import DockerTimeoutConfig

#: Seconds a program still running when its channel closes gets between the
#: container's stop signal and ``KILL``.
STOP_GRACE = 2


class SessionContainer:
    """One session's container on the engine.

    :param clock: the reactor's clock.
    :param engine: the connection's engine (create, files, attach, start, stop, remove).
    :param timeouts: the connection's ``docker.timeouts``.
    :param retry_interval: seconds between removal attempts.
    :param log: the session's logger; :attr:`log` adds the container id.
    :param stop_grace: see :data:`STOP_GRACE`.
    :param removal_failed: called when the container could not be removed.

    :ivar container_id: the container, once the create call returned.
    :ivar step_failure: the ``_FAILED`` code of the step :meth:`launch` is in,
        for a deadline or a close that interrupts it.
    """

    def __init__(
        self,
        *,
        clock: IReactorTime,
        engine: Engine,
        timeouts: DockerTimeoutConfig,
        retry_interval: float,
        log: CodeLogger,
        stop_grace: int = STOP_GRACE,
        removal_failed: Callable[[], object] = lambda: None,
    ) -> None:
        self._removal_failed = removal_failed
        self._clock = clock
        self._engine = engine
        self._timeouts = timeouts
        self._retry_interval = retry_interval
        self.log = log
        self._stop_grace = stop_grace
        self.container_id: str | None = None
        self.step_failure: MessageCode = messages.DOCKER_CONTAINER_CREATE_FAILED
        self._created: Once[str] | None = None
        self._abandoned = False
        self._removal: Once[None] | None = None

    # -- launch

    async def launch(
        self, kind: str, request: CreateRequest, files: Mapping[str, object]
    ) -> UpgradedStream:
        """Create the container, put ``files`` in, attach, start; the attached stream.

        The caller owns the stream (and must close it if it does not take it). On
        failure nothing is removed here: the caller :meth:`abandon` s the container.

        :raises ContainerSSHError: (logged) when a step fails.
        """
        container_id = await self._create(kind, request)
        await place_files(self._clock, self._engine, container_id, request, files, self.log)
        stream = await self._attach(container_id)
        try:
            self.step_failure = messages.DOCKER_CONTAINER_START_FAILED
            self.log.event(messages.DOCKER_CONTAINER_START, "Starting container {containerId}")
            try:
                await self._engine.start_container(container_id)
            except EngineError as e:
                raise logged_error(
                    self.log,
                    messages.DOCKER_CONTAINER_START_FAILED,
                    START_FAILED_MESSAGE,
                    e.message,
                ) from None
        except BaseException:
            stream.close()
            raise
        return stream

    async def _create(self, kind: str, request: CreateRequest) -> str:
        self.step_failure = messages.DOCKER_CONTAINER_CREATE_FAILED
        self.log.event(
            messages.DOCKER_CONTAINER_CREATE,
            "Creating a container from {image} for the {program} program",
            image=request.image,
            program=kind,
        )
        # The result is recorded whenever it arrives, so that an abandoned
        # container is removed even then.
        created: Once[str] = Once()
        self._created = created
        d = self._engine.create_container(request)
        d.addCallback(self._record)
        d.addBoth(created.fire)
        try:
            return await created.wait()
        except EngineError as e:
            raise logged_error(
                self.log, messages.DOCKER_CONTAINER_CREATE_FAILED, START_FAILED_MESSAGE, e.message
            ) from None

    def _record(self, container_id: str) -> str:
        self.container_id = container_id
        self.log = self.log.bind(containerId=container_id)
        if self._abandoned:
            self.remove(stop=False)
        return container_id

    async def _attach(self, container_id: str) -> UpgradedStream:
        self.step_failure = messages.DOCKER_CONTAINER_ATTACH_FAILED
        self.log.event(messages.DOCKER_CONTAINER_ATTACH, "Attaching to container {containerId}")
        try:
            # A stream that arrives after the deadline (or after close) is
            # never taken: its connection is dropped.
            return await await_resource(
                self._engine.container_attach(container_id), UpgradedStream.close
            )
        except EngineError as e:
            raise logged_error(
                self.log, messages.DOCKER_CONTAINER_ATTACH_FAILED, START_FAILED_MESSAGE, e.message
            ) from None

    # -- removal

    def abandon(self) -> None:
        """The container is not wanted any more: remove it now, or once its create returns."""
        self._abandoned = True
        if self.container_id is not None:
            self.remove(stop=False)

    async def settle(self, deadline: float) -> None:
        """Wait, until ``deadline`` at most, for a create call still running to return."""
        created = self._created
        if created is None or created.done:
            return
        try:
            await with_deadline(
                self._clock, max(deadline - self._clock.seconds(), 0.0), created.wait()
            )
        except Exception:
            pass  # failed: nothing to remove; late: removed when it returns (abandoned)

    def remove(self, *, stop: bool) -> Deferred[None]:
        """Remove the container (stopping it first if ``stop``); only the first call counts.

        The result fires when the container is gone or removal gave up; it never fails.
        """
        if self._removal is None:
            once: Once[None] = Once()
            self._removal = once
            Deferred.fromCoroutine(self._stop_and_remove(stop)).addBoth(once.fire)
        return self._removal.wait()

    async def _stop_and_remove(self, stop: bool) -> None:
        container_id = self.container_id
        assert container_id is not None
        deadline = self._clock.seconds() + self._timeouts.container_stop
        if stop:
            await self._stop(container_id, deadline)
        removed = await remove_container(
            self._clock,
            self._engine,
            container_id,
            deadline=deadline,
            retry_interval=self._retry_interval,
            log=self.log,
        )
        if not removed:
            self._removal_failed()

    async def _stop(self, container_id: str, deadline: float) -> None:
        """Stop the container, its program getting the grace; never raises."""
        self.log.event(
            messages.DOCKER_CONTAINER_STOP,
            "Stopping container {containerId} ({grace} s grace)",
            grace=self._stop_grace,
        )
        try:
            await with_deadline(
                self._clock,
                max(deadline - self._clock.seconds(), 0.0),
                self._engine.container_stop(container_id, self._stop_grace),
            )
        except (EngineError, DeadlineExceeded) as e:
            self.log.event(
                messages.DOCKER_CONTAINER_STOP_FAILED,
                "Failed to stop container {containerId}: {reason}; removing it by force",
                reason=getattr(e, "message", str(e)),
            )

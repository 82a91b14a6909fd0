"""The audit log as a whole: a recorder per connection, a thread pool, the storage.

:class:`AuditLog` is a service of the gateway's tree. It starts before the
SSH listener (its storage may first recover what a killed run left behind)
and stops after the last connection closed: it waits for the streams of
those connections to be written (within the shutdown deadline), then stops
its storage, which finishes or keeps its uploads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.python.threadpool import ThreadPool

from conch_container import messages
from conch_container.audit.recorder import DISABLED, ConnectionAudit
from conch_container.audit.stream import DEFAULT_LIMITS, AuditStream, StreamLimits
from conch_container.deferreds import DeadlineExceeded, with_deadline
from conch_container.interfaces import AuditStreamInfo, IAuditCodec, IAuditStorage
from conch_container.log.logger import CodeLogger

#: Threads that encode and write audit streams, for the whole gateway. Each
#: stream has at most one batch in flight, so this bounds the disk writes at
#: once, not the streams.
POOL_SIZE = 4


class AuditLog(MultiService):
    """Records every connection in ``codec``'s format to ``storage``.

    :param reactor: the reactor.
    :param log: the gateway's logger.
    :param codec: the :class:`~conch_container.interfaces.IAuditCodec` (``audit.format``).
    :param storage: the :class:`~conch_container.interfaces.IAuditStorage`
        (``audit.storage``); a child service if it provides ``IService``.
    :param intercept: the ``audit.intercept`` settings.
    :param deadline: seconds the stop waits for open streams to be written.
    """

    name = "audit"

    def __init__(
        self,
        reactor: Any,
        log: CodeLogger,
        codec: IAuditCodec,
        storage: IAuditStorage,
        intercept: Any,
        *,
        deadline: float = 20.0,
        limits: StreamLimits = DEFAULT_LIMITS,
        pool_size: int = POOL_SIZE,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        super().__init__()
        self._reactor = reactor
        self._log = log.bind(module="audit")
        self._codec = codec
        self._storage = storage
        self._intercept = intercept
        self._deadline = deadline
        self._limits = limits
        self._clock_ns = clock_ns
        self._pool = ThreadPool(minthreads=0, maxthreads=pool_size, name="audit")
        self._open: set[Deferred[None]] = set()
        service = IService(storage, None)
        if service is not None:
            service.setServiceParent(self)

    @property
    def storage(self) -> IAuditStorage:
        """Where the streams are written (``audit.storage``)."""
        return self._storage

    def startService(self) -> Deferred[None]:
        """Start the pool, then the storage; fires once the storage has started.

        Unlike a plain ``MultiService`` this waits for (and fails with) the
        storage's start, so that the gateway does not accept connections it
        could not record.
        """
        Service.startService(self)
        self._pool.start()
        return Deferred.fromCoroutine(self._start_children())

    async def _start_children(self) -> None:
        for child in list(self):
            await maybeDeferred(child.startService)

    def connection(self, connection_id: str, remote_ip: str, log: CodeLogger) -> ConnectionAudit:
        """The recorder of a new connection (its ``connect`` message is recorded)."""
        if not self.running:
            return DISABLED
        now = self._clock_ns()
        info = AuditStreamInfo(
            connection_id=connection_id, start_time=now // 1_000_000_000, remote_addr=remote_ip
        )
        recorder: ConnectionAudit
        stream = AuditStream(
            reactor=self._reactor,
            pool=self._pool,
            encoder=self._codec.encoder(connection_id, now),
            storage=self._storage,
            info=info,
            log=log.bind(module="audit"),
            on_pressure=lambda holding: recorder.pressure(holding),
            limits=self._limits,
        )
        recorder = ConnectionAudit(
            _Tracked(stream, self._open), info, self._intercept, clock_ns=self._clock_ns
        )
        recorder.connected()
        return recorder

    @property
    def pending(self) -> int:
        """Streams of closed connections still being written."""
        return len(self._open)

    def stopService(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if self._open:
            waiting = DeferredList(list(self._open), consumeErrors=True)
            try:
                await with_deadline(self._reactor, self._deadline, waiting)
            except DeadlineExceeded:
                self._log.event(
                    messages.AUDIT_STREAM_STALLED,
                    "{count} audit streams were not written within {timeout} seconds of the "
                    "shutdown; what they still held is lost",
                    count=len(self._open),
                    timeout=self._deadline,
                )
        await super().stopService()
        self._pool.stop()


class _Tracked:
    """A stream whose close is remembered until it is done, for the shutdown."""

    def __init__(self, stream: AuditStream, open_streams: set[Deferred[None]]) -> None:
        self._stream = stream
        self._open = open_streams
        self.add = stream.add
        self.update = stream.update

    def close(self) -> Deferred[None]:
        tracked = self._stream.close()
        self._open.add(tracked)
        tracked.addBoth(lambda _: self._open.discard(tracked))
        return self._stream.close()

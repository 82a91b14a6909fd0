"""The ``s3`` storage: spool locally, upload in the background, recover after a crash.

:class:`S3Storage` is both the :class:`~conch_container.interfaces.IAuditStorage`
the recorder opens streams in and the :class:`~twisted.application.service.IService`
that uploads them, so that one object is built and put in the service tree.

- ``startService`` starts the storage's own thread pool (``parallelUploads``
  threads for transfers, a few more for the other calls), builds the botocore
  client there, and starts the recovery of what an earlier run left in the
  spool directory. It returns without waiting for the recovery: start-up is
  delayed only by building the client (local work, well under a second), never
  by S3, whose answers may take minutes or never come.
- Streams are shipped as they are written (:class:`.uploader.Uploader`); at
  most ``parallelUploads`` transfers run at once across the gateway.
- ``stopService`` gives the uploads of closed streams ``deadline`` seconds
  (the gateway's shutdown deadline) to finish, trying failed calls again
  without the long pauses; what is not done by then stays in the spool
  directory for the next start. A stream whose sink is still open is not
  waited for: its recorder was not done with it. Nothing is deleted that was
  not uploaded.

Its parent service must stop it only after every connection closed and
every sink was closed: the audit log service
(:class:`conch_container.audit.service.AuditLog`) makes it its child and
does so. That parent, a :class:`~twisted.application.service.MultiService`,
does not wait for ``startService``; streams opened before the client is
built are shipped once it is, and a stop that comes meanwhile waits for the
start before giving the uploads their deadline.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    DeferredSemaphore,
    succeed,
)
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from conch_container import messages
from conch_container.audit.storage.localfile import AppendFile, check_name
from conch_container.audit.storage.s3.client import (
    S3Settings,
    thd_close_client,
    thd_make_client,
    thd_write_ca_bundle,
)
from conch_container.audit.storage.s3.recovery import Recovery
from conch_container.audit.storage.s3.sidecar import write_sidecar
from conch_container.audit.storage.s3.spool import SpoolSink, thd_remove_spooled
from conch_container.audit.storage.s3.uploader import (
    GaveUp,
    RetryPolicy,
    S3Calls,
    Stream,
    Uploader,
)
from conch_container.config.audit import MIN_PART_SIZE, AuditS3Config
from conch_container.deferreds import Once, settled_within, shield
from conch_container.interfaces import AuditStreamInfo, IAuditStorage
from conch_container.log import CodeLogger
from conch_container.metrics.recorders import AuditBacklog

#: The largest part S3 takes; a larger ``uploadPartSize`` is lowered to it.
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
#: Threads beyond ``parallelUploads``, for the calls that move no data
#: (create, complete, list, abort) and the spool's file work.
CONTROL_THREADS = 4
#: Work done on a stream before its upload (the recovery's clean-up).
Prelude = Callable[[Stream, CodeLogger], Awaitable[None]]
#: How many finished uploads :meth:`S3Storage.wait_uploaded` remembers.
FINISHED_KEPT = 1024
#: ContainerSSH's shutdown grace period, in seconds.
DEFAULT_DEADLINE = 20.0


def part_size(config: AuditS3Config) -> int:
    """``uploadPartSize`` within what S3 allows, 5 MiB to 5 GiB."""
    return min(max(config.upload_part_size, MIN_PART_SIZE), MAX_PART_SIZE)


@implementer(IAuditStorage)
class S3Storage(Service):
    """Audit streams spooled to ``audit.s3.local`` and uploaded to S3.

    :param reactor: the reactor (time, threads).
    :param config: the ``audit.s3`` section.
    :param deadline: seconds ``stopService`` waits for unfinished uploads.
    :param retry: pauses between attempts of a failed S3 call.
    :param connect_timeout, read_timeout: botocore's, per S3 call, in seconds.
    :param thread_pool: the pool to run S3 calls on (tests pass one that
        counts); by default one of ``parallelUploads`` + 4 threads. Started and
        stopped with the service.
    """

    name = "s3"

    def __init__(
        self,
        reactor: Any,
        log: CodeLogger,
        config: AuditS3Config,
        *,
        deadline: float = DEFAULT_DEADLINE,
        retry: RetryPolicy | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        thread_pool: ThreadPool | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._reactor = reactor
        self._log = log.bind(module="audit", storage="s3", bucket=config.bucket)
        self.local = config.local
        self.deadline = deadline
        threads = config.parallel_uploads + CONTROL_THREADS
        self._pool = thread_pool or ThreadPool(minthreads=0, maxthreads=threads, name="audit-s3")
        self._settings = S3Settings.from_config(
            config,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_connections=threads,
        )
        #: Transfers (part and single uploads) in progress across the gateway.
        self.upload_slots = DeferredSemaphore(config.parallel_uploads)
        self._calls = S3Calls(reactor, self._pool, self.upload_slots)
        self._uploader = Uploader(
            self._calls,
            reactor,
            bucket=config.bucket,
            acl=config.acl,
            part_size=part_size(config),
            metadata={"username": config.metadata.username, "ip": config.metadata.ip},
            retry=retry or RetryPolicy(),
            rng=rng or random.Random(),
        )
        self._recovery = Recovery(
            self, self._calls, self._uploader, config.parallel_uploads, self._log
        )
        # The ids of the streams of this run; guarded by the lock, since the
        # recorder's threads add to it while the recovery scan reads it.
        self._lock = threading.Lock()
        self._live: set[str] = set()
        self._streams: dict[str, Stream] = {}
        self._outcomes: dict[str, Once[bool]] = {}
        self._finished: OrderedDict[str, bool] = OrderedDict()
        self._ca_file: str | None = None
        self._started = False
        self._starting: Deferred[None] | None = None
        self._stopping: Deferred[None] | None = None

    @property
    def part_size(self) -> int:
        return self._uploader.part_size

    # -- IAuditStorage, on the recorder's threads

    def open(self, info: AuditStreamInfo) -> SpoolSink:
        """Create the stream's spool file and sidecar (blocking).

        :raises ValueError: for a connection id that is no plain file name.
        :raises OSError: when the spool file cannot be created.
        """
        check_name(info.connection_id)
        path = os.path.join(self.local, info.connection_id)
        with self._lock:
            self._live.add(info.connection_id)
            try:
                file = AppendFile.create(path)
            except BaseException:
                self._live.discard(info.connection_id)
                raise
        log = self._log.bind(connectionId=info.connection_id)
        write_sidecar(self.local, info, log)
        self._reactor.callFromThread(self._opened, Stream(info.connection_id, path, info))
        return SpoolSink(file, info, self.local, self.part_size, self, log)

    # -- SpoolEvents, on the recorder's threads

    def grew(self, connection_id: str, size: int) -> None:
        self._reactor.callFromThread(self._grew, connection_id, size)

    def updated(self, info: AuditStreamInfo) -> None:
        self._reactor.callFromThread(self._updated, info)

    def closed(self, connection_id: str, size: int) -> None:
        self._reactor.callFromThread(self._closed, connection_id, size)

    # -- the reactor's side

    def _opened(self, stream: Stream) -> None:
        self._streams[stream.key] = stream
        if self._started and self._stopping is None:
            self.ship(stream)

    def _grew(self, connection_id: str, size: int) -> None:
        stream = self._streams.get(connection_id)
        if stream is not None and not stream.closed:
            stream.size = max(stream.size, size)
            stream.changed()

    def _updated(self, info: AuditStreamInfo) -> None:
        stream = self._streams.get(info.connection_id)
        if stream is not None:
            stream.info = info

    def _closed(self, connection_id: str, size: int) -> None:
        stream = self._streams.get(connection_id)
        if stream is not None:
            stream.size = size
            stream.closed = True
            stream.changed()

    def adopt(self, stream: Stream) -> bool:
        """Take a recovered stream in; False when a stream of that id is already here."""
        with self._lock:
            if stream.key in self._live:
                return False
            self._live.add(stream.key)
        self._streams[stream.key] = stream
        return True

    def ship(self, stream: Stream, prelude: Prelude | None = None) -> Deferred[bool]:
        """Start uploading ``stream``; the result says whether it was uploaded.

        :param prelude: an async callable run first (the recovery's clean-up).
        """
        log = self._log.bind(connectionId=stream.key)
        stream.task = Deferred.fromCoroutine(self._deliver(stream, log, prelude))
        return stream.task

    async def _deliver(self, stream: Stream, log: CodeLogger, prelude: Prelude | None) -> bool:
        uploaded = False
        try:
            if prelude is not None:
                await prelude(stream, log)
            await self._uploader.ship(stream, log)
            uploaded = True
            for path, reason in await self._calls.local(thd_remove_spooled, self.local, stream.key):
                log.event(
                    messages.AUDIT_S3_REMOVE_FAILED,
                    "Cannot remove {file} after its upload: {reason}",
                    file=path,
                    reason=reason,
                )
        except (GaveUp, CancelledError):
            pass
        except Exception:
            log.failure(messages.UNKNOWN_ERROR, "Uploading the audit log failed: {reason}")
        finally:
            if self._streams.get(stream.key) is stream:
                del self._streams[stream.key]
            with self._lock:
                self._live.discard(stream.key)
            self._finished[stream.key] = uploaded
            while len(self._finished) > FINISHED_KEPT:
                self._finished.popitem(last=False)
            outcome = self._outcomes.pop(stream.key, None)
            if outcome is not None:
                outcome.fire(uploaded)
        return uploaded

    def wait_uploaded(self, connection_id: str) -> Deferred[bool]:
        """Fires when the stream's upload ended: True if uploaded, False if kept locally.

        For a stream this storage ships (opened here, or found by the
        recovery); the last :data:`FINISHED_KEPT` outcomes are remembered, so
        it may be asked a while after the end too.
        """
        if connection_id in self._finished:
            return succeed(self._finished[connection_id])
        outcome = self._outcomes.setdefault(connection_id, Once())
        return outcome.wait()

    def backlog(self) -> AuditBacklog:
        """What waits for the upload (reactor-side; read at each metrics scrape).

        The bytes are those the uploader was told about and has not
        uploaded: the whole parts of open streams (a sink reports its size
        at each part boundary only) and everything of closed ones; the
        streams are those whose upload has not ended.
        """
        waiting = [s.size - s.uploaded for s in self._streams.values()]
        return AuditBacklog(bytes=sum(max(w, 0) for w in waiting), streams=len(waiting))

    def settled(self) -> Deferred[Any]:
        """Fires when the recovery and every upload under way have ended."""
        pending: list[Deferred[Any]] = [
            s.task for s in self._streams.values() if s.task is not None
        ]
        if self._recovery.task is not None:
            pending.append(self._recovery.task)
        return DeferredList(pending, consumeErrors=True)

    # -- IService

    def startService(self) -> Deferred[None]:
        Service.startService(self)
        self._starting = Deferred.fromCoroutine(self._start())
        return shield(self._starting)

    async def _start(self) -> None:
        self._pool.start()
        try:
            if self._settings.cacert:
                self._ca_file = await self._calls.local(thd_write_ca_bundle, self._settings.cacert)
            self._calls.client = await self._calls.local(
                thd_make_client, self._settings, self._ca_file
            )
        except Exception:
            # Logged here: a parent MultiService ignores what startService returns.
            self._log.failure(
                messages.SERVICE_CRASHED,
                "The S3 audit storage cannot start: {reason}; audit logs stay in {local}",
                local=self.local,
            )
            raise
        # Even when a stop came meanwhile (a parent MultiService does not wait
        # for the start): the stop gives what starts here its deadline.
        self._started = True
        for stream in list(self._streams.values()):
            if stream.task is None:
                self.ship(stream)
        self._recovery.start(self.local, self._lock, self._live)

    def stopService(self) -> Deferred[None]:
        # Idempotent: the service tree and a crash may both ask.
        if self._stopping is None:
            Service.stopService(self)
            self._stopping = Deferred.fromCoroutine(self._stop())
        return self._stopping

    async def _stop(self) -> None:
        if self._starting is not None and not self._starting.called:
            # A parent MultiService may stop a child whose start is still
            # under way; the start ends soon (it is local work).
            await settled_within(self._reactor, self.deadline, self._starting)
        if self._started:
            await self._finish_uploads()
        self._recovery.cancel()
        if self._pool.started:
            # Joining the pool's threads waits for their calls (bounded by
            # botocore's timeouts), so it is done from a thread of the reactor's pool.
            reactor_pool = self._reactor.getThreadPool()
            await deferToThreadPool(self._reactor, reactor_pool, self._pool.stop)
            if self._calls.client is not None:
                client, self._calls.client = self._calls.client, None
                await deferToThreadPool(self._reactor, reactor_pool, thd_close_client, client)
        if self._ca_file is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self._ca_file)
            self._ca_file = None

    async def _finish_uploads(self) -> None:
        """Give the closed streams' uploads the deadline; cancel what is left then."""
        self._uploader.stopping = True
        for stream in list(self._streams.values()):
            if not stream.closed and stream.task is not None:
                stream.task.cancel()  # its recorder never closed it: it stays spooled
        self._uploader.hurry()
        pending = self._pending()
        if not pending or await settled_within(
            self._reactor, self.deadline, DeferredList(pending, consumeErrors=True)
        ):
            return
        unfinished = [s for s in self._streams.values() if s.task and not s.task.called]
        self._log.event(
            messages.SERVICE_SHUTDOWN_DEADLINE,
            "Shutdown deadline of {deadline}s expired with {count} audit log uploads "
            "unfinished; they stay in {local} for the next start",
            deadline=self.deadline,
            count=len(unfinished),
            local=self.local,
        )
        for task in self._pending():
            task.cancel()

    def _pending(self) -> list[Deferred[Any]]:
        tasks: list[Deferred[Any]] = [
            s.task for s in self._streams.values() if s.task is not None and not s.task.called
        ]
        if self._recovery.task is not None and not self._recovery.task.called:
            tasks.append(self._recovery.task)
        return tasks

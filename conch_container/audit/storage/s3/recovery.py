"""Uploading what an earlier run of the gateway left in the spool directory.

A gateway that was killed, or whose uploads did not finish by the shutdown
deadline, leaves streams in ``audit.s3.local``. At the next start each one
is taken up as ContainerSSH does: the multipart uploads an earlier run
started for its key are listed and aborted (they can never be completed:
the part list died with that run), its sidecar is read for the object
metadata, and the whole file is uploaded (in one request when it is no
larger than a part, in parts otherwise), then deleted.

It all runs in the background, at most ``parallelUploads`` streams at a
time, under the same retry rules and the same transfer limit as live
uploads; the gateway serves connections meanwhile.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, DeferredList, DeferredSemaphore

from conch_container import messages
from conch_container.audit.storage.s3.sidecar import read_sidecar
from conch_container.audit.storage.s3.spool import (
    Spooled,
    thd_remove_orphan,
    thd_scan,
)
from conch_container.audit.storage.s3.uploader import S3Calls, Stream, Uploader
from conch_container.interfaces import AuditStreamInfo
from conch_container.log import CodeLogger

if TYPE_CHECKING:
    import threading

    from conch_container.audit.storage.s3.storage import S3Storage


class Recovery:
    """The recovery of one start of the storage.

    :param storage: takes the recovered streams in and ships them.
    :param concurrency: how many recovered streams are worked on at once.
    """

    def __init__(
        self,
        storage: S3Storage,
        calls: S3Calls,
        uploader: Uploader,
        concurrency: int,
        log: CodeLogger,
    ) -> None:
        self._storage = storage
        self._log = log
        self._calls = calls
        self._uploader = uploader
        self._slots = DeferredSemaphore(concurrency)
        self._local = ""
        #: Fires when every recovered stream's upload ended.
        self.task: Deferred[None] | None = None

    def start(self, local: str, lock: threading.Lock, live: set[str]) -> None:
        self._local = local
        self.task = Deferred.fromCoroutine(self._run(lock, live))

    def cancel(self) -> None:
        if self.task is not None and not self.task.called:
            self.task.cancel()

    async def _run(self, lock: threading.Lock, live: set[str]) -> None:
        try:
            scan = await self._calls.local(thd_scan, self._local, lock, live)
        except OSError as error:
            self._log.event(
                messages.AUDIT_S3_FAILED_STAT_QUEUE_ENTRY,
                "Cannot list the spool directory {local}: {reason}",
                local=self._local,
                reason=str(error),
            )
            return
        for name in scan.vanished:
            self._log.event(
                messages.AUDIT_S3_NO_SUCH_QUEUE_ENTRY,
                "The audit log {file} disappeared before it could be recovered",
                file=os.path.join(self._local, name),
            )
        for name, reason in scan.unreadable:
            self._log.event(
                messages.AUDIT_S3_FAILED_STAT_QUEUE_ENTRY,
                "Cannot look at {file} in the spool directory: {reason}",
                file=os.path.join(self._local, name),
                reason=reason,
            )
        for connection_id in scan.orphans:
            await self._remove_orphan(connection_id)
        tasks: list[Deferred[bool]] = []
        for spooled in scan.streams:
            await self._slots.acquire()
            stream = Stream(
                spooled.connection_id,
                os.path.join(self._local, spooled.connection_id),
                fallback_info(spooled),
                size=spooled.size,
                closed=True,
            )
            if not self._storage.adopt(stream):
                self._slots.release()
                continue
            task = self._storage.ship(stream, self._prelude)
            task.addBoth(self._release)
            tasks.append(task)
        await DeferredList(tasks, consumeErrors=True)

    def _release(self, result: Any) -> Any:
        self._slots.release()
        return result

    async def _remove_orphan(self, connection_id: str) -> None:
        log = self._log.bind(connectionId=connection_id)
        log.event(
            messages.AUDIT_S3_NO_SUCH_QUEUE_ENTRY,
            "The metadata file of audit log {connectionId} was left without its audit log; "
            "removing it",
        )
        try:
            await self._calls.local(thd_remove_orphan, self._local, connection_id)
        except OSError as error:
            log.event(
                messages.AUDIT_S3_REMOVE_FAILED,
                "Cannot remove the metadata file of audit log {connectionId}: {reason}",
                reason=str(error),
            )

    async def _prelude(self, stream: Stream, log: CodeLogger) -> None:
        log.event(
            messages.AUDIT_S3_RECOVERING,
            "Recovering the audit log {file} ({size} bytes) left by an earlier run",
            file=stream.path,
            size=stream.size,
        )
        await self._uploader.abort_stale(stream.key, log)
        try:
            stream.info = await self._calls.local(read_sidecar, self._local, stream.key)
        except (OSError, ValueError) as error:
            log.event(
                messages.AUDIT_S3_FAILED_READING_METADATA_FILE,
                "Cannot read the metadata file of the audit log ({reason}); uploading it "
                "with the spool file's modification time as its timestamp",
                reason=str(error) or type(error).__name__,
            )


def fallback_info(spooled: Spooled) -> AuditStreamInfo:
    """What is known of a spooled stream whose sidecar is unreadable: its time, roughly."""
    return AuditStreamInfo(
        connection_id=spooled.connection_id,
        start_time=int(spooled.mtime),
        remote_addr="",
    )

"""Shipping one spooled stream to S3: parts while it grows, the rest when it ends.

Reactor-side. Every S3 call goes through :class:`S3Calls` to the storage's
own thread pool; a stream waiting for data or for a retry holds no thread,
only a suspended coroutine.

The bytes of part *n* are always ``[(n-1)·size, n·size)`` of the spool file,
``size`` being ``uploadPartSize``: every part but the last is exactly the
part size (so never under S3's 5 MiB minimum), and the last takes whatever
is left. Part numbers start at 1, as S3 requires (ContainerSSH numbers from 0).

Failures are retried when trying again can help (:attr:`S3Error.retryable`),
after a growing, jittered pause (:class:`RetryPolicy`); each failed attempt is
logged under the step's code. Anything else ends the stream's upload
(:class:`GaveUp`): its file stays in the spool directory, and the next start
uploads it whole.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import attrs
from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.internet.interfaces import IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from conch_container import messages
from conch_container.audit.storage.s3.client import (
    S3Error,
    thd_abort_multipart,
    thd_complete_multipart,
    thd_create_multipart,
    thd_list_multipart,
    thd_put_object,
    thd_upload_part,
)
from conch_container.audit.storage.s3.sidecar import object_metadata
from conch_container.codes import Level, MessageCode
from conch_container.deferreds import shield
from conch_container.interfaces import AuditStreamInfo
from conch_container.log import CodeLogger

T = TypeVar("T")

#: The longest pause between two attempts once the gateway is stopping: the
#: shutdown deadline is short, and S3 may well be back.
STOPPING_PAUSE = 1.0


@attrs.frozen
class RetryPolicy:
    """How long to wait before trying a failed call again.

    The ``n``-th retry waits a random time between half and all of
    ``min(maximum, initial · factor^(n-1))`` seconds: growing, so that an
    outage is not hammered, and spread, so that the streams that failed
    together do not all come back at once.
    """

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 60.0

    def pause(self, attempt: int, rng: random.Random) -> float:
        # The exponent is capped: an outage of a day means thousands of
        # attempts, and factor ** thousands overflows a float.
        growth = self.factor ** min(max(attempt - 1, 0), 64)
        ceiling = min(self.maximum, self.initial * growth)
        return rng.uniform(ceiling / 2, ceiling)


class GaveUp(Exception):
    """An upload step failed in a way retrying cannot mend; it was logged."""


@attrs.frozen
class Step:
    """One kind of S3 call, with the codes and texts its attempts are logged with."""

    failed: MessageCode
    failed_text: str
    starting: MessageCode | None = None
    starting_text: str = ""
    done: MessageCode | None = None
    done_text: str = ""
    #: Whether a permanent failure ends the stream's upload (False: go on without).
    essential: bool = True


PUT = Step(
    messages.AUDIT_S3_SINGLE_UPLOAD_FAILED,
    "Uploading the audit log failed: {reason}",
    messages.AUDIT_S3_SINGLE_UPLOAD,
    "Uploading the audit log ({size} bytes) in a single upload",
    messages.AUDIT_S3_SINGLE_UPLOAD_COMPLETE,
    "Uploaded the audit log ({size} bytes)",
)
CREATE = Step(
    messages.AUDIT_S3_MULTIPART_UPLOAD_INITIALIZATION_FAILED,
    "Starting the multipart upload of the audit log failed: {reason}",
    messages.AUDIT_S3_MULTIPART_UPLOAD,
    "Starting a multipart upload of the audit log",
)
PART = Step(
    messages.AUDIT_S3_MULTIPART_PART_UPLOAD_FAILED,
    "Uploading part {part} of the audit log failed: {reason}",
    messages.AUDIT_S3_MULTIPART_PART_UPLOADING,
    "Uploading part {part} of the audit log ({size} bytes)",
    messages.AUDIT_S3_MULTIPART_PART_UPLOAD_COMPLETE,
    "Uploaded part {part} of the audit log ({size} bytes)",
)
COMPLETE = Step(
    messages.AUDIT_S3_MULTIPART_UPLOAD_FINALIZATION_FAILED,
    "Finishing the multipart upload of the audit log failed: {reason}",
    messages.AUDIT_S3_MULTIPART_UPLOAD_FINALIZING,
    "Finishing the multipart upload of the audit log from {parts} parts",
    messages.AUDIT_S3_MULTIPART_UPLOAD_FINALIZED,
    "Finished the multipart upload of the audit log ({size} bytes in {parts} parts)",
)
LIST = Step(
    messages.AUDIT_S3_MULTIPART_FAILED_LIST,
    "Listing the unfinished multipart uploads of the audit log failed: {reason}",
    essential=False,
)
ABORT = Step(
    messages.AUDIT_S3_MULTIPART_FAILED_ABORT,
    "Aborting the multipart upload {uploadId} left by an earlier run failed: {reason}",
    messages.AUDIT_S3_MULTIPART_ABORTING,
    "Aborting the multipart upload {uploadId} left by an earlier run",
    essential=False,
)


@attrs.define(eq=False)
class Stream:
    """One audit stream on its way to S3.

    :ivar key: the object key, the connection id.
    :ivar path: the spool file.
    :ivar info: what is known of the connection (for the object metadata).
    :ivar size: the bytes the spool file holds, as the sink last said.
    :ivar closed: whether the sink was closed (``size`` is final).
    """

    key: str
    path: str
    info: AuditStreamInfo
    size: int = 0
    closed: bool = False
    upload_id: str | None = None
    etags: list[str] = attrs.Factory(list)
    uploaded: int = 0
    task: Deferred[bool] | None = None
    _wake: Deferred[None] | None = None

    def changed(self) -> None:
        """The spool grew or was closed: wake the upload if it waits for that."""
        wake, self._wake = self._wake, None
        if wake is not None and not wake.called:
            wake.callback(None)

    def wait(self) -> Deferred[None]:
        self._wake = Deferred()
        return self._wake


class S3Calls:
    """The reactor's side of the botocore client: each call runs on ``pool``.

    :param slots: what transfers (part uploads and single uploads) take a
        place in, so that at most so many run at once across the gateway.
    """

    def __init__(self, reactor: Any, pool: ThreadPool, slots: DeferredSemaphore) -> None:
        self._reactor = reactor
        self._pool = pool
        self._slots = slots
        self.client: Any = None

    def local(self, f: Callable[..., T], *args: Any) -> Deferred[T]:
        """Call a blocking local function (files) on the pool."""
        return deferToThreadPool(self._reactor, self._pool, f, *args)

    def run(self, f: Callable[..., T], *args: Any) -> Deferred[T]:
        """Call ``f(client, *args)`` on the pool; ``f`` is a ``thd_*`` function."""
        return deferToThreadPool(self._reactor, self._pool, f, self.client, *args)

    async def transfer(self, f: Callable[..., T], *args: Any) -> T:
        """:meth:`run` a transfer once it has a slot.

        The slot is given back when the thread is done with the call, not
        when the waiting is (a cancelled wait leaves the call running): the
        limit holds for what really goes over the network.
        """
        await self._slots.acquire()
        call = self.run(f, *args)

        def release(result: T | Failure) -> T | Failure:
            self._slots.release()
            return result

        call.addBoth(release)
        return await shield(call)


class Uploader:
    """Uploads streams with retries; knows nothing of sinks or of the spool directory.

    :param calls: the S3 client, reactor-side.
    :param clock: for the pauses between attempts.
    :param bucket, acl, part_size: from ``audit.s3``.
    :param metadata: which optional object metadata to set (``username``, ``ip``).
    """

    def __init__(
        self,
        calls: S3Calls,
        clock: IReactorTime,
        *,
        bucket: str,
        acl: str,
        part_size: int,
        metadata: dict[str, bool],
        retry: RetryPolicy,
        rng: random.Random,
    ) -> None:
        self._calls = calls
        self._clock = clock
        self._bucket = bucket
        self._acl = acl
        self.part_size = part_size
        self._metadata = metadata
        self._retry = retry
        self._rng = rng
        self._pauses: dict[Deferred[None], Callable[[], None]] = {}
        #: Set when the gateway stops: pauses are cut short.
        self.stopping = False

    async def ship(self, stream: Stream, log: CodeLogger) -> None:
        """Upload ``stream``: parts as it grows, the rest once it is closed.

        :raises GaveUp: when it cannot be uploaded (logged already).
        """
        size = self.part_size
        while not stream.closed:
            if stream.size - stream.uploaded >= size:
                await self._part(stream, log, size)
            else:
                await stream.wait()
        if stream.upload_id is None and stream.size <= size:
            await self._put(stream, log)
            return
        while stream.size - stream.uploaded > size:
            await self._part(stream, log, size)
        if stream.size > stream.uploaded:
            await self._part(stream, log, stream.size - stream.uploaded)
        await self._call(
            COMPLETE,
            log,
            {"parts": len(stream.etags), "size": stream.size, "uploadId": stream.upload_id},
            lambda: self._calls.run(
                thd_complete_multipart,
                self._bucket,
                stream.key,
                stream.upload_id,
                list(stream.etags),
            ),
        )

    async def abort_stale(self, key: str, log: CodeLogger) -> None:
        """Abort the multipart uploads of ``key`` that an earlier run left unfinished.

        Best effort: what cannot be listed or aborted is logged, and only costs
        storage until a bucket lifecycle rule removes it.
        """
        try:
            stale = await self._call(
                LIST, log, {}, partial(self._calls.run, thd_list_multipart, self._bucket, key)
            )
        except GaveUp:
            return
        for upload_id in stale:
            try:
                await self._call(
                    ABORT,
                    log,
                    {"uploadId": upload_id},
                    partial(self._calls.run, thd_abort_multipart, self._bucket, key, upload_id),
                )
            except GaveUp:
                continue

    def hurry(self) -> None:
        """End every pause now (the gateway is stopping: one more attempt at once)."""
        for wake in list(self._pauses.values()):
            wake()

    def _object_metadata(self, stream: Stream) -> dict[str, str]:
        return object_metadata(
            stream.info,
            username=self._metadata.get("username", False),
            ip=self._metadata.get("ip", False),
        )

    async def _put(self, stream: Stream, log: CodeLogger) -> None:
        metadata = self._object_metadata(stream)
        await self._call(
            PUT,
            log,
            {"size": stream.size},
            lambda: self._calls.transfer(
                thd_put_object,
                self._bucket,
                stream.key,
                stream.path,
                stream.size,
                metadata,
                self._acl,
            ),
        )
        stream.uploaded = stream.size

    async def _part(self, stream: Stream, log: CodeLogger, length: int) -> None:
        if stream.upload_id is None:
            metadata = self._object_metadata(stream)
            stream.upload_id = await self._call(
                CREATE,
                log,
                {},
                lambda: self._calls.run(
                    thd_create_multipart, self._bucket, stream.key, metadata, self._acl
                ),
            )
        upload_id = stream.upload_id
        number = len(stream.etags) + 1
        offset = stream.uploaded
        etag = await self._call(
            PART,
            log,
            {"part": number, "size": length, "uploadId": upload_id},
            lambda: self._calls.transfer(
                thd_upload_part,
                self._bucket,
                stream.key,
                upload_id,
                number,
                stream.path,
                offset,
                length,
            ),
        )
        stream.etags.append(etag)
        stream.uploaded += length

    async def _call(
        self,
        step: Step,
        log: CodeLogger,
        fields: dict[str, Any],
        call: Callable[[], Awaitable[T]],
    ) -> T:
        """Make ``call`` until it succeeds or fails for good, logging each attempt.

        :raises GaveUp: on a failure that is not worth retrying.
        """
        attempt = 0
        while True:
            attempt += 1
            if step.starting is not None:
                log.event(step.starting, step.starting_text, attempt=attempt, **fields)
            try:
                result: T = await call()
            except S3Error as error:
                if not error.retryable:
                    self._gave_up(step, log, fields, error)
                    raise GaveUp(str(error)) from error
                pause = self._retry.pause(attempt, self._rng)
                if self.stopping:
                    pause = min(pause, STOPPING_PAUSE)
                log.event(
                    step.failed,
                    step.failed_text + "; trying again in {pause:.1f} s (attempt {attempt})",
                    reason=str(error),
                    pause=pause,
                    attempt=attempt,
                    **fields,
                )
                await self._pause(pause)
                continue
            if step.done is not None:
                log.event(step.done, step.done_text, attempt=attempt, **fields)
            return result

    def _gave_up(self, step: Step, log: CodeLogger, fields: dict[str, Any], error: S3Error) -> None:
        if not step.essential:
            log.event(step.failed, step.failed_text, reason=str(error), **fields)
            return
        # Logged as an error, above the code's own level: this audit log will
        # not reach S3 until the operator mends the cause and restarts.
        log.event(
            step.failed,
            step.failed_text + "; the audit log stays in the spool directory until the next start",
            level=Level.ERROR,
            reason=str(error),
            s3Code=error.code,
            status=error.status,
            **fields,
        )

    def _pause(self, seconds: float) -> Deferred[None]:
        """Wait ``seconds`` (less if :meth:`hurry` is called); cancellable."""

        def cancel(d: Deferred[None]) -> None:
            self._pauses.pop(d, None)
            if timer.active():
                timer.cancel()

        d: Deferred[None] = Deferred(cancel)

        def wake() -> None:
            self._pauses.pop(d, None)
            if timer.active():
                timer.cancel()
            if not d.called:
                d.callback(None)

        timer = self._clock.callLater(seconds, wake)
        self._pauses[d] = wake
        return d

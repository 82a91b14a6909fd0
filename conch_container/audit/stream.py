"""One connection's audit stream on its way to storage, off the reactor thread.

Messages are made on the reactor thread, as the connection's events happen,
and queued here. Encoding (CBOR and gzip for the ``binary`` format) and
writing (a file, the S3 spool) run on the audit log's own bounded thread
pool, one batch at a time per stream: whatever was queued while the previous
batch was written goes as the next batch, encoded, flushed and appended in
one call. So a busy session costs one pool call per batch rather than one per
message, the reactor never waits on a disk, and every batch ends with a
flush: a gateway killed at any moment leaves a stream that decodes up to the
last batch written.

Memory stays bounded in every case:

- *The storage is slower than the session*: once more than
  :attr:`StreamLimits.high_water` bytes wait, the stream asks the
  connection's channels to hold their data back (``on_pressure(True)``), as a
  client's full window does, and lets them go again below
  :attr:`StreamLimits.low_water`. Nothing is lost; the session runs at the
  speed of the storage.
- *The storage stalls* (a write that does not return within
  :attr:`StreamLimits.stall_timeout`: a hung network filesystem): holding the
  session any longer would freeze it for good, so the stream lets the
  channels go and drops (and counts) what comes meanwhile, logging
  ``AUDIT_STREAM_STALLED``; once the write returns, recording goes on and
  ``AUDIT_STREAM_RESUMED`` says how much is missing in between.
- *The storage fails* (a write raises): the stream is given up, logged with
  ``AUDIT_STREAM_FAILED``, and what comes afterwards is counted, never kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from conch_container import messages
from conch_container.audit.message import AuditMessage
from conch_container.deferreds import Once
from conch_container.interfaces import AuditStreamInfo, IAuditEncoder, IAuditSink, IAuditStorage
from conch_container.log.logger import CodeLogger


@attrs.frozen
class StreamLimits:
    """How much a stream may hold, and how long a write may take.

    :ivar high_water: bytes waiting (queued or being written) above which the
        connection's channels hold their data back.
    :ivar low_water: bytes waiting below which they may send again.
    :ivar stall_timeout: seconds a write may take before the storage counts
        as stalled and the session is let go.
    :ivar batch_bytes: bytes worth writing at once: a batch starts as soon
        as this much waits...
    :ivar batch_delay: ...or this many seconds after its first message. A
        busy session so costs one hand-over to the pool per quarter MiB, not
        one per chunk of output; a quiet one is on disk within milliseconds.
    """

    high_water: int = 1024 * 1024
    low_water: int = 256 * 1024
    stall_timeout: float = 30.0
    batch_bytes: int = 256 * 1024
    batch_delay: float = 0.005


DEFAULT_LIMITS = StreamLimits()


class AuditStream:
    """The queue and the writer of one connection's audit stream.

    :param reactor: the clock and the thread pool's result delivery.
    :param pool: the audit log's thread pool.
    :param encoder: the format's :class:`~conch_container.interfaces.IAuditEncoder`
        for this stream (used on the pool only).
    :param storage: the :class:`~conch_container.interfaces.IAuditStorage`;
        the sink is opened with the first batch, on the pool.
    :param info: what the storage is told about the stream at first.
    :param log: the connection's logger.
    :param on_pressure: called with True when the session should hold its
        data back, with False when it may send again.
    """

    def __init__(
        self,
        *,
        reactor: Any,
        pool: ThreadPool,
        encoder: IAuditEncoder,
        storage: IAuditStorage,
        info: AuditStreamInfo,
        log: CodeLogger,
        on_pressure: Callable[[bool], None],
        limits: StreamLimits = DEFAULT_LIMITS,
    ) -> None:
        self._reactor = reactor
        self._pool = pool
        self._encoder = encoder
        self._storage = storage
        self._info = info
        self._info_changed = False
        self._log = log
        self._on_pressure = on_pressure
        self._limits = limits
        self._sink: IAuditSink | None = None  # touched on the pool only
        self._queue: list[AuditMessage] = []
        self._queued_bytes = 0
        self._writing_bytes = 0
        self._writing = False
        self._pressure = False
        self._stall_call: IDelayedCall | None = None
        self._batch_call: IDelayedCall | None = None
        self._stalled = False
        self._failed = False
        self._dropped_messages = 0
        self._dropped_bytes = 0
        self._closing = False
        self._done: Once[None] = Once()

    @property
    def waiting(self) -> int:
        """Bytes queued or being written."""
        return self._queued_bytes + self._writing_bytes

    def add(self, message: AuditMessage, size: int, *, essential: bool = False) -> None:
        """Queue ``message``, which holds about ``size`` bytes of data.

        :param essential: keep it even while the storage is stalled (a
            connection's last message, so that the stream ends properly).
        """
        if self._closing:
            return
        if self._failed or (self._stalled and not essential):
            self._dropped_messages += 1
            self._dropped_bytes += size
            return
        self._queue.append(message)
        self._queued_bytes += size
        self._update_pressure()
        self._write_soon()

    def update(self, info: AuditStreamInfo) -> None:
        """The storage learns ``info`` with the next batch."""
        self._info = info
        self._info_changed = True

    def close(self) -> Deferred[None]:
        """Write what is queued, end the stream and close the sink; fires when done.

        Never fails: a storage failure is logged.
        """
        if not self._closing:
            self._closing = True
            self._write_next()
        return self._done.wait()

    # Writing, one batch at a time.

    def _write_soon(self) -> None:
        """Write now if a batch's worth waits; otherwise after ``batch_delay``."""
        if self._writing:
            return
        if self._queued_bytes >= self._limits.batch_bytes:
            self._write_next()
        elif self._batch_call is None:
            self._batch_call = self._reactor.callLater(self._limits.batch_delay, self._write_next)

    def _write_next(self) -> None:
        if self._batch_call is not None:
            if self._batch_call.active():
                self._batch_call.cancel()
            self._batch_call = None
        if self._writing or self._done.done:
            return
        if not self._queue and not self._closing:
            return
        if self._failed:
            if self._closing:
                self._finish()
            return
        batch, self._queue = self._queue, []
        self._writing_bytes, self._queued_bytes = self._queued_bytes, 0
        tell, self._info_changed = self._info_changed, False
        final = self._closing
        self._writing = True
        self._stall_call = self._reactor.callLater(self._limits.stall_timeout, self._stall)
        d = deferToThreadPool(
            self._reactor,
            self._pool,
            self._thd_write,
            batch,
            self._info,
            tell,
            final,
        )
        d.addCallbacks(self._written, self._write_failed, callbackArgs=(final,))

    def _thd_write(
        self, batch: Sequence[AuditMessage], info: AuditStreamInfo, tell: bool, final: bool
    ) -> None:
        """On the pool: encode ``batch``, flush, append; end the stream if ``final``."""
        sink = self._sink
        if sink is None:
            sink = self._sink = IAuditSink(self._storage.open(info))
        elif tell:
            sink.update(info)
        encoder = self._encoder
        chunks = [encoder.encode(message) for message in batch]
        chunks.append(encoder.flush())
        if final:
            chunks.append(encoder.finish())
        data = b"".join(chunks)
        if data:
            sink.write(data)
        if final:
            sink.close()

    def _thd_close_after_failure(self) -> None:
        """On the pool: release the sink of a failed stream (whatever it holds stays)."""
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.close()

    def _written(self, ignored: None, final: bool) -> None:
        self._batch_done()
        if final:
            self._finish()
        elif self._closing:
            self._write_next()
        elif self._queue:
            self._write_soon()

    def _write_failed(self, failure: Failure) -> None:
        self._batch_done()
        self._failed = True
        self._dropped_messages += len(self._queue)
        self._dropped_bytes += self._queued_bytes
        self._queue, self._queued_bytes = [], 0
        self._log.failure(
            messages.AUDIT_STREAM_FAILED,
            "The audit log of this connection could not be written: {reason}; "
            "nothing more is recorded for it",
            failure,
        )
        self._update_pressure()
        if self._sink is not None:
            d = deferToThreadPool(self._reactor, self._pool, self._thd_close_after_failure)
            d.addErrback(lambda _: None)  # the failure was logged; the file stays as it is
        if self._closing:
            self._finish()

    def _batch_done(self) -> None:
        self._writing = False
        self._writing_bytes = 0
        if self._stall_call is not None and self._stall_call.active():
            self._stall_call.cancel()
        self._stall_call = None
        if self._stalled:
            self._stalled = False
            self._log.event(
                messages.AUDIT_STREAM_RESUMED,
                "The audit storage is writing again; {messages} messages ({bytes} bytes) "
                "of this connection were not recorded meanwhile",
                messages=self._dropped_messages,
                bytes=self._dropped_bytes,
            )
            self._dropped_messages = self._dropped_bytes = 0
        self._update_pressure()

    def _stall(self) -> None:
        self._stall_call = None
        self._stalled = True
        self._log.event(
            messages.AUDIT_STREAM_STALLED,
            "The audit storage took more than {timeout} seconds to write; this connection "
            "goes on unrecorded until it catches up",
            timeout=self._limits.stall_timeout,
        )
        # What waits is kept (it is bounded by the high-water mark); what
        # comes from now on is counted and dropped.
        self._update_pressure()

    def _finish(self) -> None:
        if self._done.done:
            return
        if self._failed and (self._dropped_messages or self._dropped_bytes):
            self._log.event(
                messages.AUDIT_STREAM_FAILED,
                "{messages} messages ({bytes} bytes) of this connection were not recorded",
                messages=self._dropped_messages,
                bytes=self._dropped_bytes,
            )
        self._done.fire(None)

    # Pressure on the session.

    def _update_pressure(self) -> None:
        if self._failed or self._stalled:
            wanted = False
        elif self._pressure:
            wanted = self.waiting > self._limits.low_water
        else:
            wanted = self.waiting > self._limits.high_water
        if wanted != self._pressure:
            self._pressure = wanted
            self._on_pressure(wanted)

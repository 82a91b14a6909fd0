"""An audit stream: batches on the pool, bounded memory, pressure, stalls and failures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from twisted.logger import ILogObserver
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from conch_container.audit.message import AuditMessage, MessageType
from conch_container.audit.stream import AuditStream, StreamLimits
from conch_container.interfaces import AuditStreamInfo, IAuditEncoder, IAuditSink, IAuditStorage
from conch_container.log.logger import CodeLogger
from conch_container.testing.threads import SynchronousReactorThreads

INFO = AuditStreamInfo(connection_id="c0ffee", start_time=1, remote_addr="192.0.2.1")


class ManualPool:
    """A pool whose work runs when the test says so, one item at a time."""

    def __init__(self) -> None:
        self.work: list[tuple[Callable[[bool, Any], object] | None, Callable[[], Any]]] = []

    def callInThreadWithCallback(
        self, onResult: Callable[[bool, Any], object] | None, func: Any, *args: Any, **kw: Any
    ) -> None:
        self.work.append((onResult, lambda: func(*args, **kw)))

    def run_next(self) -> None:
        onResult, call = self.work.pop(0)
        try:
            result = call()
        except BaseException as e:
            if onResult is not None:
                onResult(False, e)
            return
        if onResult is not None:
            onResult(True, result)

    def run_all(self) -> None:
        while self.work:
            self.run_next()


@implementer(IAuditEncoder)
class TextEncoder:
    """Messages as lines; a flush marker; a trailer."""

    def encode(self, message: Any) -> bytes:
        return f"{message.type}:{message.payload}\n".encode()

    def flush(self) -> bytes:
        return b"F\n"

    def finish(self) -> bytes:
        return b"END\n"


@implementer(IAuditSink)
class MemorySink:
    def __init__(self, storage: MemoryStorage, info: AuditStreamInfo) -> None:
        self.storage = storage
        self.infos = [info]
        self.data = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.storage.fail_writes:
            raise OSError(28, "No space left on device")
        self.data += data

    def update(self, info: AuditStreamInfo) -> None:
        self.infos.append(info)

    def close(self) -> None:
        self.closed = True


@implementer(IAuditStorage)
class MemoryStorage:
    name = "memory"

    def __init__(self) -> None:
        self.sinks: list[MemorySink] = []
        self.fail_writes = False

    def open(self, info: AuditStreamInfo) -> MemorySink:
        sink = MemorySink(self, info)
        self.sinks.append(sink)
        return sink


def io_message(data: bytes) -> AuditMessage:
    return AuditMessage(
        connection_id="c0ffee",
        timestamp=1,
        type=MessageType.IO,
        payload={"stream": 1, "data": data},
        channel_id=0,
    )


class StreamCase(SynchronousTestCase):
    """A stream on a pool the test runs by hand, a clock, a storage in memory."""

    limits = StreamLimits()

    def setUp(self) -> None:
        self.reactor = SynchronousReactorThreads()
        self.pool = ManualPool()
        self.storage = MemoryStorage()
        self.events: list[dict[str, Any]] = []
        self.pressure: list[bool] = []
        self.stream = AuditStream(
            reactor=self.reactor,
            pool=cast(ThreadPool, self.pool),
            encoder=TextEncoder(),
            storage=self.storage,
            info=INFO,
            log=CodeLogger("tests.audit", observer=cast(ILogObserver, self.events.append)),
            on_pressure=self.pressure.append,
            limits=self.limits,
        )

    def codes(self) -> list[str]:
        return [e["code"] for e in self.events if "code" in e]


class StreamTests(StreamCase):
    #: Every message is written at once (batching is tested on its own).
    limits = StreamLimits(high_water=1000, low_water=300, stall_timeout=30.0, batch_bytes=0)

    def test_batches(self) -> None:
        """What arrives while a batch is written goes as one next batch, each flushed."""
        self.stream.add(io_message(b"a"), 10)
        self.assertEqual(len(self.pool.work), 1)
        self.stream.add(io_message(b"b"), 10)
        self.stream.add(io_message(b"c"), 10)
        self.assertEqual(len(self.pool.work), 1, "one batch in flight per stream")
        self.pool.run_next()
        [sink] = self.storage.sinks
        self.assertEqual(sink.data, b"500:{'stream': 1, 'data': b'a'}\nF\n")
        self.assertEqual(len(self.pool.work), 1)
        self.pool.run_next()
        self.assertEqual(sink.data.count(b"F\n"), 2)
        self.assertIn(b"b'b'}\n500:{'stream': 1, 'data': b'c'}\nF\n", sink.data)

    def test_close(self) -> None:
        """Closing writes what waits, the trailer, and closes the sink; then it fires."""
        self.stream.add(io_message(b"a"), 10)
        done = self.stream.close()
        self.assertNoResult(done)
        self.pool.run_all()
        self.successResultOf(done)
        [sink] = self.storage.sinks
        self.assertTrue(sink.closed)
        self.assertTrue(sink.data.endswith(b"F\nEND\n"))

    def test_info_update(self) -> None:
        """The sink learns new information with the next batch."""
        self.stream.add(io_message(b"a"), 10)
        self.pool.run_all()
        updated = AuditStreamInfo(
            connection_id="c0ffee", start_time=1, remote_addr="192.0.2.1", username="u"
        )
        self.stream.update(updated)
        self.stream.add(io_message(b"b"), 10)
        self.pool.run_all()
        self.assertEqual(self.storage.sinks[0].infos, [INFO, updated])

    def test_pressure(self) -> None:
        """Above the high-water mark the session is held back; below the low one let go."""
        self.stream.add(io_message(b"a"), 600)
        self.assertEqual(self.pressure, [])
        self.stream.add(io_message(b"b"), 600)
        self.assertEqual(self.pressure, [True])
        self.pool.run_next()  # the first; the second is being written now
        self.assertEqual(self.pressure, [True])
        self.assertEqual(self.stream.waiting, 600)
        self.pool.run_next()
        self.assertEqual(self.pressure, [True, False])
        self.assertEqual(self.stream.waiting, 0)

    def test_stall(self) -> None:
        """A write that hangs lets the session go; what comes meanwhile is counted, then resumed."""
        self.stream.add(io_message(b"a"), 600)
        self.stream.add(io_message(b"b"), 600)
        self.assertEqual(self.pressure, [True])
        self.reactor.advance(30)
        self.assertEqual(self.pressure, [True, False])
        self.assertIn("AUDIT_STREAM_STALLED", self.codes())
        self.stream.add(io_message(b"lost"), 50)
        self.stream.add(io_message(b"lost"), 50)
        self.pool.run_all()
        resumed = [e for e in self.events if e.get("code") == "AUDIT_STREAM_RESUMED"]
        self.assertEqual(len(resumed), 1)
        self.assertEqual((resumed[0]["messages"], resumed[0]["bytes"]), (2, 100))
        self.assertNotIn(b"lost", self.storage.sinks[0].data)
        self.stream.add(io_message(b"kept"), 50)
        self.pool.run_all()
        self.assertIn(b"kept", self.storage.sinks[0].data)

    def test_stall_keeps_essential(self) -> None:
        """The last message is kept even while the storage stalls."""
        self.stream.add(io_message(b"a"), 10)
        self.reactor.advance(30)
        self.stream.add(
            AuditMessage(connection_id="c0ffee", timestamp=2, type=MessageType.DISCONNECT),
            10,
            essential=True,
        )
        done = self.stream.close()
        self.pool.run_all()
        self.successResultOf(done)
        self.assertIn(b"\n1:None\n", self.storage.sinks[0].data)

    def test_failure(self) -> None:
        """A storage that fails is given up, logged with the loss, never raised; close fires."""
        self.stream.add(io_message(b"a"), 10)
        self.storage.fail_writes = True
        self.pool.run_all()
        self.assertIn("AUDIT_STREAM_FAILED", self.codes())
        self.stream.add(io_message(b"b"), 10)
        self.assertEqual(self.pool.work, [], "nothing more is written")
        done = self.stream.close()
        self.pool.run_all()
        self.successResultOf(done)
        self.assertTrue(self.storage.sinks[0].closed)
        last = [e for e in self.events if e.get("code") == "AUDIT_STREAM_FAILED"][-1]
        self.assertEqual((last["messages"], last["bytes"]), (1, 10))

    def test_failure_releases_pressure(self) -> None:
        """A failed stream never holds the session back."""
        self.stream.add(io_message(b"a"), 600)
        self.stream.add(io_message(b"b"), 600)
        self.storage.fail_writes = True
        self.pool.run_next()
        self.assertEqual(self.pressure, [True, False])


class BatchingTests(StreamCase):
    limits = StreamLimits(
        high_water=10_000, low_water=300, stall_timeout=30.0, batch_bytes=500, batch_delay=0.005
    )

    def test_small_messages_wait_a_moment(self) -> None:
        """Small messages go together after the batch delay, in one write."""
        for _ in range(3):
            self.stream.add(io_message(b"x"), 10)
        self.assertEqual(self.pool.work, [])
        self.reactor.advance(0.005)
        self.assertEqual(len(self.pool.work), 1)
        self.pool.run_all()
        self.assertEqual(self.storage.sinks[0].data.count(b"F\n"), 1)
        self.assertEqual(self.storage.sinks[0].data.count(b"b'x'"), 3)

    def test_a_batch_worth_goes_at_once(self) -> None:
        """Once a batch's worth waits it is written without waiting for the delay."""
        self.stream.add(io_message(b"x"), 10)
        self.stream.add(io_message(b"y"), 600)
        self.assertEqual(len(self.pool.work), 1)
        self.pool.run_all()
        self.reactor.advance(1)
        self.assertEqual(self.pool.work, [], "the cancelled timer writes nothing more")

    def test_close_does_not_wait(self) -> None:
        """Closing writes what waits at once."""
        self.stream.add(io_message(b"x"), 10)
        done = self.stream.close()
        self.assertEqual(len(self.pool.work), 1)
        self.pool.run_all()
        self.successResultOf(done)

"""The warm pool's bookkeeping on its own: bounds, retries, stop (no engine)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.docker.containerconfig import CreateRequest
from conch_container.backend.docker.warmpool import TemplatePool, template_key
from conch_container.config import parse_config
from conch_container.metrics.recorders import PoolCounts
from tests.ssh.harness import collecting_log


class FakeConnection:
    """Stands for a pool DockerConnection: launched by the test, closed once."""

    def __init__(self, on_closed: Any) -> None:
        self.on_closed = on_closed
        self.launched: Deferred[None] = Deferred()
        self.closed = False
        self.container_id = f"c{id(self)}"

    def close(self) -> Deferred[None]:
        self.closed = True
        return succeed(None)


class TemplatePoolTests(SynchronousTestCase):
    def make(self, size: int = 3, concurrency: int = 2) -> TemplatePool:
        self.clock = Clock()
        self.events: list[dict[str, Any]] = []
        self.made: list[FakeConnection] = []

        def make(on_closed: Any) -> Any:
            connection = FakeConnection(on_closed)
            self.made.append(connection)
            return connection

        def launch(connection: Any) -> Deferred[None]:
            d: Deferred[None] = connection.launched
            return d

        return TemplatePool(
            self.clock,
            "k",
            make,
            launch,
            size=size,
            concurrency=concurrency,
            retry_interval=10.0,
            log=collecting_log(self.events),
        )

    def codes(self) -> list[str]:
        return [e["code"] for e in self.events]

    def test_creations_bounded_by_concurrency(self) -> None:
        """Never more creations at once than refillConcurrency, up to the size."""
        pool = self.make(size=3, concurrency=2)
        pool.fill()
        self.assertEqual(len(self.made), 2)
        self.made[0].launched.callback(None)
        self.assertEqual(len(self.made), 3)
        self.assertEqual(pool.counts, PoolCounts(ready=1, starting=2))
        self.made[1].launched.callback(None)
        self.made[2].launched.callback(None)
        self.assertEqual(len(self.made), 3)
        self.assertEqual(pool.counts, PoolCounts(ready=3, starting=0))

    def test_take_is_fifo_and_refills(self) -> None:
        """The oldest ready container goes first, and each take starts a replacement."""
        pool = self.make(size=2)
        pool.fill()
        for connection in list(self.made):
            connection.launched.callback(None)
        first = pool.take()
        self.assertIs(first, self.made[0])
        self.assertEqual(len(self.made), 3)
        self.assertIs(pool.take(), self.made[1])
        self.assertIsNone(pool.take())

    def test_failure_waits_the_retry_interval(self) -> None:
        """A failed creation is closed, logged, and the next one waits 10 s."""
        pool = self.make(size=1, concurrency=1)
        pool.fill()
        self.made[0].launched.errback(RuntimeError("engine down"))
        self.assertTrue(self.made[0].closed)
        self.assertIn("DOCKER_POOL_FILL_FAILED", self.codes())
        pool.take()  # a take does not bypass the wait
        self.assertEqual(len(self.made), 1)
        self.clock.advance(9.9)
        self.assertEqual(len(self.made), 1)
        self.clock.advance(0.1)
        self.assertEqual(len(self.made), 2)

    def test_stop_closes_ready_and_starting(self) -> None:
        """Stop closes every container it holds and makes no more."""
        pool = self.make(size=2)
        pool.fill()
        self.made[0].launched.callback(None)
        done = pool.stop()
        self.assertTrue(self.made[0].closed)
        self.assertTrue(self.made[1].closed)
        self.assertTrue(done.called)
        self.made[1].launched.callback(None)
        self.assertEqual(len(self.made), 2)
        self.assertIsNone(pool.take())
        self.assertIn("DOCKER_POOL_DRAIN", self.codes())

    def test_ready_container_that_closes_is_replaced(self) -> None:
        """A ready container closed by itself leaves the pool and is replaced."""
        pool = self.make(size=1)
        pool.fill()
        self.made[0].launched.callback(None)
        self.made[0].on_closed(self.made[0])
        self.assertEqual(pool.counts, PoolCounts(ready=0, starting=1))


class TemplateKeyTests(SynchronousTestCase):
    def test_key_follows_the_container_not_the_user(self) -> None:
        """Same settings, same key; another image, engine or agent setting, another key."""
        config = parse_config({"docker": {"execution": {"container": {"image": "a"}}}}).docker
        request = CreateRequest(body={"Image": "a"}, name=None, platform=None, image="a")
        self.assertEqual(template_key(config, request), template_key(config, request))
        other_image = CreateRequest(body={"Image": "b"}, name=None, platform=None, image="b")
        self.assertNotEqual(template_key(config, request), template_key(config, other_image))
        other_engine = parse_config({"docker": {"connection": {"host": "tcp://other:2375"}}}).docker
        self.assertNotEqual(template_key(config, request), template_key(other_engine, request))

"""The Docker backend's warm pool against the real Docker engine.

Each test starts its own backend with ``docker.pool`` set; after it stops, no
container carrying the test's instance id may be left (the fixture checks).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.threads import deferToThread

from conch_container.backend.docker.backend import DockerBackend
from conch_container.backend.docker.containerconfig import LABEL_INSTANCE, LABEL_USERNAME
from conch_container.backend.docker.warmpool import LABEL_POOL
from conch_container.config import AppConfig, parse_config
from conch_container.errors import ContainerSSHError
from conch_container.interfaces import ProgramRequest
from conch_container.metrics.recorders import NULL_BACKEND_RECORDER, PoolCounts
from conch_container.testing.sessionio import RecordingSessionIO
from tests.backend.helpers import (
    DockerBackendTestCase,
    docker_config_data,
    make_context,
    reactor,
)


def pool_config(size: int, concurrency: int = 2, **execution: Any) -> AppConfig:
    docker = docker_config_data(**execution)
    docker["pool"] = {"size": size, "refillConcurrency": concurrency}
    return parse_config({"backend": "docker", "docker": docker})


class CountingRecorder:
    """Counts the pool's hand-overs and misses; reads its gauges on demand."""

    def __init__(self) -> None:
        self.handovers = 0
        self.misses = 0
        self.source: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(NULL_BACKEND_RECORDER, name)

    def pool_handover(self) -> None:
        self.handovers += 1

    def pool_miss(self) -> None:
        self.misses += 1

    def watch_pool(self, source: Any) -> None:
        self.source = source


class WarmPoolTests(DockerBackendTestCase):
    timeout = 180

    async def pooled_backend(self, config: AppConfig) -> DockerBackend:
        backend = self.new_backend()
        self.recorder = CountingRecorder()
        backend.record_with(self.recorder)  # type: ignore[arg-type]
        await backend.start(config.docker)
        return backend

    async def until_ready(self, backend: DockerBackend, ready: int, timeout: float = 60) -> None:
        waited = 0.0
        while backend.pool_counts != PoolCounts(ready=ready, starting=0):
            if waited > timeout:
                self.fail(f"pool not at {ready} ready: {backend.pool_counts}")
            await task.deferLater(reactor(), 0.05)
            waited += 0.05

    async def labels_of(self, container_id: str | None) -> dict[str, str]:
        inspected = await deferToThread(self.client.inspect_container, container_id)
        return dict(inspected["Config"]["Labels"] or {})

    async def output_of(self, connection: Any, command: str) -> bytes:
        session = self.open(connection)
        io = RecordingSessionIO()
        await session.start(ProgramRequest("exec", command), io)
        await io.when_exited()
        await session.close()
        return io.stdout_data

    async def connect_to(self, backend: DockerBackend, config: AppConfig, **kwargs: Any) -> Any:
        connection = await backend.connect(make_context(config, self.log, **kwargs))
        self.addCleanup(connection.close)
        return connection

    async def test_filled_at_start(self) -> None:
        """The pool is filled once the backend starts; its containers are labelled
        with the instance and the template, and with no user."""
        backend = await self.pooled_backend(pool_config(2))
        await self.until_ready(backend, 2)
        ids = await self.containers()
        self.assertEqual(len(ids), 2)
        for container_id in ids:
            labels = await self.labels_of(container_id)
            self.assertEqual(labels[LABEL_INSTANCE], self.instance_id)
            self.assertEqual(len(labels[LABEL_POOL]), 16)
            self.assertNotIn(LABEL_USERNAME, labels)
        self.assertIn("DOCKER_POOL_STARTED", self.codes())
        self.assertEqual(self.codes().count("DOCKER_POOL_READY"), 2)
        self.assertEqual(self.recorder.source(), PoolCounts(ready=2, starting=0))

    async def test_hand_over_applies_the_user_and_refills(self) -> None:
        """A connection takes a ready container; its programs get the user's
        environment; the pool makes another; the container is removed with the
        connection, never returned."""
        config = pool_config(1, exposeAuthMetadataAsEnv=True)
        backend = await self.pooled_backend(config)
        await self.until_ready(backend, 1)
        [pooled] = await self.containers()
        connection = await self.connect_to(
            backend, config, environment={"AUTH_VAR": "from-auth"}, metadata={"META": "m"}
        )
        self.assertEqual(connection.container_id, pooled)
        self.assertIn("DOCKER_POOL_HANDOVER", self.codes())
        # Every create so far was the pool's (the first fill, then the refill).
        self.assertEqual(
            self.codes().count("DOCKER_CONTAINER_CREATE"), self.codes().count("DOCKER_POOL_FILL")
        )
        out = await self.output_of(connection, 'echo "$AUTH_VAR $META"')
        self.assertEqual(out, b"from-auth m\n")
        await self.until_ready(backend, 1)
        self.assertEqual(len(await self.containers()), 2)
        await connection.close()
        remaining = await self.containers()
        self.assertEqual(len(remaining), 1)
        self.assertNotIn(pooled, remaining)
        self.assertEqual((self.recorder.handovers, self.recorder.misses), (1, 0))

    async def test_stopped_container_is_not_handed_over(self) -> None:
        """A ready container that stopped meanwhile is removed; the connection takes the
        next one."""
        config = pool_config(2, concurrency=1)
        backend = await self.pooled_backend(config)
        await self.until_ready(backend, 2)
        first, second = backend.pool_ready_ids()
        await deferToThread(self.client.kill, first)
        connection = await self.connect_to(backend, config)
        self.assertEqual(connection.container_id, second)
        self.assertIn("DOCKER_POOL_STALE", self.codes())
        self.assertEqual(await self.output_of(connection, "echo alive"), b"alive\n")
        await self.until_ready(backend, 2)
        self.assertNotIn(first, await self.containers())

    async def test_files_written_at_hand_over(self) -> None:
        """Authentication's files are written into the pool container through its agent."""
        config = pool_config(1, disableAgent=False)
        backend = await self.pooled_backend(config)
        await self.until_ready(backend, 1)
        connection = await self.connect_to(backend, config, files={"/tmp/welcome": b"hi there"})
        self.assertIn("DOCKER_POOL_HANDOVER", self.codes())
        self.assertEqual(await self.output_of(connection, "cat /tmp/welcome"), b"hi there")

    async def test_burst_three_times_the_pool(self) -> None:
        """Six connections at once against a pool of two: all succeed, two from the
        pool and the rest with their own containers; nothing is left afterwards."""
        config = pool_config(2)
        backend = await self.pooled_backend(config)
        await self.until_ready(backend, 2)
        connections = await gatherResults(
            [Deferred.fromCoroutine(self.connect_to(backend, config)) for _ in range(6)],
            consumeErrors=True,
        )
        self.assertEqual(len({c.container_id for c in connections}), 6)
        outputs = await gatherResults(
            [Deferred.fromCoroutine(self.output_of(c, "echo ok")) for c in connections]
        )
        self.assertEqual(outputs, [b"ok\n"] * 6)
        self.assertEqual(self.recorder.handovers, 2)
        self.assertEqual(self.recorder.misses, 4)
        self.assertEqual(self.codes().count("DOCKER_POOL_EMPTY"), 4)
        await gatherResults([c.close() for c in connections])
        await self.until_ready(backend, 2)
        self.assertEqual(len(await self.containers()), 2)

    async def test_other_template_gets_its_own_pool(self) -> None:
        """A connection whose settings differ (another container variable) does not
        take the static template's container; its template gets a pool of its own."""
        backend = await self.pooled_backend(pool_config(1))
        await self.until_ready(backend, 1)
        [pooled] = await self.containers()
        other = pool_config(1, container={"image": self.image(), "env": ["FLAVOUR=other"]})
        connection = await self.connect_to(backend, other)
        self.assertNotEqual(connection.container_id, pooled)
        self.assertEqual(self.codes().count("DOCKER_POOL_STARTED"), 2)
        self.assertEqual(await self.output_of(connection, 'echo "$FLAVOUR"'), b"other\n")
        await self.until_ready(backend, 2)

    def image(self) -> str:
        return str(pool_config(1).docker.execution.container["Image"])

    async def test_failed_fill_is_retried_not_hammered(self) -> None:
        """A pool whose image is missing logs the failure and tries again after the
        retry interval; a connection meanwhile fails as it would without a pool."""
        config = pool_config(2, container={"image": "conch-container/no-such-image:1"})
        backend = await self.pooled_backend(config)
        waited = 0.0
        while self.codes().count("DOCKER_POOL_FILL_FAILED") < 4 and waited < 30:
            await task.deferLater(reactor(), 0.05)
            waited += 0.05
        failures = self.codes().count("DOCKER_POOL_FILL_FAILED")
        self.assertGreaterEqual(failures, 4)
        # Two at a time, every retry interval (0.2 s): far fewer than a tight loop would make.
        self.assertLess(failures, 2 * (waited / self.retry_interval + 2))
        self.assertEqual(await self.containers(), [])
        with self.assertRaises(ContainerSSHError):
            await backend.connect(make_context(config, self.log))

    async def test_stop_removes_ready_containers(self) -> None:
        """Stopping the backend removes the ready pool containers."""
        backend = await self.pooled_backend(pool_config(3, concurrency=3))
        await self.until_ready(backend, 3)
        await backend.stop()
        self.assertEqual(await self.containers(), [])
        self.assertIn("DOCKER_POOL_DRAIN", self.codes())

    async def test_stop_removes_starting_containers(self) -> None:
        """Stopping while the pool is still filling removes what it was creating."""
        backend = await self.pooled_backend(pool_config(3, concurrency=3))
        self.assertEqual(backend.pool_counts.starting, 3)
        await backend.stop()
        self.assertEqual(await self.containers(), [])

    async def test_session_mode_has_no_pool(self) -> None:
        """Session mode cannot use a pool: said once at start, and nothing is created."""
        backend = await self.pooled_backend(pool_config(2, mode="session"))
        self.assertIn("DOCKER_POOL_UNAVAILABLE", self.codes())
        self.assertEqual(backend.pool_counts, PoolCounts())
        self.assertEqual(await self.containers(), [])

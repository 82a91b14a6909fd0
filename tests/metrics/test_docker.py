"""The Docker backend counts the containers it gives up removing (real engine, one failing call)."""

from __future__ import annotations

from typing import Any, cast

from zope.interface.verify import verifyObject

from conch_container.backend.docker.engine.errors import EngineError
from conch_container.interfaces import IBackendMetrics, ProgramRequest
from conch_container.metrics import GatewayMetrics
from conch_container.testing.sessionio import RecordingSessionIO
from tests.backend.helpers import DockerBackendTestCase, force_remove
from tests.backend.test_docker_codes import FaultInjectingBackend
from tests.metrics.support import sample

BUSY = EngineError("device or resource busy", 500)


class RemovalFailureTests(DockerBackendTestCase):
    log_namespace = "tests.metrics.docker"
    backend_type = FaultInjectingBackend

    def metered_backend(self, **faults: Any) -> tuple[FaultInjectingBackend, GatewayMetrics]:
        backend = cast(FaultInjectingBackend, self.new_backend())
        backend.faults = faults
        metrics = GatewayMetrics()
        verifyObject(IBackendMetrics, backend)
        backend.record_with(metrics.backend("docker"))
        backend.start()
        return backend, metrics

    def failures(self, metrics: GatewayMetrics) -> float:
        return sample(metrics, "conch_container_backend_removal_failures_total", backend="docker")

    async def test_connection_container(self) -> None:
        """A connection's container the engine refuses to remove counts once."""
        backend, metrics = self.metered_backend(remove_container=BUSY)
        connection = await self.connect(backend=backend, timeouts={"containerStop": "1s"})
        self.addCleanup(force_remove, self.client, [connection.container_id])
        await connection.close()
        self.assertEqual(self.failures(metrics), 1)

    async def test_removed_container_is_not_counted(self) -> None:
        """A container removed normally is no failure."""
        backend, metrics = self.metered_backend()
        connection = await self.connect(backend=backend)
        await connection.close()
        self.assertEqual(await self.containers(), [])
        self.assertEqual(self.failures(metrics), 0)

    async def test_session_container(self) -> None:
        """In session mode, each session container the engine keeps refusing counts."""
        backend, metrics = self.metered_backend(remove_container=BUSY)
        connection = await self.connect(
            backend=backend, mode="session", timeouts={"containerStop": "1s"}
        )
        session = connection.open_session(0)
        io = RecordingSessionIO()
        await session.start(ProgramRequest("exec", "true"), io)
        await connection.close()
        self.addCleanup(force_remove, self.client, await self.containers())
        self.assertEqual(self.failures(metrics), 1)

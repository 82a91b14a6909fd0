"""The Docker backend passes the backend conformance suite against the real engine."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import TestCase

from conch_container.backend.docker import DockerBackend
from conch_container.interfaces import ConnectionContext
from conch_container.log.logger import CodeLogger
from conch_container.testing.conformance import BackendConformanceMixin
from tests.backend.helpers import (
    docker_client,
    force_remove,
    labelled_containers,
    make_config,
    make_context,
    new_instance_id,
    reactor,
)


class DockerConformanceTests(BackendConformanceMixin, TestCase):
    """The conformance cases against :class:`DockerBackend` (guest image, agent disabled)."""

    timeout = 120

    def setUp(self) -> None:
        self.client = docker_client()
        self.instance_id = new_instance_id()
        self.log = CodeLogger("tests.backend.docker.conformance")
        self.addCleanup(self.assert_nothing_left)

    def make_backend(self) -> DockerBackend:
        backend = DockerBackend(reactor(), self.log, instance_id=self.instance_id, max_threads=4)
        backend.start()
        self.addCleanup(backend.stop)
        return backend

    def make_context(self) -> ConnectionContext:
        return make_context(make_config(), self.log)

    async def leftovers(self, backend: Any, context: Any) -> list[str]:
        return [c["Id"] for c in await labelled_containers(self.client, self.instance_id)]

    async def assert_nothing_left(self) -> None:
        left = [c["Id"] for c in await labelled_containers(self.client, self.instance_id)]
        if left:
            await force_remove(self.client, left)
            self.fail(f"containers left behind: {left}")

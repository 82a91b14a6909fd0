"""The Docker backend in ``session`` mode passes the backend conformance suite."""

from __future__ import annotations

from conch_container.interfaces import ConnectionContext
from tests.backend import test_docker_conformance
from tests.backend.helpers import make_config, make_context


class DockerSessionModeConformanceTests(test_docker_conformance.DockerConformanceTests):
    """The conformance cases against one container per session channel."""

    def make_context(self) -> ConnectionContext:
        return make_context(make_config(mode="session"), self.log)

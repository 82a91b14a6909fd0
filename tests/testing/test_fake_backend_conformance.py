"""The fake backend passes the backend conformance suite, on a fake clock."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from conch_container.interfaces import ConnectionContext
from conch_container.log.logger import CodeLogger
from conch_container.metadata import ConnectionMetadata, MetadataValue
from conch_container.testing.backend import FakeBackend
from conch_container.testing.conformance import BackendConformanceMixin


def fake_context(username: str = "user") -> ConnectionContext:
    """A connection context like the SSH server builds after authentication."""
    metadata = ConnectionMetadata(
        connection_id="0123456789abcdef0123456789abcdef",
        remote_address="127.0.0.1:2222",
        username=username,
        authenticated_username=username,
        environment={"FROM_AUTH": MetadataValue("yes")},
    )
    return ConnectionContext(metadata=metadata, config=None, log=CodeLogger("tests"))


class FakeBackendConformanceTests(BackendConformanceMixin, TestCase):
    """The conformance cases against :class:`FakeBackend`."""

    timeout = 10

    def setUp(self) -> None:
        self.clock = Clock()
        self.backends: list[FakeBackend] = []

    def tearDown(self) -> None:
        for backend in self.backends:
            self.assertEqual(backend.errors, [])

    def make_backend(self) -> FakeBackend:
        backend = FakeBackend(self.clock)
        self.backends.append(backend)
        return backend

    def make_context(self) -> ConnectionContext:
        return fake_context()

    def settle(self, d: Deferred[Any]) -> Deferred[Any]:
        """Everything the fake does happens on the clock: run it until ``d`` fired."""
        for _ in range(1000):
            if d.called:
                break
            self.clock.advance(0.01)
        self.assertTrue(d.called, "nothing more will happen on the fake clock")
        return d

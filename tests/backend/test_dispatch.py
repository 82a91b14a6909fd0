"""Tests for the per-connection choice of backend (:mod:`conch_container.backend.dispatch`)."""

from __future__ import annotations

from typing import Any

from attrs import evolve
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from conch_container import messages
from conch_container.backend.dispatch import START_DEADLINE, DispatchingBackend
from conch_container.backend.registry import BackendNotAvailable, find_backend_factory
from conch_container.config import AppConfig, ConfigError, parse_config
from conch_container.errors import ContainerSSHError
from conch_container.interfaces import (
    ConnectionContext,
    IBackendLifecycle,
    IBackendMetrics,
    IContainerBackend,
)
from conch_container.metadata import ConnectionMetadata
from conch_container.metrics import GatewayMetrics
from tests.ssh.harness import collecting_log
from tests.webhook.support import codes, with_code


@implementer(IContainerBackend, IBackendLifecycle, IBackendMetrics)
class FakeBackend:
    """Records what the dispatcher does with it; its start waits for the test when asked."""

    def __init__(self, name: str, config: AppConfig, hold_start: bool = False) -> None:
        self.name = name
        self.config = config
        self.calls: list[str] = []
        self.connected: list[ConnectionContext] = []
        self.recorder: Any = None
        self.starting: Deferred[None] | None = Deferred() if hold_start else None
        self.start_error: Exception | None = None

    def record_with(self, recorder: Any) -> None:
        self.recorder = recorder

    def start(self) -> Deferred[None]:
        self.calls.append("start")
        if self.start_error is not None:
            raise self.start_error
        if self.starting is not None:
            return self.starting
        return succeed(None)

    def stop(self) -> None:
        self.calls.append("stop")

    def remove_all(self) -> int:
        self.calls.append("remove_all")
        return 2

    def connect(self, context: ConnectionContext) -> str:
        self.connected.append(context)
        return f"{self.name} connection"


class FakeFactory:
    def __init__(self, name: str, **backend_options: Any) -> None:
        self.name = name
        self.built: list[FakeBackend] = []
        self.refuse: str | None = None
        self.backend_options = backend_options

    def check_config(self, config: AppConfig) -> tuple[()]:
        if self.refuse is not None:
            raise ConfigError(f"{self.name}.pod", self.refuse)
        return ()

    def build(self, reactor: Any, log: Any, instance_id: str, config: AppConfig) -> FakeBackend:
        backend = FakeBackend(self.name, config, **self.backend_options)
        self.built.append(backend)
        return backend


def config(backend: str = "docker") -> AppConfig:
    return parse_config({"backend": backend})


class DispatchTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.events: list[dict[str, Any]] = []
        self.docker = FakeFactory("docker")
        self.kubernetes = FakeFactory("kubernetes", hold_start=True)
        self.factories = {"docker": self.docker, "kubernetes": self.kubernetes}
        self.metrics = GatewayMetrics()
        self.dispatcher = DispatchingBackend(
            self.clock,
            collecting_log(self.events),
            "instance",
            config("docker"),
            metrics=self.metrics,
            factory_for=self.factory_for,
        )

    def factory_for(self, name: str) -> Any:
        if name in self.factories:
            return self.factories[name]
        return find_backend_factory(name)  # the real refusal of what is not installed

    def context(self, backend: str, user: str = "user") -> ConnectionContext:
        metadata = ConnectionMetadata(
            connection_id=f"{user:0<32}"[:32],
            remote_address="127.0.0.1:2222",
            username=user,
            authenticated_username=user,
        )
        return ConnectionContext(
            metadata=metadata, config=config(backend), log=collecting_log(self.events)
        )

    def connect(self, backend: str, user: str = "user") -> Deferred[Any]:
        return Deferred.fromCoroutine(self.dispatcher.connect(self.context(backend, user)))

    def test_static_backend_built_at_once_started_with_the_gateway(self) -> None:
        """Only the static backend exists before a connection; start() starts it."""
        [static] = self.docker.built
        self.assertEqual(self.kubernetes.built, [])
        self.assertEqual(static.calls, [])
        self.successResultOf(self.dispatcher.start())
        self.assertEqual(static.calls, ["start"])
        self.assertIs(static.recorder, self.metrics.backend("docker"))
        self.assertEqual(self.successResultOf(self.connect("docker")), "docker connection")
        self.assertEqual(len(static.connected), 1)

    def test_static_start_failure_fails_the_start(self) -> None:
        """As with one backend: the gateway does not start without its static backend."""
        self.docker.built[0].start_error = RuntimeError("engine gone")
        self.failureResultOf(self.dispatcher.start(), RuntimeError)

    def test_other_backend_started_lazily_once(self) -> None:
        """Concurrent first connections share one start, with the connection's configuration."""
        self.successResultOf(self.dispatcher.start())
        first = self.connect("kubernetes", "alice")
        second = self.connect("kubernetes", "bob")
        [backend] = self.kubernetes.built
        self.assertEqual(backend.calls, ["start"])
        self.assertEqual(backend.config.backend, "kubernetes")
        self.assertNoResult(first)
        self.assertNoResult(second)
        self.assertEqual(with_code(self.events, "BACKEND_STARTING")[0]["backend"], "kubernetes")
        assert backend.starting is not None
        backend.starting.callback(None)
        self.assertEqual(self.successResultOf(first), "kubernetes connection")
        self.assertEqual(self.successResultOf(second), "kubernetes connection")
        self.successResultOf(self.connect("kubernetes", "carol"))
        self.assertEqual(len(self.kubernetes.built), 1)
        self.assertEqual(backend.calls, ["start"])
        self.assertEqual(len(backend.connected), 3)
        self.assertIs(backend.recorder, self.metrics.backend("kubernetes"))
        self.assertEqual(self.docker.built[0].connected, [])
        self.assertEqual(codes(self.events).count("BACKEND_STARTING"), 1)

    def test_start_deadline(self) -> None:
        """A start that does not finish in time refuses the waiting connections, and is stopped."""
        waiting = self.connect("kubernetes")
        self.clock.advance(START_DEADLINE)
        error = self.failureResultOf(waiting, ContainerSSHError).value
        self.assertEqual(error.code, messages.BACKEND_CONFIG_ERROR)
        self.assertIn("did not start within", error.explanation)
        [backend] = self.kubernetes.built
        self.assertEqual(backend.calls, ["start", "stop"])
        self.assertEqual(with_code(self.events, "BACKEND_CONFIG_ERROR")[0]["backend"], "kubernetes")

    def test_failed_start_tried_again_later(self) -> None:
        """A start that failed refuses its connections; the next connection starts afresh."""
        failing = FakeFactory("kubernetes")
        self.factories["kubernetes"] = failing
        original_build = failing.build

        def build_failing(*args: Any) -> FakeBackend:
            backend = original_build(*args)
            if len(failing.built) == 1:
                backend.start_error = RuntimeError("API server unreachable")
            return backend

        failing.build = build_failing  # type: ignore[method-assign]
        error = self.failureResultOf(self.connect("kubernetes"), ContainerSSHError).value
        self.assertIn("API server unreachable", error.explanation)
        self.assertEqual(failing.built[0].calls, ["start", "stop"])
        self.assertEqual(self.successResultOf(self.connect("kubernetes")), "kubernetes connection")
        self.assertEqual(len(failing.built), 2)

    def test_unavailable_backend_refused(self) -> None:
        """A backend that is not installed refuses the connection with a clear reason."""
        error = self.failureResultOf(self.connect("sshproxy"), ContainerSSHError).value
        self.assertEqual(error.code, messages.BACKEND_CONFIG_ERROR)
        self.assertIn("not available in this version", error.explanation)
        [logged] = with_code(self.events, "BACKEND_CONFIG_ERROR")
        self.assertEqual(logged["backend"], "sshproxy")
        self.assertRaises(BackendNotAvailable, find_backend_factory, "sshproxy")

    def test_refused_settings_refused(self) -> None:
        """Settings the chosen backend's factory refuses refuse the connection, not the gateway."""
        self.kubernetes.refuse = "only connection mode"
        error = self.failureResultOf(self.connect("kubernetes"), ContainerSSHError).value
        self.assertIn("kubernetes.pod: only connection mode", error.explanation)
        self.assertEqual(self.kubernetes.built, [])
        # Checked for each connection, also once the backend runs.
        self.kubernetes.refuse = None
        self.kubernetes.backend_options = {"hold_start": False}
        self.successResultOf(self.connect("kubernetes"))
        self.kubernetes.refuse = "not this pod"
        self.failureResultOf(self.connect("kubernetes"), ContainerSSHError)
        self.assertEqual(len(self.kubernetes.built[0].connected), 1)

    def test_stop_stops_every_started_backend(self) -> None:
        """Stop reaches the static backend and every backend started since, not the others."""
        self.successResultOf(self.dispatcher.start())
        self.kubernetes.backend_options = {"hold_start": False}
        self.successResultOf(self.connect("kubernetes"))
        self.assertEqual(self.successResultOf(self.dispatcher.remove_all()), 4)
        self.successResultOf(self.dispatcher.stop())
        self.assertEqual(self.docker.built[0].calls, ["start", "remove_all", "stop"])
        self.assertEqual(self.kubernetes.built[0].calls, ["start", "remove_all", "stop"])
        error = self.failureResultOf(self.connect("docker"), ContainerSSHError).value
        self.assertIn("during shutdown", error.explanation)

    def test_stop_waits_for_a_start_under_way(self) -> None:
        """A backend starting at shutdown is stopped once started; its connection is refused."""
        self.successResultOf(self.dispatcher.start())
        waiting = self.connect("kubernetes")
        stopping = self.dispatcher.stop()
        self.assertNoResult(stopping)
        [backend] = self.kubernetes.built
        assert backend.starting is not None
        backend.starting.callback(None)
        self.successResultOf(stopping)
        self.assertEqual(backend.calls, ["start", "stop"])
        self.failureResultOf(waiting, ContainerSSHError)

    def test_backend_without_lifecycle_used_as_is(self) -> None:
        """A backend without IBackendLifecycle is neither started nor stopped."""

        @implementer(IContainerBackend)
        class Plain:
            name = "plain"

            def connect(self, context: ConnectionContext) -> str:
                return "plain connection"

        class PlainFactory:
            name = "plain"

            def check_config(self, config: AppConfig) -> tuple[()]:
                return ()

            def build(self, *args: Any) -> Plain:
                return Plain()

        self.factories["plain"] = PlainFactory()  # type: ignore[assignment]
        context = self.context("docker")
        context = evolve(context, config=evolve(context.config, backend="plain"))
        result = Deferred.fromCoroutine(self.dispatcher.connect(context))
        self.assertEqual(self.successResultOf(result), "plain connection")
        self.successResultOf(self.dispatcher.stop())

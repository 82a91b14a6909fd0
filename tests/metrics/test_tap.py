"""The composition root hands one metrics object to every part, or the null one."""

from __future__ import annotations

from typing import Any

import yaml
from twisted.internet.testing import MemoryReactorClock
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from conch_container.metrics import NULL_METRICS, GatewayMetrics
from conch_container.tap import Options, makeService
from tests.metrics.support import sample
from tests.ssh.harness import new_ed25519_pem


class MetricsWiringTests(SynchronousTestCase):
    def options(self, **sections: Any) -> Options:
        directory = FilePath(self.mktemp())
        directory.makedirs()
        users = directory.child("users.yaml")
        users.setContent(b"users: {}\n")
        data: dict[str, Any] = {
            "ssh": {"listen": "127.0.0.1:0", "hostkeys": [new_ed25519_pem()]},
            "auth": {"password": {"method": "static", "static": {"usersFile": users.path}}},
            "log": {"destination": "test"},
            **sections,
        }
        config = directory.child("config.yaml")
        config.setContent(yaml.safe_dump(data).encode())
        options = Options(MemoryReactorClock())
        options.parseOptions(["--config", config.path])
        if options.instance is not None:
            self.addCleanup(options.instance.release)
        return options

    def factory(self, options: Any) -> Any:
        root: Any = makeService(options, MemoryReactorClock())
        return root.getServiceNamed("ssh")._factory

    def test_off_by_default(self) -> None:
        """Without metrics.enable every part records on the null metrics."""
        options = self.options()
        self.assertIs(options.metrics, NULL_METRICS)
        self.assertIs(self.factory(options).metrics, NULL_METRICS)

    def test_enabled(self) -> None:
        """With metrics.enable the SSH server and the Docker backend share one GatewayMetrics."""
        options = self.options(metrics={"enable": True})
        metrics = options.metrics
        self.assertIsInstance(metrics, GatewayMetrics)
        factory = self.factory(options)
        self.assertIs(factory.metrics, metrics)
        docker = factory.backend._backend.backend("docker")
        docker._recorder.removal_failed()
        assert isinstance(metrics, GatewayMetrics)
        self.assertEqual(
            sample(metrics, "conch_container_backend_removal_failures_total", backend="docker"), 1
        )

    def test_webhook_authenticators(self) -> None:
        """The webhook authenticators count on the gateway's metrics."""
        options = self.options(
            metrics={"enable": True},
            auth={"password": {"method": "webhook", "webhook": {"url": "http://127.0.0.1:1/"}}},
        )
        caller = options.authenticators.password._caller
        self.assertIs(caller._metrics, options.metrics)

"""Tests for ``twistd containerssh``'s options and the service tree it assembles."""

from __future__ import annotations

from typing import Any

import yaml
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.docker.backend import DockerBackend
from conch_container.listener import ListenerService
from conch_container.security import SecurityBackend
from conch_container.service import ComponentService, SessionRegistry
from conch_container.tap import Options, makeService
from tests.ssh.harness import new_ed25519_pem


class TapTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = FilePath(self.mktemp())
        self.dir.makedirs()
        self.users = self.dir.child("users.yaml")
        self.users.setContent(b"users: {}\n")

    def options(self, **sections: Any) -> Options:
        data: dict[str, Any] = {
            "ssh": {"listen": "127.0.0.1:0", "hostkeys": [new_ed25519_pem()]},
            "auth": {"password": {"method": "static", "static": {"usersFile": self.users.path}}},
            "log": {"destination": "test"},
        }
        data.update(sections)
        config = self.dir.child("config.yaml")
        config.setContent(yaml.safe_dump(data).encode())
        options = Options()
        options.parseOptions(["--config", config.path])
        return options

    def test_service_tree(self) -> None:
        """Backend, authentication, sessions and listener, in that order, policy in front."""
        root = makeService(self.options(), MemoryReactorClock())
        children = list(root)  # type: ignore[call-overload]
        self.assertEqual([c.name for c in children], ["backend", "auth", "sessions", "ssh"])
        self.assertIsInstance(children[0], ComponentService)
        self.assertIsInstance(children[2], SessionRegistry)
        listener = children[3]
        self.assertIsInstance(listener, ListenerService)
        factory = listener._factory
        self.assertIsInstance(factory.backend, SecurityBackend)
        self.assertIsInstance(factory.backend._backend, DockerBackend)

    def test_planned_backend_refused_before_start(self) -> None:
        """A ContainerSSH backend this version lacks is a usage error naming it."""
        with self.assertRaises(usage.UsageError) as raised:
            self.options(backend="kubernetes")
        self.assertIn("Kubernetes backend ('kubernetes') is not available", str(raised.exception))
        self.assertIn("available: docker", str(raised.exception))

    def test_unknown_backend_plugin_refused(self) -> None:
        """A backend name no installed plugin provides is a usage error naming it."""
        with self.assertRaises(usage.UsageError) as raised:
            self.options(backend="podman")
        self.assertIn("no installed backend is called 'podman'", str(raised.exception))

    def test_config_error_names_the_key(self) -> None:
        """An unknown key is a usage error that names its path."""
        with self.assertRaises(usage.UsageError) as raised:
            self.options(docker={"execution": {"contianer": {}}})
        self.assertIn("docker.execution.contianer: unknown key", str(raised.exception))

"""Tests for ``twistd containerssh``'s options and the service tree it assembles."""

from __future__ import annotations

from typing import Any

import yaml
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyClass

from conch_container.backend.dispatch import DispatchingBackend
from conch_container.backend.docker.backend import DockerBackend
from conch_container.health import HealthResource
from conch_container.httpserver import HTTPServerService
from conch_container.interfaces import IBackendLifecycle, IContainerBackend
from conch_container.listener import ListenerService
from conch_container.metrics import GatewayMetrics, MetricsResource
from conch_container.security import SecurityBackend
from conch_container.service import ComponentService, SessionRegistry
from conch_container.tap import Options, makeService
from tests.ssh.harness import new_ed25519_pem
from tests.webhook.pki import issue, make_ca

SERVER = issue(make_ca(), "localhost")
OTHER = issue(make_ca(), "other")


class TapTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = FilePath(self.mktemp())
        self.dir.makedirs()
        self.users = self.dir.child("users.yaml")
        self.users.setContent(b"users: {}\n")

    def options(self, *extra: str, reactor: Any = None, **sections: Any) -> Options:
        data: dict[str, Any] = {
            "ssh": {"listen": "127.0.0.1:0", "hostkeys": [new_ed25519_pem()]},
            "auth": {"password": {"method": "static", "static": {"usersFile": self.users.path}}},
            "log": {"destination": "test"},
        }
        data.update(sections)
        config = self.dir.child("config.yaml")
        config.setContent(yaml.safe_dump(data).encode())
        options = Options(reactor)
        options.parseOptions(["--config", config.path, *extra])
        if options.instance is not None:
            self.addCleanup(options.instance.release)
        return options

    def test_injected_reactor(self) -> None:
        """The options, and the tree made from them, run on the reactor they were given."""
        clock = MemoryReactorClock()
        options = self.options(reactor=clock)
        self.assertIs(options.reactor, clock)
        [static] = options.authenticators._static
        self.assertIs(static._reactor, clock)
        root: Any = makeService(options)
        self.assertIs(list(root)[-1]._reactor, clock)

    def test_service_tree(self) -> None:
        """Backend, authentication, sessions and listener, in that order, policy in front."""
        root = makeService(self.options(), MemoryReactorClock())
        children = list(root)  # type: ignore[call-overload]
        self.assertEqual(
            [c.name for c in children], ["instance", "backend", "auth", "sessions", "ssh"]
        )
        self.assertIsInstance(children[1], ComponentService)
        self.assertIsInstance(children[3], SessionRegistry)
        listener = children[4]
        self.assertIsInstance(listener, ListenerService)
        factory = listener._factory
        self.assertIsInstance(factory.backend, SecurityBackend)
        dispatcher = factory.backend._backend
        self.assertIsInstance(dispatcher, DispatchingBackend)
        self.assertIsInstance(dispatcher.backend("docker"), DockerBackend)

    def test_docker_backend_lifecycle(self) -> None:
        """The Docker backend declares the lifecycle the gateway drives."""
        self.assertTrue(verifyClass(IBackendLifecycle, DockerBackend))
        self.assertTrue(verifyClass(IContainerBackend, DockerBackend))

    def service_with(self, backend: object) -> Any:
        """The service tree built around ``backend`` (from a stand-in factory)."""
        options = self.options()

        class Factory:
            name = "docker"

            def build(self, reactor: Any, log: Any, instance_id: str, config: Any) -> object:
                return backend

        options.backend_factory = Factory()
        return makeService(options, MemoryReactorClock())

    def test_lifecycle_driven(self) -> None:
        """A backend providing IBackendLifecycle is started with the tree, stopped with it,
        and its remove_all is the sessions' last resort."""
        calls: list[str] = []

        @implementer(IContainerBackend, IBackendLifecycle)
        class Backend:
            name = "docker"

            def connect(self, context: Any) -> Any:
                raise NotImplementedError

            def start(self) -> None:
                calls.append("start")

            def stop(self) -> None:
                calls.append("stop")

            def remove_all(self) -> int:
                calls.append("remove_all")
                return 3

        backend = Backend()
        root = self.service_with(backend)
        children = {c.name: c for c in root}  # type: ignore[attr-defined]
        self.assertIn("backend", children)
        [last_resort] = children["sessions"]._last_resort
        children["backend"].startService()
        self.assertEqual(self.successResultOf(last_resort()), 3)
        children["backend"].stopService()
        self.assertEqual(calls, ["start", "remove_all", "stop"])

    def test_no_lifecycle(self) -> None:
        """A backend without IBackendLifecycle is neither started nor stopped, nor swept.

        Methods that merely share the names are not called: the interface is
        the contract, not the spelling.
        """

        @implementer(IContainerBackend)
        class Backend:
            name = "docker"

            def connect(self, context: Any) -> Any:
                raise NotImplementedError

            def start(self) -> None:
                raise AssertionError("not part of any declared interface")

        root = self.service_with(Backend())
        children = {c.name: c for c in root}  # type: ignore[attr-defined]
        children["backend"].startService()
        [last_resort] = children["sessions"]._last_resort
        self.assertEqual(self.successResultOf(last_resort()), 0)
        children["backend"].stopService()

    def test_planned_backend_refused_before_start(self) -> None:
        """A ContainerSSH backend this version lacks is a usage error naming it."""
        with self.assertRaises(usage.UsageError) as raised:
            self.options(backend="sshproxy")
        self.assertIn(
            "backend: the SSH proxy backend (sshproxy) is not supported yet",
            str(raised.exception),
        )

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

    def test_audit_log_in_the_tree(self) -> None:
        """The audit log starts after authentication and before the sessions and listener."""
        directory = self.dir.child("audit")
        directory.makedirs()
        audit: dict[str, Any] = {
            "enable": True,
            "format": "binary",
            "storage": "file",
            "file": {"directory": directory.path},
        }
        root = makeService(self.options(audit=audit), MemoryReactorClock())
        children = list(root)  # type: ignore[call-overload]
        self.assertEqual(
            [c.name for c in children], ["instance", "backend", "auth", "audit", "sessions", "ssh"]
        )
        self.assertIs(children[-1]._factory.audit, children[3])

    def test_config_server_in_the_tree(self) -> None:
        """With configserver.url the factory's realms ask it; its pool closes after auth's."""
        options = self.options(configserver={"url": "http://127.0.0.1:8080/config"})
        root = makeService(options, MemoryReactorClock())
        children = list(root)  # type: ignore[call-overload]
        self.assertEqual(
            [c.name for c in children],
            ["instance", "backend", "auth", "configserver", "sessions", "ssh"],
        )
        self.assertIs(children[-1]._factory.config_source, options.config_source)

    def test_no_config_server(self) -> None:
        """Without configserver.url nothing is asked."""
        options = self.options()
        self.assertIsNone(options.config_source)
        root = makeService(options, MemoryReactorClock())
        self.assertIsNone(list(root)[-1]._factory.config_source)  # type: ignore[call-overload]

    def test_config_server_tls_refused_before_start(self) -> None:
        """Unusable TLS options of the configuration server stop the options, naming them."""
        with self.assertRaises(usage.UsageError):
            self.options(configserver={"url": "https://127.0.0.1:8443/config", "cipher": ["NOPE"]})

    def test_health_in_the_tree_when_enabled(self) -> None:
        """health.enable adds the health endpoint last, answering for the whole tree."""
        health = {"enable": True, "listen": "127.0.0.1:0"}
        root: Any = makeService(self.options(health=health), MemoryReactorClock())
        children = list(root)
        self.assertEqual(
            [c.name for c in children], ["instance", "backend", "auth", "sessions", "ssh", "health"]
        )
        endpoint = children[-1]
        self.assertIsInstance(endpoint, HTTPServerService)
        resource = endpoint.site.resource
        self.assertIsInstance(resource, HealthResource)
        self.assertEqual(resource._healthy, root.all_running)

    def test_metrics_before_health(self) -> None:
        """metrics.enable serves the gateway's own registry at metrics.path, before health."""
        options = self.options(
            metrics={"enable": True, "listen": "127.0.0.1:0", "path": "/m"},
            health={"enable": True, "listen": "127.0.0.1:0"},
        )
        root: Any = makeService(options, MemoryReactorClock())
        children = list(root)
        self.assertEqual([c.name for c in children][-3:], ["ssh", "metrics", "health"])
        resource = root.getServiceNamed("metrics").site.resource
        self.assertIsInstance(resource, MetricsResource)
        self.assertIsInstance(options.metrics, GatewayMetrics)
        self.assertIs(resource._registry, options.metrics.registry)
        self.assertEqual(resource._path, b"/m")

    def test_metrics_tls_checked_before_start(self) -> None:
        """A metrics key that does not match its certificate stops twistd at the options."""
        metrics = {"enable": True, "cert": SERVER.cert_pem, "key": OTHER.key_pem}
        with self.assertRaises(usage.UsageError) as raised:
            self.options(metrics=metrics)
        self.assertIn("metrics.cert: the server certificate does not match", str(raised.exception))

    def test_health_tls_checked_before_start(self) -> None:
        """A health key that does not match its certificate stops twistd at the options."""
        health = {"enable": True, "cert": SERVER.cert_pem, "key": OTHER.key_pem}
        with self.assertRaises(usage.UsageError) as raised:
            self.options(health=health)
        self.assertIn("health.cert: the server certificate does not match", str(raised.exception))

    def test_no_health_when_disabled(self) -> None:
        """Without health.enable nothing serves the health endpoint (ContainerSSH's would)."""
        root = makeService(self.options(health={"enable": False}), MemoryReactorClock())
        self.assertNotIn("health", [c.name for c in root])  # type: ignore[attr-defined]

    def test_audit_directory_checked_before_start(self) -> None:
        """An audit directory that does not exist is a usage error naming its key."""
        missing = self.dir.child("nowhere").path
        with self.assertRaises(usage.UsageError) as raised:
            self.options(
                audit={
                    "enable": True,
                    "format": "binary",
                    "storage": "file",
                    "file": {"directory": missing},
                }
            )
        self.assertIn(
            f"audit.file.directory: directory {missing} does not exist", str(raised.exception)
        )


class InstanceIdTests(SynchronousTestCase):
    """The instance id that labels the containers: one per running gateway."""

    def setUp(self) -> None:
        self.dir = FilePath(self.mktemp())
        self.dir.makedirs()
        users = self.dir.child("users.yaml")
        users.setContent(b"users: {}\n")
        self.config = self.dir.child("config.yaml")
        data = {
            "ssh": {"listen": "127.0.0.1:2222", "hostkeys": [new_ed25519_pem()]},
            "auth": {"password": {"method": "static", "static": {"usersFile": users.path}}},
            "log": {"destination": "test"},
        }
        self.config.setContent(yaml.safe_dump(data).encode())

    def options(self, *extra: str) -> Options:
        options = Options()
        options.parseOptions(["--config", self.config.path, *extra])
        assert options.instance is not None
        self.addCleanup(options.instance.release)
        return options

    def built_ids(self, options: Options) -> tuple[str, str]:
        """The ids the SSH factory and the backend of a new service tree were given."""
        root: Any = makeService(options, MemoryReactorClock())
        factory = root.getServiceNamed("ssh")._factory
        return factory.instance_id, factory.backend._backend.backend("docker").instance_id

    def codes(self, options: Options) -> list[str]:
        assert options.log_output is not None and options.log_output.memory is not None
        return [record.code for record in options.log_output.memory.records]

    def test_same_configuration_different_ids(self) -> None:
        """Two gateways from one configuration file on one host never share an id."""
        first, second = self.options(), self.options()
        first_ids, second_ids = self.built_ids(first), self.built_ids(second)
        self.assertEqual(first_ids, (first.instance.instance_id,) * 2)  # type: ignore[union-attr]
        self.assertEqual(second_ids, (second.instance.instance_id,) * 2)  # type: ignore[union-attr]
        self.assertNotEqual(first_ids[0], second_ids[0])

    def test_logged_at_start(self) -> None:
        """The id and the file that keeps it are logged while the options are read."""
        options = self.options()
        self.assertIn("CORE_INSTANCE_ID", self.codes(options))

    def test_stopped_tree_gives_id_up(self) -> None:
        """Once the service tree has stopped, the next run on this configuration takes the id."""
        options = self.options()
        root: Any = makeService(options, MemoryReactorClock())
        instance = root.getServiceNamed("instance")
        instance.startService()
        self.assertTrue(options.instance.held)  # type: ignore[union-attr]
        self.successResultOf(instance.stopService())
        self.assertFalse(options.instance.held)  # type: ignore[union-attr]
        self.assertEqual(
            self.options().instance.instance_id,  # type: ignore[union-attr]
            options.instance.instance_id,  # type: ignore[union-attr]
        )

    def test_state_dir_option(self) -> None:
        """``--state-dir`` names the directory that keeps the id."""
        state = self.dir.child("state")
        options = self.options("--state-dir", state.path)
        assert options.instance is not None
        self.assertEqual(options.instance.path, state.child("config.yaml.instance-0").path)

    def test_state_dir_unusable(self) -> None:
        """An unusable state directory still starts, with a random id and a warning."""
        blocker = self.dir.child("file")
        blocker.setContent(b"")
        options = self.options("--state-dir", blocker.child("state").path)
        assert options.instance is not None
        self.assertIsNone(options.instance.path)
        self.assertIn("CORE_INSTANCE_ID_NOT_KEPT", self.codes(options))
        self.assertEqual(self.built_ids(options)[0], options.instance.instance_id)

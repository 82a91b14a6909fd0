"""The realm with a configuration server: settings per connection, refusals, cancellation."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed

from conch_container import messages
from conch_container.codes import Level
from conch_container.config import parse_config
from conch_container.errors import GENERIC_USER_MESSAGE
from conch_container.log.logger import THRESHOLD_KEY, CodeLogger
from conch_container.metadata import MetadataValue
from conch_container.metrics import GatewayMetrics
from conch_container.ssh.realm import ConnectionRealm, ConnectionRejected
from conch_container.testing.webhook import (
    DOWN,
    AuthWebhookResource,
    WebhookUser,
    config_answer,
    memory_agent,
)
from conch_container.webhook.configserver import CONFIG_UNAVAILABLE_USER_MESSAGE
from conch_container.webhook.connectionconfig import ConfigServerSource
from tests.metrics.support import sample
from tests.ssh.harness import collecting_log
from tests.ssh.test_realm import FakeLoginTransport, RealmTestCase
from tests.webhook.support import codes, with_code

STATIC = {
    "auth": {"password": {"method": "webhook", "webhook": {"url": "http://127.0.0.1:8080"}}},
    "docker": {"execution": {"container": {"image": "static"}}},
    "configserver": {"url": "http://config.test/config"},
    "log": {"level": "info"},
}


class ConfigLoginTransport(FakeLoginTransport):
    """A fake connection that can be lost and can change its log level."""

    def __init__(self, log: CodeLogger) -> None:
        super().__init__(log)
        self._lost: list[Deferred[None]] = []

    def when_lost(self) -> Deferred[None]:
        if self.lost:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._lost.append(waiter)
        return waiter

    def use_log_level(self, level: Level) -> None:
        self.log = self.log.at_level(level)

    def lose(self) -> None:
        self.lost = True
        for waiter in self._lost:
            waiter.callback(None)


class ConfigRealmTests(RealmTestCase):
    """The realm test set-up, with a configuration server in front of the backend."""

    def setUp(self) -> None:
        super().setUp()
        log = collecting_log(self.events)
        self.config = parse_config(STATIC)
        self.transport = ConfigLoginTransport(log)
        self.server = AuthWebhookResource(
            {
                "user": WebhookUser(
                    config={
                        "docker": {"execution": {"container": {"image": "mine"}}},
                        "log": {"level": "debug"},
                    },
                    config_environment={"FROM_SERVER": "1"},
                )
            }
        )
        self.realm = self.make_realm()

    def make_realm(self, **options: Any) -> ConnectionRealm:
        """A realm asking the test configuration server, with ``options`` added."""
        source = ConfigServerSource.from_config(
            self.config,
            reactor=self.clock,
            log=collecting_log(self.events),
            agent=memory_agent(self.server),
        )
        assert source is not None
        return ConnectionRealm(
            self.transport,
            backend=self.backend,
            config=self.config,
            registry=self.registry,
            config_source=source,
            **options,
        )

    def rejections(self) -> list[str]:
        return [e["reason"] for e in with_code(self.events, "SSH_BACKEND_REJECTED_HANDSHAKE")]

    def test_backend_gets_the_connection_settings(self) -> None:
        """The backend connects with the merged configuration and metadata."""
        self.successResultOf(self.login())
        [connection] = self.backend.connections
        context = connection.context
        self.assertEqual(context.config.docker.execution.container["Image"], "mine")
        self.assertEqual(context.metadata.environment["FROM_SERVER"], MetadataValue("1"))
        self.assertEqual(self.config.docker.execution.container["Image"], "static")

    def test_log_level_per_connection(self) -> None:
        """The connection's log.level filters its events from then on."""
        self.assertIsNone(self.transport.log.level)
        self.successResultOf(self.login())
        self.assertEqual(self.transport.log.level, Level.DEBUG)
        [connection] = self.backend.connections
        connection.context.log.event(messages.DOCKER_CONTAINER_CREATE, "Creating")
        self.assertEqual(self.events[-1][THRESHOLD_KEY], Level.DEBUG)

    def test_invalid_config_refuses(self) -> None:
        """An unusable answer: BACKEND_CONFIG_ERROR, the handshake rejected, no container."""
        self.server.inject(config_answer({"security": {"maxSessions": "many"}}))
        login = self.login()
        self.failureResultOf(login, ConnectionRejected)
        self.assertEqual(self.transport.disconnects[0][1], GENERIC_USER_MESSAGE)
        self.assertIn("BACKEND_CONFIG_ERROR", codes(self.events))
        self.assertEqual(len(self.rejections()), 1)
        self.assertIn("security.maxSessions", self.rejections()[0])
        self.assertEqual(self.backend.created, [])

    def test_server_down_refuses(self) -> None:
        """No answer within the budget: CONFIG_BACKEND_ERROR and a user-safe refusal."""
        self.server.inject(DOWN)
        login = self.login()
        self.clock.pump([10] * 5)
        self.failureResultOf(login, ConnectionRejected)
        self.assertEqual(self.transport.disconnects[0][1], CONFIG_UNAVAILABLE_USER_MESSAGE)
        self.assertIn(messages.CONFIG_BACKEND_ERROR.code, codes(self.events))
        self.assertEqual(len(self.rejections()), 1)
        self.assertEqual(self.backend.created, [])

    def test_client_leaves_meanwhile(self) -> None:
        """The client leaving cancels the call at once; no container, no more requests."""
        self.server.inject(DOWN)
        login = self.login()
        self.transport.lose()
        self.failureResultOf(login, ConnectionRejected)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(60)
        self.assertEqual(len(self.server.requests), 1)
        self.assertEqual(self.backend.created, [])
        self.assertEqual(self.transport.disconnects, [])

    def test_shutdown_does_not_wait_for_the_call(self) -> None:
        """The registry has nothing of the call to wait for; closing the connection ends it."""
        self.server.inject(DOWN)
        login = self.login()
        self.assertEqual(self.registry.pending, 0)
        self.transport.lose()
        self.failureResultOf(login, ConnectionRejected)

    def test_backend_counted_under_the_connections_backend(self) -> None:
        """A connection the server sends to another backend counts under that backend's label."""
        metrics = GatewayMetrics()
        self.server.users["user"] = WebhookUser(config={"backend": "kubernetes"})
        self.realm = self.make_realm(
            clock=self.clock, metrics=metrics, backend_metrics=metrics.backend("docker")
        )
        self.successResultOf(self.login())
        [connection] = self.backend.connections
        self.assertEqual(connection.context.config.backend, "kubernetes")
        requests = "containerssh_backend_requests_total"
        self.assertEqual(sample(metrics, requests, backend="kubernetes"), 1)
        self.assertEqual(sample(metrics, requests, backend="docker"), 0)

"""The configuration webhook's metrics: ContainerSSH's counters and the latency histogram."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from conch_container.config import parse_config
from conch_container.errors import ContainerSSHError
from conch_container.metadata import ConnectionMetadata
from conch_container.metrics import GatewayMetrics
from conch_container.testing.webhook import (
    DOWN,
    AuthWebhookResource,
    WebhookUser,
    memory_agent,
    status,
)
from conch_container.webhook.connectionconfig import ConfigServerSource
from tests.webhook.support import capturing_logger

URL = "http://config.test/config"
STATIC = {
    "auth": {"password": {"method": "webhook", "webhook": {"url": "http://127.0.0.1:8080"}}},
    "configserver": {"url": URL},
}
INVALID_STATUS = "CONFIG_INVALID_STATUS_CODE"


class ConfigServerMetricsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.metrics = GatewayMetrics()
        self.resource = AuthWebhookResource({"alice": WebhookUser(config={})})
        log, _ = capturing_logger()
        source = ConfigServerSource.from_config(
            parse_config(STATIC),
            reactor=self.clock,
            log=log,
            agent=memory_agent(self.resource),
            metrics=self.metrics,
        )
        assert source is not None
        self.source, self.log = source, log

    def fetch(self) -> defer.Deferred[Any]:
        metadata = ConnectionMetadata(
            connection_id="00112233445566778899aabbccddeeff",
            remote_address="192.0.2.7:50022",
            username="alice",
            authenticated_username="alice",
        )
        return defer.Deferred.fromCoroutine(self.source.settings_for(metadata, self.log))

    def value(self, name: str, **labels: str) -> float:
        found = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    def test_first_answer(self) -> None:
        """One request, first try, timed; no failure."""
        self.successResultOf(self.fetch())
        self.assertEqual(self.value("containerssh_config_server_requests_total", retry="0"), 1)
        self.assertEqual(self.value("containerssh_config_server_requests_total", retry="1"), 0)
        self.assertEqual(
            self.value("conch_container_config_server_request_duration_seconds_count"), 1
        )
        self.assertEqual(
            self.value(
                "containerssh_config_server_failures_total",
                type="soft",
                retry="0",
                reason=INVALID_STATUS,
            ),
            0,
        )

    def test_retried_after_500(self) -> None:
        """A 500 is a soft failure of the first request; the retry is counted as one."""
        self.resource.inject(status(500), count=1)
        d = self.fetch()
        self.clock.advance(10)
        self.successResultOf(d)
        self.assertEqual(self.value("containerssh_config_server_requests_total", retry="0"), 1)
        self.assertEqual(self.value("containerssh_config_server_requests_total", retry="1"), 1)
        soft = {"type": "soft", "retry": "0", "reason": INVALID_STATUS}
        self.assertEqual(self.value("containerssh_config_server_failures_total", **soft), 1)
        self.assertEqual(
            self.value("conch_container_config_server_request_duration_seconds_count"), 2
        )

    def test_given_up_is_hard(self) -> None:
        """Every unanswered request is soft; the last one is also hard."""
        self.resource.inject(DOWN)
        d = self.fetch()
        self.clock.pump([10] * 5)
        self.failureResultOf(d, ContainerSSHError)
        requests = self.value("containerssh_config_server_requests_total", retry="1")
        self.assertEqual(self.value("containerssh_config_server_requests_total", retry="0"), 1)
        self.assertEqual(requests, 5)
        hard = {"type": "hard", "retry": "1", "reason": INVALID_STATUS}
        soft_retry = {"type": "soft", "retry": "1", "reason": INVALID_STATUS}
        self.assertEqual(self.value("containerssh_config_server_failures_total", **hard), 1)
        self.assertEqual(self.value("containerssh_config_server_failures_total", **soft_retry), 5)

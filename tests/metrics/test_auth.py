"""The authentication webhook's metrics, as ContainerSSH counts them (in-memory webhook server)."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from conch_container.auth.webhook import WebhookAuthenticator, WebhookAuthorizer
from conch_container.errors import ContainerSSHError
from conch_container.metrics import GatewayMetrics
from conch_container.testing.webhook import (
    DOWN,
    HANG,
    AuthWebhookResource,
    WebhookUser,
    memory_agent,
)
from conch_container.webhook.client import WebhookClient
from tests.auth.test_webhook import _metadata
from tests.metrics.support import sample
from tests.webhook.support import ClientConfig, capturing_logger

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHnTNqmvBWQTPEwhjXT4fBqPeLH7c2NFQ7Bm6C4tCGqc"


class _Metered:
    def __init__(self, resource: AuthWebhookResource, **config: Any) -> None:
        self.clock = Clock()
        self.metrics = GatewayMetrics()
        self.agent = memory_agent(resource)
        log, _ = capturing_logger()
        cfg = ClientConfig(**{"url": "http://auth.test/hook/", **config})
        client = WebhookClient(cfg, reactor=self.clock, agent=self.agent, log=log)
        self.authenticator = WebhookAuthenticator(
            client, clock=self.clock, log=log, auth_timeout=cfg.auth_timeout, metrics=self.metrics
        )
        self.authorizer = WebhookAuthorizer(
            client, clock=self.clock, log=log, auth_timeout=cfg.auth_timeout, metrics=self.metrics
        )

    def value(self, name: str, **labels: str) -> float:
        return sample(self.metrics, name, **labels)

    def soft_failures(self, reason: str) -> float:
        """Soft failures of first password attempts for ``reason``."""
        return self.value(
            "containerssh_auth_server_failures_total",
            type="soft",
            authtype="password",
            retry="0",
            reason=reason,
        )


def _users() -> dict[str, WebhookUser]:
    return {"alice": WebhookUser(password="secret", authorized_keys=(KEY,))}


class DecisionTests(SynchronousTestCase):
    def test_success_first_time(self) -> None:
        """An accepted password: one request with retry 0, one success, one latency."""
        h = _Metered(AuthWebhookResource(_users()))
        d = h.authenticator.authenticate_password(_metadata(), b"secret")
        self.assertTrue(self.successResultOf(d).success)
        labels = {"authtype": "password", "retry": "0"}
        self.assertEqual(h.value("containerssh_auth_server_requests_total", **labels), 1)
        self.assertEqual(h.value("containerssh_auth_success_total", **labels, country="XX"), 1)
        self.assertEqual(h.value("containerssh_auth_failures_total", **labels, country="XX"), 0)
        self.assertEqual(
            h.value(
                "conch_container_auth_server_request_duration_seconds_count", authtype="password"
            ),
            1,
        )

    def test_refusal(self) -> None:
        """A refused public key counts as an auth failure, not as a server failure."""
        h = _Metered(AuthWebhookResource(_users()))
        other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOTHERKEYOTHERKEYOTHERKEYOTHERKEYOTHERKEYxx"
        d = h.authenticator.authenticate_public_key(_metadata(), other)
        self.assertFalse(self.successResultOf(d).success)
        labels = {"authtype": "pubkey", "retry": "0"}
        self.assertEqual(h.value("containerssh_auth_failures_total", **labels, country="XX"), 1)
        self.assertEqual(h.value("containerssh_auth_success_total", **labels, country="XX"), 0)
        self.assertIsNone(
            h.metrics.registry.get_sample_value(
                "containerssh_auth_server_failures_total",
                {"type": "soft", **labels, "reason": "AUTH_INVALID_STATUS"},
            )
        )

    def test_authorization(self) -> None:
        """The authz webhook counts under authtype authorization."""
        h = _Metered(AuthWebhookResource(_users()))
        d = h.authorizer.authorize(_metadata())
        self.successResultOf(d)
        self.assertEqual(
            h.value("containerssh_auth_server_requests_total", authtype="authorization", retry="0"),
            1,
        )


class RetryTests(SynchronousTestCase):
    def test_soft_failure_then_success(self) -> None:
        """A failed first attempt is a soft failure with its reason; the retry has retry 1."""
        resource = AuthWebhookResource(_users())
        resource.inject(DOWN, count=1)
        h = _Metered(resource)
        d = h.authenticator.authenticate_password(_metadata(), b"secret")
        h.clock.advance(10)
        self.assertTrue(self.successResultOf(d).success)
        self.assertEqual(
            h.value("containerssh_auth_server_requests_total", authtype="password", retry="0"), 1
        )
        self.assertEqual(
            h.value("containerssh_auth_server_requests_total", authtype="password", retry="1"), 1
        )
        self.assertEqual(
            h.soft_failures("AUTH_INVALID_STATUS"),
            1,
        )
        self.assertEqual(
            h.value(
                "containerssh_auth_success_total", authtype="password", retry="1", country="XX"
            ),
            1,
        )

    def test_gives_up_hard(self) -> None:
        """Six failed attempts: six soft failures, then one hard failure for the last."""
        resource = AuthWebhookResource(_users())
        resource.inject(DOWN)
        h = _Metered(resource)
        d = h.authenticator.authenticate_password(_metadata(), b"secret")
        h.clock.pump([10] * 5)
        self.failureResultOf(d, ContainerSSHError)
        failures = {
            "authtype": "password",
            "retry": "1",
            "reason": "AUTH_INVALID_STATUS",
        }
        self.assertEqual(
            h.value("containerssh_auth_server_requests_total", authtype="password", retry="1"), 5
        )
        self.assertEqual(
            h.value("containerssh_auth_server_failures_total", type="soft", **failures), 5
        )
        self.assertEqual(
            h.value("containerssh_auth_server_failures_total", type="hard", **failures), 1
        )
        self.assertEqual(
            h.value(
                "containerssh_auth_failures_total", authtype="password", retry="1", country="XX"
            ),
            0,
        )

    def test_latency_of_a_hanging_server(self) -> None:
        """A hanging attempt's latency is the per-call timeout, measured on the clock."""
        resource = AuthWebhookResource(_users())
        resource.inject(HANG, count=1)
        h = _Metered(resource, timeout=2.0)
        d = h.authenticator.authenticate_password(_metadata(), b"secret")
        h.clock.advance(2)
        h.agent.flush()
        h.clock.advance(10)
        self.assertTrue(self.successResultOf(d).success)
        self.assertEqual(
            h.value(
                "conch_container_auth_server_request_duration_seconds_sum", authtype="password"
            ),
            2.0,
        )
        self.assertEqual(
            h.value(
                "conch_container_auth_server_request_duration_seconds_bucket",
                authtype="password",
                le="2.0",
            ),
            2,
        )
        self.assertEqual(
            h.soft_failures("HTTP_CLIENT_CONNECTION_FAILED"),
            1,
        )

"""The HTTP endpoints (metrics, health): bad TLS options are configuration errors, found early."""

from __future__ import annotations

import io
import os
import sys
from typing import Any

import yaml
from twisted.trial.unittest import SynchronousTestCase

from conch_container import cli
from conch_container.config import AppConfig
from conch_container.config.services import HealthConfig, MetricsConfig
from conch_container.endpoints import check_endpoints, enabled_endpoints
from conch_container.httpserver import TLSConfigError
from tests.config.material import ed25519_pem, write
from tests.webhook.pki import issue, make_ca

SERVER = issue(make_ca(), "localhost", dns=("localhost",))


class CheckEndpointsTests(SynchronousTestCase):
    def test_names_the_health_key(self) -> None:
        """A key that does not belong to the certificate is refused naming health.cert."""
        other = issue(make_ca(), "other")
        health = HealthConfig(enable=True, cert=SERVER.cert_pem, key=other.key_pem)
        with self.assertRaises(TLSConfigError) as raised:
            check_endpoints(AppConfig(health=health))
        self.assertTrue(str(raised.exception).startswith("health.cert: "), raised.exception)

    def test_names_the_metrics_key(self) -> None:
        """The metrics endpoint's TLS options are checked the same way, naming metrics.*."""
        metrics = MetricsConfig(enable=True, cert=SERVER.cert_pem, key="not a key")
        with self.assertRaises(TLSConfigError) as raised:
            check_endpoints(AppConfig(metrics=metrics))
        self.assertTrue(str(raised.exception).startswith("metrics.key: "), raised.exception)

    def test_disabled_is_not_checked(self) -> None:
        """Nothing is built while an endpoint is off, as nothing listens."""
        health = HealthConfig(enable=False, cert=SERVER.cert_pem, key="not a key")
        metrics = MetricsConfig(enable=False, cert=SERVER.cert_pem, key="not a key")
        check_endpoints(AppConfig(health=health, metrics=metrics))
        self.assertEqual(enabled_endpoints(AppConfig(health=health, metrics=metrics)), [])

    def test_usable_options_pass(self) -> None:
        """A matching certificate and key pass, for both endpoints."""
        health = HealthConfig(enable=True, cert=SERVER.cert_pem, key=SERVER.key_pem)
        metrics = MetricsConfig(enable=True, cert=SERVER.cert_pem, key=SERVER.key_pem)
        config = AppConfig(health=health, metrics=metrics)
        check_endpoints(config)
        self.assertEqual([name for name, _ in enabled_endpoints(config)], ["metrics", "health"])


class CheckConfigTests(SynchronousTestCase):
    """``conch-container check-config`` finds the problem, as twistd does before starting."""

    def setUp(self) -> None:
        self.stderr = io.StringIO()
        self.patch(sys, "stderr", self.stderr)
        self.directory = os.path.abspath(self.mktemp())

    def check(self, health: dict[str, Any]) -> int:
        data = {
            "ssh": {"hostkeys": [ed25519_pem()]},
            "auth": {
                "password": {"method": "webhook", "webhook": {"url": "http://127.0.0.1:8080"}}
            },
            "health": health,
        }
        path = write(self.directory, "config.yaml", yaml.safe_dump(data), mode=0o600)
        return cli.main(["check-config", "-c", path])

    def test_mismatched_key_refused(self) -> None:
        """A key that does not belong to the certificate fails check-config with the key path."""
        other = issue(make_ca(), "other")
        health = {"enable": True, "cert": SERVER.cert_pem, "key": other.key_pem}
        self.assertEqual(self.check(health), 1)
        self.assertIn("health.cert: the server certificate does not match", self.stderr.getvalue())
        self.assertIn("CORE_CONFIG_ERROR", self.stderr.getvalue())

    def test_valid_tls_accepted(self) -> None:
        """Matching options pass check-config."""
        health = {"enable": True, "cert": SERVER.cert_pem, "key": SERVER.key_pem}
        self.assertEqual(self.check(health), 0, self.stderr.getvalue())

"""Metrics of a real gateway: OpenSSH logs in to a Docker container; the scrape goes over HTTP.

The gateway is assembled by ``tap`` from a configuration with
``metrics.enable``, and scraped at its own ``metrics.listen`` and ``metrics.path``.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor as global_reactor
from twisted.internet.task import deferLater

from conch_container.metrics import GatewayMetrics
from tests.integration.gateway import ControlMasterMixin, GatewayTestCase
from tests.metrics.scrape import scrape

reactor: Any = global_reactor

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _samples(body: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def _get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


class MetricsEndToEndTests(ControlMasterMixin, GatewayTestCase):
    config_overrides = {"metrics": {"enable": True, "listen": "127.0.0.1:0", "path": "/metrics"}}

    async def start_gateway(self) -> None:
        await super().start_gateway()
        self.assertIsInstance(self.options.metrics, GatewayMetrics)
        endpoint = self.root.getServiceNamed("metrics")
        self.metrics_url = f"http://127.0.0.1:{endpoint.port}/metrics"

    async def scrape(self) -> Samples:
        code, _, body = await scrape(self.metrics_url)
        self.assertEqual(code, 200)
        return _samples(body)

    async def scrape_until(self, name: str, value: float, **labels: str) -> Samples:
        """Scrape until ``name`` reaches ``value`` (the server notices a close a moment later)."""
        for _ in range(100):
            samples = await self.scrape()
            if _get(samples, name, **labels) == value:
                return samples
            await deferLater(reactor, 0.1)
        self.fail(f"{name} never became {value}: {_get(samples, name, **labels)}")

    async def test_login_moves_the_counters(self) -> None:
        """A key login and a command: connection, handshake, auth, backend and set-up all count."""
        before = await self.scrape()
        await self.start_master()
        during = await self.scrape_until("containerssh_ssh_current_connections", 1, country="XX")
        out, err, code = await self.ssh("echo hello", "-S", self.control)
        self.assertEqual((out, code), (b"hello\n", 0), err)
        await self.stop_master()
        after = await self.scrape_until("containerssh_ssh_current_connections", 0, country="XX")

        def moved(name: str, **labels: str) -> float:
            return _get(after, name, **labels) - _get(before, name, **labels)

        self.assertEqual(moved("containerssh_ssh_connections_total", country="XX"), 1)
        self.assertEqual(moved("containerssh_ssh_successful_handshakes_total", country="XX"), 1)
        self.assertEqual(moved("containerssh_ssh_failed_handshakes_total", country="XX"), 0)
        # OpenSSH first asks whether the key would do (no webhook call), then signs.
        pubkey = {"authtype": "pubkey", "retry": "0"}
        self.assertEqual(moved("containerssh_auth_server_requests_total", **pubkey), 1)
        self.assertEqual(moved("containerssh_auth_success_total", **pubkey, country="XX"), 1)
        self.assertEqual(moved("containerssh_backend_requests_total", backend="docker"), 1)
        self.assertEqual(moved("containerssh_backend_errors_total", backend="docker"), 0)
        self.assertEqual(moved("conch_container_backend_setup_seconds_count", backend="docker"), 1)
        self.assertGreater(moved("conch_container_backend_setup_seconds_sum", backend="docker"), 0)
        self.assertEqual(
            moved("conch_container_auth_server_request_duration_seconds_count", authtype="pubkey"),
            1,
        )
        self.assertEqual(_get(during, "containerssh_ssh_current_connections", country="XX"), 1)
        self.assertEqual(_get(after, "conch_container_ssh_active_sessions"), 0)
        # As ContainerSSH's: no creation-time series beside the counters.
        self.assertEqual([name for name, _ in after if name.endswith("_created")], [])

    async def test_only_the_path_is_served(self) -> None:
        """Any other path of the endpoint is 404, as ContainerSSH's."""
        code, _, _ = await scrape(self.metrics_url.replace("/metrics", "/other"))
        self.assertEqual(code, 404)

    async def test_failed_login_is_a_failed_handshake(self) -> None:
        """A wrong password: a failed handshake and an auth failure, and no backend request."""
        before = await self.scrape()
        _out, _err, code = await self.ssh("true", user="alice", password="wrong")
        self.assertNotEqual(code, 0)
        after = await self.scrape_until("containerssh_ssh_current_connections", 0, country="XX")

        def moved(name: str, **labels: str) -> float:
            return _get(after, name, **labels) - _get(before, name, **labels)

        self.assertEqual(moved("containerssh_ssh_connections_total", country="XX"), 1)
        self.assertEqual(moved("containerssh_ssh_failed_handshakes_total", country="XX"), 1)
        self.assertGreaterEqual(
            moved("containerssh_auth_failures_total", authtype="password", retry="0", country="XX"),
            1,
        )
        self.assertEqual(moved("containerssh_backend_requests_total", backend="docker"), 0)

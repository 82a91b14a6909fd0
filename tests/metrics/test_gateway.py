"""Tests for conch_container.metrics.gateway: names, types, labels, private registries."""

from __future__ import annotations

from prometheus_client import REGISTRY
from twisted.trial.unittest import SynchronousTestCase

from conch_container.metrics import (
    NULL_METRICS,
    UNKNOWN_COUNTRY,
    AuditBacklog,
    GatewayMetrics,
)
from tests.metrics.support import sample

#: Section 9 of ContainerSSH's reference: every metric's family name, type and labels.
CONTAINERSSH_METRICS = {
    "containerssh_ssh_connections": ("counter", ("country",)),
    "containerssh_ssh_current_connections": ("gauge", ("country",)),
    "containerssh_ssh_successful_handshakes": ("counter", ("country",)),
    "containerssh_ssh_failed_handshakes": ("counter", ("country",)),
    "containerssh_auth_server_requests": ("counter", ("authtype", "retry")),
    "containerssh_auth_server_failures": ("counter", ("type", "authtype", "retry", "reason")),
    "containerssh_auth_success": ("counter", ("authtype", "retry", "country")),
    "containerssh_auth_failures": ("counter", ("authtype", "retry", "country")),
    "containerssh_config_server_requests": ("counter", ("retry",)),
    "containerssh_config_server_failures": ("counter", ("type", "retry", "reason")),
    "containerssh_backend_requests": ("counter", ("backend",)),
    "containerssh_backend_errors": ("counter", ("backend",)),
}

OWN_METRICS = {
    "conch_container_ssh_active_sessions": ("gauge", ()),
    "conch_container_backend_setup_seconds": ("histogram", ("backend",)),
    "conch_container_backend_removal_failures": ("counter", ("backend",)),
    "conch_container_backend_pool_handovers": ("counter", ("backend",)),
    "conch_container_backend_pool_misses": ("counter", ("backend",)),
    "conch_container_backend_pool_containers": ("gauge", ("backend", "state")),
    "conch_container_shared_containers": ("gauge", ("state",)),
    "conch_container_auth_server_request_duration_seconds": ("histogram", ("authtype",)),
    "conch_container_config_server_request_duration_seconds": ("histogram", ()),
}


def _families(metrics: GatewayMetrics) -> dict[str, str]:
    return {family.name: family.type for family in metrics.registry.collect()}


class NameTests(SynchronousTestCase):
    def test_containerssh_names_and_types(self) -> None:
        """Every metric ContainerSSH exposes is there, with its type."""
        families = _families(GatewayMetrics())
        for name, (kind, _) in CONTAINERSSH_METRICS.items():
            self.assertEqual(families.get(name), kind, name)

    def test_own_names_and_types(self) -> None:
        """The project's own metrics are there, all prefixed conch_container_."""
        families = _families(GatewayMetrics())
        for name, (kind, _) in OWN_METRICS.items():
            self.assertEqual(families.get(name), kind, name)
        ours = {n for n in families if not n.startswith("containerssh_")}
        self.assertTrue(all(n.startswith("conch_container_") for n in ours), ours)

    def test_labels(self) -> None:
        """Each metric has exactly ContainerSSH's labels (our own: as documented)."""
        metrics = GatewayMetrics()
        for name, (_, labels) in {**CONTAINERSSH_METRICS, **OWN_METRICS}.items():
            collector = metrics.registry._names_to_collectors[name]
            self.assertEqual(tuple(collector._labelnames), labels, name)

    def test_counters_are_exposed_with_total(self) -> None:
        """Counters' samples carry ContainerSSH's _total names."""
        metrics = GatewayMetrics()
        metrics.connected("192.0.2.1:2222")
        self.assertEqual(sample(metrics, "containerssh_ssh_connections_total", country="XX"), 1)


class RegistryTests(SynchronousTestCase):
    def test_private_registries(self) -> None:
        """Two gateways in one process count apart, and the global registry is untouched."""
        first, second = GatewayMetrics(), GatewayMetrics()
        first.connected("192.0.2.1:1")
        self.assertEqual(sample(first, "containerssh_ssh_connections_total", country="XX"), 1)
        self.assertEqual(sample(second, "containerssh_ssh_connections_total", country="XX"), 0)
        self.assertIsNone(REGISTRY.get_sample_value("containerssh_ssh_connections_total"))


class SSHTests(SynchronousTestCase):
    def test_connection_lifecycle(self) -> None:
        """A connection counts, is current until it closes, and its handshake counts."""
        metrics = GatewayMetrics()
        country = metrics.connected("192.0.2.1:1")
        self.assertEqual(country, UNKNOWN_COUNTRY)
        self.assertEqual(sample(metrics, "containerssh_ssh_current_connections", country="XX"), 1)
        metrics.handshake_succeeded(country)
        metrics.handshake_failed(country)
        metrics.disconnected(country)
        self.assertEqual(sample(metrics, "containerssh_ssh_current_connections", country="XX"), 0)
        self.assertEqual(
            sample(metrics, "containerssh_ssh_successful_handshakes_total", country="XX"), 1
        )
        self.assertEqual(
            sample(metrics, "containerssh_ssh_failed_handshakes_total", country="XX"), 1
        )

    def test_country_seam(self) -> None:
        """The country lookup decides the country label of connections and decisions."""
        metrics = GatewayMetrics(country=lambda address: "DE" if address.startswith("5.") else "XX")
        self.assertEqual(metrics.connected("5.1.2.3:4"), "DE")
        metrics.auth_webhook("password").decision(True, False, "5.1.2.3:4")
        self.assertEqual(sample(metrics, "containerssh_ssh_connections_total", country="DE"), 1)
        self.assertEqual(
            sample(
                metrics,
                "containerssh_auth_success_total",
                authtype="password",
                retry="0",
                country="DE",
            ),
            1,
        )

    def test_active_sessions(self) -> None:
        """The active sessions gauge goes up and down."""
        metrics = GatewayMetrics()
        metrics.session_started()
        metrics.session_started()
        metrics.session_ended()
        self.assertEqual(sample(metrics, "conch_container_ssh_active_sessions"), 1)


class WebhookRecorderTests(SynchronousTestCase):
    def test_auth_labels(self) -> None:
        """Requests by retry, failures by type and reason, latency per authtype."""
        metrics = GatewayMetrics()
        recorder = metrics.auth_webhook("pubkey")
        recorder.request(False)
        recorder.failure(False, False, "AUTH_INVALID_STATUS")
        recorder.latency(0.25)
        recorder.request(True)
        recorder.failure(True, True, "HTTP_CLIENT_CONNECTION_FAILED")
        self.assertEqual(
            sample(
                metrics, "containerssh_auth_server_requests_total", authtype="pubkey", retry="0"
            ),
            1,
        )
        self.assertEqual(
            sample(
                metrics, "containerssh_auth_server_requests_total", authtype="pubkey", retry="1"
            ),
            1,
        )
        self.assertEqual(
            sample(
                metrics,
                "containerssh_auth_server_failures_total",
                type="soft",
                authtype="pubkey",
                retry="0",
                reason="AUTH_INVALID_STATUS",
            ),
            1,
        )
        self.assertEqual(
            sample(
                metrics,
                "containerssh_auth_server_failures_total",
                type="hard",
                authtype="pubkey",
                retry="1",
                reason="HTTP_CLIENT_CONNECTION_FAILED",
            ),
            1,
        )
        self.assertEqual(
            sample(
                metrics,
                "conch_container_auth_server_request_duration_seconds_sum",
                authtype="pubkey",
            ),
            0.25,
        )

    def test_config_webhook(self) -> None:
        """The config webhook's recorder counts under containerssh_config_server_*."""
        metrics = GatewayMetrics()
        recorder = metrics.config_webhook()
        recorder.request(True)
        recorder.failure(False, True, "CONFIG_SERVER_ERROR")
        recorder.latency(1.5)
        self.assertEqual(sample(metrics, "containerssh_config_server_requests_total", retry="1"), 1)
        self.assertEqual(
            sample(
                metrics,
                "containerssh_config_server_failures_total",
                type="soft",
                retry="1",
                reason="CONFIG_SERVER_ERROR",
            ),
            1,
        )
        self.assertEqual(
            sample(metrics, "conch_container_config_server_request_duration_seconds_count"), 1
        )


class BackendAndAuditTests(SynchronousTestCase):
    def test_backend(self) -> None:
        """Requests, errors, set-up time and removal failures, per backend."""
        metrics = GatewayMetrics()
        docker = metrics.backend("docker")
        self.assertIs(metrics.backend("docker"), docker)
        docker.request()
        docker.error()
        docker.setup_latency(3.0)
        docker.removal_failed()
        for name in (
            "containerssh_backend_requests_total",
            "containerssh_backend_errors_total",
            "conch_container_backend_setup_seconds_count",
            "conch_container_backend_removal_failures_total",
        ):
            self.assertEqual(sample(metrics, name, backend="docker"), 1, name)
        self.assertEqual(
            sample(metrics, "conch_container_backend_setup_seconds_sum", backend="docker"), 3.0
        )

    def test_audit_backlog_read_at_scrape(self) -> None:
        """The backlog is read from its source when collected, and only then."""
        metrics = GatewayMetrics()
        backlog = [AuditBacklog(bytes=0, streams=0)]
        reads: list[int] = []

        def source() -> AuditBacklog:
            reads.append(1)
            return backlog[0]

        metrics.watch_audit_backlog(source)
        self.assertEqual(reads, [])
        backlog[0] = AuditBacklog(bytes=12345, streams=2)
        self.assertEqual(sample(metrics, "conch_container_audit_upload_backlog_bytes"), 12345)
        self.assertEqual(sample(metrics, "conch_container_audit_upload_backlog_streams"), 2)

    def test_no_audit_backlog_without_source(self) -> None:
        """Without an uploading audit storage there is no backlog metric."""
        self.assertNotIn("conch_container_audit_upload_backlog_bytes", _families(GatewayMetrics()))


class NullMetricsTests(SynchronousTestCase):
    def test_null_metrics_accept_every_call(self) -> None:
        """The null metrics take every call the real ones take, and record nothing."""
        country = NULL_METRICS.connected("192.0.2.1:1")
        NULL_METRICS.handshake_succeeded(country)
        NULL_METRICS.handshake_failed(country)
        NULL_METRICS.disconnected(country)
        NULL_METRICS.session_started()
        NULL_METRICS.session_ended()
        auth = NULL_METRICS.auth_webhook("password")
        auth.request(False)
        auth.failure(True, False, "X")
        auth.latency(1.0)
        auth.decision(True, False, "192.0.2.1:1")
        NULL_METRICS.config_webhook().request(False)
        backend = NULL_METRICS.backend("docker")
        backend.request()
        backend.error()
        backend.setup_latency(1.0)
        backend.removal_failed()
        NULL_METRICS.watch_audit_backlog(lambda: AuditBacklog(0, 0))
        self.assertEqual(country, "")

"""The gateway's metrics, in a registry of their own.

:class:`GatewayMetrics` creates every metric ContainerSSH exposes, under the
same names, types and labels, and this project's own, whose names start with
``conch_container_`` so that a dashboard can tell them apart (the list is in
``docs/metrics.md``). They live in a private
:class:`~prometheus_client.CollectorRegistry`, never the process-wide one:
two gateways (or two tests) in one process do not share counts.

``prometheus_client`` adds ``_total`` to counter names itself, so counters
are declared without it. The units are ContainerSSH's without ``_total``:
OpenMetrics wants a family name to end with its unit, and the family of
``containerssh_ssh_connections_total`` is ``containerssh_ssh_connections``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from conch_container.metrics.recorders import (
    AuditBacklog,
    AuthRecorder,
    PoolCounts,
    SharedCounts,
    WebhookRecorder,
)

#: ContainerSSH's country for an address GeoIP cannot place (and for every
#: address with its ``dummy`` provider, the only one this gateway has).
UNKNOWN_COUNTRY = "XX"

#: Where a container's set-up time falls: from a fraction of a second (a
#: warm image) to minutes (a pull behind a slow registry).
SETUP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
#: A webhook should answer in milliseconds; its timeout is seconds.
WEBHOOK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)

#: Turns a remote address (``ip:port``) into an ISO country code.
CountryLookup = Callable[[str], str]


def unknown_country(remote_address: str) -> str:
    """ContainerSSH's ``dummy`` GeoIP provider: every address is in ``XX``."""
    return UNKNOWN_COUNTRY


def _retry(retry: bool) -> str:
    return "1" if retry else "0"


class _WebhookMetrics:
    """The counters ContainerSSH keeps for one kind of webhook, and our latency."""

    def __init__(self, registry: CollectorRegistry, server: str, labels: tuple[str, ...]) -> None:
        what = f"the {server.replace('_', ' ')}"
        self.requests = Counter(
            f"containerssh_{server}_requests",
            f"The number of requests to {what}",
            (*labels, "retry"),
            unit="requests",
            registry=registry,
        )
        self.failures = Counter(
            f"containerssh_{server}_failures",
            f"The number of requests to {what} that brought no answer "
            "(type soft: retried, hard: given up)",
            ("type", *labels, "retry", "reason"),
            unit="failures",
            registry=registry,
        )
        self.duration = Histogram(
            f"conch_container_{server}_request_duration_seconds",
            f"How long a request to {what} took, answered or not",
            labels,
            unit="seconds",
            buckets=WEBHOOK_BUCKETS,
            registry=registry,
        )


class _WebhookRecorder:
    def __init__(self, kind: _WebhookMetrics, labels: tuple[str, ...]) -> None:
        self._kind = kind
        self._labels = labels
        self._duration = kind.duration.labels(*labels) if labels else kind.duration

    def request(self, retry: bool) -> None:
        self._kind.requests.labels(*self._labels, _retry(retry)).inc()

    def failure(self, hard: bool, retry: bool, reason: str) -> None:
        kind = "hard" if hard else "soft"
        self._kind.failures.labels(kind, *self._labels, _retry(retry), reason).inc()

    def latency(self, seconds: float) -> None:
        self._duration.observe(max(seconds, 0.0))


class _AuthRecorder(_WebhookRecorder):
    def __init__(self, metrics: GatewayMetrics, authtype: str) -> None:
        super().__init__(metrics.auth_server, (authtype,))
        self._metrics = metrics
        self._authtype = authtype

    def decision(self, success: bool, retry: bool, remote_address: str) -> None:
        counter = self._metrics.auth_success if success else self._metrics.auth_failures
        country = self._metrics.country(remote_address)
        counter.labels(self._authtype, _retry(retry), country).inc()


class _BackendRecorder:
    def __init__(self, metrics: GatewayMetrics, name: str) -> None:
        self._requests = metrics.backend_requests.labels(name)
        self._errors = metrics.backend_errors.labels(name)
        self._setup = metrics.backend_setup.labels(name)
        self._removal_failures = metrics.removal_failures.labels(name)
        self._pool_handovers = metrics.pool_handovers.labels(name)
        self._pool_misses = metrics.pool_misses.labels(name)
        self._pool_ready = metrics.pool_containers.labels(name, "ready")
        self._pool_starting = metrics.pool_containers.labels(name, "starting")

    def request(self) -> None:
        self._requests.inc()

    def error(self) -> None:
        self._errors.inc()

    def setup_latency(self, seconds: float) -> None:
        self._setup.observe(max(seconds, 0.0))

    def removal_failed(self) -> None:
        self._removal_failures.inc()

    def pool_handover(self) -> None:
        self._pool_handovers.inc()

    def pool_miss(self) -> None:
        self._pool_misses.inc()

    def watch_pool(self, source: Callable[[], PoolCounts]) -> None:
        # Read at each scrape: filling the pool pays nothing for the metrics.
        self._pool_ready.set_function(lambda: source().ready)
        self._pool_starting.set_function(lambda: source().starting)


class _AuditBacklogCollector(Collector):
    """Asks the audit storage for its backlog when scraped, so uploads pay nothing for it."""

    def __init__(self, source: Callable[[], AuditBacklog]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        backlog = self._source()
        size = GaugeMetricFamily(
            "conch_container_audit_upload_backlog_bytes",
            "Recorded audit log bytes not uploaded to S3 yet",
            unit="bytes",
        )
        size.add_metric([], backlog.bytes)
        streams = GaugeMetricFamily(
            "conch_container_audit_upload_backlog_streams",
            "Connections whose audit log is not completely uploaded to S3 yet",
            unit="streams",
        )
        streams.add_metric([], backlog.streams)
        return iter((size, streams))

    def describe(self) -> Iterator[Metric]:
        # Described without calling the storage: registering must not read it.
        return iter(
            (
                GaugeMetricFamily("conch_container_audit_upload_backlog_bytes", "", unit="bytes"),
                GaugeMetricFamily(
                    "conch_container_audit_upload_backlog_streams", "", unit="streams"
                ),
            )
        )


class GatewayMetrics:
    """Every metric of one gateway (provides :class:`~conch_container.metrics.recorders.Metrics`).

    :param country: the GeoIP seam; ContainerSSH's ``dummy`` provider by default.
    :ivar registry: the registry to expose (see :mod:`conch_container.metrics.resource`).
    """

    def __init__(self, country: CountryLookup = unknown_country) -> None:
        self.country = country
        self.registry = registry = CollectorRegistry(auto_describe=True)
        counter, gauge = self._counter, self._gauge
        self.connections = counter(
            "containerssh_ssh_connections", "connections", ("country",),
            "The number of SSH connections accepted",
        )  # fmt: skip
        self.current_connections = gauge(
            "containerssh_ssh_current_connections", "connections", ("country",),
            "The number of SSH connections open now",
        )  # fmt: skip
        self.successful_handshakes = counter(
            "containerssh_ssh_successful_handshakes", "handshakes", ("country",),
            "The number of SSH connections that authenticated",
        )  # fmt: skip
        self.failed_handshakes = counter(
            "containerssh_ssh_failed_handshakes", "handshakes", ("country",),
            "The number of SSH connections that closed without authenticating",
        )  # fmt: skip
        self.active_sessions = gauge(
            "conch_container_ssh_active_sessions", "sessions", (),
            "The number of session channels running a program now",
        )  # fmt: skip
        self.auth_server = _WebhookMetrics(registry, "auth_server", ("authtype",))
        self.auth_success = counter(
            "containerssh_auth_success", "success", ("authtype", "retry", "country"),
            "The number of authentications the auth server accepted",
        )  # fmt: skip
        self.auth_failures = counter(
            "containerssh_auth_failures", "failures", ("authtype", "retry", "country"),
            "The number of authentications the auth server refused",
        )  # fmt: skip
        self.config_server = _WebhookMetrics(registry, "config_server", ())
        self.backend_requests = counter(
            "containerssh_backend_requests", "requests", ("backend",),
            "The number of connections handed to the backend",
        )  # fmt: skip
        self.backend_errors = counter(
            "containerssh_backend_errors", "errors", ("backend",),
            "The number of connections the backend could not prepare",
        )  # fmt: skip
        self.backend_setup = Histogram(
            "conch_container_backend_setup_seconds",
            "From a user's authentication until the backend has the connection ready",
            ("backend",),
            unit="seconds",
            buckets=SETUP_BUCKETS,
            registry=registry,
        )
        self.removal_failures = counter(
            "conch_container_backend_removal_failures", "failures", ("backend",),
            "The number of containers the backend gave up removing",
        )  # fmt: skip
        self.pool_handovers = counter(
            "conch_container_backend_pool_handovers", "handovers", ("backend",),
            "The number of connections that took a warm pool container",
        )  # fmt: skip
        self.pool_misses = counter(
            "conch_container_backend_pool_misses", "misses", ("backend",),
            "The number of connections that found their warm pool empty and created a container",
        )  # fmt: skip
        self.pool_containers = gauge(
            "conch_container_backend_pool_containers", "containers", ("backend", "state"),
            "Warm pool containers now, ready for a connection or starting",
        )  # fmt: skip
        self.shared_containers = gauge(
            "conch_container_shared_containers", "containers", ("state",),
            "Containers shared by key now: in use by a connection, or kept for the next",
        )  # fmt: skip
        self._auth_recorders: dict[str, _AuthRecorder] = {}
        self._backend_recorders: dict[str, _BackendRecorder] = {}
        self._config_recorder = _WebhookRecorder(self.config_server, ())
        self._audit_backlog: _AuditBacklogCollector | None = None

    def _counter(self, name: str, unit: str, labels: tuple[str, ...], doc: str) -> Counter:
        return Counter(name, doc, labels, unit=unit, registry=self.registry)

    def _gauge(self, name: str, unit: str, labels: tuple[str, ...], doc: str) -> Gauge:
        return Gauge(name, doc, labels, unit=unit, registry=self.registry)

    # SSH

    def connected(self, remote_address: str) -> str:
        country = self.country(remote_address)
        self.connections.labels(country).inc()
        self.current_connections.labels(country).inc()
        return country

    def disconnected(self, country: str) -> None:
        self.current_connections.labels(country).dec()

    def handshake_succeeded(self, country: str) -> None:
        self.successful_handshakes.labels(country).inc()

    def handshake_failed(self, country: str) -> None:
        self.failed_handshakes.labels(country).inc()

    def session_started(self) -> None:
        self.active_sessions.inc()

    def session_ended(self) -> None:
        self.active_sessions.dec()

    # Webhooks and backends

    def auth_webhook(self, authtype: str) -> AuthRecorder:
        recorder = self._auth_recorders.get(authtype)
        if recorder is None:
            recorder = self._auth_recorders[authtype] = _AuthRecorder(self, authtype)
        return recorder

    def config_webhook(self) -> WebhookRecorder:
        return self._config_recorder

    def backend(self, name: str) -> _BackendRecorder:
        recorder = self._backend_recorders.get(name)
        if recorder is None:
            recorder = self._backend_recorders[name] = _BackendRecorder(self, name)
        return recorder

    # Containers shared by key

    def watch_shared_containers(self, source: Callable[[], SharedCounts]) -> None:
        """Read the keyed containers from ``source`` at each scrape."""
        self.shared_containers.labels("in_use").set_function(lambda: source().in_use)
        self.shared_containers.labels("kept").set_function(lambda: source().kept)

    # Audit

    def watch_audit_backlog(self, source: Callable[[], AuditBacklog]) -> None:
        """Read the backlog from ``source`` at each scrape (one source per gateway)."""
        if self._audit_backlog is not None:
            self.registry.unregister(self._audit_backlog)
        self._audit_backlog = _AuditBacklogCollector(source)
        self.registry.register(self._audit_backlog)

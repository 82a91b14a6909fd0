"""The gateway's HTTP endpoints, ``metrics`` and ``health``: checked before start, then served.

Each is a ContainerSSH HTTP server block that listens only while its
``enable`` is true (ContainerSSH starts its health server regardless). What
only TLS can tell about a block (whether ``cert`` and ``key`` belong
together, whether OpenSSL takes the cipher list) is known once its TLS
options are built; ``check-config`` and ``twistd`` build them before anything
starts, so a bad certificate is a configuration error naming the key, not a
crash after the SSH listener is up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conch_container import messages
from conch_container.config import AppConfig
from conch_container.config.http import HTTPServerConfig
from conch_container.health import HealthResource
from conch_container.httpserver import HTTPServerService, TLSConfigError, server_tls_options
from conch_container.log import CodeLogger
from conch_container.metrics import GatewayMetrics, Metrics, MetricsResource

__all__ = ["check_endpoints", "enabled_endpoints", "endpoint_services"]


def enabled_endpoints(config: AppConfig) -> list[tuple[str, HTTPServerConfig]]:
    """The endpoints ``config`` switches on, by section name, metrics first."""
    sections: list[tuple[str, bool, HTTPServerConfig]] = [
        ("metrics", config.metrics.enable, config.metrics),
        ("health", config.health.enable, config.health),
    ]
    return [(name, section) for name, enabled, section in sections if enabled]


def check_endpoints(config: AppConfig) -> None:
    """Build the TLS options of every enabled endpoint.

    :raises TLSConfigError: naming ``<section>.<option>`` when one is unusable.
    """
    for name, section in enabled_endpoints(config):
        try:
            server_tls_options(section)
        except TLSConfigError as error:
            raise TLSConfigError(f"{name}.{error}") from None


def endpoint_services(
    config: AppConfig,
    *,
    metrics: Metrics,
    healthy: Callable[[], bool],
    log: CodeLogger,
    reactor: Any,
) -> list[HTTPServerService]:
    """The services of the enabled endpoints, metrics first and health last.

    :param metrics: the gateway's metrics (a :class:`GatewayMetrics` when
        ``metrics.enable`` is true).
    :param healthy: what the health endpoint answers with (the service
        tree's :meth:`~conch_container.service.GatewayService.all_running`).
    """
    services = []
    if config.metrics.enable:
        assert isinstance(metrics, GatewayMetrics), "metrics.enable builds GatewayMetrics"
        resource = MetricsResource(
            metrics.registry, config.metrics.path, log.bind(module="metrics")
        )
        services.append(
            HTTPServerService(
                "metrics",
                config.metrics,
                resource,
                log=log,
                available=messages.METRICS_AVAILABLE,
                reactor=reactor,
            )
        )
    if config.health.enable:
        services.append(
            HTTPServerService(
                "health",
                config.health,
                HealthResource(healthy, log.bind(module="health")),
                log=log,
                available=messages.HEALTH_AVAILABLE,
                reactor=reactor,
            )
        )
    return services

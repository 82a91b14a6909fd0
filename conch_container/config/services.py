"""The service sections: ``configserver``, ``metrics``, ``health`` and ``geoip``."""

# setting() returns an attrs field declaration, not a shared default value.
# ruff: noqa: RUF009

from __future__ import annotations

import attrs

from conch_container.config import values
from conch_container.config.http import HTTPClientConfig, HTTPServerConfig
from conch_container.config.kinds import Bool, Choice, Section, Str
from conch_container.config.schema import setting


def _path(value: str) -> str | None:
    return None if value.startswith("/") else 'must start with "/"'


@attrs.frozen
class ConfigServerConfig(HTTPClientConfig):
    """The per-user configuration webhook; an empty ``url`` disables it."""

    transmit_sensitive_metadata: bool = setting(
        "transmitSensitiveMetadata",
        Bool(),
        False,
        doc="Send metadata, environment and files marked sensitive to the configuration "
        "server (left out by default; see docs/config-server.md).",
    )


@attrs.frozen
class MetricsConfig(HTTPServerConfig):
    """The Prometheus (OpenMetrics) endpoint."""

    listen: str = setting(
        "listen",
        Str(values.host_port, type_name="host:port"),
        "0.0.0.0:9100",
        doc="Listen address.",
    )
    enable: bool = setting("enable", Bool(), False, doc="Serve metrics.")
    path: str = setting("path", Str(_path), "/metrics", doc="URL path of the metrics.")


@attrs.frozen
class HealthConfig(HTTPServerConfig):
    """The health-check endpoint, and the client ``conch-container health-check`` uses to query it.

    Unlike ContainerSSH, nothing listens while ``enable`` is false.
    """

    listen: str = setting(
        "listen",
        Str(values.host_port, type_name="host:port"),
        "0.0.0.0:7000",
        doc="Listen address.",
    )
    enable: bool = setting("enable", Bool(), False, doc="Serve the health endpoint.")
    client: HTTPClientConfig = setting(
        "client",
        Section(HTTPClientConfig),
        HTTPClientConfig(url="http://127.0.0.1:7000/"),
        doc="How `conch-container health-check` reaches the endpoint.",
    )


@attrs.frozen
class GeoIPConfig:
    """Country lookup of client addresses (for metrics and the audit log)."""

    provider: str = setting(
        "provider",
        Choice("dummy", "maxmind"),
        "dummy",
        doc="`dummy` (every address is `XX`) or `maxmind`.",
    )
    maxmind_geoip2_file: str = setting(
        "maxmind-geoip2-file",
        Str(),
        "/var/lib/GeoIP/GeoIP2-Country.mmdb",
        doc="MaxMind GeoIP2 country database, when `provider` is `maxmind`.",
    )

"""Prometheus metrics: ContainerSSH's names, this project's additions, the scrape endpoint.

- :mod:`~conch_container.metrics.recorders`: what instrumented code calls,
  and the null recorders used when metrics are off;
- :mod:`~conch_container.metrics.gateway`: the metrics themselves, in a
  private registry;
- :mod:`~conch_container.metrics.resource`: the ``twisted.web`` resource
  that serves them.
"""

from __future__ import annotations

from conch_container.metrics.gateway import UNKNOWN_COUNTRY, GatewayMetrics
from conch_container.metrics.recorders import (
    NULL_METRICS,
    AuditBacklog,
    AuthRecorder,
    BackendRecorder,
    Metrics,
    NullMetrics,
    WebhookRecorder,
)
from conch_container.metrics.resource import MetricsResource

__all__ = [
    "NULL_METRICS",
    "UNKNOWN_COUNTRY",
    "AuditBacklog",
    "AuthRecorder",
    "BackendRecorder",
    "GatewayMetrics",
    "Metrics",
    "MetricsResource",
    "NullMetrics",
    "WebhookRecorder",
]

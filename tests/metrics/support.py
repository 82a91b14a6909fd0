"""Reading one sample of a :class:`~conch_container.metrics.GatewayMetrics`."""

from __future__ import annotations

from conch_container.metrics import GatewayMetrics


def sample(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    """The value of sample ``name`` with exactly ``labels``; 0 when it was never set.

    A counter or histogram child that was never touched has no sample; for
    the tests that is the same as zero.
    """
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value

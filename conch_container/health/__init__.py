"""The health endpoint and the command that probes it."""

from __future__ import annotations

from conch_container.health.resource import HealthResource

__all__ = ["HealthResource"]

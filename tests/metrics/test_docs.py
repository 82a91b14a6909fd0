"""docs/metrics.md and docs/grafana-dashboard.json name the metrics the gateway has."""

from __future__ import annotations

import json
import re
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from conch_container.metrics import AuditBacklog, GatewayMetrics
from conch_container.metrics.recorders import SharedCounts

DOCS = Path(__file__).resolve().parents[2] / "docs"
_NAME = re.compile(r"\b((?:containerssh|conch_container)_[a-z_]+)\b")


def _sample_names() -> set[str]:
    """Every sample name a gateway with every metric in use exposes."""
    metrics = GatewayMetrics()
    metrics.watch_audit_backlog(lambda: AuditBacklog(0, 0))
    metrics.watch_shared_containers(lambda: SharedCounts(0, 0))
    metrics.connected("192.0.2.1:1")
    metrics.auth_webhook("password").failure(True, False, "X")
    metrics.auth_webhook("password").decision(True, False, "192.0.2.1:1")
    metrics.auth_webhook("password").decision(False, False, "192.0.2.1:1")
    metrics.auth_webhook("password").request(False)
    metrics.config_webhook().request(False)
    metrics.config_webhook().failure(True, False, "X")
    backend = metrics.backend("docker")
    backend.request()
    backend.error()
    backend.removal_failed()
    backend.setup_latency(1)
    metrics.handshake_failed("XX")
    metrics.handshake_succeeded("XX")
    return {s.name for f in metrics.registry.collect() for s in f.samples}


def _without_suffix(name: str) -> str:
    return re.sub(r"_(bucket|count|sum|created)$", "", name)


class DocsTests(SynchronousTestCase):
    def test_every_metric_documented(self) -> None:
        """docs/metrics.md has a row for every metric, and names none that does not exist."""
        text = (DOCS / "metrics.md").read_text()
        documented = set(re.findall(r"^\| `([a-z_]+)` \|", text, re.MULTILINE))
        exposed = {_without_suffix(n) for n in _sample_names() if not n.endswith("_created")}
        self.assertEqual(documented, exposed)

    def test_dashboard(self) -> None:
        """The dashboard is JSON with a Prometheus data source variable, querying real metrics."""
        dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        self.assertEqual(variables["datasource"]["type"], "datasource")
        self.assertEqual(variables["datasource"]["query"], "prometheus")
        names = _sample_names()
        queried = set()
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                self.assertEqual(target["datasource"]["uid"], "${datasource}")
                queried.update(_NAME.findall(target["expr"]))
        self.assertEqual(queried - names, set())
        # Every metric but the config webhook's counters, which the auth panels mirror.
        self.assertGreaterEqual(len({_without_suffix(n) for n in queried}), 14)

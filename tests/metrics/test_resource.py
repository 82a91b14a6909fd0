"""The scrape endpoint over real HTTP on loopback: paths, methods, formats, promtool."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.parser import text_string_to_metric_families as text_families
from prometheus_client.registry import Collector
from twisted.trial.unittest import TestCase

from conch_container.log import Level
from conch_container.metrics import AuditBacklog, GatewayMetrics
from tests.metrics.scrape import OPENMETRICS_ACCEPT, promtool_check, scrape, serve
from tests.webhook.support import capturing_logger, with_code


def _busy_metrics() -> GatewayMetrics:
    """Metrics with a sample of every kind, as a gateway in use has."""
    metrics = GatewayMetrics()
    country = metrics.connected("192.0.2.1:5000")
    metrics.handshake_succeeded(country)
    metrics.handshake_failed(country)
    metrics.session_started()
    auth = metrics.auth_webhook("password")
    auth.request(False)
    auth.failure(False, False, "AUTH_INVALID_STATUS")
    auth.request(True)
    auth.latency(0.02)
    auth.decision(True, True, "192.0.2.1:5000")
    metrics.config_webhook().request(False)
    docker = metrics.backend("docker")
    docker.request()
    docker.setup_latency(1.2)
    docker.removal_failed()
    metrics.watch_audit_backlog(lambda: AuditBacklog(bytes=1024, streams=1))
    return metrics


class PathAndMethodTests(TestCase):
    async def test_only_the_exact_path(self) -> None:
        """The metrics are at exactly metrics.path; other paths are 404, a query is ignored."""
        url = serve(self, GatewayMetrics(), "/custom/metrics")
        self.assertEqual((await scrape(url + "/custom/metrics"))[0], 200)
        self.assertEqual((await scrape(url + "/custom/metrics?x=1"))[0], 200)
        for other in ("/", "/metrics", "/custom/metrics/", "/custom/metrics/x", "/custom"):
            self.assertEqual((await scrape(url + other))[0], 404, other)

    async def test_get_only(self) -> None:
        """Every method but GET (and HEAD, which is GET without the body) is refused with 405."""
        url = serve(self, GatewayMetrics())
        for method in ("POST", "PUT", "DELETE", "PROPFIND"):
            self.assertEqual((await scrape(url + "/metrics", method=method))[0], 405, method)
        self.assertEqual((await scrape(url + "/metrics", method="HEAD"))[:1], (200,))


class FormatTests(TestCase):
    async def test_openmetrics_when_asked(self) -> None:
        """A scraper that asks for OpenMetrics gets ContainerSSH's format, valid by the spec."""
        url = serve(self, _busy_metrics())
        code, content_type, body = await scrape(url + "/metrics", OPENMETRICS_ACCEPT)
        self.assertEqual(code, 200)
        # prometheus-client adds "; escaping=underscores" (OpenMetrics 1.0 names need none).
        self.assertTrue(
            content_type.startswith("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            content_type,
        )
        self.assertTrue(body.endswith("# EOF\n"))
        self.assertIn("# UNIT containerssh_ssh_connections connections\n", body)
        # The strict OpenMetrics parser raises on anything the spec forbids.
        families = {f.name: f for f in text_string_to_metric_families(body)}
        self.assertEqual(families["containerssh_ssh_connections"].type, "counter")
        self.assertEqual(families["containerssh_ssh_connections"].unit, "connections")
        self.assertEqual(
            families["conch_container_audit_upload_backlog_bytes"].samples[0].value, 1024
        )

    async def test_text_format_otherwise(self) -> None:
        """Without an Accept header the body is the Prometheus text format 0.0.4."""
        url = serve(self, _busy_metrics())
        code, content_type, body = await scrape(url + "/metrics")
        self.assertEqual(code, 200)
        self.assertEqual(content_type, "text/plain; version=0.0.4; charset=utf-8")
        samples = {s.name: s for f in text_families(body) for s in f.samples}
        self.assertEqual(samples["containerssh_ssh_connections_total"].labels, {"country": "XX"})
        self.assertEqual(samples["containerssh_ssh_connections_total"].value, 1)

    async def test_promtool_accepts_the_text_format(self) -> None:
        """promtool check metrics finds nothing wrong with a real scrape.

        promtool (2.42, Debian 12) reads only the text format: given
        OpenMetrics it parses the ``_total`` samples as families of their own
        without help text. The OpenMetrics scrape is checked by the strict
        parser in :meth:`test_openmetrics_when_asked` instead.
        """
        url = serve(self, _busy_metrics())
        _, _, body = await scrape(url + "/metrics")
        code, complaints = await promtool_check(body)
        self.assertEqual((code, complaints), (0, ""))

    async def test_promtool_sees_problems(self) -> None:
        """The promtool check would notice a broken scrape (so the check above means something)."""
        code, complaints = await promtool_check("# TYPE x counter\nx_total{a=b} 1\n")
        self.assertNotEqual(code, 0, complaints)


class _Broken(Collector):
    def collect(self) -> Iterator[Metric]:
        raise RuntimeError("broken collector")


class FailureTests(TestCase):
    async def test_encoding_failure(self) -> None:
        """A failure while encoding is a 500 and a METRICS_SCRAPE_FAILED error, not a hang."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Broken())
        log, events = capturing_logger()
        url = serve(self, registry, log=log)
        code, _, body = await scrape(url + "/metrics")
        self.assertEqual(code, 500)
        self.assertNotIn("broken collector", body)
        failed = with_code(events, "METRICS_SCRAPE_FAILED")
        self.assertEqual([e["cs_level"] for e in failed], [Level.ERROR])
        self.flushLoggedErrors(RuntimeError)

"""Serving a :class:`~conch_container.metrics.MetricsResource` on loopback and scraping it."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

import treq
from prometheus_client import CollectorRegistry
from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest
from twisted.web.server import Site

from conch_container.log import CodeLogger
from conch_container.metrics import GatewayMetrics, MetricsResource

#: What Prometheus sends when it prefers OpenMetrics (as it does by default).
OPENMETRICS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def serve(
    test: Any,
    metrics: GatewayMetrics | CollectorRegistry,
    path: str = "/metrics",
    log: CodeLogger | None = None,
) -> str:
    """Serve ``metrics`` at ``path`` on a loopback port for the test; returns the base URL."""
    registry = metrics.registry if isinstance(metrics, GatewayMetrics) else metrics
    resource = MetricsResource(registry, path, log or CodeLogger("tests"))
    port = reactor.listenTCP(0, Site(resource), interface="127.0.0.1")  # type: ignore[attr-defined]
    test.addCleanup(port.stopListening)
    return f"http://127.0.0.1:{port.getHost().port}"


async def scrape(url: str, accept: str | None = None, method: str = "GET") -> tuple[int, str, str]:
    """Status, content type and body of a request to ``url`` (with a 10 s deadline)."""
    headers = {"Accept": [accept]} if accept is not None else {}
    response = await treq.request(method, url, headers=headers, timeout=10, persistent=False)
    body = await treq.text_content(response, encoding="utf-8")
    content_type = response.headers.getRawHeaders("content-type", [""])[0]
    return response.code, content_type, body


def promtool() -> str:
    """The path of ``promtool``; skips the test when it is missing, unless CI requires it."""
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CONCH_CONTAINER_REQUIRE_DOCKER"):
            raise AssertionError("promtool is required (Debian package prometheus)")
        raise SkipTest("promtool is not installed (Debian package prometheus)")
    return path


async def promtool_check(body: str) -> tuple[int, str]:
    """Run ``promtool check metrics`` on ``body``: exit status and its complaints."""
    path = promtool()
    # promtool reads the scrape from stdin; a shell pipes the file in.
    with tempfile.NamedTemporaryFile("w", suffix=".prom", delete=False) as f:
        f.write(body)
    try:
        out, err, code = await getProcessOutputAndValue(
            "/bin/sh", ("-c", f'exec "{path}" check metrics < "{f.name}"'), env=os.environ
        )
    finally:
        os.unlink(f.name)
    return code, (out + err).decode("utf-8", "replace")

"""The scrape endpoint: a :class:`twisted.web` resource over a registry.

It answers ``GET`` (and so ``HEAD``) at exactly the configured
``metrics.path`` and 404 everywhere else, as ContainerSSH does, so it can be
the root resource of an HTTP server. The body is what ``prometheus_client``
encodes, in the format it chooses from the scraper's ``Accept`` header:
OpenMetrics 1.0.0 (what ContainerSSH always serves) for a scraper that asks
for it, as Prometheus does, and the Prometheus text format 0.0.4 otherwise.

The registry holds a handful of label sets (never one per connection or
user), so encoding it takes well under a millisecond and runs in the
reactor thread (``bench/metrics.py`` measures it with 200 sessions open).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from twisted.web.resource import Resource
from twisted.web.server import Request

from conch_container import messages
from conch_container.log import CodeLogger


class MetricsResource(Resource):
    """Serves ``registry`` at ``path``.

    :param registry: what to expose
        (:attr:`~conch_container.metrics.gateway.GatewayMetrics.registry`).
    :param path: ``metrics.path``; matched exactly, query string aside.
    :param log: where a failed encoding is reported.
    """

    isLeaf = True
    allowedMethods = (b"GET", b"HEAD")

    def __init__(self, registry: CollectorRegistry, path: str, log: CodeLogger) -> None:
        super().__init__()
        self._registry = registry
        self._path = path.encode("utf-8")
        self._log = log

    def render(self, request: Request) -> bytes:
        # Twisted answers a method it does not know at all with 501; every
        # method but GET is simply not allowed here.
        if request.method not in self.allowedMethods:
            request.setResponseCode(405)
            request.setHeader(b"allow", b", ".join(self.allowedMethods))
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"405 method not allowed\n"
        body: bytes = super().render(request)
        return body

    def render_GET(self, request: Request) -> bytes:
        if request.path != self._path:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"404 page not found\n"
        accept = request.getHeader(b"accept") or b""
        encoder, content_type = choose_encoder(accept.decode("latin-1"))
        try:
            body = encoder(self._registry)
        except Exception:
            self._log.failure(messages.METRICS_SCRAPE_FAILED, "Cannot encode the metrics")
            request.setResponseCode(500)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"500 internal server error\n"
        request.setHeader(b"content-type", content_type.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        return body

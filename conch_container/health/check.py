"""The health probe: ask the gateway's health endpoint whether every service runs.

``conch-container health-check`` (ContainerSSH's ``--healthcheck``) GETs
``health.client.url`` with that client block's TLS settings and succeeds only
on status 200. The whole exchange (connecting, the TLS handshake, the answer
and its body) must finish within ``health.client.timeout``, so a probe of a
hung gateway fails instead of hanging the orchestrator's probe.
"""

from __future__ import annotations

from typing import Any

import attrs
from hyperlink import DecodedURL, EncodedURL
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers

from conch_container.config.http import HTTPClientConfig
from conch_container.deferreds import DeadlineExceeded, with_deadline
from conch_container.webhook.bodies import read_body
from conch_container.webhook.errors import describe_failure, is_cancellation
from conch_container.webhook.tls import TLSConfigError, TLSSettings, WebhookTLSPolicy

__all__ = ["HealthCheckResult", "probe", "public_url"]

#: The most of the answer read: ContainerSSH's is ``ok`` or ``not ok``.
MAX_ANSWER = 1024


@attrs.frozen
class HealthCheckResult:
    """What the probe found.

    :ivar healthy: status 200 was received.
    :ivar status: the HTTP status, or ``None`` when no answer came.
    :ivar reason: what went wrong, for the log; empty when healthy.
    """

    healthy: bool
    status: int | None = None
    reason: str = ""


def public_url(url: str) -> str:
    """``url`` without ``user:password@``, for log lines."""
    try:
        return str(EncodedURL.from_text(url).replace(userinfo="").to_text())
    except Exception:
        return "<invalid URL>"


async def probe(reactor: Any, config: HTTPClientConfig) -> HealthCheckResult:
    """GET ``config.url`` once, within ``config.timeout``; never raises for a failed check."""
    try:
        url = DecodedURL.from_text(config.url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("not an http or https URL")
        target = url.to_uri().to_text().encode("ascii")
    except Exception as e:
        return HealthCheckResult(False, reason=f"url: invalid URL ({e})")
    try:
        # The TLS options apply to https URLs only, as for every HTTP client block.
        settings = TLSSettings.from_config(config) if url.scheme == "https" else TLSSettings()
        policy = WebhookTLSPolicy(settings)
    except TLSConfigError as e:
        return HealthCheckResult(False, reason=str(e))
    pool = HTTPConnectionPool(reactor, persistent=False)
    agent = Agent(reactor, contextFactory=policy, connectTimeout=config.timeout, pool=pool)

    async def exchange() -> HealthCheckResult:
        headers = Headers({b"accept": [b"text/plain"], b"user-agent": [b"conch-container"]})
        response = await agent.request(b"GET", target, headers)
        await read_body(response, MAX_ANSWER)
        if response.code == 200:
            return HealthCheckResult(True, 200)
        return HealthCheckResult(False, response.code, f"status {response.code}")

    try:
        return await with_deadline(reactor, config.timeout, exchange())
    except Exception as e:
        failure = Failure(e)
        # The agent wraps the deadline's cancellation in its own errors.
        if failure.check(DeadlineExceeded) or is_cancellation(failure):
            return HealthCheckResult(False, reason=f"no answer within {config.timeout:g} s")
        return HealthCheckResult(False, reason=describe_failure(failure))
    finally:
        await pool.closeCachedConnections()

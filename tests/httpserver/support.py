"""A real HTTP(S) client for the HTTP service tests: one request, no connection kept."""

from __future__ import annotations

import treq
from twisted.internet import reactor
from twisted.web.client import Agent, HTTPConnectionPool

from conch_container.webhook.tls import TLSSettings, WebhookTLSPolicy

__all__ = ["get"]


async def get(
    url: str, *, settings: TLSSettings | None = None, accept: str | None = None
) -> tuple[int, bytes]:
    """GET ``url`` over a new connection; the status and the body.

    :param settings: the client's TLS settings (trust roots, client certificate).
    """
    policy = WebhookTLSPolicy(settings or TLSSettings())
    pool = HTTPConnectionPool(reactor, persistent=False)
    client = treq.client.HTTPClient(Agent(reactor, contextFactory=policy, pool=pool))
    headers = {"Accept": [accept]} if accept else None
    response = await client.get(url, headers=headers, timeout=10)
    body = await treq.content(response)
    await pool.closeCachedConnections()
    return response.code, body

"""A TCP proxy on loopback that can cut its clients off: an S3 outage on demand.

The proxy runs in the test's reactor in front of the S3 server (whose state
is in memory, so the server itself is never restarted). While it is *cut*,
every open connection is aborted and every new one is accepted and at once
reset, as a load balancer with nothing behind it does; *restored*, it
forwards again. It can listen with TLS, to stand for an S3 endpoint with its
own certificate authority.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from twisted.internet.interfaces import IListeningPort
from twisted.internet.ssl import CertificateOptions
from twisted.protocols.portforward import (
    ProxyClient,
    ProxyClientFactory,
    ProxyFactory,
    ProxyServer,
)


class _Client(ProxyClient):
    pass


class _ClientFactory(ProxyClientFactory):
    protocol = _Client
    noisy = False


class _Server(ProxyServer):
    clientProtocolFactory = _ClientFactory
    factory: CuttableProxy

    def connectionMade(self) -> None:
        if not self.factory.forwarding:
            self.factory.refused += 1
            self.transport.abortConnection()  # type: ignore[attr-defined]
            return
        self.factory.open.add(self)
        super().connectionMade()

    def connectionLost(self, reason: Any) -> None:
        self.factory.open.discard(self)
        super().connectionLost(reason)


class CuttableProxy(ProxyFactory):
    """Forwards to ``host:port`` until :meth:`cut`, again after :meth:`restore`.

    :ivar refused: how many connections were reset while cut.
    """

    protocol = _Server
    noisy = False

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.forwarding = True
        self.refused = 0
        self.open: set[_Server] = set()
        self._listening: IListeningPort | None = None

    def listen(self, reactor: Any, tls: CertificateOptions | None = None) -> str:
        """Listen on a free loopback port; the URL to give clients instead of the target's."""
        if tls is None:
            self._listening = reactor.listenTCP(0, self, interface="127.0.0.1")
            scheme = "http"
        else:
            self._listening = reactor.listenSSL(0, self, tls, interface="127.0.0.1")
            scheme = "https"
        assert self._listening is not None
        return f"{scheme}://127.0.0.1:{self._listening.getHost().port}"

    def cut(self) -> None:
        """Reset every connection, and every new one until :meth:`restore`."""
        self.forwarding = False
        for server in list(self.open):
            server.transport.abortConnection()  # type: ignore[attr-defined]

    def restore(self) -> None:
        self.forwarding = True

    async def close(self) -> None:
        self.cut()
        if self._listening is not None:
            await self._listening.stopListening()


def proxy_to(endpoint: str) -> CuttableProxy:
    """A proxy for the server at ``endpoint`` (an ``http://host:port`` URL)."""
    parts = urlsplit(endpoint)
    assert parts.hostname is not None and parts.port is not None
    return CuttableProxy(parts.hostname, parts.port)

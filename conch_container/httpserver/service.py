"""An HTTP(S) service of the gateway (health, metrics), in the service tree.

:class:`HTTPServerService` listens on a ContainerSSH HTTP server block
(``listen``, ``cert``/``key``, ``clientcacert``, ``tlsVersion``, ``curves``,
``cipher``) with a :class:`~conch_container.httpserver.site.BoundedSite`.
Its start fires once the socket is bound, or fails after logging
``HTTP_LISTEN_FAILED``, so :class:`~conch_container.service.GatewayService`
reports ``SERVICE_CRASHED`` and stops the gateway instead of running without
the endpoint an orchestrator probes. Its stop closes the socket and then
every open connection, by force after :attr:`close_deadline`.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.address import IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web.resource import IResource

from conch_container import messages
from conch_container.codes import MessageCode
from conch_container.config.http import HTTPServerConfig
from conch_container.httpserver.site import BoundedSite, Limits
from conch_container.httpserver.tls import server_tls_options
from conch_container.listener import listen_or_fail
from conch_container.log import CodeLogger

__all__ = ["HTTPServerService"]


class HTTPServerService(Service):
    """Serves ``resource`` on ``config.listen`` while running.

    :param name: the service's name in the tree and in log lines.
    :param config: the HTTP server block.
    :param resource: the root resource.
    :param log: where events go.
    :param available: the code logged once listening (``HEALTH_AVAILABLE``,
        ``METRICS_AVAILABLE``, ``CONFIG_SERVER_AVAILABLE``), with the bound address.
    :param reactor: listens and runs the timeouts (only the tap passes the global one).
    :param limits: request, idle and connection bounds.
    :param close_deadline: seconds open connections get to close on stop.
    :raises TLSConfigError: for invalid TLS options (at construction, so at start-up).
    """

    def __init__(
        self,
        name: str,
        config: HTTPServerConfig,
        resource: IResource,
        *,
        log: CodeLogger,
        available: MessageCode,
        reactor: Any,
        limits: Limits = Limits(),  # noqa: B008 - frozen, so sharing it is safe
        close_deadline: float = 5.0,
    ) -> None:
        self.setName(name)
        self._config = config
        self._log = log.bind(module="http")
        self._available = available
        self._reactor = reactor
        self.close_deadline = close_deadline
        self.site = BoundedSite(resource, name=name, log=self._log, clock=reactor, limits=limits)
        self._tls = server_tls_options(config)
        self._port: IListeningPort | None = None

    @property
    def tls(self) -> bool:
        """Whether the service speaks HTTPS."""
        return self._tls is not None

    @property
    def port(self) -> int | None:
        """The bound TCP port while listening (useful with ``listen: 127.0.0.1:0``)."""
        if self._port is None:
            return None
        return int(self._port.getHost().port)  # type: ignore[attr-defined]

    @property
    def address(self) -> str | None:
        """The bound ``host:port`` while listening (an IPv6 host in brackets)."""
        if self._port is None:
            return None
        host = self._port.getHost()
        if isinstance(host, IPv6Address):
            return f"[{host.host}]:{host.port}"
        return f"{host.host}:{host.port}"  # type: ignore[attr-defined]

    def startService(self) -> Deferred[None]:
        Service.startService(self)
        factory: Any = self.site
        if self._tls is not None:
            factory = TLSMemoryBIOFactory(self._tls, False, self.site)
        d = listen_or_fail(
            self._reactor,
            self._config.listen,
            factory,
            self._log,
            messages.HTTP_LISTEN_FAILED,
            service=self.name,
        )

        def listening(port: IListeningPort) -> None:
            self._port = port
            self._log.event(
                self._available,
                "{service} listening on {listen} ({scheme})",
                service=self.name,
                listen=self.address,
                scheme="https" if self.tls else "http",
            )

        started: Deferred[None] = d.addCallback(listening)
        return started

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            await port.stopListening()  # type: ignore[misc]
        await self.site.close_connections(self.close_deadline)

"""The server as a whole: the Docker engine, the pods, the HTTP(S) listener.

In-process, from a test::

    server = KubeAPIServer(reactor, token="secret")
    url = await server.start()          # http://127.0.0.1:PORT
    ...
    await server.stop()                 # every container it made is removed

``tls_dir`` serves HTTPS with a certificate from a CA written there
(:mod:`.tls`): ``server.ca_file`` is what a client verifies it with.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from typing import Any

from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from conch_container import messages
from conch_container.backend.docker.engine.api import Engine
from conch_container.backend.docker.engine.client import DEFAULT_HOST, EngineSettings, thd_connect
from conch_container.httpserver.site import BoundedSite, Limits
from conch_container.log import CodeLogger
from conch_container.testing.kubeapi.resource import KubeAPIResource
from conch_container.testing.kubeapi.runtime import DockerPods
from conch_container.testing.kubeapi.store import PodStore
from conch_container.testing.kubeapi.tls import CA_FILE, write_certificates

#: Threads for Docker control calls (streams never take one).
POOL_SIZE = 4
#: A pod spec is small; anything larger is refused with 413.
LIMITS = Limits(max_body=1024 * 1024, idle_timeout=120.0, max_connections=200)
#: Seconds open connections get to close when the server stops.
CLOSE_DEADLINE = 5.0


class KubeAPIServer:
    """A Kubernetes API server for tests whose pods are local Docker containers.

    :param token: the bearer token clients must send.
    :param docker_host: the engine (``DOCKER_HOST``, else the local socket).
    :param tls_dir: serve HTTPS with a CA and certificate written there.
    """

    def __init__(
        self,
        reactor: Any,
        token: str,
        *,
        interface: str = "127.0.0.1",
        port: int = 0,
        docker_host: str | None = None,
        tls_dir: str | None = None,
        log: CodeLogger | None = None,
    ) -> None:
        self._reactor = reactor
        self._token = token
        self._interface = interface
        self._port_number = port
        self._settings = EngineSettings(
            host=docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_HOST, timeout=30.0
        )
        self._tls_dir = tls_dir
        self._log = log or CodeLogger("conch_container.testing.kubeapi")
        self.instance = "kubeapi-" + secrets.token_hex(6)
        self.store = PodStore()
        self.url = ""
        self._pool: ThreadPool | None = None
        self._port: Any = None
        self._site: BoundedSite | None = None
        self.pods: DockerPods | None = None

    @property
    def ca_file(self) -> str | None:
        """The CA certificate's path with TLS, else None."""
        return os.path.join(self._tls_dir, CA_FILE) if self._tls_dir else None

    async def start(self) -> str:
        """Connect to the engine and listen; the server's URL."""
        pool = self._pool = ThreadPool(0, POOL_SIZE, name="kubeapi-docker")
        pool.start()
        client, engine_tls = await deferToThreadPool(
            self._reactor, pool, thd_connect, self._settings, tempfile.gettempdir(), POOL_SIZE
        )
        engine = Engine(self._reactor, pool, client, self._settings, engine_tls)
        self.pods = DockerPods(self._reactor, engine, self.store, self.instance, self._log)
        resource = KubeAPIResource(self.store, self.pods, self._token, "", self._reactor, self._log)
        self._site = BoundedSite(
            resource, name="kubeapi", log=self._log, clock=self._reactor, limits=LIMITS
        )
        if self._tls_dir is not None:
            options = write_certificates(self._tls_dir)
            self._port = self._reactor.listenSSL(
                self._port_number, self._site, options, interface=self._interface
            )
            scheme = "https"
        else:
            self._port = self._reactor.listenTCP(
                self._port_number, self._site, interface=self._interface
            )
            scheme = "http"
        address = self._port.getHost()
        host = f"[{address.host}]" if ":" in address.host else address.host
        resource.host = f"{host}:{address.port}"
        self.url = f"{scheme}://{host}:{address.port}"
        self._log.event(
            messages.KUBEAPI_LISTENING,
            "The test Kubernetes API server listens on {url}",
            url=self.url,
        )
        return self.url

    async def stop(self) -> None:
        """Stop listening, close connections, remove every container; idempotent."""
        if self._port is not None:
            port, self._port = self._port, None
            await port.stopListening()
        if self._site is not None:
            site, self._site = self._site, None
            await site.close_connections(CLOSE_DEADLINE)
        if self.pods is not None:
            pods, self.pods = self.pods, None
            try:
                await pods.close()
            finally:
                await pods.engine.close()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.stop()
        self._log.event(messages.KUBEAPI_STOPPED, "The test Kubernetes API server stopped")

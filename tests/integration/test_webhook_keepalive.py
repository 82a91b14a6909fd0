"""Many logins at once through the webhook authenticator, against servers hard on keep-alive.

The real reactor, real sockets on 127.0.0.1, and the gateway's own webhook
client, authenticator and authorizer; no Docker and no SSH. Each login asks
the webhook what an OpenSSH login asks, one after the other: its key
(refused), its password, its authorization. The calls of one login follow
each other within the same turn of the reactor, so each takes the connection
that the previous answer has just put back into the pool.

``authTimeout`` is below the 10 s between retries, so a login whose first
call fails is refused rather than retried ten seconds later: a single call
lost to a dead connection shows as a refused login.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from conch_container.auth.webhook import RETRY_INTERVAL, WebhookAuthenticator, WebhookAuthorizer
from conch_container.errors import ContainerSSHError
from conch_container.metadata import ConnectionMetadata
from conch_container.testing.webhook import AuthWebhookResource, WebhookUser, listen_tcp
from conch_container.testing.webhook_site import WebhookSite
from conch_container.webhook.client import WebhookClient
from conch_container.webhook.pool import IDLE_CONNECTION_TIMEOUT
from tests.webhook.support import ClientConfig, capturing_logger, codes

reactor: Any = global_reactor

LOGINS = 50
#: Below RETRY_INTERVAL: a failed first call refuses the login.
AUTH_TIMEOUT = 5.0
#: The per-call limit; generous, since the machine may be busy.
CALL_TIMEOUT = 4.5
#: The idle time after which the keep-alive server closes a connection.
SERVER_KEEP_ALIVE = 1.0
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHnTNqmvBWQTPEwhjXT4fBqPeLH7c2NFQ7Bm6C4tCGqc"


class _Logins:
    """The auth side of a gateway pointed at one webhook URL, with its log captured."""

    def __init__(self, url: str) -> None:
        self.log, self.events = capturing_logger()
        config = ClientConfig(url=url, timeout=CALL_TIMEOUT, auth_timeout=AUTH_TIMEOUT)
        self.client = WebhookClient(config, reactor=reactor, log=self.log)
        self.authenticator = WebhookAuthenticator(
            self.client, clock=reactor, log=self.log, auth_timeout=AUTH_TIMEOUT
        )
        self.authorizer = WebhookAuthorizer(
            self.client, clock=reactor, log=self.log, auth_timeout=AUTH_TIMEOUT
        )

    async def login(self, number: int) -> bool:
        """One login as OpenSSH makes it: whether it got in."""
        metadata = ConnectionMetadata(
            connection_id=f"{number:032x}",
            remote_address=f"127.0.0.1:{40000 + number}",
            client_version="SSH-2.0-OpenSSH_9.6",
            username="alice",
        )
        try:
            key = await self.authenticator.authenticate_public_key(metadata, KEY)
            password = await self.authenticator.authenticate_password(metadata, b"secret")
            authorization = await self.authorizer.authorize(metadata)
        except ContainerSSHError:
            return False
        return not key.success and password.success and authorization.success

    async def refused(self, count: int) -> int:
        """Run ``count`` logins at once; how many were refused."""
        logins = [Deferred.fromCoroutine(self.login(n)) for n in range(count)]
        outcomes = await gatherResults(logins, consumeErrors=True)
        return outcomes.count(False)

    def connection_failures(self) -> int:
        return codes(self.events).count("HTTP_CLIENT_CONNECTION_FAILED")

    def replays(self) -> int:
        """How many calls went out again because a pooled connection was dead."""
        return sum(1 for e in self.events if e.get("attempt") == 2)


class _PythonHTTP10Handler(BaseHTTPRequestHandler):
    """A webhook on Python's http.server: HTTP/1.0, one call per connection."""

    protocol_version = "HTTP/1.0"
    requests: list[str]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        endpoint = self.path.rstrip("/").rpartition("/")[2]
        self.requests.append(endpoint)
        body = json.dumps({"success": endpoint != "pubkey"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _PythonHTTP10Server(ThreadingHTTPServer):
    # All logins connect at once; the default backlog of 5 would stall them.
    request_queue_size = 128
    daemon_threads = True


def _python_http10_server() -> tuple[str, list[str], Callable[[], Deferred[None]]]:
    """Start one in a thread: its URL, the endpoints it answered, and what stops it."""
    requests: list[str] = []
    handler = type("Handler", (_PythonHTTP10Handler,), {"requests": requests})
    server = _PythonHTTP10Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()

    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}/", requests, lambda: deferToThread(stop)


class KeepAliveTests(TestCase):
    def _site(self, **behaviour: Any) -> tuple[WebhookSite, str]:
        resource = AuthWebhookResource({"alice": WebhookUser(password="secret")})
        site = WebhookSite(resource, clock=reactor, **behaviour)
        port, url = listen_tcp(reactor, site)
        self.addCleanup(port.stopListening)
        return site, url

    def _logins(self, url: str, site: WebhookSite | None = None) -> _Logins:
        logins = _Logins(url)

        async def close() -> None:
            await logins.client.close()
            # Let the server see every connection go, so none outlives the test.
            while site is not None and site.open_connections:
                await deferLater(reactor, 0.01)

        self.addCleanup(lambda: Deferred.fromCoroutine(close()))
        return logins

    async def test_python_http10_server(self) -> None:
        """50 logins at once against Python's http.server (HTTP/1.0) all get in at the first try."""
        url, requests, stop = _python_http10_server()
        self.addCleanup(stop)
        logins = self._logins(url)
        refused = await logins.refused(LOGINS)
        # No call even went out on a connection the server had closed.
        self.assertEqual(
            (refused, logins.connection_failures(), logins.replays()),
            (0, 0, 0),
            "refused logins, HTTP_CLIENT_CONNECTION_FAILED events, calls sent again",
        )
        self.assertEqual(len(requests), 3 * LOGINS)

    async def test_http10_site(self) -> None:
        """The same against a Twisted server answering as an HTTP/1.0 server does."""
        site, url = self._site(http10=True)
        logins = self._logins(url, site)
        refused = await logins.refused(LOGINS)
        self.assertEqual(
            (refused, logins.connection_failures(), logins.replays()),
            (0, 0, 0),
            "refused logins, HTTP_CLIENT_CONNECTION_FAILED events, calls sent again",
        )
        self.assertEqual(site.connections, 3 * LOGINS)  # one connection per call

    async def test_server_closing_idle_connections(self) -> None:
        """After an idle time the server's keep-alive timeout ended, 50 logins all get in."""
        self.assertGreater(IDLE_CONNECTION_TIMEOUT, SERVER_KEEP_ALIVE + 0.5)
        self.assertLess(AUTH_TIMEOUT, RETRY_INTERVAL)
        site, url = self._site(keep_alive_timeout=SERVER_KEEP_ALIVE)
        logins = self._logins(url, site)
        self.assertEqual(await logins.refused(1), 0)
        await deferLater(reactor, SERVER_KEEP_ALIVE + 0.5)
        refused = await logins.refused(LOGINS)
        self.assertEqual(
            (refused, logins.connection_failures()),
            (0, 0),
            "refused logins, HTTP_CLIENT_CONNECTION_FAILED events",
        )
        # The client did meet a connection the server had closed, and got past it.
        self.assertGreaterEqual(site.dropped, 1)
        self.assertEqual(logins.replays(), site.dropped)
        self.assertEqual(len(site.resource.requests), 3 * (LOGINS + 1))

    async def test_keep_alive_still_used(self) -> None:
        """Against an ordinary HTTP/1.1 server, the calls of a login share connections."""
        site, url = self._site()
        logins = self._logins(url, site)
        refused = await logins.refused(LOGINS)
        self.assertEqual((refused, logins.connection_failures()), (0, 0))
        self.assertLess(site.connections, 2 * LOGINS, "connections for 3 calls per login")

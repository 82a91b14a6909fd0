"""The health probe over real loopback HTTP(S): 200 passes, anything else fails, with a deadline."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from conch_container import messages
from conch_container.config.http import HTTPClientConfig, HTTPServerConfig
from conch_container.health import HealthResource
from conch_container.health.check import probe, public_url
from conch_container.httpserver import HTTPServerService
from tests.integration.processes import free_port
from tests.webhook.pki import issue, make_ca
from tests.webhook.support import capturing_logger


class Silent(Resource):
    """Never answers."""

    isLeaf = True

    def render(self, request: Any) -> Any:
        return NOT_DONE_YET


class Redirect(Resource):
    isLeaf = True

    def render(self, request: Any) -> bytes:
        request.setResponseCode(302)
        request.setHeader(b"location", b"/elsewhere")
        return b""


class ProbeTests(TestCase):
    def setUp(self) -> None:
        self.log, self.events = capturing_logger()
        self.healthy = True

    async def serve(self, resource: Resource | None = None, **config: Any) -> HTTPServerService:
        service = HTTPServerService(
            "health",
            HTTPServerConfig(listen="127.0.0.1:0", **config),
            resource or HealthResource(lambda: self.healthy, self.log),
            log=self.log,
            available=messages.HEALTH_AVAILABLE,
            reactor=reactor,
            close_deadline=1.0,
        )
        await service.startService()
        self.addCleanup(service.stopService)
        return service

    async def test_healthy(self) -> None:
        """Status 200 is a pass."""
        service = await self.serve()
        result = await probe(reactor, HTTPClientConfig(url=f"http://127.0.0.1:{service.port}/"))
        self.assertEqual((result.healthy, result.status), (True, 200))

    async def test_unhealthy(self) -> None:
        """Status 503 is a failure that names the status."""
        self.healthy = False
        service = await self.serve()
        result = await probe(reactor, HTTPClientConfig(url=f"http://127.0.0.1:{service.port}/"))
        self.assertEqual((result.healthy, result.status, result.reason), (False, 503, "status 503"))

    async def test_redirect_is_not_followed(self) -> None:
        """A redirect is a failure, as with allowRedirects off."""
        service = await self.serve(Redirect())
        result = await probe(reactor, HTTPClientConfig(url=f"http://127.0.0.1:{service.port}/"))
        self.assertEqual((result.healthy, result.status), (False, 302))

    async def test_nothing_listening(self) -> None:
        """A refused connection is a failure."""
        result = await probe(reactor, HTTPClientConfig(url=f"http://127.0.0.1:{free_port()}/"))
        self.assertFalse(result.healthy)
        self.assertIsNone(result.status)
        self.assertIn("refused", result.reason.lower())

    async def test_deadline(self) -> None:
        """A server that never answers fails the probe at the client's timeout."""
        service = await self.serve(Silent())
        config = HTTPClientConfig(url=f"http://127.0.0.1:{service.port}/", timeout=0.2)
        result = await probe(reactor, config)
        self.assertFalse(result.healthy)
        self.assertEqual(result.reason, "no answer within 0.2 s")

    async def test_invalid_url(self) -> None:
        """A URL that is not http(s) fails without any connection."""
        result = await probe(reactor, HTTPClientConfig(url="ftp://127.0.0.1/"))
        self.assertFalse(result.healthy)
        self.assertIn("url:", result.reason)

    async def test_mutual_tls(self) -> None:
        """The client block's CA, certificate and key are used for https URLs."""
        ca, client_ca = make_ca(), make_ca("Client CA")
        server = issue(ca, "localhost", ips=("127.0.0.1",))
        client = issue(client_ca, "probe", client=True)
        service = await self.serve(
            cert=server.cert_pem, key=server.key_pem, clientcacert=client_ca.cert_pem
        )
        url = f"https://127.0.0.1:{service.port}/"
        with_cert = HTTPClientConfig(
            url=url, cacert=ca.cert_pem, cert=client.cert_pem, key=client.key_pem
        )
        self.assertTrue((await probe(reactor, with_cert)).healthy)
        without = HTTPClientConfig(url=url, cacert=ca.cert_pem)
        self.assertFalse((await probe(reactor, without)).healthy)
        untrusted = HTTPClientConfig(url=url, cert=client.cert_pem, key=client.key_pem)
        self.assertFalse((await probe(reactor, untrusted)).healthy)

    def test_public_url_hides_credentials(self) -> None:
        """Credentials in the URL never reach a log line."""
        self.assertEqual(public_url("http://user:secret@host:7000/"), "http://host:7000/")

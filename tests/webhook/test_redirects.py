"""Redirects that would leave HTTPS for plain HTTP are refused, never followed."""

from __future__ import annotations

from typing import Any

from OpenSSL import crypto
from twisted.internet import defer, reactor
from twisted.internet.ssl import CertificateOptions
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from conch_container import messages
from conch_container.testing.webhook import (
    AuthWebhookResource,
    WebhookUser,
    memory_agent,
    redirect,
)
from conch_container.webhook.client import (
    WebhookClient,
    WebhookInsecureRedirectError,
    WebhookRedirectError,
)
from tests.webhook.pki import issue, make_ca
from tests.webhook.support import ClientConfig, capturing_logger, with_code

BODY = {"username": "alice", "passwordBase64": "c2VjcmV0"}  # "secret"
REFUSED = messages.HTTP_CLIENT_REDIRECTS_DISABLED.code


class _Recorder(Resource):
    """Records every request, whatever its method, and answers 200 with an empty object."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[bytes, bytes]] = []

    def render(self, request: Request) -> bytes:
        body = request.content.read() if request.content is not None else b""
        self.seen.append((request.method, body))
        return b"{}"


class _Redirecting(Resource):
    """Answers every request with ``status`` and a ``Location`` header."""

    isLeaf = True

    def __init__(self, status: int, location: str) -> None:
        super().__init__()
        self.status = status
        self.location = location
        self.calls = 0

    def render(self, request: Request) -> bytes:
        self.calls += 1
        request.setResponseCode(self.status)
        request.setHeader(b"location", self.location.encode("ascii"))
        return b""


class RealServerTests(TestCase):
    """An HTTPS webhook on 127.0.0.1 redirecting to a plain HTTP server on 127.0.0.1."""

    def setUp(self) -> None:
        self.ca = make_ca("Redirect test CA")
        self.server = issue(self.ca, "webhook", ips=("127.0.0.1",))
        self.plain = _Recorder()
        site: Any = Site(self.plain)
        plain_port: Any = reactor.listenTCP(  # type: ignore[attr-defined]
            0, site, interface="127.0.0.1"
        )
        self.addCleanup(plain_port.stopListening)
        self.plain_url = f"http://127.0.0.1:{plain_port.getHost().port}/password"

    def listen_tls(self, resource: Resource) -> str:
        options = CertificateOptions(
            privateKey=crypto.PKey.from_cryptography_key(self.server.key),
            certificate=crypto.X509.from_cryptography(self.server.cert),
        )
        port = reactor.listenSSL(  # type: ignore[attr-defined]
            0, Site(resource), options, interface="127.0.0.1"
        )
        self.addCleanup(port.stopListening)
        return f"https://127.0.0.1:{port.getHost().port}/"

    async def post(self, url: str) -> tuple[Any, list[dict[str, Any]]]:
        log, events = capturing_logger()
        client = WebhookClient(
            ClientConfig(url=url, allow_redirects=True, timeout=5.0, cacert=self.ca.cert_pem),
            reactor=reactor,
            log=log,
        )
        try:
            return await client.post("password", BODY), events
        except WebhookRedirectError as error:
            return error, events
        finally:
            await client.close()

    def assert_refused(self, status: int) -> defer.Deferred[None]:
        async def check() -> None:
            redirecting = _Redirecting(status, self.plain_url)
            outcome, events = await self.post(self.listen_tls(redirecting))
            self.assertIsInstance(outcome, WebhookInsecureRedirectError)
            self.assertEqual(outcome.code, messages.HTTP_CLIENT_REDIRECTS_DISABLED)
            self.assertIn(self.plain_url, outcome.reason)
            self.assertEqual(redirecting.calls, 1)
            self.assertEqual(self.plain.seen, [])
            [event] = with_code(events, REFUSED)
            self.assertEqual(event["redirect"], self.plain_url)
            self.assertIn("plain HTTP", event["log_format"])

        return defer.Deferred.fromCoroutine(check())

    def test_302_to_http_refused(self) -> defer.Deferred[None]:
        """A 302 from the HTTPS webhook to an http:// URL is refused; nothing reaches it."""
        return self.assert_refused(302)

    def test_307_to_http_refused(self) -> defer.Deferred[None]:
        """A 307, which would resend the password body, is refused; nothing reaches the target."""
        return self.assert_refused(307)

    def test_308_to_http_refused(self) -> defer.Deferred[None]:
        """A 308 is refused in the same way."""
        return self.assert_refused(308)

    def test_https_to_https_followed(self) -> defer.Deferred[None]:
        """A redirect that stays on HTTPS is still followed when redirects are allowed."""

        async def check() -> None:
            root = Resource()
            root.putChild(b"password", _Redirecting(307, "/moved/password"))
            moved = Resource()
            root.putChild(b"moved", moved)
            moved.putChild(
                b"password", AuthWebhookResource({"alice": WebhookUser(password="secret")})
            )
            answer, events = await self.post(self.listen_tls(root))
            self.assertEqual(answer["success"], True)
            self.assertEqual(with_code(events, REFUSED), [])

        return defer.Deferred.fromCoroutine(check())


class InMemoryTests(SynchronousTestCase):
    """The same rule without sockets, and the redirects it leaves alone."""

    def post(self, url: str, location: str) -> tuple[Any, AuthWebhookResource]:
        resource = AuthWebhookResource({"alice": WebhookUser(password="secret")})
        resource.inject(redirect(location), count=1)
        log, _ = capturing_logger()
        client = WebhookClient(
            ClientConfig(url=url, allow_redirects=True),
            reactor=Clock(),
            agent=memory_agent(resource),
            log=log,
        )
        return defer.Deferred.fromCoroutine(client.post("password", BODY)), resource

    def test_downgrade_refused(self) -> None:
        """https to http is refused after the first request; the body is never resent."""
        result, resource = self.post("https://webhook.test/", "http://webhook.test/password")
        self.failureResultOf(result, WebhookInsecureRedirectError)
        self.assertEqual(len(resource.requests), 1)

    def test_scheme_case_ignored(self) -> None:
        """An upper-case HTTP scheme in the Location header is the same downgrade."""
        result, resource = self.post("https://webhook.test/", "HTTP://webhook.test/password")
        self.failureResultOf(result, WebhookInsecureRedirectError)
        self.assertEqual(len(resource.requests), 1)

    def test_http_to_http_followed(self) -> None:
        """A webhook that is plain HTTP already may redirect within plain HTTP."""
        result, resource = self.post("http://webhook.test/", "http://webhook.test/other/password")
        self.assertEqual(self.successResultOf(result)["success"], True)
        self.assertEqual(len(resource.requests), 2)

"""Tests for conch_container.webhook.client: JSON over HTTP with ContainerSSH's rules."""

from __future__ import annotations

import base64
import json
from typing import Any

from treq.testing import StubTreq
from twisted.internet import defer, reactor
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import Request

from conch_container.testing.webhook import (
    GARBAGE,
    HANG,
    AuthWebhookResource,
    Fault,
    WebhookUser,
    memory_agent,
    redirect,
    slow,
    status,
)
from conch_container.webhook.client import (
    WebhookClient,
    WebhookConfigError,
    WebhookConnectionError,
    WebhookDecodeError,
    WebhookEncodeError,
    WebhookRedirectError,
    WebhookStatusError,
    WebhookTimeoutError,
    join_url,
)
from tests.webhook.support import ClientConfig, capturing_logger, codes, with_code


class JoinURLTests(SynchronousTestCase):
    def test_single_slash(self) -> None:
        """Base and path are joined with exactly one slash, however they are written."""
        self.assertEqual(join_url("http://a/", "/password"), "http://a/password")
        self.assertEqual(join_url("http://a", "password"), "http://a/password")
        self.assertEqual(join_url("http://a/auth//", "/pubkey"), "http://a/auth/pubkey")

    def test_empty_path(self) -> None:
        """An empty path calls the base URL unchanged."""
        self.assertEqual(join_url("http://a/config/", ""), "http://a/config/")


class _Harness:
    def __init__(self, test: SynchronousTestCase, resource: Resource, **config: Any) -> None:
        self.clock = Clock()
        self.resource = resource
        self.agent = memory_agent(resource)
        self.log, self.events = capturing_logger()
        self.client = WebhookClient(
            ClientConfig(**{"url": "http://webhook.test/auth", **config}),
            reactor=self.clock,
            agent=self.agent,
            log=self.log,
        )

    def post(self, path: str, body: Any, **kwargs: Any) -> defer.Deferred[Any]:
        return defer.Deferred.fromCoroutine(self.client.post(path, body, **kwargs))


class _Echo(Resource):
    """Answers 200 with a JSON description of the request."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Request] = []
        self.cookie = False

    def _describe(self, request: Request) -> bytes:
        self.seen.append(request)
        body = request.content.read() if request.content is not None else b""
        if self.cookie:
            request.addCookie(b"session", b"abc")
        headers = {
            k.decode().lower(): v[-1].decode() for k, v in request.requestHeaders.getAllRawHeaders()
        }
        return json.dumps(
            {
                "method": request.method.decode(),
                "path": request.path.decode(),
                "headers": headers,
                "body": body.decode(),
            }
        ).encode()

    def render_POST(self, request: Request) -> bytes:
        return self._describe(request)

    def render_GET(self, request: Request) -> bytes:
        return self._describe(request)


class _Fixed(Resource):
    """Answers every POST with status 200 and the given body."""

    isLeaf = True

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.body = body

    def render_POST(self, request: Request) -> bytes:
        return self.body


class PostTests(SynchronousTestCase):
    def test_posts_json(self) -> None:
        """A call POSTs compact JSON with JSON content type and accept headers."""
        h = _Harness(self, _Echo())
        answer = self.successResultOf(h.post("password", {"username": "ä", "n": 1}))
        self.assertEqual(answer["method"], "POST")
        self.assertEqual(answer["path"], "/auth/password")
        self.assertEqual(answer["headers"]["content-type"], "application/json")
        self.assertEqual(answer["headers"]["accept"], "application/json")
        self.assertEqual(json.loads(answer["body"]), {"username": "ä", "n": 1})
        self.assertNotIn(" ", answer["body"])

    def test_logs_request_and_response(self) -> None:
        """HTTP_CLIENT_REQUEST and HTTP_CLIENT_RESPONSE are logged with the URL and status."""
        h = _Harness(self, _Echo())
        self.successResultOf(h.post("password", {}))
        self.assertEqual(codes(h.events), ["HTTP_CLIENT_REQUEST", "HTTP_CLIENT_RESPONSE"])
        self.assertEqual(h.events[0]["url"], "http://webhook.test/auth/password")
        self.assertEqual(h.events[1]["statusCode"], 200)

    def test_body_never_logged(self) -> None:
        """Nothing of the request body appears in any log event."""
        h = _Harness(self, _Echo())
        self.successResultOf(h.post("password", {"passwordBase64": "c2VjcmV0LXBhc3M="}))
        self.assertNotIn("c2VjcmV0LXBhc3M=", repr(h.events))

    def test_decode_applied(self) -> None:
        """The ``decode`` callable turns the JSON answer into the caller's type."""
        h = _Harness(self, _Echo())
        self.assertEqual(
            self.successResultOf(h.post("x", {}, decode=lambda d: d["method"])), "POST"
        )

    def test_decode_rejects(self) -> None:
        """A ValueError from ``decode`` is a decode failure, logged as HTTP_CLIENT_DECODE_FAILED."""

        def reject(document: Any) -> Any:
            raise ValueError("success: missing")

        h = _Harness(self, _Echo())
        failure = self.failureResultOf(h.post("x", {}, decode=reject), WebhookDecodeError)
        self.assertIn("success: missing", failure.value.reason)
        self.assertIn("HTTP_CLIENT_DECODE_FAILED", codes(h.events))

    def test_garbage_is_decode_error(self) -> None:
        """A 200 answer that is not JSON fails with a decode error."""
        resource = AuthWebhookResource()
        resource.inject(GARBAGE)
        h = _Harness(self, resource)
        failure = self.failureResultOf(h.post("password", {}), WebhookDecodeError)
        self.assertEqual(failure.value.code.code, "HTTP_CLIENT_DECODE_FAILED")

    def test_malformed_answers_are_decode_errors(self) -> None:
        """Too deep, too large or too long a number: a decode error, logged without the request."""
        cases = [
            (b"[" * 100_000, "nested more than 100 levels deep"),
            (b'{"a": ' * 101 + b"1" + b"}" * 101, "response: a.a.a.a.a.a"),
            (b"[" + b"0," * 200_000 + b"0]", "[199999]: the document holds more than 200000"),
            (b'{"success": 1' + b"0" * 5000 + b"}", "Exceeds the limit (4300 digits)"),
            (b'{"success": NaN}', "invalid JSON value NaN"),
        ]
        for body, expected in cases:
            resource = _Fixed(body)
            h = _Harness(self, resource)
            result = h.post("password", {"passwordBase64": "c2VjcmV0LXBhc3M="})
            failure = self.failureResultOf(result, WebhookDecodeError)
            self.assertIn(expected, failure.value.reason)
            [logged] = with_code(h.events, "HTTP_CLIENT_DECODE_FAILED")
            self.assertIn(expected, logged["reason"])
            self.assertNotIn("c2VjcmV0LXBhc3M=", repr(h.events))

    def test_long_key_path_shortened(self) -> None:
        """A shape failure names at most the start of its key path: the keys are the server's."""
        key = b"k" * 1000
        h = _Harness(self, _Fixed((b'{"' + key + b'": ') * 101 + b"1" + b"}" * 101))
        failure = self.failureResultOf(h.post("password", {}), WebhookDecodeError)
        self.assertLess(len(failure.value.reason), 400)
        self.assertIn("...: nested more than 100 levels deep", failure.value.reason)

    def test_non_200_is_status_error(self) -> None:
        """Only 200 is an answer: any other status raises an error carrying it."""
        for code in (201, 204, 400, 404, 500, 503):
            resource = AuthWebhookResource()
            resource.inject(status(code))
            h = _Harness(self, resource)
            failure = self.failureResultOf(h.post("password", {}), WebhookStatusError)
            self.assertEqual(failure.value.status, code)

    def test_encode_failure(self) -> None:
        """A body JSON cannot encode fails before sending (HTTP_CLIENT_ENCODE_FAILED)."""
        h = _Harness(self, _Echo())
        self.failureResultOf(h.post("x", {"bad": object()}), WebhookEncodeError)
        self.assertEqual(codes(h.events), ["HTTP_CLIENT_ENCODE_FAILED"])
        self.assertEqual(h.resource.seen, [])  # type: ignore[attr-defined]

    def test_credentials_in_url(self) -> None:
        """URL credentials become Basic authentication and never reach the logs (as in Go)."""
        h = _Harness(self, _Echo(), url="http://us%40er:p%3Ass@webhook.test/auth")
        answer = self.successResultOf(h.post("password", {}))
        expected = "Basic " + base64.b64encode(b"us@er:p:ss").decode()
        self.assertEqual(answer["headers"]["authorization"], expected)
        self.assertNotIn("p%3Ass", repr(h.events))
        self.assertEqual(h.client.url_for("password"), "http://webhook.test/auth/password")

    def test_cookies_not_returned(self) -> None:
        """Cookies the server sets are not sent on later calls."""
        echo = _Echo()
        echo.cookie = True
        h = _Harness(self, echo)
        self.successResultOf(h.post("a", {}))
        answer = self.successResultOf(h.post("b", {}))
        self.assertNotIn("cookie", answer["headers"])

    def test_response_size_limit(self) -> None:
        """An answer larger than the limit fails as a connection failure."""
        resource = AuthWebhookResource()
        resource.inject(Fault(body=b'"' + b"x" * 2000 + b'"'))
        clock = Clock()
        client = WebhookClient(
            ClientConfig(url="http://webhook.test/"),
            reactor=clock,
            agent=memory_agent(resource),
            max_response_size=1000,
        )
        d: defer.Deferred[Any] = defer.Deferred.fromCoroutine(client.post("password", {}))
        failure = self.failureResultOf(d, WebhookConnectionError)
        self.assertIn("larger than 1000", failure.value.reason)

    def test_stub_treq(self) -> None:
        """A treq-like client such as StubTreq can stand in for the agent."""
        clock = Clock()
        client = WebhookClient(
            ClientConfig(url="http://webhook.test/"), reactor=clock, agent=StubTreq(_Echo())
        )
        d: defer.Deferred[Any] = defer.Deferred.fromCoroutine(client.post("password", {"a": 1}))
        self.assertEqual(self.successResultOf(d)["path"], "/password")
        self.successResultOf(client.close())

    def test_bad_url(self) -> None:
        """A URL that is not http(s) is a configuration error."""
        for url in ("ftp://x/", "not a url", "http://"):
            self.assertRaises(
                WebhookConfigError, WebhookClient, ClientConfig(url=url), reactor=Clock()
            )


class RedirectTests(SynchronousTestCase):
    def test_disabled(self) -> None:
        """Without allowRedirects a redirect fails with HTTP_CLIENT_REDIRECTS_DISABLED."""
        resource = AuthWebhookResource()
        resource.inject(redirect("/elsewhere/password"), count=1)
        h = _Harness(self, resource)
        failure = self.failureResultOf(h.post("password", {}), WebhookRedirectError)
        self.assertEqual(failure.value.code.code, "HTTP_CLIENT_REDIRECTS_DISABLED")
        self.assertIn("http://webhook.test/elsewhere/password", failure.value.reason)
        self.assertIn("HTTP_CLIENT_REDIRECTS_DISABLED", codes(h.events))
        self.assertEqual(len(resource.requests), 1)

    def test_followed_307(self) -> None:
        """With allowRedirects a 307 repeats the POST with its body at the new location."""
        resource = AuthWebhookResource({"u": WebhookUser(password="p")})
        resource.inject(redirect("/other/password"), count=1)
        h = _Harness(self, resource, allow_redirects=True)
        body = {"username": "u", "passwordBase64": "cA=="}
        answer = self.successResultOf(h.post("password", body))
        self.assertTrue(answer["success"])
        self.assertEqual([r.path for r in resource.requests], ["/auth/password", "/other/password"])
        self.assertEqual(resource.requests[1].body, body)
        redirects = with_code(h.events, "HTTP_CLIENT_REDIRECT")
        self.assertEqual(redirects[0]["redirect"], "http://webhook.test/other/password")

    def test_303_becomes_get(self) -> None:
        """A 303 (like 301 and 302) is followed with a GET without body, as Go does."""
        echo = _Echo()

        class Redirecting(Resource):
            isLeaf = True

            def render_POST(self, request: Request) -> bytes:
                request.setResponseCode(303)
                request.setHeader(b"location", b"http://webhook.test/echo")
                return b""

        root = Resource()
        root.putChild(b"auth", Redirecting())
        root.putChild(b"echo", echo)
        h = _Harness(self, root, allow_redirects=True)
        answer = self.successResultOf(h.post("password", {"a": 1}))
        self.assertEqual(answer["method"], "GET")
        self.assertEqual(answer["body"], "")
        self.assertNotIn("content-type", answer["headers"])

    def test_bounded(self) -> None:
        """A redirect loop stops after the redirect limit."""
        resource = AuthWebhookResource()
        resource.inject(redirect("/auth/password"))
        h = _Harness(self, resource, allow_redirects=True)
        failure = self.failureResultOf(h.post("password", {}), WebhookRedirectError)
        self.assertIn("10 redirects", failure.value.reason)
        self.assertEqual(len(resource.requests), 11)


class TimeoutTests(SynchronousTestCase):
    def test_hang_times_out(self) -> None:
        """A server that never answers fails the call after the configured timeout."""
        resource = AuthWebhookResource()
        resource.inject(HANG)
        h = _Harness(self, resource, timeout=2.0)
        d = h.post("password", {})
        h.clock.advance(1.9)
        self.assertNoResult(d)
        h.clock.advance(0.1)
        failure = self.failureResultOf(d, WebhookTimeoutError)
        self.assertEqual(failure.value.code.code, "HTTP_CLIENT_CONNECTION_FAILED")
        h.agent.flush()
        self.assertEqual(resource.pending, 0)

    def test_per_call_timeout(self) -> None:
        """A call's own ``timeout`` overrides the configured one."""
        resource = AuthWebhookResource()
        resource.inject(HANG)
        h = _Harness(self, resource, timeout=2.0)
        d = h.post("password", {}, timeout=0.5)
        h.clock.advance(0.5)
        self.failureResultOf(d, WebhookTimeoutError)

    def test_slow_but_in_time(self) -> None:
        """An answer that arrives before the timeout is used."""
        h_clock = Clock()
        resource = AuthWebhookResource({"u": WebhookUser(password="p")}, clock=h_clock)
        resource.inject(slow(1.5))
        agent = memory_agent(resource)
        client = WebhookClient(ClientConfig(url="http://w/"), reactor=h_clock, agent=agent)
        d: defer.Deferred[Any] = defer.Deferred.fromCoroutine(
            client.post("password", {"username": "u", "passwordBase64": "cA=="})
        )
        h_clock.advance(1.5)
        agent.flush()
        self.assertTrue(self.successResultOf(d)["success"])
        h_clock.advance(10)  # the cancelled timeout must not fire later
        self.assertEqual(h_clock.getDelayedCalls(), [])

    def test_cancel(self) -> None:
        """Cancelling a call cancels the request and is not reported as a timeout."""
        resource = AuthWebhookResource()
        resource.inject(HANG)
        h = _Harness(self, resource)
        d = h.post("password", {})
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(h.clock.getDelayedCalls(), [])


class RealNetworkTests(TestCase):
    def test_connection_refused(self) -> defer.Deferred[None]:
        """A closed port fails with HTTP_CLIENT_CONNECTION_FAILED."""
        factory: Any = ServerFactory.forProtocol(Protocol)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
        number = port.getHost().port  # type: ignore[attr-defined]
        d: defer.Deferred[Any] = defer.maybeDeferred(port.stopListening)

        async def attempt() -> None:
            client = WebhookClient(ClientConfig(url=f"http://127.0.0.1:{number}/"), reactor=reactor)
            try:
                with self.assertRaises(WebhookConnectionError) as caught:
                    await client.post("password", {})
                self.assertNotIsInstance(caught.exception, WebhookTimeoutError)
            finally:
                await client.close()

        return d.addCallback(lambda _: defer.Deferred.fromCoroutine(attempt()))

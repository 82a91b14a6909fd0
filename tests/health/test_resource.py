"""The health resource: status and body by the gateway's state, negotiated by Accept."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from conch_container.health import HealthResource
from conch_container.httpserver import JSON, TEXT, preferred_type
from tests.webhook.support import capturing_logger


def ask(resource: HealthResource, accept: str | None = None, path: bytes = b"") -> DummyRequest:
    """Render one GET for ``path``; the request holds status, headers and body."""
    request = DummyRequest([path] if path else [])
    if accept is not None:
        request.requestHeaders.addRawHeader(b"accept", accept.encode())
    request.write(resource.render(request))
    return request


def body(request: DummyRequest) -> bytes:
    return b"".join(request.written)


def content_type(request: DummyRequest) -> bytes | None:
    values = request.responseHeaders.getRawHeaders(b"content-type")
    return values[0] if values else None


class HealthResourceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.log, self.events = capturing_logger()
        self.healthy = True
        self.resource = HealthResource(lambda: self.healthy, self.log)

    def test_ok(self) -> None:
        """While healthy: 200 and ``ok`` as plain text."""
        request = ask(self.resource)
        self.assertEqual(request.responseCode, 200)
        self.assertEqual(body(request), b"ok")
        self.assertEqual(content_type(request), b"text/plain; charset=utf-8")

    def test_not_ok(self) -> None:
        """While not healthy: 503 and ``not ok``."""
        self.healthy = False
        request = ask(self.resource)
        self.assertEqual(request.responseCode, 503)
        self.assertEqual(body(request), b"not ok")

    def test_json_when_asked(self) -> None:
        """A client accepting JSON gets the JSON string, as ContainerSSH sends it."""
        request = ask(self.resource, "application/json")
        self.assertEqual(body(request), b'"ok"')
        self.assertEqual(content_type(request), b"application/json; charset=utf-8")
        self.healthy = False
        request = ask(self.resource, "application/json")
        self.assertEqual((request.responseCode, body(request)), (503, b'"not ok"'))

    def test_any_path(self) -> None:
        """Every path answers the same."""
        self.assertEqual(body(ask(self.resource, path=b"anything")), b"ok")

    def test_state_is_asked_at_each_request(self) -> None:
        """The answer follows the state from one request to the next."""
        self.assertEqual(ask(self.resource).responseCode, 200)
        self.healthy = False
        self.assertEqual(ask(self.resource).responseCode, 503)
        self.healthy = True
        self.assertEqual(ask(self.resource).responseCode, 200)


class NegotiationTests(SynchronousTestCase):
    def test_preferences(self) -> None:
        """Plain text unless JSON is named with a higher quality than plain text."""
        cases = {
            None: TEXT,
            "": TEXT,
            "*/*": TEXT,
            "text/plain": TEXT,
            "application/json": JSON,
            "Application/JSON": JSON,
            "text/plain, application/json": TEXT,
            "text/plain;q=0.5, application/json": JSON,
            "application/json;q=0.4, text/plain;q=0.8": TEXT,
            "application/json;q=0": TEXT,
            "application/json;q=bogus": TEXT,
            "text/html, application/json;q=0.9": JSON,
        }
        for accept, expected in cases.items():
            self.assertEqual(preferred_type(accept), expected, accept)

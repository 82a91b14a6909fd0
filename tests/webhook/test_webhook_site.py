"""Tests for conch_container.testing.webhook.WebhookSite: servers hard on keep-alive, for tests."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from conch_container.testing.webhook import AuthWebhookResource, WebhookUser
from conch_container.testing.webhook_site import WebhookSite

BODY = b'{"username":"bob","passwordBase64":"cHc="}'
REQUEST = (
    b"POST /password HTTP/1.1\r\nHost: hook.test\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)
ANSWER = b'{"success": true, "authenticatedUsername": "bob"}'


def _site(**behaviour: Any) -> WebhookSite:
    resource = AuthWebhookResource({"bob": WebhookUser(password="pw")})
    # A clock even where no idle time is measured: Twisted's request timeouts run on it.
    return WebhookSite(resource, **{"clock": Clock(), **behaviour})


class _Client:
    """The client end of one in-memory connection to ``site``."""

    def __init__(self, site: WebhookSite) -> None:
        channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
        assert channel is not None
        self.channel = channel
        self.transport = StringTransport()
        channel.makeConnection(self.transport)

    def send(self, data: bytes = REQUEST) -> bytes:
        """Deliver ``data`` to the server; the bytes it wrote in return."""
        self.transport.clear()
        self.channel.dataReceived(data)
        return self.transport.value()


class HTTP10Tests(SynchronousTestCase):
    def test_answers_http10_and_closes(self) -> None:
        """An HTTP/1.0 status line, no Connection header, and the connection closed after it."""
        client = _Client(_site(http10=True))
        answer = client.send()
        self.assertTrue(answer.startswith(b"HTTP/1.0 200 "), answer)
        self.assertNotIn(b"\r\nconnection:", answer.lower())
        self.assertTrue(answer.endswith(ANSWER), answer)
        self.assertTrue(client.transport.disconnecting)

    def test_default_keeps_connection(self) -> None:
        """By default the site answers HTTP/1.1 and keeps the connection, as Site does."""
        site = _site()
        client = _Client(site)
        self.assertTrue(client.send().startswith(b"HTTP/1.1 200 "))
        self.assertFalse(client.transport.disconnecting)
        self.assertEqual((site.connections, site.open_connections), (1, 1))


class KeepAliveTimeoutTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.site = _site(keep_alive_timeout=1.0, clock=self.clock)
        self.client = _Client(self.site)
        self.client.send()

    def test_request_within_timeout_answered(self) -> None:
        """A request on a connection idle for no longer than the timeout is answered."""
        self.clock.advance(1.0)
        self.assertTrue(self.client.send().endswith(ANSWER))
        self.assertEqual(self.site.dropped, 0)

    def test_request_after_timeout_dropped(self) -> None:
        """A request on a connection idle for longer is closed unanswered, and counted."""
        self.clock.advance(1.5)
        self.assertEqual(self.client.send(), b"")
        self.assertTrue(self.client.transport.disconnecting)
        self.assertEqual(self.site.dropped, 1)
        self.assertEqual(len(self.site.resource.requests), 1)
        # The rest of that request, arriving later, is ignored too.
        self.assertEqual(self.client.send(b"more"), b"")
        self.assertEqual(self.site.dropped, 1)

    def test_needs_clock(self) -> None:
        """A keep-alive timeout without a clock is refused."""
        self.assertRaises(ValueError, _site, keep_alive_timeout=1.0, clock=None)

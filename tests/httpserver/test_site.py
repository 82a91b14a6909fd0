"""BoundedSite in memory: body limit, idle timeout, connection cap, failures and their codes."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from conch_container.httpserver import BoundedChannel, BoundedSite, Limits, answer
from tests.webhook.support import capturing_logger, codes, with_code


class Echo(Resource):
    """Answers a request with the size of its body, or a fixed word."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[Any] = []

    def render_GET(self, request: Any) -> bytes:
        return b"hello"

    def render_POST(self, request: Any) -> bytes:
        return b"%d" % len(request.content.read())


class Broken(Resource):
    """Raises while rendering."""

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        raise RuntimeError("secret internal detail")


class Slow(Resource):
    """Answers later, when the test says so."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Any] = []

    def render_GET(self, request: Any) -> Any:
        self.requests.append(request)
        return NOT_DONE_YET


class Unencodable(Resource):
    """Answers with a value that has a text form but no JSON form."""

    isLeaf = True

    def __init__(self, log: Any) -> None:
        super().__init__()
        self._log = log

    def render_GET(self, request: Any) -> bytes:
        return answer(request, {1, 2}, log=self._log)


class SiteTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.log, self.events = capturing_logger()

    def site(self, resource: Resource, limits: Limits = Limits()) -> BoundedSite:  # noqa: B008
        return BoundedSite(resource, name="test", log=self.log, clock=self.clock, limits=limits)

    def connect(self, site: BoundedSite) -> tuple[BoundedChannel, StringTransport]:
        channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        assert isinstance(channel, BoundedChannel)
        transport = StringTransport()
        channel.makeConnection(transport)
        return channel, transport

    def close(self, channel: BoundedChannel, transport: StringTransport) -> None:
        transport.loseConnection()
        channel.connectionLost(Failure(ConnectionError("gone")))


class BodyLimitTests(SiteTestCase):
    def test_small_body_is_served(self) -> None:
        """A body within the limit reaches the resource."""
        channel, transport = self.connect(self.site(Echo(), Limits(max_body=10)))
        channel.dataReceived(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789")
        self.assertIn(b"200 OK", transport.value())
        self.assertTrue(transport.value().endswith(b"10"))

    def test_declared_length_over_limit_is_413(self) -> None:
        """A Content-Length over the limit is answered 413 before any body is read, then closed."""
        resource = Echo()
        channel, transport = self.connect(self.site(resource, Limits(max_body=10)))
        channel.dataReceived(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 413 "))
        self.assertTrue(transport.disconnecting)
        channel.dataReceived(b"01234567890")
        self.assertNotIn(b"200 OK", transport.value())
        self.assertEqual(codes(self.events), ["HTTP_SERVER_LIMIT"])

    def test_chunked_body_over_limit_is_413(self) -> None:
        """A chunked body is refused with 413 once it grows past the limit."""
        channel, transport = self.connect(self.site(Echo(), Limits(max_body=10)))
        channel.dataReceived(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"8\r\n01234567\r\n8\r\n01234567\r\n0\r\n\r\n"
        )
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 413 "))
        self.assertNotIn(b"200 OK", transport.value())
        self.assertTrue(transport.disconnecting)

    def test_default_limit_is_64_kib(self) -> None:
        """Without explicit limits, 64 KiB pass and one byte more does not."""
        self.assertEqual(Limits().max_body, 64 * 1024)
        channel, transport = self.connect(self.site(Echo()))
        channel.dataReceived(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 413 "))


class IdleTimeoutTests(SiteTestCase):
    def test_idle_connection_is_closed(self) -> None:
        """A connection silent for the idle timeout is closed; not before."""
        _, transport = self.connect(self.site(Echo(), Limits(idle_timeout=30)))
        self.clock.advance(29)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(transport.disconnecting)

    def test_half_sent_request_is_closed(self) -> None:
        """A client that stops in the middle of its headers is closed after the idle timeout."""
        channel, transport = self.connect(self.site(Echo(), Limits(idle_timeout=30)))
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n")
        self.clock.advance(30)
        self.assertTrue(transport.disconnecting)

    def test_default_idle_timeout_is_30_s(self) -> None:
        """The default idle timeout is 30 seconds."""
        self.assertEqual(Limits().idle_timeout, 30.0)


class ConnectionCapTests(SiteTestCase):
    def test_connections_over_the_cap_are_closed(self) -> None:
        """Connections beyond the cap are aborted at once; a closed one frees its place."""
        site = self.site(Echo(), Limits(max_connections=2))
        first = self.connect(site)
        second = self.connect(site)
        _, third = self.connect(site)
        self.assertFalse(first[1].disconnecting)
        self.assertFalse(second[1].disconnecting)
        self.assertTrue(third.disconnecting)
        self.assertEqual(codes(self.events), ["HTTP_SERVER_LIMIT"])
        self.close(*first)
        _, fourth = self.connect(site)
        self.assertFalse(fourth.disconnecting)

    def test_refused_connection_ignores_requests(self) -> None:
        """A connection over the cap is not served, whatever it sends before it closes."""
        site = self.site(Echo(), Limits(max_connections=1))
        self.connect(site)
        channel, transport = self.connect(site)
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(transport.value(), b"")


class FailureTests(SiteTestCase):
    def test_exception_is_a_bare_500(self) -> None:
        """A resource that raises gives a short 500 without traceback; the log gets the code."""
        channel, transport = self.connect(self.site(Broken()))
        channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        response = transport.value()
        self.assertIn(b"500 Internal Server Error", response)
        self.assertTrue(response.endswith(b"\r\n\r\ninternal server error\n"))
        self.assertNotIn(b"Traceback", response)
        self.assertNotIn(b"secret internal detail", response)
        [event] = with_code(self.events, "HTTP_SERVER_HANDLER_FAILED")
        self.assertEqual(event["path"], "/x")
        self.assertIn("secret internal detail", event["reason"])

    def test_unencodable_answer_is_logged(self) -> None:
        """An answer JSON cannot encode gives 500 and HTTP_SERVER_ENCODE_FAILED."""
        channel, transport = self.connect(self.site(Unencodable(self.log)))
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\n")
        self.assertIn(b"500 Internal Server Error", transport.value())
        self.assertEqual(len(with_code(self.events, "HTTP_SERVER_ENCODE_FAILED")), 1)

    def test_client_leaving_before_the_answer_is_logged(self) -> None:
        """A client that leaves before its answer is written: HTTP_SERVER_RESPONSE_WRITE_FAILED."""
        resource = Slow()
        channel, transport = self.connect(self.site(resource))
        channel.dataReceived(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(len(resource.requests), 1)
        self.close(channel, transport)
        [event] = with_code(self.events, "HTTP_SERVER_RESPONSE_WRITE_FAILED")
        self.assertEqual(event["path"], "/slow")

    def test_answered_request_logs_nothing_on_close(self) -> None:
        """Closing after a complete answer is not a write failure."""
        channel, transport = self.connect(self.site(Echo()))
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.close(channel, transport)
        self.assertEqual(codes(self.events), [])


class CloseConnectionsTests(SiteTestCase):
    def test_close_connections_closes_then_aborts(self) -> None:
        """Open connections are asked to close; those still open at the deadline are aborted."""
        site = self.site(Echo())
        _, transport = self.connect(site)
        done: Deferred[None] = Deferred.fromCoroutine(site.close_connections(5.0))
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)  # what StringTransport.abortConnection sets
        self.assertNoResult(done)
        self.clock.advance(5)
        self.assertTrue(transport.disconnected)
        self.successResultOf(done)

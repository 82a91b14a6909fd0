"""Tests for conch_container.webhook.pool: keep-alive that never costs a webhook call.

The webhook client runs over Twisted's real agent and HTTP protocol, with the
connections in memory: each connection the pool opens is an
``HTTP11ClientProtocol`` on a :class:`~twisted.internet.testing.StringTransport`,
and the test plays the server, answering or closing it. Time is a
:class:`~twisted.internet.task.Clock`.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IProtocol, IProtocolFactory, IStreamClientEndpoint
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import (
    URI,
    Agent,
    FileBodyProducer,
    RequestNotSent,
    RequestTransmissionFailed,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from conch_container.log import Level
from conch_container.log.logger import LEVEL_KEY
from conch_container.webhook.bodies import BytesProducer
from conch_container.webhook.client import (
    WebhookClient,
    WebhookConnectionError,
    WebhookTimeoutError,
)
from conch_container.webhook.pool import (
    IDLE_CONNECTION_TIMEOUT,
    WebhookConnectionPool,
    keeps_connection_open,
    may_replay,
)
from tests.webhook.support import ClientConfig, capturing_logger, with_code

ANSWER = b'{"success":true}'
KEEP_ALIVE = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER)


class _Connection:
    """One connection the pool opened; the test is the server at its other end."""

    def __init__(self, protocol: IProtocol) -> None:
        self.protocol = protocol
        self.transport = StringTransport()
        protocol.makeConnection(self.transport)

    def requests(self) -> list[bytes]:
        """The request bodies received so far (each request has a Content-Length)."""
        bodies, rest = [], self.transport.value()
        while rest:
            head, _, rest = rest.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            bodies.append(rest[:length])
            rest = rest[length:]
        return bodies

    def answer(self, raw: bytes = KEEP_ALIVE) -> None:
        self.protocol.dataReceived(raw)

    def close(self, reason: Exception | None = None) -> None:
        """The server closes the connection (``ConnectionDone`` unless told otherwise)."""
        self.protocol.connectionLost(Failure(reason or ConnectionDone()))


@implementer(IStreamClientEndpoint)
class _Endpoint:
    def __init__(self, opened: list[_Connection]) -> None:
        self._opened = opened

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        protocol = factory.buildProtocol(None)  # type: ignore[arg-type]
        assert protocol is not None
        self._opened.append(_Connection(protocol))
        return succeed(protocol)


@implementer(IAgentEndpointFactory)
class _Endpoints:
    """Opens in-memory connections and remembers them, in order."""

    def __init__(self) -> None:
        self.opened: list[_Connection] = []

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        return _Endpoint(self.opened)


class _Harness:
    def __init__(self) -> None:
        self.clock = Clock()
        self.endpoints = _Endpoints()
        self.log, self.events = capturing_logger()
        self.pool = WebhookConnectionPool(self.clock, log=self.log)
        agent = Agent.usingEndpointFactory(self.clock, self.endpoints, pool=self.pool)
        self.client = WebhookClient(
            ClientConfig(url="http://webhook.test/auth"),
            reactor=self.clock,
            agent=agent,
            log=self.log,
        )

    def post(self, body: dict[str, Any] | None = None) -> Deferred[Any]:
        return Deferred.fromCoroutine(self.client.post("password", body or {"n": 1}))

    def connection(self, index: int) -> _Connection:
        return self.endpoints.opened[index]

    def answered_call(self) -> None:
        """One call, answered with keep-alive: its connection is now in the pool."""
        d = self.post()
        self.connection(-1).answer()
        assert d.called

    def replays(self) -> list[dict[str, Any]]:
        return [e for e in with_code(self.events, "HTTP_CLIENT_REQUEST") if e.get("attempt") == 2]


class ReplayTests(SynchronousTestCase):
    def test_reused_connection_closed_before_answer_is_replayed(self) -> None:
        """A call on a reused connection that the server closed unanswered goes out on a new one."""
        h = _Harness()
        h.answered_call()
        d = h.post({"n": 2})
        self.assertEqual(len(h.endpoints.opened), 1)  # the pooled connection was reused
        h.connection(0).close()
        self.assertEqual(len(h.endpoints.opened), 2)
        self.assertEqual(h.connection(1).requests(), [b'{"n":2}'])
        h.connection(1).answer()
        self.assertEqual(self.successResultOf(d), {"success": True})

    def test_replay_is_logged_at_debug_only(self) -> None:
        """A replay is one debug event; HTTP_CLIENT_CONNECTION_FAILED is not logged."""
        h = _Harness()
        h.answered_call()
        d = h.post()
        h.connection(0).close()
        h.connection(1).answer()
        self.successResultOf(d)
        self.assertEqual(with_code(h.events, "HTTP_CLIENT_CONNECTION_FAILED"), [])
        [replay] = h.replays()
        self.assertEqual(replay[LEVEL_KEY], Level.DEBUG)
        self.assertEqual(replay["url"], "http://webhook.test/auth/password")
        self.assertIn("ConnectionDone", replay["reason"])
        self.assertNotIn('"n"', repr(h.events))  # the request body is never logged

    def test_replayed_once_not_twice(self) -> None:
        """When the new connection fails too, the call fails: no third connection."""
        h = _Harness()
        h.answered_call()
        d = h.post()
        h.connection(0).close()
        h.connection(1).close(ConnectionLost())
        failure = self.failureResultOf(d, WebhookConnectionError)
        self.assertIn("ConnectionLost", failure.value.reason)
        self.assertEqual(len(h.endpoints.opened), 2)
        self.assertEqual(len(with_code(h.events, "HTTP_CLIENT_CONNECTION_FAILED")), 1)

    def test_fresh_connection_not_replayed(self) -> None:
        """A call that fails on a connection opened for it fails: the server meant it."""
        h = _Harness()
        d = h.post()
        h.connection(0).close()
        self.failureResultOf(d, WebhookConnectionError)
        self.assertEqual(len(h.endpoints.opened), 1)
        self.assertEqual(h.replays(), [])

    def test_partial_answer_not_replayed(self) -> None:
        """A reused connection that broke after part of an answer is not tried again."""
        h = _Harness()
        h.answered_call()
        d = h.post()
        h.connection(0).answer(b"HTTP/1.1 200 OK\r\n")
        h.connection(0).close()
        self.failureResultOf(d, WebhookConnectionError)
        self.assertEqual(len(h.endpoints.opened), 1)
        self.assertEqual(h.replays(), [])

    def test_timeout_not_replayed(self) -> None:
        """A call that times out on a reused connection stays timed out."""
        h = _Harness()
        h.answered_call()
        d = h.post()
        h.clock.advance(h.client.timeout)
        self.failureResultOf(d, WebhookTimeoutError)
        self.assertEqual(len(h.endpoints.opened), 1)
        self.assertEqual(h.replays(), [])


class ReplayRuleTests(SynchronousTestCase):
    def test_no_answer_byte(self) -> None:
        """Failures before any byte of an answer may be replayed (BytesProducer or no body)."""
        for error in (
            RequestNotSent(),
            RequestTransmissionFailed([Failure(ConnectionLost())]),
            ResponseNeverReceived([Failure(ConnectionDone())]),
        ):
            self.assertTrue(may_replay(Failure(error), BytesProducer(b"{}")), error)
            self.assertTrue(may_replay(Failure(error), None), error)

    def test_some_answer_bytes(self) -> None:
        """ResponseFailed means part of an answer arrived: never replayed."""
        reason = Failure(ResponseFailed([Failure(ConnectionDone())]))
        self.assertFalse(may_replay(reason, BytesProducer(b"{}")))

    def test_cancelled(self) -> None:
        """A cancelled request is never replayed, wrapped or not."""
        self.assertFalse(may_replay(Failure(CancelledError()), None))
        wrapped = Failure(ResponseNeverReceived([Failure(CancelledError())]))
        self.assertFalse(may_replay(wrapped, None))

    def test_body_that_cannot_be_produced_again(self) -> None:
        """A body read from a stream has been consumed: not replayed."""
        reason = Failure(ResponseNeverReceived([Failure(ConnectionDone())]))
        self.assertFalse(may_replay(reason, FileBodyProducer(BytesIO(b"{}"))))


class KeepAliveTests(SynchronousTestCase):
    def test_http11_connection_reused(self) -> None:
        """An HTTP/1.1 answer leaves its connection open for the next call."""
        h = _Harness()
        h.answered_call()
        d = h.post()
        h.connection(0).answer()
        self.successResultOf(d)
        self.assertEqual(len(h.endpoints.opened), 1)
        self.assertEqual(len(h.connection(0).requests()), 2)

    def _assert_not_reused(self, answer: bytes) -> None:
        h = _Harness()
        d = h.post()
        h.connection(0).answer(answer)
        self.successResultOf(d)
        self.assertTrue(h.connection(0).transport.disconnecting)
        h.answered_call()
        self.assertEqual(len(h.endpoints.opened), 2)

    def test_http10_connection_closed(self) -> None:
        """After an HTTP/1.0 answer the client closes the connection and opens a new one."""
        self._assert_not_reused(b"HTTP/1.0 200 OK\r\nContent-Length: 16\r\n\r\n" + ANSWER)

    def test_http10_keep_alive_connection_closed(self) -> None:
        """Even an HTTP/1.0 answer with ``Connection: keep-alive`` is not reused."""
        self._assert_not_reused(
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 16\r\n\r\n" + ANSWER
        )

    def test_connection_close_in_any_spelling(self) -> None:
        """``Connection: Close`` and ``keep-alive, close`` close the connection too."""
        for value in (b"Close", b"keep-alive, CLOSE"):
            self._assert_not_reused(
                b"HTTP/1.1 200 OK\r\nConnection: "
                + value
                + b"\r\nContent-Length: 16\r\n\r\n"
                + ANSWER
            )

    def test_rule(self) -> None:
        """Only HTTP/1.1 (or later) without a ``close`` token keeps the connection."""
        self.assertTrue(keeps_connection_open((b"HTTP", 1, 1), []))
        self.assertTrue(keeps_connection_open((b"HTTP", 1, 1), [b"keep-alive"]))
        self.assertTrue(keeps_connection_open((b"HTTP", 1, 1), [b"closed"]))
        self.assertFalse(keeps_connection_open((b"HTTP", 1, 1), [b"upgrade", b" Close "]))
        self.assertFalse(keeps_connection_open((b"HTTP", 1, 0), []))
        self.assertFalse(keeps_connection_open((b"HTTP", 1, 0), [b"keep-alive"]))


class IdleTimeoutTests(SynchronousTestCase):
    def test_idle_connection_closed(self) -> None:
        """The client closes an idle pooled connection after IDLE_CONNECTION_TIMEOUT seconds."""
        h = _Harness()
        h.answered_call()
        h.clock.advance(IDLE_CONNECTION_TIMEOUT - 0.1)
        self.assertFalse(h.connection(0).transport.disconnecting)
        h.clock.advance(0.2)
        self.assertTrue(h.connection(0).transport.disconnecting)
        h.answered_call()
        self.assertEqual(len(h.endpoints.opened), 2)

    def test_below_common_server_timeouts(self) -> None:
        """Idle connections are dropped before the 5 s after which Node.js and others drop them."""
        self.assertLess(IDLE_CONNECTION_TIMEOUT, 5)

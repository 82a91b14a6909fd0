"""The webhook client's connection pool: keep-alive without handing out dead connections.

Twisted's :class:`~twisted.web.client.HTTPConnectionPool` loses logins in
three ways, each fixed here:

* It pools the connection of an HTTP/1.0 answer, although an HTTP/1.0 server
  closes it after answering (Python's :mod:`http.server` does, without a
  ``Connection: close`` header), and it honours ``Connection: close`` only
  when the header is exactly ``close``. The connection goes back to the pool
  as soon as the answer is read, in the same turn of the reactor, before the
  server's close has been read: the caller's next call takes it and fails.
  Here a connection is pooled only after an HTTP/1.1 answer whose
  ``Connection`` header has no ``close`` token (in any case, among any other
  tokens). An HTTP/1.0 answer is never pooled, even with
  ``Connection: keep-alive``: a webhook answering HTTP/1.0 is rare, and a
  new connection per call costs far less than a failed login.
* It keeps idle connections for 240 seconds, long after common servers drop
  theirs (Node.js, uvicorn and Apache after 5 seconds). Here they are closed
  after :data:`IDLE_CONNECTION_TIMEOUT`: against such servers the client ends
  idle connections itself, at a moment it knows no call is using them.
* When a server closes an idle connection anyway, just as a request goes out
  on it (a server with a shorter keep-alive timeout, or a reactor too busy to
  read the close in time), the request fails. Twisted tries again only for
  idempotent methods without a body, and webhook calls are POSTs. Here a
  request that failed on a *reused* connection before any byte of an answer
  arrived is sent once more, at once, on a new connection
  (:func:`may_replay`). A failure on a new connection, or after part of an
  answer, is reported, not repeated: the server may be refusing this very
  request, and repeating it could go on forever.

Go's client, which ContainerSSH uses, has the same rule with one more
condition for a POST: it repeats it only if none of its bytes were written.
That condition cannot carry over. Go reads every idle connection all the
time, so it notices a server's close almost at once; Twisted notices it at
its next read, after the request has been written into the connection's
buffer. Repeating a webhook call is safe: each one asks a question (may this
user log in, what is their configuration) and changes nothing on the server,
so a server that did see the first copy only answers the same question twice.
The body can be sent again because it is a :class:`~conch_container.webhook.bodies.BytesProducer`,
which writes the whole body each time it is asked and keeps no position to
rewind.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any
from weakref import WeakSet

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.python.failure import Failure
from twisted.web.client import (
    HTTPConnectionPool,
    RequestNotSent,
    RequestTransmissionFailed,
    ResponseNeverReceived,
)
from twisted.web.iweb import IBodyProducer, IResponse

from conch_container import messages
from conch_container.log import CodeLogger
from conch_container.webhook.bodies import BytesProducer
from conch_container.webhook.errors import describe_failure, is_cancellation

__all__ = [
    "IDLE_CONNECTION_TIMEOUT",
    "WebhookConnectionPool",
    "keeps_connection_open",
    "may_replay",
]

#: Seconds an idle connection waits for the next call before the client closes
#: it. Below the 5 seconds after which Node.js, uvicorn and Apache close idle
#: connections, with room for a busy reactor; the calls of one login follow
#: each other within milliseconds and still share a connection. A server with
#: an even shorter timeout is covered by the replay of :func:`may_replay`.
IDLE_CONNECTION_TIMEOUT = 3

#: The failures Twisted reports when no byte of an answer arrived.
_NO_ANSWER = (RequestNotSent, RequestTransmissionFailed, ResponseNeverReceived)


def may_replay(reason: Failure, body: IBodyProducer | None) -> bool:
    """Whether a request that failed on a *reused* connection may go out again.

    Only when no byte of an answer arrived (``ResponseFailed``, its parent,
    means some did), the caller did not cancel it (a timeout must stay a
    timeout), and the body can be produced again.
    """
    if not reason.check(*_NO_ANSWER) or is_cancellation(reason):
        return False
    return body is None or isinstance(body, BytesProducer)


def keeps_connection_open(version: tuple[bytes, int, int], connection: Sequence[bytes]) -> bool:
    """Whether an answer lets the client send its next request on the same connection.

    :param version: the answer's ``(b"HTTP", major, minor)``.
    :param connection: the values of its ``Connection`` headers.
    """
    _, major, minor = version
    if (major, minor) < (1, 1):
        return False
    tokens = {token.strip().lower() for value in connection for token in value.split(b",")}
    return b"close" not in tokens


def _answer_keeps_connection_open(connection: Any) -> bool:
    """:func:`keeps_connection_open` for the answer a connection has just finished reading.

    Twisted puts the ``Connection`` header in its parser, not in the
    response's headers, and keeps the parser until the connection is back in
    the pool; its protocol has no public accessor for either.
    """
    parser: Any = getattr(connection, "_parser", None)
    response = getattr(parser, "response", None)
    if response is None:
        # Should Twisted change, closing costs a connect; pooling could cost a login.
        return False
    return keeps_connection_open(
        response.version, parser.connHeaders.getRawHeaders(b"connection", ())
    )


class _ReusedConnection:
    """A pooled connection lent out for one request, which the server may have closed meanwhile.

    :param connection: the ``HTTP11ClientProtocol`` taken from the pool.
    :param reconnect: opens a new connection, bypassing the pool.
    """

    def __init__(
        self, connection: Any, reconnect: Callable[[], Deferred[Any]], log: CodeLogger
    ) -> None:
        self._connection = connection
        self._reconnect = reconnect
        self._log = log

    def request(self, request: Any) -> Deferred[IResponse]:
        sent: Deferred[IResponse] = self._connection.request(request)
        return sent.addErrback(self._replay_if_stale, request)

    def _replay_if_stale(self, reason: Failure, request: Any) -> Deferred[IResponse]:
        if not may_replay(reason, request.bodyProducer):
            return fail(reason)
        # Debug only: nothing failed yet, and the call fails, logged as such,
        # only if the new connection fails too.
        self._log.event(
            messages.HTTP_CLIENT_REQUEST,
            "HTTP {method} request to {url} sent again on a new connection: the server had "
            "closed the idle one it went out on ({reason})",
            method=request.method.decode("ascii", "replace"),
            url=(request.absoluteURI or b"").decode("ascii", "replace"),
            reason=describe_failure(reason),
            attempt=2,
        )
        return self._reconnect().addCallback(lambda fresh: fresh.request(request))


class WebhookConnectionPool(HTTPConnectionPool):
    """A persistent connection pool for webhook calls (see the module's description).

    :param reactor: runs the idle timeouts.
    :param log: where a request sent again is logged, at debug level.
    """

    cachedConnectionTimeout = IDLE_CONNECTION_TIMEOUT
    # Twisted's own retry covers only idempotent methods without a body;
    # _ReusedConnection replaces it.
    retryAutomatically = False

    def __init__(self, reactor: IReactorTime, *, log: CodeLogger) -> None:
        super().__init__(reactor, persistent=True)
        self._events = log
        # Connections that have been in the pool: the ones a server may have closed.
        self._pooled_before: WeakSet[Any] = WeakSet()

    def getConnection(self, key: Hashable, endpoint: IStreamClientEndpoint) -> Deferred[Any]:
        taken: Deferred[Any] = super().getConnection(key, endpoint)
        return taken.addCallback(self._guard_if_reused, key, endpoint)

    def _guard_if_reused(
        self, connection: Any, key: Hashable, endpoint: IStreamClientEndpoint
    ) -> Any:
        if connection not in self._pooled_before:
            return connection
        return _ReusedConnection(
            connection, lambda: self._newConnection(key, endpoint), self._events
        )

    def _putConnection(self, key: Hashable, connection: Any) -> None:
        # Twisted calls this as soon as an answer has been read, whatever the
        # answer said about the connection (except an exact "Connection: close").
        if not _answer_keeps_connection_open(connection):
            connection.transport.loseConnection()
            return
        self._pooled_before.add(connection)
        super()._putConnection(key, connection)

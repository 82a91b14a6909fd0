"""A test webhook server that is as hard on keep-alive connections as real servers.

:class:`WebhookSite` serves an
:class:`~conch_container.testing.webhook.AuthWebhookResource` (or any
resource) like a :class:`~twisted.web.server.Site`, and can behave like two
kinds of server that cost logins to clients that keep connections alive
carelessly: an HTTP/1.0 server that closes every connection after its answer
without saying so (Python's :mod:`http.server`), and a server with a short
keep-alive timeout. It counts the connections it accepts, so a test can tell
whether its client reused them. Serve it with
:func:`~conch_container.testing.webhook.listen_tcp`.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

__all__ = ["WebhookSite"]


class _HTTP10Request(Request):
    """Answers with an HTTP/1.0 status line, whatever version the client spoke."""

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        super().requestReceived(command, path, b"HTTP/1.0")


class _WebhookChannel(HTTPChannel):
    """An HTTP connection of a :class:`WebhookSite`."""

    site: WebhookSite
    _idle_since: float | None = None
    _dropping = False

    def connectionMade(self) -> None:
        super().connectionMade()
        self.site.connections += 1
        self.site.open_connections += 1

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.site.open_connections -= 1
        super().connectionLost(reason)

    def checkPersistence(self, request: Any, version: bytes) -> bool:
        if self.site.http10:
            # Python's http.server: close after the answer, and say nothing about it.
            return False
        return bool(super().checkPersistence(request, version))

    def requestDone(self, request: Any) -> None:
        super().requestDone(request)
        if self.persistent and self.site.keep_alive_timeout is not None:
            self._idle_since = self.site._now()

    def dataReceived(self, data: bytes) -> None:
        if self._dropping:
            return
        if self._idle_since is not None and self._idled_out():
            self._dropping = True
            self.site.dropped += 1
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        self._idle_since = None
        super().dataReceived(data)

    def _idled_out(self) -> bool:
        assert self._idle_since is not None and self.site.keep_alive_timeout is not None
        return self.site._now() - self._idle_since > self.site.keep_alive_timeout


class WebhookSite(Site):
    """A :class:`~twisted.web.server.Site` that can be as hard on connections as real servers.

    :param resource: what to serve, usually an
        :class:`~conch_container.testing.webhook.AuthWebhookResource`.
    :param http10: answer as an HTTP/1.0 server such as Python's
        :mod:`http.server` does: an ``HTTP/1.0`` status line, and the
        connection closed after every answer, without a ``Connection: close``
        header.
    :param keep_alive_timeout: close a connection that has been idle longer
        than this many seconds. The server does so when the next request
        arrives on it, without answering: what a client sees when a server's
        idle timer fires just as the request is on its way, made to happen
        every time instead of now and then.
    :param clock: measures idle time, needed with ``keep_alive_timeout``, and
        runs Twisted's own request timeouts (the global reactor without it).
    :ivar connections: how many connections were accepted.
    :ivar open_connections: how many of them are still open.
    :ivar dropped: how many requests were closed unanswered after an idle time.
    """

    # Twisted's default wraps the channel only to negotiate HTTP/2, which a
    # plain-HTTP test server never does.
    protocol = _WebhookChannel  # type: ignore[assignment]

    def __init__(
        self,
        resource: Resource,
        *,
        http10: bool = False,
        keep_alive_timeout: float | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        if keep_alive_timeout is not None and clock is None:
            raise ValueError("keep_alive_timeout needs WebhookSite(clock=...)")
        super().__init__(
            resource, requestFactory=_HTTP10Request if http10 else Request, reactor=clock
        )
        self.http10 = http10
        self.keep_alive_timeout = keep_alive_timeout
        self._clock = clock
        self.connections = 0
        self.open_connections = 0
        self.dropped = 0

    def _now(self) -> float:
        assert self._clock is not None
        return self._clock.seconds()

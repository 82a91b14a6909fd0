"""A :class:`~twisted.web.server.Site` with the limits a service exposed to the network needs.

Twisted's defaults suit a trusted peer: a request body of any size (kept in
a temporary file), a twelve-hour idle timeout, any number of connections, a
traceback page when a resource raises. :class:`BoundedSite` answers a body
over :attr:`Limits.max_body` with 413 without reading it, closes a
connection idle for :attr:`Limits.idle_timeout`, closes at once new
connections beyond :attr:`Limits.max_connections`, and answers an exception
in a resource with a bare 500 while the log gets the failure under a code.
Headers are bounded by Twisted itself (16 KiB in all, 500 of them).

It speaks HTTP/1.1 only: Twisted would otherwise negotiate HTTP/2 over TLS,
whose stream multiplexing escapes these per-connection limits.
"""

from __future__ import annotations

import attrs
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

from conch_container import messages
from conch_container.deferreds import settled_within
from conch_container.log import CodeLogger

__all__ = ["BoundedChannel", "BoundedRequest", "BoundedSite", "Limits"]

#: The whole body of a 413 answer, written before the connection closes.
_TOO_LARGE = (
    b"HTTP/1.1 413 Content Too Large\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 24\r\n"
    b"Connection: close\r\n"
    b"\r\n"
    b"request body too large\r\n"
)

#: What a client sees when a resource failed; the reason is only logged.
FAILED_BODY = b"internal server error\n"


@attrs.frozen
class Limits:
    """The bounds of one HTTP service.

    :ivar max_body: request body bytes accepted; larger bodies get 413.
    :ivar idle_timeout: seconds a connection may stay silent (between
        requests, or in the middle of one) before it is closed.
    :ivar max_connections: connections open at once; more are closed at once.
    """

    max_body: int = 64 * 1024
    idle_timeout: float = 30.0
    max_connections: int = 100


class BoundedRequest(Request):
    """A request that counts its body, hides failures, and reports answers that got lost."""

    channel: BoundedChannel
    site: BoundedSite
    _body_size = 0
    _processing = False

    def handleContentChunk(self, data: bytes) -> None:
        if self.channel.rejected:
            return
        self._body_size += len(data)
        if self._body_size > self.channel.site.limits.max_body:
            # A chunked body announces no length: it is refused when it grows too large.
            self.channel.refuse_too_large()
            return
        super().handleContentChunk(data)

    def process(self) -> None:
        self._processing = True
        super().process()

    def processingFailed(self, reason: Failure) -> Failure:
        self.site.code_log.failure(
            messages.HTTP_SERVER_HANDLER_FAILED,
            "{service}: answering {method} {path} failed: {reason}",
            reason,
            service=self.site.name,
            method=self.method.decode("ascii", "replace"),
            path=self.path.decode("ascii", "replace"),
        )
        if self._disconnected:
            return reason
        if self.startedWriting:
            # Half an answer is out: only closing tells the client it is broken.
            self.channel.loseConnection()
            return reason
        self.setResponseCode(500)
        self.setHeader(b"content-type", b"text/plain; charset=utf-8")
        self.setHeader(b"content-length", b"%d" % len(FAILED_BODY))
        self.write(FAILED_BODY)
        self.finish()
        return reason

    def connectionLost(self, reason: Failure) -> None:
        if self._processing and not self.finished and not self._disconnected:
            self.site.code_log.event(
                messages.HTTP_SERVER_RESPONSE_WRITE_FAILED,
                "{service}: the client left before the answer to {path} was written: {reason}",
                service=self.site.name,
                path=self.path.decode("ascii", "replace"),
                reason=reason.getErrorMessage(),
            )
        super().connectionLost(reason)


class BoundedChannel(HTTPChannel):
    """One HTTP connection of a :class:`BoundedSite`."""

    site: BoundedSite
    #: The connection is over the site's connection limit and is being closed.
    refused = False
    #: The current request's body is too large; everything further is ignored.
    rejected = False

    def __init__(self) -> None:
        super().__init__()
        self.closed: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        super().connectionMade()
        if len(self.site.channels) >= self.site.limits.max_connections:
            self.refused = True
            self.site.code_log.event(
                messages.HTTP_SERVER_LIMIT,
                "{service}: closing a new connection, {count} are open already",
                service=self.site.name,
                count=len(self.site.channels),
            )
            self.transport.abortConnection()  # type: ignore[union-attr]
            return
        self.site.channels.add(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.site.channels.discard(self)
        super().connectionLost(reason)
        if not self.closed.called:
            self.closed.callback(None)

    def dataReceived(self, data: bytes) -> None:
        if self.refused or self.rejected:
            return
        super().dataReceived(data)

    def allHeadersReceived(self) -> None:
        # ``length`` is the Content-Length, or None for a chunked body.
        if self.length is not None and self.length > self.site.limits.max_body:
            self.refuse_too_large()
            return
        super().allHeadersReceived()

    def rawDataReceived(self, data: bytes) -> None:
        if self.rejected:
            return
        super().rawDataReceived(data)

    def allContentReceived(self) -> None:
        if self.rejected:
            return
        super().allContentReceived()

    def refuse_too_large(self) -> None:
        """Answer 413 without reading the body, and close the connection."""
        if self.rejected:
            return
        self.rejected = True
        self.site.code_log.event(
            messages.HTTP_SERVER_LIMIT,
            "{service}: refusing a request body over {limit} bytes",
            service=self.site.name,
            limit=self.site.limits.max_body,
        )
        self.transport.write(_TOO_LARGE)  # type: ignore[union-attr]
        self.loseConnection()

    def timeoutConnection(self) -> None:
        # Twisted's version logs through the legacy log without a code.
        self.transport.loseConnection()  # type: ignore[union-attr]


class BoundedSite(Site):
    """A :class:`~twisted.web.server.Site` within :class:`Limits`.

    :param resource: the root resource.
    :param name: the service, for log lines (``health``, ``metrics``).
    :param log: where the ``HTTP_SERVER_*`` events go (:attr:`code_log`; ``log`` is
        Twisted's access log, which stays off).
    :param clock: runs the idle timeouts (the reactor; a
        :class:`~twisted.internet.task.Clock` in tests).
    :ivar channels: the connections open now.
    """

    protocol = BoundedChannel  # type: ignore[assignment]
    requestFactory = BoundedRequest
    displayTracebacks = False
    noisy = False

    def __init__(
        self,
        resource: IResource,
        *,
        name: str,
        log: CodeLogger,
        clock: IReactorTime,
        limits: Limits = Limits(),
    ) -> None:
        super().__init__(resource, timeout=limits.idle_timeout, reactor=clock)
        self.name = name
        self.code_log = log
        self.limits = limits
        self.channels: set[BoundedChannel] = set()
        self._clock = clock

    async def close_connections(self, deadline: float) -> None:
        """Close every open connection: gracefully, then by force after ``deadline`` seconds."""
        channels = list(self.channels)
        for channel in channels:
            channel.loseConnection()
        everything = DeferredList([c.closed for c in channels], consumeErrors=True)
        if not await settled_within(self._clock, deadline, everything):
            for channel in channels:
                if not channel.closed.called and channel.transport is not None:
                    channel.transport.abortConnection()  # type: ignore[attr-defined]

"""Request and response bodies for the webhook client, without a cooperator or unbounded buffers."""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IConsumer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IBodyProducer, IResponse
from zope.interface import implementer


@implementer(IBodyProducer)
class BytesProducer:
    """Writes a small request body at once (no cooperator, so any reactor or clock works)."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        consumer.write(self._body)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class ResponseTooLarge(Exception):
    """The response body exceeded the size limit."""


class BoundedBody(Protocol):
    """Collects a response body up to a limit; cancelling the Deferred aborts the connection."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._size = 0
        self._parts: list[bytes] = []
        self.finished: Deferred[bytes] = Deferred(lambda _: self._abort())

    def _abort(self) -> None:
        abort = getattr(self.transport, "abortConnection", None)
        if abort is not None:
            abort()
        elif self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]

    def dataReceived(self, data: bytes) -> None:
        if self.finished.called:
            return
        self._size += len(data)
        if self._size > self._limit:
            self._parts = []
            self.finished.errback(ResponseTooLarge(f"response larger than {self._limit} bytes"))
            self._abort()
            return
        self._parts.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.finished.called:
            return
        # PotentialDataLoss: a body delimited by the connection closing (no
        # Content-Length, no chunking) is complete HTTP/1.0, as Go reads it.
        if reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback(b"".join(self._parts))
        else:
            self.finished.errback(reason)


def read_body(response: IResponse, limit: int) -> Deferred[bytes]:
    """The body of ``response``, at most ``limit`` bytes; cancelling aborts the connection."""
    reader = BoundedBody(limit)
    response.deliverBody(reader)
    return reader.finished

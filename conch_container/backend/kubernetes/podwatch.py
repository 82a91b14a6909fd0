"""Following one pod's changes with a watch request, from the reactor.

Waiting for a pod (ready, or its program ended) by polling costs a whole poll
interval after the change and a rate-limit token per look. A watch
(``GET .../pods?watch=true&fieldSelector=metadata.name=NAME``) answers with a
stream of JSON lines, one per change, as soon as it happens: one request per
wait. The official client would hold a pool thread for the whole watch, so it
is read here with Twisted's HTTP client instead, with the same address, TLS
settings and credentials as the control calls.

:func:`open_pod_watch` gives a :class:`PodWatch` once the server answered 200;
:meth:`PodWatch.next` gives each new state of the pod (None when it is
deleted). Every line is bounded (:data:`MAX_EVENT`), so are the events held
unread (:data:`MAX_QUEUED`); a stream that ends, breaks a bound or reports an
``ERROR`` (such as 410 Gone for an expired resource version) raises
:class:`WatchEnded`, after which the caller reads the pod and watches again.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any
from urllib.parse import urlencode

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import ITransport
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.iweb import IPolicyForHTTPS, IResponse
from zope.interface import implementer

from conch_container.backend.kubernetes.connection import ClusterSettings
from conch_container.backend.kubernetes.errors import status_error
from conch_container.backend.kubernetes.streamopen import tls_options
from conch_container.codes import MessageCode

#: The longest event line read (a pod's JSON is a few KiB).
MAX_EVENT = 4 * 1024 * 1024
#: Events held before the reader takes them; more ends the watch.
MAX_QUEUED = 64
#: The most of an error answer's body that is read.
MAX_ERROR_BODY = 64 * 1024


class WatchEnded(Exception):
    """The watch gave no (more) events: read the pod and watch again."""


@implementer(IPolicyForHTTPS)
class _ClusterTLS:
    """The API server's TLS settings, as the control calls and streams use them."""

    def __init__(self, settings: ClusterSettings) -> None:
        self._settings = settings

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        return tls_options(self._settings, hostname.decode("ascii"))


class PodWatch(Protocol):
    """The events of one watch request, read as they arrive."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._states: deque[dict[str, Any] | None] = deque()
        self._waiting: Deferred[dict[str, Any] | None] | None = None
        self._ended: str | None = None

    def next(self) -> Deferred[dict[str, Any] | None]:
        """The pod's next state (None: deleted); fails with :class:`WatchEnded`."""
        if self._states:
            d: Deferred[dict[str, Any] | None] = Deferred()
            d.callback(self._states.popleft())
            return d
        if self._ended is not None:
            d = Deferred()
            d.errback(WatchEnded(self._ended))
            return d
        self._waiting = Deferred(lambda _: self.close())
        return self._waiting

    def close(self) -> None:
        """Stop reading (drops the connection); idempotent."""
        self._end("closed")
        transport: ITransport | None = self.transport
        if transport is not None:
            transport.stopProducing()  # type: ignore[attr-defined]

    # -- the response body

    def dataReceived(self, data: bytes) -> None:
        if self._ended is not None:
            return
        self._buffer += data
        while self._ended is None:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_EVENT:
                    self._fail(f"an event longer than {MAX_EVENT} bytes")
                return
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if line.strip():
                self._event(line)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._end("the watch ended")

    def _event(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            self._fail("an event is not JSON")
            return
        if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
            self._fail("an event is not a watch event")
            return
        kind = event.get("type")
        if kind in ("ADDED", "MODIFIED"):
            self._deliver(event["object"])
        elif kind == "DELETED":
            self._deliver(None)
        elif kind == "ERROR":
            status = event["object"]
            self._fail(f"HTTP {status.get('code')} {status.get('reason') or ''}".strip())
        # BOOKMARK and types a newer server adds say nothing about the pod.

    def _deliver(self, pod: dict[str, Any] | None) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.callback(pod)
        elif len(self._states) >= MAX_QUEUED:
            self._fail(f"more than {MAX_QUEUED} events not taken")
        else:
            self._states.append(pod)

    def _fail(self, reason: str) -> None:
        self._end(reason)
        if self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]

    def _end(self, reason: str) -> None:
        if self._ended is None:
            self._ended = reason
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.errback(WatchEnded(self._ended))


async def open_pod_watch(
    reactor: Any,
    settings: ClusterSettings,
    pods_path: str,
    name: str,
    resource_version: str,
    *,
    timeout_seconds: int,
    code: MessageCode,
) -> PodWatch:
    """Watch pod ``name`` (under ``pods_path``, ``/api/v1/namespaces/NS/pods``) for
    changes after ``resource_version``, for at most ``timeout_seconds``.

    The caller bounds the wait for the answer (it is cancellable).

    :raises KubernetesError: with ``code`` when the server refuses (not 200).
    """
    query = urlencode(
        {
            "fieldSelector": f"metadata.name={name}",
            "watch": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(max(1, timeout_seconds)),
        }
    )
    url = f"{settings.base_url}{pods_path}?{query}"
    headers = Headers({b"Accept": [b"application/json"]})
    authorization = settings.credentials.authorization()
    if authorization:
        headers.addRawHeader(b"Authorization", authorization.encode("latin-1"))
    agent = Agent(
        reactor,
        contextFactory=_ClusterTLS(settings),
        connectTimeout=max(settings.timeout, 0.1),
        # A watch is one long answer: its connection is never reused.
        pool=HTTPConnectionPool(reactor, persistent=False),
    )
    response: IResponse = await agent.request(b"GET", url.encode("ascii"), headers)
    if response.code != 200:
        body = await _bounded_body(response)
        raise status_error(code, response.code, body, f"watching pod {name}")
    watch = PodWatch()
    response.deliverBody(watch)
    return watch


class _BoundedBody(Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.done: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        room = MAX_ERROR_BODY - len(self.data)
        self.data += data[: max(room, 0)]

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.done.callback(bytes(self.data))


def _bounded_body(response: IResponse) -> Deferred[bytes]:
    reader = _BoundedBody()
    response.deliverBody(reader)
    return reader.done

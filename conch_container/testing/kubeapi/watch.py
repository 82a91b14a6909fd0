"""One watch request: a chunked stream of JSON lines, one event each.

Events are ``{"type": "ADDED"|"MODIFIED"|"DELETED", "object": POD}``. A
filtered watch tells each client what it would see of the filtered set: a
pod that stops matching is DELETED for it, one that starts matching is ADDED.

Bounds: the watch ends after its ``timeoutSeconds`` (at most
:data:`MAX_TIMEOUT`, as a real server caps them), and a client that does not
read has at most :data:`MAX_QUEUED` events kept for it before its watch is
ended (it then lists and watches again, as after any ended watch).
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IPushProducer
from twisted.web.server import Request
from zope.interface import implementer

from conch_container.testing.kubeapi.selectors import Matcher
from conch_container.testing.kubeapi.store import Event, Pod, PodStore

#: Seconds a watch lasts when the client does not say.
DEFAULT_TIMEOUT = 300
MAX_TIMEOUT = 1800
#: Events held for a client that does not read before its watch is ended.
MAX_QUEUED = 1000


@implementer(IPushProducer)
class Watch:
    """Streams the changes of ``store`` that ``matches`` selects to ``request``.

    :param backlog: the events to send first (the current pods, or the
        changes after the client's resource version).
    :param namespace: the watched namespace, or None for all.
    """

    def __init__(
        self,
        request: Request,
        store: PodStore,
        namespace: str | None,
        matches: Matcher,
        backlog: list[Event],
        timeout: float,
        clock: Any,
    ) -> None:
        self._request = request
        self._namespace = namespace
        self._matches = matches
        self._visible: dict[tuple[str, str], bool] = {}
        self._queue: list[bytes] = []
        self._paused = False
        self._done = False
        request.setHeader(b"content-type", b"application/json")
        # The answer's head goes at once, as from a real server: clients wait
        # for it before they treat the watch as established.
        request.write(b"")
        request.registerProducer(self, True)
        for kind, pod in backlog:
            self._event(kind, pod)
        self._stop_listening = store.listen(self._event)
        self._timer: IDelayedCall = clock.callLater(timeout, self._end)
        request.notifyFinish().addBoth(self._gone)

    def _event(self, kind: str, pod: Pod) -> None:
        metadata = pod["metadata"]
        if self._namespace is not None and metadata["namespace"] != self._namespace:
            return
        key = (metadata["namespace"], metadata["name"])
        matches = self._matches(pod)
        # A pod this watch has not sent yet was seen by the client's list
        # as it is now (a watch from a resource version follows a list).
        was = self._visible.get(key, kind != "ADDED" and matches)
        now = kind != "DELETED" and matches
        if kind == "DELETED":
            self._visible.pop(key, None)
        else:
            self._visible[key] = now
        if now:
            self._send(kind if was else "ADDED", pod)
        elif was:
            self._send("DELETED", pod)

    def _send(self, kind: str, pod: Pod) -> None:
        line = json.dumps({"type": kind, "object": pod}).encode("utf-8") + b"\n"
        if self._paused:
            if len(self._queue) >= MAX_QUEUED:
                self._end()
                return
            self._queue.append(line)
        elif not self._done:
            self._request.write(line)

    def _end(self) -> None:
        if self._done:
            return
        self._cleanup()
        self._request.unregisterProducer()
        self._request.finish()

    def _gone(self, _: object) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        self._done = True
        self._stop_listening()
        if self._timer.active():
            self._timer.cancel()

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        queued, self._queue = self._queue, []
        for line in queued:
            if not self._done:
                self._request.write(line)

    def stopProducing(self) -> None:
        self._cleanup()


def watch_timeout(raw: str | None) -> float:
    """The watch's length from ``timeoutSeconds`` (missing or unreadable: the default)."""
    try:
        seconds = int(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        seconds = DEFAULT_TIMEOUT
    return float(min(max(seconds, 1), MAX_TIMEOUT))

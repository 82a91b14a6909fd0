"""The pods the server knows, their resource versions, and who watches them.

Every change gets the next resource version and is kept in a bounded history,
so a watch that starts from a list's ``resourceVersion`` sees exactly the
changes after it; a watch from a version older than the history gets
``410 Expired``, as from a real server, and the client lists again.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from conch_container.testing.kubeapi.status import ApiError

#: Changes kept for watches that start from an older resource version.
HISTORY = 1000

Pod = dict[str, Any]
Event = tuple[str, Pod]
Listener = Callable[[str, Pod], None]


class PodStore:
    """Pods by namespace and name; each change notifies the listeners with a copy."""

    def __init__(self) -> None:
        self._pods: dict[tuple[str, str], Pod] = {}
        self._version = 0
        self._history: deque[tuple[int, str, Pod]] = deque(maxlen=HISTORY)
        self._listeners: set[Listener] = set()

    @property
    def resource_version(self) -> str:
        return str(self._version)

    def get(self, namespace: str, name: str) -> Pod | None:
        """The stored pod (not a copy: callers change it only through :meth:`changed`)."""
        return self._pods.get((namespace, name))

    def __iter__(self) -> Iterator[Pod]:
        return iter(list(self._pods.values()))

    def matching(
        self, namespace: str | None, matches: Callable[[Mapping[str, Any]], bool]
    ) -> list[Pod]:
        """Copies of the pods in ``namespace`` (all when None) that ``matches`` accepts."""
        return [
            copy.deepcopy(pod)
            for (ns, _), pod in sorted(self._pods.items())
            if (namespace is None or ns == namespace) and matches(pod)
        ]

    def add(self, pod: Pod) -> Pod:
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        self._pods[key] = pod
        return self._record("ADDED", pod)

    def changed(self, pod: Pod) -> Pod:
        """Record a change made to a stored pod; returns the copy listeners got."""
        return self._record("MODIFIED", pod)

    def remove(self, pod: Pod) -> None:
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        if self._pods.get(key) is pod:
            del self._pods[key]
            self._record("DELETED", pod)

    def _record(self, kind: str, pod: Pod) -> Pod:
        self._version += 1
        pod["metadata"]["resourceVersion"] = str(self._version)
        snapshot = copy.deepcopy(pod)
        self._history.append((self._version, kind, snapshot))
        for listener in list(self._listeners):
            listener(kind, snapshot)
        return snapshot

    def since(self, resource_version: str) -> list[Event]:
        """The changes after ``resource_version`` (410 when they are no longer all kept)."""
        try:
            version = int(resource_version)
        except ValueError:
            raise ApiError(
                400, "BadRequest", f"invalid resource version: {resource_version!r}"
            ) from None
        oldest = self._history[0][0] if self._history else self._version + 1
        if version < oldest - 1 and version < self._version:
            raise ApiError(410, "Expired", f"too old resource version: {version} ({oldest - 1})")
        return [(kind, pod) for v, kind, pod in self._history if v > version]

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(type, pod)`` on every change; returns the function that stops it."""
        self._listeners.add(listener)
        return lambda: self._listeners.discard(listener)

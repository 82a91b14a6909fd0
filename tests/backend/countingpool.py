"""A real thread pool that counts its work by function, for tests of the Docker backend's pool.

:class:`CountingThreadPool` is Twisted's :class:`~twisted.python.threadpool.ThreadPool`
(real threads, real blocking calls) that records, for each kind of call
(by default the function's name: ``thd_exec_resize``, ``thd_exec_detached``,
...), how many are queued or running now, and the most there ever were at
once. :func:`counting_pools` makes the Docker backend build its pool as one.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase

import conch_container.backend.docker.backend as docker_backend_module

#: How a call is told apart: from the function and its arguments, a name.
CallKind = Callable[[Callable[..., Any], tuple[Any, ...]], str]


def function_name(func: Callable[..., Any], args: tuple[Any, ...]) -> str:
    """The default :data:`CallKind`: the function's name."""
    return getattr(func, "__name__", repr(func))


class CountingThreadPool(ThreadPool):
    """A :class:`ThreadPool` that counts the calls it holds (queued or running) by kind.

    :param kind: names the kind of a call (by default, its function's name).
    """

    def __init__(self, *args: Any, kind: CallKind = function_name, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._kind = kind
        self._counts_lock = threading.Lock()
        self._outstanding: Counter[str] = Counter()
        self._most: Counter[str] = Counter()
        self._most_total = 0

    def callInThreadWithCallback(
        self,
        onResult: Callable[[bool, Any], object] | None,
        func: Callable[..., Any],
        *args: Any,
        **kw: Any,
    ) -> None:
        name = self._kind(func, args)
        with self._counts_lock:
            self._outstanding[name] += 1
            self._most[name] = max(self._most[name], self._outstanding[name])
            self._most_total = max(self._most_total, self._outstanding_total())

        def done(success: bool, result: Any) -> None:
            # Runs in the worker thread as soon as the call returned.
            with self._counts_lock:
                self._outstanding[name] -= 1
            if onResult is not None:
                onResult(success, result)

        super().callInThreadWithCallback(done, func, *args, **kw)

    def _outstanding_total(self) -> int:
        """All calls queued or running now (the caller holds the lock)."""
        return sum(self._outstanding.values())

    def outstanding(self, name: str | None = None) -> int:
        """Calls of ``name`` (all calls if None) queued or running now."""
        with self._counts_lock:
            if name is None:
                return self._outstanding_total()
            return self._outstanding[name]

    def most(self, name: str | None = None) -> int:
        """The most calls of ``name`` (all calls if None) ever queued or running at once."""
        with self._counts_lock:
            return self._most_total if name is None else self._most[name]

    def calls_seen(self) -> set[str]:
        """The names of the functions the pool has been given."""
        with self._counts_lock:
            return set(self._most)


def counting_pools(
    case: SynchronousTestCase, kind: CallKind = function_name
) -> list[CountingThreadPool]:
    """Make every Docker backend built during ``case`` use a :class:`CountingThreadPool`.

    :return: the pools, in the order the backends built them.
    """
    pools: list[CountingThreadPool] = []

    def build(*args: Any, **kwargs: Any) -> CountingThreadPool:
        pool = CountingThreadPool(*args, kind=kind, **kwargs)
        pools.append(pool)
        return pool

    case.patch(docker_backend_module, "ThreadPool", build)
    return pools

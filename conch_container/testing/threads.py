"""Threadless stand-ins for a component's own thread pool, for unit tests.

Components run blocking work with
``deferToThreadPool(reactor, pool, thd_function, ...)``. In a unit test, pass
a :class:`NonThreadPool` as the pool and a :class:`SynchronousReactorThreads`
(or any reactor) as the reactor: the ``thd_`` function then runs at once, in
the test's thread, and the Deferred has fired by the time the call returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.task import Clock
from zope.interface import implementer


class NonThreadPool:
    """A :class:`~twisted.python.threadpool.ThreadPool` look-alike that runs work synchronously.

    :ivar started: whether :meth:`start` was called and :meth:`stop` was not.
    :ivar calls: how many work items ran.
    """

    def __init__(self) -> None:
        self.started = False
        self.joined = False
        self.calls = 0

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False
        self.joined = True

    def callInThreadWithCallback(
        self,
        onResult: Callable[[bool, Any], object] | None,
        func: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> None:
        self.calls += 1
        try:
            result = func(*args, **kwargs)
        except BaseException as e:
            if onResult is not None:
                onResult(False, e)
            return
        if onResult is not None:
            onResult(True, result)

    def callInThread(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.callInThreadWithCallback(None, func, *args, **kwargs)


@implementer(IReactorFromThreads)
class SynchronousReactorThreads(Clock):
    """A :class:`~twisted.internet.task.Clock` whose ``callFromThread`` calls at once."""

    def callFromThread(self, callable: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        callable(*args, **kwargs)

"""Deferred helpers: results of extensions, deadlines, and calls that cannot be cancelled.

Extensions (backends, authenticators, filters) may answer with a coroutine,
a Deferred or a plain value: :func:`as_deferred` makes one Deferred of any of
them (to *call* such a method, use :func:`twisted.internet.defer.maybeDeferred`,
which also turns a raised exception into a failed Deferred).

A blocking SDK call runs in a pool thread; cancelling the Deferred that waits
for it only stops the waiting. :func:`shield` keeps the call's real result
available to whoever needs it (the container a late create returned must still
be removed), :func:`await_resource` releases what a call returns after its
waiter gave up (a late stream), :func:`with_deadline` bounds a whole coroutine
by a timeout on the reactor's clock, and :func:`settled_within` waits for work
at most so long without cancelling it. :class:`Once` shares one result among
many waiters.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

T = TypeVar("T")


def as_deferred(value: Any) -> Deferred[Any]:
    """Turn whatever an extension returned (coroutine, Deferred, plain value) into a Deferred."""
    if inspect.iscoroutine(value):
        return Deferred.fromCoroutine(value)
    if isinstance(value, Deferred):
        return value
    return succeed(value)


class DeadlineExceeded(Exception):
    """The work did not finish within its time budget."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"timed out after {seconds:g} s")
        self.seconds = seconds


def shield(d: Deferred[T]) -> Deferred[T]:
    """A Deferred with ``d``'s result whose cancellation leaves ``d`` alone.

    ``d``'s own callback chain is not consumed: callbacks added to ``d`` before
    this call see its result; the shield passes ``d``'s result on unchanged.
    """
    view: Deferred[T] = Deferred()

    def forward(result: T | Failure) -> T | Failure:
        if not view.called:
            if isinstance(result, Failure):
                view.errback(result)
            else:
                view.callback(result)
        return result

    def swallow(result: T | Failure) -> None:
        # ``d`` is only observed through views; its own errors are handled there.
        return None

    d.addBoth(forward)
    d.addBoth(swallow)
    return view


async def await_resource(d: Deferred[T], release: Callable[[T], object]) -> T:
    """Wait for ``d``, whose result is a resource (a stream), through a :func:`shield`.

    If the wait is cancelled, ``d`` is left running and the resource it gives
    later is passed to ``release``, since nobody will take it any more.
    """
    abandoned = False

    def release_if_abandoned(result: T) -> T | None:
        if abandoned:
            release(result)
            return None
        return result

    d.addCallback(release_if_abandoned)
    try:
        return await shield(d)
    except CancelledError:
        abandoned = True
        raise


async def with_deadline(
    clock: IReactorTime, seconds: float, work: Coroutine[Any, Any, T] | Deferred[T]
) -> T:
    """Run ``work``; cancel it and raise :class:`DeadlineExceeded` after ``seconds``.

    Cancellation reaches a coroutine as a :class:`~twisted.internet.defer.CancelledError`
    at its current ``await``; if ``work`` turns that into another exception, that
    exception propagates instead.
    """
    d = work if isinstance(work, Deferred) else Deferred.fromCoroutine(work)
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        d.cancel()

    timer = clock.callLater(seconds, expire)
    try:
        return await d
    except CancelledError:
        if expired:
            raise DeadlineExceeded(seconds) from None
        raise
    finally:
        if timer.active():
            timer.cancel()


async def settled_within(clock: IReactorTime, seconds: float, d: Deferred[Any]) -> bool:
    """Wait for ``d`` at most ``seconds``; whether it fired in time.

    ``d`` is never cancelled (the work behind it goes on) and its result is
    left to its own callbacks.
    """
    try:
        await with_deadline(clock, max(seconds, 0), shield(d))
    except DeadlineExceeded:
        return False
    except Exception:
        return True  # it fired, with a failure that belongs to ``d``'s owner
    return True


class Once(Generic[T]):
    """The result of work that runs once but is awaited by many.

    Each :meth:`wait` gets its own Deferred, so one waiter cancelling (or
    consuming the result) does not affect the others.
    """

    def __init__(self) -> None:
        self._result: T | Failure | None = None
        self._done = False
        self._waiters: list[Deferred[T]] = []

    @property
    def done(self) -> bool:
        return self._done

    def wait(self) -> Deferred[T]:
        d: Deferred[T] = Deferred()
        if self._done:
            self._deliver(d)
        else:
            self._waiters.append(d)
        return d

    def fire(self, result: T | Failure) -> None:
        """Record the result and wake every waiter (only the first call counts)."""
        if self._done:
            return
        self._done = True
        self._result = result
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            self._deliver(d)

    def _deliver(self, d: Deferred[T]) -> None:
        if d.called:
            return
        if isinstance(self._result, Failure):
            d.errback(self._result)
        else:
            d.callback(self._result)  # type: ignore[arg-type]

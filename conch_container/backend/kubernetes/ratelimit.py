"""The client-side rate limit of the control calls (``qps`` and ``burst``).

client-go puts a token bucket in front of every request: ``burst`` tokens at
most, refilled at ``qps`` a second; a request takes one or waits for it.
:class:`TokenBucket` is that bucket on the reactor's clock. Waiters are
served in arrival order; a waiter that is cancelled (its call's deadline
passed) leaves the queue without taking a token.
"""

from __future__ import annotations

from collections import deque

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime


class TokenBucket:
    """``burst`` tokens, refilled at ``qps`` per second.

    :param clock: the reactor's clock.
    :param qps: tokens added per second (greater than 0).
    :param burst: the most tokens held (at least 1).
    """

    def __init__(self, clock: IReactorTime, qps: float, burst: int) -> None:
        if qps <= 0:
            raise ValueError("qps must be greater than 0")
        self._clock = clock
        self._qps = qps
        self._burst = max(1, burst)
        self._tokens = float(self._burst)
        self._updated = clock.seconds()
        self._waiters: deque[Deferred[None]] = deque()
        self._timer: IDelayedCall | None = None

    @property
    def waiting(self) -> int:
        """How many calls wait for a token."""
        return len(self._waiters)

    def acquire(self) -> Deferred[None]:
        """A Deferred that fires once a token is taken; cancel it to stop waiting."""
        self._refill()
        if not self._waiters and self._tokens >= 1:
            self._tokens -= 1
            d: Deferred[None] = Deferred()
            d.callback(None)
            return d
        d = Deferred(self._cancel)
        self._waiters.append(d)
        self._schedule()
        return d

    def _cancel(self, d: Deferred[None]) -> None:
        try:
            self._waiters.remove(d)
        except ValueError:
            pass

    def _refill(self) -> None:
        now = self._clock.seconds()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._qps)
        self._updated = now

    def _schedule(self) -> None:
        if self._timer is not None and self._timer.active():
            return
        delay = max(0.0, (1 - self._tokens) / self._qps)
        self._timer = self._clock.callLater(delay, self._serve)

    def _serve(self) -> None:
        self._timer = None
        self._refill()
        while self._waiters and self._tokens >= 1:
            self._tokens -= 1
            self._waiters.popleft().callback(None)
        if self._waiters:
            self._schedule()

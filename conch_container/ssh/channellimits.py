"""At most one resize and one signal per channel at a time.

Every ``window-change`` and ``signal`` becomes a call into the backend (with
Docker, calls on a thread pool all users share). A client may send thousands
of them without waiting for the answers; letting each one start a call would
queue that many calls ahead of everyone else's. So each channel runs one of a
kind at a time, and what arrives meanwhile waits in a single slot:

- resizes: the waiting size is replaced by the newest one, since the terminal
  only has to end at the last size. A replaced request is answered with
  success: the size it asked for was overtaken, not refused.
- signals: one more signal waits (an interrupt followed by ``KILL`` both
  arrive); a signal sent while one is delivered and another waits is refused
  with a failure reply, which the client can see and repeat.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure

from conch_container.ssh.requests import RequestRefused

T = TypeVar("T")


class OneAtATime(Generic[T]):
    """Runs ``run(item)`` for one item at a time, with one waiting slot.

    :param run: starts the work for an item; its result (True, or a failure
        for a refusal) answers the request that submitted the item.
    :param replace_waiting: what happens to an item submitted while one runs
        and another waits: True, it takes the waiting one's place (which is
        answered True); False, it is refused with :class:`RequestRefused`.
    :param busy_reason: the refusal's reason, for the log.
    """

    def __init__(
        self,
        run: Callable[[T], Deferred[bool]],
        *,
        replace_waiting: bool,
        busy_reason: str = "busy",
    ) -> None:
        self._run = run
        self._replace_waiting = replace_waiting
        self._busy_reason = busy_reason
        self._running = False
        self._waiting: tuple[T, Deferred[bool]] | None = None
        self._discarded = False

    @property
    def running(self) -> bool:
        """Whether an item's work is in progress."""
        return self._running

    @property
    def waiting(self) -> bool:
        """Whether an item waits for the running one to finish."""
        return self._waiting is not None

    def submit(self, item: T) -> Deferred[bool]:
        """Run ``item`` now, or once the running item finished.

        :raises RequestRefused: when ``replace_waiting`` is False and the
            waiting slot is taken, or after :meth:`discard`.
        """
        if self._discarded:
            raise RequestRefused("the channel is closing")
        if not self._running:
            return self._start(item)
        if self._waiting is not None:
            if not self._replace_waiting:
                raise RequestRefused(self._busy_reason)
            _, overtaken = self._waiting
            self._waiting = None
            overtaken.callback(True)
        answer: Deferred[bool] = Deferred()
        self._waiting = (item, answer)
        return answer

    def discard(self) -> None:
        """The channel is going: refuse the waiting item and everything after it."""
        self._discarded = True
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting[1].errback(RequestRefused("the channel is closing"))

    def _start(self, item: T) -> Deferred[bool]:
        self._running = True
        d: Deferred[bool] = maybeDeferred(self._run, item)
        d.addBoth(self._finished)
        return d

    def _finished(self, outcome: bool | Failure) -> bool | Failure:
        self._running = False
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            item, answer = waiting
            self._start(item).chainDeferred(answer)
        return outcome

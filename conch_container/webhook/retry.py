"""ContainerSSH's webhook retry schedule: try, wait 10 seconds, try again, within a budget.

A webhook call that gives no usable answer (connection failure, timeout,
non-200 status, malformed answer: any
:class:`~conch_container.webhook.errors.WebhookError`) is tried again after
:attr:`RetryPolicy.interval`, as long as another attempt fits in the overall
:attr:`RetryPolicy.budget`; each attempt is bounded by what is left of it.
When no attempt fits any more, :class:`GaveUp` is raised at once rather than
after a wait for nothing. All waiting runs on the given clock, so the whole
schedule is testable with :class:`~twisted.internet.task.Clock`, and
cancelling the call (the client disconnected) stops it wherever it is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs
from twisted.internet import task
from twisted.internet.interfaces import IReactorTime

from conch_container.webhook.errors import WebhookError

T = TypeVar("T")

#: ContainerSSH's pause between attempts, in seconds.
RETRY_INTERVAL = 10.0


@attrs.frozen
class RetryPolicy:
    """How long to keep trying, and how long to wait between attempts (seconds)."""

    budget: float
    interval: float = RETRY_INTERVAL


class GaveUp(Exception):
    """No attempt succeeded within the budget.

    :ivar last: the last attempt's failure.
    """

    def __init__(self, last: WebhookError) -> None:
        super().__init__(last.reason)
        self.last = last


async def call_with_retries(
    attempt: Callable[[float], Awaitable[T]],
    *,
    clock: IReactorTime,
    policy: RetryPolicy,
    on_retry: Callable[[WebhookError, float], None],
) -> T:
    """The result of the first ``attempt`` that does not raise a :class:`WebhookError`.

    :param attempt: one try; called with the seconds left in the budget,
        which bound it.
    :param on_retry: told of a failed attempt that will be tried again, and
        of the delay before that.
    :raises GaveUp: when the budget leaves no room for another attempt.
    """
    deadline = clock.seconds() + policy.budget
    while True:
        try:
            return await attempt(max(deadline - clock.seconds(), 0.0))
        except WebhookError as e:
            failure = e
        if deadline - clock.seconds() <= policy.interval:
            raise GaveUp(failure)
        on_retry(failure, policy.interval)
        await task.deferLater(clock, policy.interval)

"""The qps/burst token bucket on the reactor's clock."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.kubernetes.ratelimit import TokenBucket


class TokenBucketTests(SynchronousTestCase):
    def test_burst_then_qps(self) -> None:
        """``burst`` calls go at once; then one more per 1/qps seconds, in arrival order."""
        clock = Clock()
        bucket = TokenBucket(clock, 2, 3)
        immediate = [bucket.acquire() for _ in range(3)]
        for d in immediate:
            self.successResultOf(d)
        order: list[int] = []
        later = [bucket.acquire().addCallback(lambda _, i=i: order.append(i)) for i in range(3)]
        self.assertEqual(bucket.waiting, 3)
        clock.advance(0.4)
        self.assertEqual(order, [])
        clock.advance(0.1)
        self.assertEqual(order, [0])
        clock.advance(1)
        self.assertEqual(order, [0, 1, 2])
        for d in later:
            self.successResultOf(d)

    def test_refills_up_to_burst_only(self) -> None:
        """An idle bucket holds at most ``burst`` tokens."""
        clock = Clock()
        bucket = TokenBucket(clock, 10, 2)
        clock.advance(3600)
        self.successResultOf(bucket.acquire())
        self.successResultOf(bucket.acquire())
        self.assertNoResult(bucket.acquire())

    def test_cancelled_waiter_takes_no_token(self) -> None:
        """A cancelled wait leaves the queue; the next waiter gets the token."""
        clock = Clock()
        bucket = TokenBucket(clock, 1, 1)
        self.successResultOf(bucket.acquire())
        first = bucket.acquire()
        second = bucket.acquire()
        first.cancel()
        self.failureResultOf(first)
        self.assertEqual(bucket.waiting, 1)
        clock.advance(1)
        self.successResultOf(second)
        self.assertEqual(bucket.waiting, 0)

    def test_qps_must_be_positive(self) -> None:
        """A bucket that never refills is refused."""
        self.assertRaises(ValueError, TokenBucket, Clock(), 0, 1)

"""Tests for conch_container.deferreds: extension results, shield, resources, deadlines, Once."""

from __future__ import annotations

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from conch_container.deferreds import (
    DeadlineExceeded,
    Once,
    as_deferred,
    await_resource,
    settled_within,
    shield,
    with_deadline,
)


class AsDeferredTests(SynchronousTestCase):
    def test_plain_value(self) -> None:
        self.assertEqual(self.successResultOf(as_deferred(3)), 3)

    def test_deferred_is_returned_as_it_is(self) -> None:
        d: Deferred[int] = Deferred()
        self.assertIs(as_deferred(d), d)

    def test_coroutine_runs(self) -> None:
        async def answer() -> int:
            return 4

        self.assertEqual(self.successResultOf(as_deferred(answer())), 4)


class SettledWithinTests(SynchronousTestCase):
    def test_fired_in_time(self) -> None:
        clock = Clock()
        work: Deferred[int] = Deferred()
        waited = Deferred.fromCoroutine(settled_within(clock, 5, work))
        clock.advance(4)
        work.callback(1)
        self.assertIs(self.successResultOf(waited), True)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_failure_in_time_counts_as_settled(self) -> None:
        clock = Clock()
        work: Deferred[int] = Deferred()
        waited = Deferred.fromCoroutine(settled_within(clock, 5, work))
        work.errback(ValueError("its owner's business"))
        self.assertIs(self.successResultOf(waited), True)

    def test_late_work_is_not_cancelled(self) -> None:
        clock = Clock()
        cancelled: list[object] = []
        work: Deferred[int] = Deferred(cancelled.append)
        waited = Deferred.fromCoroutine(settled_within(clock, 5, work))
        clock.advance(5)
        self.assertIs(self.successResultOf(waited), False)
        self.assertEqual(cancelled, [])
        work.callback(1)  # still fires normally, later

    def test_negative_budget_does_not_wait(self) -> None:
        clock = Clock()
        waited = Deferred.fromCoroutine(settled_within(clock, -1, Deferred()))
        clock.advance(0)
        self.assertIs(self.successResultOf(waited), False)


class ShieldTests(SynchronousTestCase):
    def test_cancel_view_only(self) -> None:
        """Cancelling the shield fails it but leaves the original running."""
        original: Deferred[int] = Deferred()
        seen: list[int] = []

        def record(result: int) -> int:
            seen.append(result)
            return result

        original.addCallback(record)
        view = shield(original)
        view.cancel()
        self.failureResultOf(view, CancelledError)
        original.callback(5)
        self.assertEqual(seen, [5])

    def test_result_forwarded(self) -> None:
        """Results and failures reach the shield."""
        original: Deferred[int] = Deferred()
        view = shield(original)
        original.callback(3)
        self.assertEqual(self.successResultOf(view), 3)
        failing: Deferred[int] = Deferred()
        view = shield(failing)
        failing.errback(ValueError("x"))
        self.failureResultOf(view, ValueError)

    def test_late_failure_swallowed(self) -> None:
        """A failure after the shield was cancelled is not left unhandled."""
        original: Deferred[int] = Deferred()
        view = shield(original)
        view.cancel()
        self.failureResultOf(view, CancelledError)
        original.errback(ValueError("late"))
        self.assertEqual(self.flushLoggedErrors(ValueError), [])


class AwaitResourceTests(SynchronousTestCase):
    def test_result_taken(self) -> None:
        """A resource that arrives while it is awaited is the result, not released."""
        source: Deferred[str] = Deferred()
        released: list[str] = []
        d = Deferred.fromCoroutine(await_resource(source, released.append))
        source.callback("stream")
        self.assertEqual(self.successResultOf(d), "stream")
        self.assertEqual(released, [])

    def test_late_resource_released(self) -> None:
        """After the wait was cancelled, a resource that arrives is released, once."""
        source: Deferred[str] = Deferred()
        released: list[str] = []
        d = Deferred.fromCoroutine(await_resource(source, released.append))
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertFalse(source.called)
        source.callback("stream")
        self.assertEqual(released, ["stream"])

    def test_failure(self) -> None:
        """A failure reaches the waiter; nothing is released."""
        source: Deferred[str] = Deferred()
        released: list[str] = []
        d = Deferred.fromCoroutine(await_resource(source, released.append))
        source.errback(ValueError("refused"))
        self.failureResultOf(d, ValueError)
        self.assertEqual(released, [])


class DeadlineTests(SynchronousTestCase):
    def test_in_time(self) -> None:
        """Work finishing in time gives its result and cancels the timer."""
        clock = Clock()
        work: Deferred[str] = Deferred()
        d = Deferred.fromCoroutine(with_deadline(clock, 5, work))
        work.callback("ok")
        self.assertEqual(self.successResultOf(d), "ok")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_expired(self) -> None:
        """Work still running at the deadline is cancelled and DeadlineExceeded raised."""
        clock = Clock()
        cancelled: list[object] = []
        work: Deferred[str] = Deferred(cancelled.append)
        d = Deferred.fromCoroutine(with_deadline(clock, 5, work))
        clock.advance(5)
        self.assertEqual(cancelled, [work])
        self.assertEqual(self.failureResultOf(d, DeadlineExceeded).value.seconds, 5)

    def test_converted_cancellation(self) -> None:
        """A coroutine that turns the cancellation into its own error raises that error."""
        clock = Clock()

        async def work() -> None:
            try:
                await Deferred()
            except CancelledError:
                raise KeyError("mine") from None

        d = Deferred.fromCoroutine(with_deadline(clock, 1, work()))
        clock.advance(1)
        self.failureResultOf(d, KeyError)

    def test_outer_cancel(self) -> None:
        """Cancelling the caller cancels the work and is not a deadline."""
        clock = Clock()
        work: Deferred[str] = Deferred()
        d = Deferred.fromCoroutine(with_deadline(clock, 5, work))
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(clock.getDelayedCalls(), [])


class OnceTests(SynchronousTestCase):
    def test_waiters(self) -> None:
        """Every waiter gets the result, before and after it is known."""
        once: Once[int] = Once()
        early = once.wait()
        once.fire(1)
        once.fire(2)
        self.assertEqual(self.successResultOf(early), 1)
        self.assertEqual(self.successResultOf(once.wait()), 1)
        self.assertTrue(once.done)

    def test_cancelled_waiter(self) -> None:
        """One waiter cancelling does not affect the others."""
        once: Once[int] = Once()
        a, b = once.wait(), once.wait()
        a.cancel()
        once.fire(7)
        self.failureResultOf(a, CancelledError)
        self.assertEqual(self.successResultOf(b), 7)

    def test_failure(self) -> None:
        """A failure is delivered to every waiter."""
        from twisted.python.failure import Failure

        once: Once[int] = Once()
        a = once.wait()
        once.fire(Failure(ValueError("x")))
        self.failureResultOf(a, ValueError)
        self.failureResultOf(once.wait(), ValueError)

"""The keepalive timer on its own."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from conch_container.ssh.keepalive import KeepAlive
from tests.ssh.harness import collecting_log


class KeepAliveTests(SynchronousTestCase):
    """:class:`KeepAlive`."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.sent: list[Deferred[Any]] = []
        self.dead: list[bool] = []
        self.events: list[dict[str, Any]] = []
        self.keepalive = KeepAlive(
            self.clock,
            5.0,
            2,
            self._send,
            lambda: self.dead.append(True),
            collecting_log(self.events),
        )
        self.keepalive.start()

    def _send(self) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.sent.append(d)
        return d

    def test_first_request_after_one_interval(self) -> None:
        """Nothing is sent at start; the first request goes out after one interval."""
        self.assertEqual(self.sent, [])
        self.clock.advance(5)
        self.assertEqual(len(self.sent), 1)

    def test_any_answer_resets_misses(self) -> None:
        """Success and failure replies both count as answers."""
        self.clock.advance(5)
        self.clock.advance(5)
        self.assertEqual(self.keepalive.misses, 1)
        self.sent[0].errback(Exception("request failed"))
        self.assertEqual(self.keepalive.misses, 0)
        self.sent[1].callback(b"")
        self.clock.advance(5)
        self.assertEqual(self.keepalive.misses, 0)
        self.assertEqual(self.dead, [])

    def test_dead_after_count_max_misses(self) -> None:
        """``count_max`` unanswered requests in a row: dead, and no more requests."""
        self.clock.advance(5)
        self.clock.advance(5)
        self.assertEqual(self.dead, [])
        self.clock.advance(5)
        self.assertEqual(self.dead, [True])
        self.assertEqual(len(self.sent), 2)
        self.clock.advance(50)
        self.assertEqual(len(self.sent), 2)
        self.assertEqual([e["code"] for e in self.events], ["SSH_KEEPALIVE_NORESP"] * 2)

    def test_stop(self) -> None:
        """After stop nothing is sent and late answers are ignored."""
        self.clock.advance(5)
        self.keepalive.stop()
        self.keepalive.stop()
        self.sent[0].errback(Exception("connection lost"))
        self.clock.advance(50)
        self.assertEqual(len(self.sent), 1)

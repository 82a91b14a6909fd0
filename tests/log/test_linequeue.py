"""Tests for conch_container.log.linequeue."""

from __future__ import annotations

import threading

from twisted.trial.unittest import SynchronousTestCase

from conch_container.log.linequeue import LineQueue


class LineQueueTests(SynchronousTestCase):
    def test_fifo(self) -> None:
        """Lines come out in the order they went in."""
        lines = LineQueue(10)
        for line in (b"a", b"b", b"c"):
            lines.put(line)
        self.assertEqual([lines.take(), lines.take(), lines.take()], [b"a", b"b", b"c"])
        self.assertIsNone(lines.take())

    def test_full_drops_oldest(self) -> None:
        """A full queue drops its oldest line and counts it; the count is taken once."""
        lines = LineQueue(2)
        for line in (b"1", b"2", b"3", b"4"):
            lines.put(line)
        self.assertEqual(len(lines), 2)
        self.assertEqual(lines.take_dropped(), 2)
        self.assertEqual(lines.take_dropped(), 0)
        self.assertEqual([lines.take(), lines.take()], [b"3", b"4"])

    def test_wake_once_per_drain(self) -> None:
        """Only the first line since the reader started draining asks to wake it."""
        lines = LineQueue(10)
        self.assertTrue(lines.put(b"a"))
        self.assertFalse(lines.put(b"b"))
        lines.draining()
        self.assertTrue(lines.put(b"c"))

    def test_put_back(self) -> None:
        """A line put back is taken first again; in a queue filled meanwhile it is dropped."""
        lines = LineQueue(2)
        lines.put(b"a")
        lines.put(b"b")
        first = lines.take()
        assert first is not None
        lines.put_back(first)
        self.assertEqual(lines.take(), b"a")
        lines.put(b"c")
        lines.put_back(b"a")
        self.assertEqual(lines.take_dropped(), 1)
        self.assertEqual([lines.take(), lines.take()], [b"b", b"c"])

    def test_count_dropped(self) -> None:
        """Lines lost elsewhere add to the count."""
        lines = LineQueue(2)
        lines.count_dropped(3)
        self.assertEqual(lines.take_dropped(), 3)

    def test_limit(self) -> None:
        """A queue must hold at least one line."""
        self.assertRaises(ValueError, LineQueue, 0)

    def test_threads(self) -> None:
        """Writers in several threads never lose a line uncounted."""
        lines = LineQueue(50)

        def write() -> None:
            for _ in range(1000):
                lines.put(b"x")

        threads = [threading.Thread(target=write) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
            self.assertFalse(thread.is_alive())
        self.assertEqual(len(lines) + lines.take_dropped(), 4000)

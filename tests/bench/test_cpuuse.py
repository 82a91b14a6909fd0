"""The benchmark's CPU accounting, read from ``/proc``."""

from __future__ import annotations

import os
import time

from twisted.trial.unittest import SynchronousTestCase

from bench import cpuuse


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


class CpuUseTests(SynchronousTestCase):
    def test_own_process_counts_its_work(self) -> None:
        """Work done between two snapshots shows in the server's figure."""
        before = cpuuse.snapshot(os.getpid())
        _burn(0.2)
        server, _engine = cpuuse.used(before, cpuuse.snapshot(os.getpid()))
        assert server is not None
        self.assertGreaterEqual(server, 0.15)

    def test_no_server(self) -> None:
        """Without a server process, only the engine is measured."""
        before = cpuuse.snapshot(None)
        server, engine = cpuuse.used(before, cpuuse.snapshot(None))
        self.assertIsNone(server)
        self.assertGreaterEqual(engine, 0.0)

    def test_engine_processes_appearing_and_vanishing(self) -> None:
        """A new engine process counts in full; one that went away counts nothing."""
        before = cpuuse.Snapshot(1.0, {10: 5.0, 11: 2.0})
        after = cpuuse.Snapshot(1.5, {10: 6.0, 12: 0.25})
        self.assertEqual(cpuuse.used(before, after), (0.5, 1.25))

    def test_missing_process(self) -> None:
        """A process that does not exist has no figure."""
        self.assertIsNone(cpuuse.snapshot(2**22 + 12345).server)

"""Tests for the ordered service tree and the session registry."""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from conch_container.log import CodeLogger
from conch_container.service import ComponentService, GatewayService, SessionRegistry


class RecordingService(Service):
    def __init__(self, name: str, journal: list[str], start_result: Any = None) -> None:
        self.setName(name)
        self.journal = journal
        self.start_result = start_result

    def startService(self) -> Any:
        Service.startService(self)
        self.journal.append("start " + self.name)
        return self.start_result

    def stopService(self) -> Any:
        Service.stopService(self)
        self.journal.append("stop " + self.name)
        return succeed(None)


def codes(events: list[dict[str, Any]]) -> list[str]:
    return [e["code"] for e in events if "code" in e]


class GatewayServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.log = CodeLogger("test", observer=self.events.append)
        self.journal: list[str] = []

    def test_starts_in_order_and_stops_in_reverse(self) -> None:
        """Children start one after another in order and stop in reverse order, logged."""
        root = GatewayService(self.log)
        for name in ("backend", "auth", "ssh"):
            RecordingService(name, self.journal).setServiceParent(root)
        self.successResultOf(root.startService())
        self.successResultOf(root.stopService())
        self.assertEqual(
            self.journal,
            ["start backend", "start auth", "start ssh", "stop ssh", "stop auth", "stop backend"],
        )
        self.assertEqual(codes(self.events)[0], "SERVICE_POOL_STARTING")
        self.assertIn("SERVICE_POOL_RUNNING", codes(self.events))
        self.assertEqual(codes(self.events)[-1], "SERVICE_POOL_STOPPED")

    def test_waits_for_asynchronous_start(self) -> None:
        """A child whose start is pending holds back the next child."""
        root = GatewayService(self.log)
        pending: Deferred[None] = Deferred()
        RecordingService("slow", self.journal, pending).setServiceParent(root)
        RecordingService("next", self.journal).setServiceParent(root)
        d = root.startService()
        self.assertEqual(self.journal, ["start slow"])
        pending.callback(None)
        self.successResultOf(d)
        self.assertEqual(self.journal, ["start slow", "start next"])

    def test_crash_stops_started_children_and_reports(self) -> None:
        """A child failing to start is logged SERVICE_CRASHED, started ones are stopped."""
        crashes: list[Failure] = []
        root = GatewayService(self.log, on_crash=crashes.append)
        RecordingService("first", self.journal).setServiceParent(root)
        ComponentService("broken", start=lambda: 1 / 0).setServiceParent(root)
        RecordingService("never", self.journal).setServiceParent(root)
        self.successResultOf(root.startService())
        self.assertEqual(self.journal, ["start first", "stop first"])
        self.assertEqual(len(crashes), 1)
        crashes[0].trap(ZeroDivisionError)
        self.assertIn("SERVICE_CRASHED", codes(self.events))

    def test_stop_is_idempotent(self) -> None:
        """Stopping twice stops each child once."""
        root = GatewayService(self.log)
        RecordingService("only", self.journal).setServiceParent(root)
        self.successResultOf(root.startService())
        self.successResultOf(root.stopService())
        self.successResultOf(root.stopService())
        self.assertEqual(self.journal, ["start only", "stop only"])


class SessionRegistryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.events: list[dict[str, Any]] = []
        self.registry = SessionRegistry(
            self.clock, CodeLogger("test", observer=self.events.append), deadline=20
        )

    def test_stop_waits_for_teardowns(self) -> None:
        """Stopping closes connections and fires only when every teardown finished."""
        teardown: Deferred[None] = Deferred()
        self.registry.add_closer(lambda: self.registry.track(teardown, "conn"))
        d = self.registry.stopService()
        self.assertFalse(self.registry.accepting)
        self.assertNoResult(d)
        teardown.callback(None)
        self.successResultOf(d)
        self.assertEqual(self.registry.pending, 0)

    def test_deadline_runs_last_resort(self) -> None:
        """A teardown still running at the deadline triggers the last-resort hooks."""
        reaped: list[bool] = []
        self.registry.track(Deferred(), "stuck")
        self.registry.add_last_resort(lambda: reaped.append(True))
        d = self.registry.stopService()
        self.clock.advance(19)
        self.assertNoResult(d)
        self.clock.advance(2)
        self.successResultOf(d)
        self.assertEqual(reaped, [True])
        self.assertIn("SERVICE_SHUTDOWN_DEADLINE", codes(self.events))

    def test_failed_teardown_is_logged(self) -> None:
        """A failing teardown is logged and forgotten, not raised."""
        teardown: Deferred[None] = Deferred()
        self.registry.track(teardown, "conn")
        teardown.errback(RuntimeError("engine gone"))
        self.assertEqual(self.registry.pending, 0)
        self.assertIn("UNKNOWN_ERROR", codes(self.events))

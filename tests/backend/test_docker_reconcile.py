"""The start-up reconciler and the label sweep, against a scripted engine and a fake clock,
and the backend's start against an engine that never answers."""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import reactor as global_reactor
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from conch_container.backend.docker.backend import DockerBackend
from conch_container.backend.docker.containerconfig import LABEL_INSTANCE
from conch_container.backend.docker.engine.errors import EngineError
from conch_container.backend.docker.reconcile import Sweep, remove_leftovers
from conch_container.log.logger import CodeLogger
from tests.backend.helpers import make_config

INSTANCE = "0123456789abcdef"
TIMEOUT = 30.0


class ScriptedEngine:
    """Answers ``list_labelled`` with ``found``; each removal waits for the test."""

    def __init__(self, found: list[str] | EngineError | None) -> None:
        self.found = found
        self.listed: list[tuple[str, str]] = []
        self.removals: dict[str, Deferred[bool]] = {}

    def list_labelled(self, label: str, value: str) -> Deferred[list[str]]:
        self.listed.append((label, value))
        if self.found is None:
            return Deferred()  # never answers
        if isinstance(self.found, EngineError):
            return fail(self.found)
        return succeed(list(self.found))

    def remove_container(self, container_id: str) -> Deferred[bool]:
        d: Deferred[bool] = Deferred()
        self.removals[container_id] = d
        return d


class RemoveLeftoversTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.events: list[dict[str, Any]] = []
        self.log = CodeLogger("tests.reconcile", observer=self.events.append)  # type: ignore[arg-type]

    def run_with(self, source: Any) -> Deferred[int]:
        return Deferred.fromCoroutine(
            remove_leftovers(source, INSTANCE, self.log, self.clock, TIMEOUT)
        )

    def events_with(self, code: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("code") == code]

    def test_engine_down(self) -> None:
        """An engine that cannot be reached is logged as DOCKER_CONNECTION_FAILED; 0 removed."""
        result = self.successResultOf(self.run_with(lambda: fail(EngineError("no socket"))))
        self.assertEqual(result, 0)
        [event] = self.events_with("DOCKER_CONNECTION_FAILED")
        self.assertEqual(event["reason"], "no socket")

    def test_engine_silent(self) -> None:
        """An engine that never answers is given up at the deadline; the start goes on."""
        d = self.run_with(lambda: Deferred())
        self.assertNoResult(d)
        self.clock.advance(TIMEOUT)
        self.assertEqual(self.successResultOf(d), 0)
        self.assertEqual(len(self.events_with("DOCKER_CONNECTION_FAILED")), 1)

    def test_list_fails(self) -> None:
        """A refused listing is DOCKER_CONTAINER_REMOVE_FAILED; nothing is removed."""
        engine = ScriptedEngine(EngineError("denied", 500))
        self.assertEqual(self.successResultOf(self.run_with(lambda: succeed(engine))), 0)
        self.assertEqual(len(self.events_with("DOCKER_CONTAINER_REMOVE_FAILED")), 1)
        self.assertEqual(engine.removals, {})

    def test_nothing_left(self) -> None:
        """No labelled container: a debug-level DOCKER_CONTAINER_RECONCILE with count 0."""
        engine = ScriptedEngine([])
        self.assertEqual(self.successResultOf(self.run_with(lambda: succeed(engine))), 0)
        self.assertEqual(engine.listed, [(LABEL_INSTANCE, INSTANCE)])
        [event] = self.events_with("DOCKER_CONTAINER_RECONCILE")
        self.assertEqual((event["count"], event["cs_level"].label), (0, "debug"))

    def test_removes_all_at_once(self) -> None:
        """Every leftover is logged by count and id, then all removals are asked at once."""
        engine = ScriptedEngine(["a1", "b2", "c3"])
        d = self.run_with(lambda: succeed(engine))
        [event] = self.events_with("DOCKER_CONTAINER_RECONCILE")
        self.assertEqual((event["count"], event["containerIds"]), (3, "a1, b2, c3"))
        self.assertEqual(event["cs_level"].label, "notice")
        self.assertEqual(sorted(engine.removals), ["a1", "b2", "c3"])
        self.assertNoResult(d)
        engine.removals["a1"].callback(True)
        engine.removals["b2"].callback(False)  # already gone: counts as removed
        engine.removals["c3"].callback(True)
        self.assertEqual(self.successResultOf(d), 3)
        removed = [e["containerId"] for e in self.events_with("DOCKER_CONTAINER_REMOVE_SUCCESSFUL")]
        self.assertEqual(sorted(removed), ["a1", "b2", "c3"])
        self.assertEqual(self.events_with("DOCKER_CONTAINER_REMOVE_FAILED"), [])

    def test_refused_and_unanswered(self) -> None:
        """At the deadline the refused and unanswered removals are reported together."""
        engine = ScriptedEngine(["a1", "b2", "c3"])
        d = self.run_with(lambda: succeed(engine))
        engine.removals["a1"].callback(True)
        engine.removals["b2"].errback(EngineError("device busy", 500))
        self.clock.advance(TIMEOUT)
        self.assertEqual(self.successResultOf(d), 1)
        failed = self.events_with("DOCKER_CONTAINER_REMOVE_FAILED")
        self.assertEqual([e.get("containerId") for e in failed], ["b2", None])
        summary = failed[-1]
        self.assertEqual((summary["left"], summary["failed"], summary["unfinished"]), (2, 1, 1))

    def test_cancelled(self) -> None:
        """Cancelling (the backend stops during start-up) ends it with CancelledError."""
        engine = ScriptedEngine(["a1"])
        d = self.run_with(lambda: succeed(engine))
        d.cancel()
        self.failureResultOf(d, CancelledError)


class SweepTests(SynchronousTestCase):
    def test_counts(self) -> None:
        """The sweep counts removed, refused and unfinished removals."""
        engine = ScriptedEngine(["a", "b", "c"])
        sweep = Sweep(engine, INSTANCE, CodeLogger("tests.reconcile", observer=lambda e: None))  # type: ignore[arg-type]
        self.assertEqual(
            self.successResultOf(Deferred.fromCoroutine(sweep.find())), ["a", "b", "c"]
        )
        d = Deferred.fromCoroutine(sweep.remove_found())
        engine.removals["a"].callback(True)
        engine.removals["b"].errback(EngineError("no"))
        self.assertEqual((sweep.removed, sweep.failed, sweep.unfinished), (1, 1, 1))
        engine.removals["c"].callback(True)
        self.successResultOf(d)
        self.assertEqual((sweep.removed, sweep.failed, sweep.unfinished), (2, 1, 0))


class BackendStartTests(TestCase):
    """:meth:`DockerBackend.start` with the gateway's ``docker`` section, on the real reactor."""

    timeout = 60

    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        log = CodeLogger("tests.reconcile", observer=self.events.append)  # type: ignore[arg-type]
        self.backend = DockerBackend(global_reactor, log, instance_id=INSTANCE, max_threads=2)
        self.addCleanup(self.backend.stop)
        # An "engine" that accepts connections and never answers.
        self.silent = socket.socket()
        self.silent.bind(("127.0.0.1", 0))
        self.silent.listen()
        self.addCleanup(self.silent.close)

    def silent_config(self, http: str) -> Any:
        host = f"tcp://127.0.0.1:{self.silent.getsockname()[1]}"
        return make_config(connection={"host": host}, timeouts={"http": http}).docker

    async def test_stop_during_reconcile(self) -> None:
        """Stopping the backend while it reconciles ends the start quietly, and the stop too."""
        started = self.backend.start(self.silent_config("2s"))
        self.assertFalse(started.called)
        await self.backend.stop()
        self.assertIsNone(self.successResultOf(started))
        self.assertEqual([e.get("code") for e in self.events if "code" in e], [])

    async def test_silent_engine(self) -> None:
        """An engine that never answers delays the start by at most the HTTP timeout."""
        await self.backend.start(self.silent_config("1s"))
        codes = [e.get("code") for e in self.events if "code" in e]
        self.assertEqual(codes, ["DOCKER_CONNECTION_FAILED"])

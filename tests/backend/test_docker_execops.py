"""Tests for conch_container.backend.docker.execops: exit codes and signal delivery."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.backend.docker.engine.errors import EngineError
from conch_container.backend.docker.execops import (
    EXIT_CODE_TIMEOUT,
    MAX_EXIT_CODE,
    UNKNOWN_EXIT_CODE,
    deliver_signal,
    fetch_exit_code,
    start_signal,
)
from conch_container.errors import ContainerSSHError
from conch_container.log.logger import CodeLogger


class ScriptedEngine:
    """Answers exec inspect and detached execs from scripts (one answer per call)."""

    def __init__(self, inspections: list[Any] = (), runs: list[Any] = ()) -> None:  # type: ignore[assignment]
        self.inspections = list(inspections)
        self.runs = list(runs)
        self.commands: list[list[str]] = []
        self.calls: list[str] = []

    @staticmethod
    def _answer(item: Any) -> Deferred[Any]:
        if isinstance(item, Exception):
            return fail(item)
        if isinstance(item, Deferred):
            return item
        return succeed(item)

    def exec_inspect(self, exec_id: str) -> Deferred[Any]:
        self.calls.append(f"inspect {exec_id}")
        return self._answer(self.inspections.pop(0))

    def exec_detached(self, container_id: str, cmd: list[str]) -> Deferred[Any]:
        self.calls.append("detached")
        self.commands.append(cmd)
        return self._answer(self.runs.pop(0))


def ended(code: int) -> dict[str, Any]:
    """An ``exec inspect`` answer for an exec that exited with ``code``."""
    return {"Running": False, "ExitCode": code}


RUNNING = {"Running": True, "ExitCode": None}


class LoggingTestMixin:
    def setUp(self) -> None:
        self.events = EventLoggingObserver()
        self.log = CodeLogger("tests", observer=self.events)
        self.clock = Clock()

    def codes(self) -> list[str]:
        return [e["code"] for e in self.events]


class ExitCodeTests(LoggingTestMixin, SynchronousTestCase):
    def fetch(self, engine: ScriptedEngine) -> Deferred[int]:
        return Deferred.fromCoroutine(fetch_exit_code(self.clock, engine, "e1", self.log))

    def test_exited(self) -> None:
        """A finished exec's code is returned and logged as DOCKER_EXIT_CODE."""
        d = self.fetch(ScriptedEngine([{"Running": False, "ExitCode": 42}]))
        self.assertEqual(self.successResultOf(d), 42)
        self.assertEqual(self.codes(), ["DOCKER_EXIT_CODE"])

    def test_polls_while_running(self) -> None:
        """While the engine says running, inspect is repeated with growing delays."""
        engine = ScriptedEngine(
            [{"Running": True}, {"Running": True}, {"Running": False, "ExitCode": 0}]
        )
        d = self.fetch(engine)
        self.assertNoResult(d)
        self.clock.advance(0.01)
        self.assertNoResult(d)
        self.clock.advance(0.02)
        self.assertEqual(self.successResultOf(d), 0)

    def test_still_running(self) -> None:
        """An exec still running after the bound gives 137 and DOCKER_EXIT_CODE_STILL_RUNNING."""
        engine = ScriptedEngine([{"Running": True}] * 200)
        d = self.fetch(engine)
        for _ in range(200):
            self.clock.advance(1)
        self.assertEqual(self.successResultOf(d), UNKNOWN_EXIT_CODE)
        self.assertIn("DOCKER_EXIT_CODE_STILL_RUNNING", self.codes())
        self.assertLessEqual(self.clock.seconds(), EXIT_CODE_TIMEOUT + 200)

    def test_failures(self) -> None:
        """Engine errors, missing, negative and too large codes give 137 with their own codes."""
        for answer, code in (
            (EngineError("gone", 404), "DOCKER_EXIT_CODE_FAILED"),
            ({"Running": False, "ExitCode": None}, "DOCKER_EXIT_CODE_FAILED"),
            ({"Running": False, "ExitCode": -1}, "DOCKER_EXIT_CODE_NEGATIVE"),
            ({"Running": False, "ExitCode": 2**32}, "DOCKER_EXIT_CODE_FAILED"),
            ({"Running": False, "ExitCode": 2**70}, "DOCKER_EXIT_CODE_FAILED"),
        ):
            before = len(self.codes())
            d = self.fetch(ScriptedEngine([answer]))
            self.assertEqual(self.successResultOf(d), UNKNOWN_EXIT_CODE)
            self.assertEqual(self.codes()[before:], [code])

    def test_largest_exit_code(self) -> None:
        """The largest code an SSH exit-status carries is passed on as it is."""
        d = self.fetch(ScriptedEngine([ended(MAX_EXIT_CODE)]))
        self.assertEqual(self.successResultOf(d), 2**32 - 1)
        self.assertEqual(self.codes(), ["DOCKER_EXIT_CODE"])


class SignalTests(LoggingTestMixin, SynchronousTestCase):
    def send(self, engine: ScriptedEngine, name: str = "TERM") -> Deferred[None]:
        return Deferred.fromCoroutine(
            deliver_signal(
                self.clock,
                engine,
                container_id="c1",
                cmd=["/agent", "signal", "--pid", "77", "--signal", name],
                name=name,
                timeout=5,
                log=self.log,
            )
        )

    def test_delivered(self) -> None:
        """The agent's signal mode runs detached with PID and name; its exit is inspected."""
        engine = ScriptedEngine(runs=["x1"], inspections=[ended(0)])
        self.successResultOf(self.send(engine, "USR1"))
        self.assertEqual(engine.commands, [["/agent", "signal", "--pid", "77", "--signal", "USR1"]])
        self.assertEqual(engine.calls, ["detached", "inspect x1"])
        self.assertEqual(self.codes(), ["DOCKER_EXEC_SIGNAL", "DOCKER_EXEC_SIGNAL_SUCCESSFUL"])

    def test_waits_for_the_agent_on_the_clock(self) -> None:
        """While the agent runs, ``exec inspect`` is repeated after growing delays on the clock."""
        engine = ScriptedEngine(runs=["x1"], inspections=[RUNNING, RUNNING, ended(0)])
        d = self.send(engine)
        self.assertNoResult(d)
        self.assertEqual(engine.calls, ["detached", "inspect x1"])
        self.clock.advance(0.01)
        self.assertNoResult(d)
        self.assertEqual(len(engine.calls), 3)
        self.clock.advance(0.02)
        self.successResultOf(d)

    def test_agent_refuses(self) -> None:
        """A non-zero agent exit is DOCKER_EXEC_SIGNAL_FAILED."""
        engine = ScriptedEngine(runs=["x1"], inspections=[ended(2)])
        failure = self.failureResultOf(self.send(engine), ContainerSSHError)
        self.assertEqual(failure.value.code, messages.DOCKER_EXEC_SIGNAL_FAILED)
        self.assertEqual(self.codes(), ["DOCKER_EXEC_SIGNAL", "DOCKER_EXEC_SIGNAL_FAILED"])

    def test_engine_error(self) -> None:
        """An engine error is DOCKER_EXEC_SIGNAL_FAILED; its text stays out of the user message."""
        failure = self.failureResultOf(
            self.send(ScriptedEngine(runs=[EngineError("secret engine detail")])), ContainerSSHError
        )
        self.assertNotIn("secret", failure.value.user_message)

    def test_timeout(self) -> None:
        """A delivery that does not finish within the signal timeout fails."""
        d = self.send(ScriptedEngine(runs=[Deferred()]))
        self.clock.advance(5)
        self.failureResultOf(d, ContainerSSHError)

    def test_agent_that_never_ends(self) -> None:
        """An agent still running at the deadline fails the delivery; no engine call follows."""
        engine = ScriptedEngine(runs=["x1"], inspections=[RUNNING] * 100)
        d = self.send(engine)
        for _ in range(60):
            self.clock.advance(0.1)
        failure = self.failureResultOf(d, ContainerSSHError)
        self.assertIn("timed out", failure.value.explanation)
        calls = len(engine.calls)
        self.clock.advance(60)
        self.assertEqual(len(engine.calls), calls)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class StartSignalTests(LoggingTestMixin, SynchronousTestCase):
    """The ``KILL`` of a closing channel: started, never waited for."""

    def start(self, engine: ScriptedEngine) -> Deferred[None]:
        return Deferred.fromCoroutine(
            start_signal(
                self.clock,
                engine,
                container_id="c1",
                cmd=["/agent", "signal", "--pid", "77", "--signal", "KILL"],
                name="KILL",
                timeout=5,
                log=self.log,
            )
        )

    def test_one_engine_call(self) -> None:
        """The agent is started detached; its exit code is never inspected."""
        engine = ScriptedEngine(runs=["x1"])
        self.successResultOf(self.start(engine))
        self.assertEqual(engine.calls, ["detached"])
        self.assertEqual(self.codes(), ["DOCKER_EXEC_SIGNAL"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_engine_error(self) -> None:
        """An exec the engine refuses is DOCKER_EXEC_SIGNAL_FAILED."""
        d = self.start(ScriptedEngine(runs=[EngineError("no such container", 404)]))
        failure = self.failureResultOf(d, ContainerSSHError)
        self.assertEqual(failure.value.code, messages.DOCKER_EXEC_SIGNAL_FAILED)

    def test_timeout(self) -> None:
        """An engine that does not start the exec within the timeout fails it."""
        d = self.start(ScriptedEngine(runs=[Deferred()]))
        self.clock.advance(5)
        self.failureResultOf(d, ContainerSSHError)

"""Fuzzing what the Docker engine answers about a finished program and the agent's path.

``poll_exit_code`` reads ``exec inspect`` (or a container's ``State``) and
never raises; whatever it returns must become an ``exit-status`` or
``exit-signal`` the SSH channel can send. ``usable_agent`` reads the engine's
description of ``agentPath`` and never raises.
"""

from __future__ import annotations

from typing import Any, cast

from hypothesis import strategies as st
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.logger import ILogObserver
from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.docker.agent import usable_agent
from conch_container.backend.docker.execops import (
    EXIT_CODE_TIMEOUT,
    SIGNAL_NUMBERS,
    UNKNOWN_EXIT_CODE,
    exit_status,
    poll_exit_code,
)
from conch_container.log import CodeLogger
from conch_container.ssh.requests import exit_request
from tests.fuzz import fuzz, note
from tests.fuzz.known_bugs import count_known_bug
from tests.fuzz.strategies import BOUNDARY_INTEGERS, json_values, pick

exit_codes = st.one_of(
    st.integers(0, 255),
    st.integers(),
    pick(BOUNDARY_INTEGERS),
    st.sampled_from([128 + number for number in SIGNAL_NUMBERS.values()]),
    json_values,
)
states = st.dictionaries(
    st.sampled_from(["ExitCode", "Running", "Restarting", "Pid", "Status"]),
    exit_codes,
    max_size=4,
)


class ExitCodeTests(SynchronousTestCase):
    @fuzz(
        st.lists(states, min_size=1, max_size=4),
        st.frozensets(st.sampled_from(sorted(SIGNAL_NUMBERS))),
        expect=("sent",),
    )
    def test_exit_code(self, answers: list[dict[str, Any]], delivered: frozenset[str]) -> None:
        """Any inspect answers give an exit code, and that an exit request the channel can send."""
        clock = Clock()
        remaining = list(answers)

        def inspect() -> Deferred[dict[str, Any]]:
            return succeed(remaining.pop(0) if len(remaining) > 1 else remaining[0])

        events: list[dict[str, Any]] = []
        log = CodeLogger("tests.fuzz", observer=cast(ILogObserver, events.append))
        result = Deferred.fromCoroutine(poll_exit_code(clock, inspect, log))
        while not result.called and clock.seconds() <= EXIT_CODE_TIMEOUT * 2:
            clock.advance(1.0)
        code = self.successResultOf(result)
        self.assertIsInstance(code, int)
        status = exit_status(code, delivered)
        try:
            request, _ = exit_request(status)
        except Exception as error:
            count_known_bug(error)
            return
        self.assertIn(request, (b"exit-status", b"exit-signal"))
        note("sent")


class AgentStatTests(SynchronousTestCase):
    @fuzz(
        st.fixed_dictionaries({"mode": st.integers(-(2**40), 2**40) | json_values})
        | st.dictionaries(
            st.sampled_from(["mode", "name", "size", "linkTarget"]) | st.text(max_size=5),
            json_values | st.integers(-(2**40), 2**40),
            max_size=4,
        ),
        expect=("usable", "unusable"),
    )
    def test_stat(self, stat: dict[str, Any]) -> None:
        """Any file description from the engine is usable, or the reason it is not."""
        reason = usable_agent(stat)
        if reason is None:
            self.assertIsInstance(stat.get("mode"), int)
            note("usable")
        else:
            self.assertIsInstance(reason, str)
            note("unusable")


class RegressionTests(SynchronousTestCase):
    """Minimal inputs of bugs the fuzz targets found."""

    def test_exit_code_beyond_uint32(self) -> None:
        """An exit code the SSH protocol cannot carry still gives a sendable exit request."""
        clock = Clock()
        log = CodeLogger("tests.fuzz", observer=cast(ILogObserver, [].append))
        result = Deferred.fromCoroutine(
            poll_exit_code(clock, lambda: succeed({"ExitCode": 2**32}), log)
        )
        request, payload = exit_request(exit_status(self.successResultOf(result), frozenset()))
        self.assertEqual(request, b"exit-status")
        # Not the low 32 bits (0, success) but the code for an unknown exit.
        self.assertEqual(payload, UNKNOWN_EXIT_CODE.to_bytes(4, "big"))

"""Tests for CodeLogger.failure: unexpected failures under a message code."""

from __future__ import annotations

from typing import Any, cast

from twisted.logger import ILogObserver
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.codes import Level
from conch_container.log.logger import CODE_KEY, LEVEL_KEY, CodeLogger


class FailureTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.log = CodeLogger(
            "tests.logger", {"connectionId": "c1"}, cast(ILogObserver, self.events.append)
        )

    def test_current_exception(self) -> None:
        """Called in an ``except`` block, it logs the exception being handled."""
        try:
            raise ValueError("it broke")
        except ValueError:
            self.log.failure(messages.UNKNOWN_ERROR, "Doing it failed: {reason}", step="x")
        [event] = self.events
        self.assertEqual(event[CODE_KEY], "UNKNOWN_ERROR")
        self.assertEqual(event[LEVEL_KEY], messages.UNKNOWN_ERROR.level)
        self.assertEqual(event["reason"], "it broke")
        self.assertEqual((event["step"], event["connectionId"]), ("x", "c1"))
        self.assertIsInstance(event["log_failure"].value, ValueError)

    def test_given_failure_and_level(self) -> None:
        """A given failure is logged instead, at the level asked for."""
        failure = Failure(KeyError("k"))
        self.log.failure(messages.SERVICE_CRASHED, "{reason}", failure, level=Level.WARNING)
        [event] = self.events
        self.assertIs(event["log_failure"], failure)
        self.assertEqual(event[LEVEL_KEY], Level.WARNING)

    def test_reason_given(self) -> None:
        """An explicit reason wins over the failure's message."""
        self.log.failure(messages.UNKNOWN_ERROR, "{reason}", Failure(KeyError("k")), reason="mine")
        self.assertEqual(self.events[0]["reason"], "mine")

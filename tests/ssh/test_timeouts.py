"""A connection's time limits on their own, on a controlled clock."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from conch_container.config.session import SessionConfig
from conch_container.ssh.timeouts import ConnectionTimeouts, warning_text
from tests.ssh.harness import collecting_log


class RecordingTarget:
    """Records what the limits do to the user; ``programs`` are running."""

    def __init__(self, timeouts: list[ConnectionTimeouts], programs: int = 1) -> None:
        self.programs = programs
        self.told: list[str] = []
        self.signals: list[str] = []
        self.closed: list[str] = []
        self._timeouts = timeouts

    def tell_user(self, text: str) -> int:
        self.told.append(text)
        # Writing is output on the connection: the service touches the timer.
        for timeouts in self._timeouts:
            timeouts.touch()
        return self.programs

    def signal_programs(self, name: str) -> int:
        self.signals.append(name)
        return self.programs

    def close_connection(self, description: str) -> None:
        self.closed.append(description)


class TimeoutsTests(SynchronousTestCase):
    """:class:`ConnectionTimeouts`."""

    def limits(self, programs: int = 1, **settings: Any) -> ConnectionTimeouts:
        self.clock = Clock()
        self.clock.advance(1000)
        self.events: list[dict[str, Any]] = []
        made: list[ConnectionTimeouts] = []
        self.target = RecordingTarget(made, programs)
        timeouts = ConnectionTimeouts(
            self.clock, SessionConfig(**settings), self.target, collecting_log(self.events)
        )
        made.append(timeouts)
        timeouts.start()
        return timeouts

    def codes(self) -> list[str]:
        return [e["code"] for e in self.events]

    def test_no_limits_schedule_nothing(self) -> None:
        """Without limits the timer is inactive and no call is pending."""
        timeouts = self.limits()
        self.assertFalse(timeouts.active)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_idle_warning_signal_and_close(self) -> None:
        """Idle: the warning at idleTimeout - warning, the signal at idleTimeout,
        the close after the grace period, each logged with its code."""
        self.limits(idle_timeout=600.0, warning=60.0, grace=10.0)
        self.clock.advance(539)
        self.assertEqual(self.target.told, [])
        self.clock.advance(1)
        self.assertEqual(len(self.target.told), 1)
        self.assertIn("closed in 60 seconds", self.target.told[0])
        self.assertEqual(self.codes(), ["SSH_IDLE_WARNING"])
        self.clock.advance(59)
        self.assertEqual(self.target.signals, [])
        self.clock.advance(1)
        self.assertEqual(self.target.signals, ["TERM"])
        self.assertEqual(self.codes(), ["SSH_IDLE_WARNING", "SSH_IDLE_TIMEOUT"])
        self.clock.advance(9.5)
        self.assertEqual(self.target.closed, [])
        self.clock.advance(0.5)
        self.assertEqual(self.target.closed, ["idle timeout"])
        self.assertEqual(
            self.codes(), ["SSH_IDLE_WARNING", "SSH_IDLE_TIMEOUT", "SSH_TIMEOUT_DISCONNECT"]
        )
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_activity_postpones(self) -> None:
        """Activity before the warning moves every step later."""
        timeouts = self.limits(idle_timeout=600.0, warning=60.0)
        self.clock.advance(500)
        timeouts.touch()
        self.clock.advance(539)
        self.assertEqual(self.target.told, [])
        self.clock.advance(1)
        self.assertEqual(len(self.target.told), 1)

    def test_activity_after_warning_starts_over(self) -> None:
        """Activity after the warning cancels it; the next idle spell is warned about again."""
        timeouts = self.limits(idle_timeout=600.0, warning=60.0)
        self.clock.advance(540)
        self.assertEqual(len(self.target.told), 1)
        self.clock.advance(30)
        timeouts.touch()
        self.clock.advance(60)
        self.assertEqual(self.target.signals, [])
        self.assertEqual(self.codes(), ["SSH_IDLE_WARNING", "SSH_IDLE_RESUMED"])
        self.clock.advance(540 - 60)
        self.assertEqual(len(self.target.told), 2)
        self.clock.advance(60)
        self.assertEqual(self.target.signals, ["TERM"])

    def test_activity_late_after_a_long_warning(self) -> None:
        """With a warning longer than half the limit, activity after it still
        brings a fresh warning before the timeout."""
        timeouts = self.limits(idle_timeout=60.0, warning=40.0)
        self.clock.advance(20)
        self.assertEqual(len(self.target.told), 1)
        self.clock.advance(1)
        timeouts.touch()
        self.clock.advance(39)
        self.assertEqual(self.target.signals, [])
        self.assertEqual(len(self.target.told), 2)
        self.clock.advance(20)
        self.assertEqual(self.target.signals, [])
        self.clock.advance(1)
        self.assertEqual(self.target.signals, ["TERM"])

    def test_warning_is_not_activity(self) -> None:
        """Writing the warning (output on the connection) does not reset the idle time."""
        self.limits(idle_timeout=100.0, warning=10.0, grace=0.0)
        self.clock.advance(100)
        self.assertEqual(self.target.closed, ["idle timeout"])

    def test_no_program_closes_at_once(self) -> None:
        """Nothing runs to be signalled: the connection closes at the limit."""
        self.limits(programs=0, idle_timeout=100.0, warning=0.0, grace=30.0)
        self.clock.advance(100)
        self.assertEqual(self.target.told, [])
        self.assertEqual(self.target.closed, ["idle timeout"])

    def test_time_limit(self) -> None:
        """maxSessionDuration: warned, signalled and closed however busy the connection."""
        timeouts = self.limits(max_session_duration=3600.0, warning=300.0, grace=5.0, signal="HUP")
        for _ in range(32):
            self.clock.advance(100)
            timeouts.touch()
        self.assertEqual(self.target.told, [])
        self.clock.advance(100)
        self.assertEqual(len(self.target.told), 1)
        self.assertIn("time limit", self.target.told[0])
        self.clock.advance(300)
        self.assertEqual(self.target.signals, ["HUP"])
        self.assertEqual(self.codes(), ["SSH_TIME_LIMIT_WARNING", "SSH_TIME_LIMIT_REACHED"])
        self.clock.advance(5)
        self.assertEqual(self.target.closed, ["session time limit reached"])
        self.assertEqual(self.codes()[-1], "SSH_TIMEOUT_DISCONNECT")

    def test_warning_longer_than_limit_given_at_login(self) -> None:
        """A warning longer than the limit is given at once, with the whole limit left."""
        self.limits(max_session_duration=30.0, warning=60.0)
        self.clock.advance(0)
        self.assertEqual(len(self.target.told), 1)
        self.assertIn("closed in 30 seconds", self.target.told[0])

    def test_first_limit_wins(self) -> None:
        """Idle and absolute limits together: whichever comes first ends the
        connection, once."""
        self.limits(idle_timeout=100.0, max_session_duration=50.0, warning=0.0, grace=1.0)
        self.clock.advance(50)
        self.clock.advance(1)
        self.assertEqual(self.target.closed, ["session time limit reached"])
        self.clock.advance(200)
        self.assertEqual(self.target.signals, ["TERM"])
        self.assertEqual(self.target.closed, ["session time limit reached"])

    def test_stop_cancels_everything(self) -> None:
        """A connection that ends stops every pending step, the grace period's included."""
        timeouts = self.limits(idle_timeout=100.0, max_session_duration=500.0, grace=10.0)
        self.clock.advance(100)
        timeouts.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(1000)
        self.assertEqual(self.target.closed, [])

    def test_custom_message(self) -> None:
        """``warningMessage`` replaces the text, with its placeholders filled in."""
        text = warning_text(
            SessionConfig(warning_message="Bye in {seconds}s ({reason})"), "idle", 60.0
        )
        self.assertEqual(text.strip(), "*** Bye in 60s (idle) ***")

    def test_event_fields(self) -> None:
        """The log events carry the limits and counts, as structured fields."""
        self.limits(idle_timeout=100.0, warning=10.0)
        self.clock.advance(90)
        event = self.events[0]
        self.assertEqual(event["secondsLeft"], 10.0)
        self.assertEqual(event["idleTimeout"], 100.0)
        self.assertEqual(event["programs"], 1)

"""A connection's time limits: idle and absolute, each warned about, then enforced.

Each limit runs the same three steps: a warning written to the user a
``warning`` lead time before the limit, then at the limit a signal to every
running program, then, after ``grace`` (at once when no program runs), the
connection is closed. Each step logs its own code.

Activity (client input, program output) is noted by the connection service
for every data packet, so :meth:`ConnectionTimeouts.touch` only stores a
time; one timer checks it when a step is due and sets itself again if there
was activity meanwhile, rather than being reset per packet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from conch_container import messages
from conch_container.codes import MessageCode

if TYPE_CHECKING:
    from conch_container.config.session import SessionConfig
    from conch_container.log.logger import CodeLogger

IDLE = "idle"
TIME_LIMIT = "time limit"

_DEFAULT_WARNINGS = {
    IDLE: "This connection has been idle; it will be closed in {seconds} seconds "
    "unless there is input or output.",
    TIME_LIMIT: "This connection reaches its time limit; it will be closed in {seconds} seconds.",
}


class TimeoutTarget(Protocol):
    """What the limits act on: the user's terminals, programs and connection."""

    def tell_user(self, text: str) -> int:
        """Write ``text`` to every running program's terminal (or stderr); the number reached."""

    def signal_programs(self, name: str) -> int:
        """Send signal ``name`` to every running program; the number signalled."""

    def close_connection(self, description: str) -> None:
        """Disconnect the client, telling it ``description``."""


def warning_text(config: SessionConfig, reason: str, seconds: float) -> str:
    """The warning for ``reason`` with ``seconds`` left, as the user reads it."""
    template = config.warning_message or _DEFAULT_WARNINGS[reason]
    left = max(1, round(seconds))
    text = template.replace("{reason}", reason).replace("{seconds}", str(left))
    return f"\n*** {text} ***\n"


class ConnectionTimeouts:
    """The idle and absolute limits of one logged-in connection.

    :param clock: an ``IReactorTime``.
    :param config: the connection's ``session`` settings.
    :param target: the connection's :class:`TimeoutTarget`.
    :param log: the connection's logger.
    """

    def __init__(
        self, clock: Any, config: SessionConfig, target: TimeoutTarget, log: CodeLogger
    ) -> None:
        self._clock = clock
        self._config = config
        self._target = target
        self._log = log
        self.last_activity = 0.0
        self._started = 0.0
        self._idle_call: Any = None
        self._limit_calls: list[Any] = []
        self._grace_call: Any = None
        self._idle_warned = False
        #: ``last_activity`` when the idle warning was given.
        self._warned_activity = 0.0
        self._ending = False
        self._stopped = False

    @property
    def active(self) -> bool:
        """True when a limit is configured."""
        return self._config.idle_timeout > 0 or self._config.max_session_duration > 0

    def start(self) -> None:
        """The user logged in: the limits count from now."""
        now = self._clock.seconds()
        self._started = self.last_activity = now
        config = self._config
        if config.idle_timeout > 0:
            self._idle_call = self._clock.callLater(self._idle_wait(now), self._idle_check)
        limit = config.max_session_duration
        if limit > 0:
            lead = min(config.warning, limit)
            if lead > 0:
                self._limit_calls.append(
                    self._clock.callLater(limit - lead, self._warn, TIME_LIMIT, lead)
                )
            self._limit_calls.append(self._clock.callLater(limit, self._reached, TIME_LIMIT))

    def touch(self) -> None:
        """Input from the client or output from a program: the connection is not idle."""
        self.last_activity = self._clock.seconds()

    def stop(self) -> None:
        """The connection is gone: no step is taken any more."""
        self._stopped = True
        for call in [self._idle_call, self._grace_call, *self._limit_calls]:
            if call is not None and call.active():
                call.cancel()
        self._idle_call = self._grace_call = None
        self._limit_calls = []

    # -- idle

    def _idle_wait(self, now: float) -> float:
        """Seconds from ``now`` until the next idle step is due."""
        config = self._config
        lead = min(config.warning, config.idle_timeout)
        due = self.last_activity + config.idle_timeout
        if not self._idle_warned and lead > 0:
            due -= lead
        return max(0.0, due - now)

    def _idle_check(self) -> None:
        self._idle_call = None
        if self._ending or self._stopped:
            return
        config = self._config
        now = self._clock.seconds()
        if self._idle_warned and self.last_activity > self._warned_activity:
            self._idle_warned = False
            self._log.event(
                messages.SSH_IDLE_RESUMED,
                "Activity after the idle warning; the idle timeout starts over",
            )
        idle_for = now - self.last_activity
        lead = min(config.warning, config.idle_timeout)
        if idle_for >= config.idle_timeout:
            self._reached(IDLE)
            return
        if not self._idle_warned and lead > 0 and idle_for >= config.idle_timeout - lead:
            self._idle_warned = True
            self._warned_activity = self.last_activity
            self._warn(IDLE, config.idle_timeout - idle_for)
        self._idle_call = self._clock.callLater(self._idle_wait(now), self._idle_check)

    # -- the steps

    def _warn(self, reason: str, seconds_left: float) -> None:
        if self._ending or self._stopped:
            return
        code = messages.SSH_IDLE_WARNING if reason == IDLE else messages.SSH_TIME_LIMIT_WARNING
        # The warning is output, but not the user's: it must not count as activity.
        last = self.last_activity
        reached = self._target.tell_user(warning_text(self._config, reason, seconds_left))
        self.last_activity = last
        self._log.event(
            code,
            _WARNING_FORMATS[code],
            secondsLeft=round(seconds_left, 3),
            idleTimeout=self._config.idle_timeout,
            maxSessionDuration=self._config.max_session_duration,
            programs=reached,
        )

    def _reached(self, reason: str) -> None:
        if self._ending or self._stopped:
            return
        self._ending = True
        code = messages.SSH_IDLE_TIMEOUT if reason == IDLE else messages.SSH_TIME_LIMIT_REACHED
        for call in [self._idle_call, *self._limit_calls]:
            if call is not None and call.active():
                call.cancel()
        signalled = self._target.signal_programs(self._config.signal)
        grace = self._config.grace if signalled else 0.0
        self._log.event(
            code,
            _REACHED_FORMATS[code],
            signal=self._config.signal,
            programs=signalled,
            grace=grace,
            idleTimeout=self._config.idle_timeout,
            maxSessionDuration=self._config.max_session_duration,
        )
        self._grace_call = self._clock.callLater(grace, self._close, reason)

    def _close(self, reason: str) -> None:
        self._grace_call = None
        if self._stopped:
            return
        self._log.event(
            messages.SSH_TIMEOUT_DISCONNECT,
            "Closing the connection: {reason}",
            reason=f"{reason} reached",
        )
        description = "idle timeout" if reason == IDLE else "session time limit reached"
        self._target.close_connection(description)


_WARNING_FORMATS: dict[MessageCode, str] = {
    messages.SSH_IDLE_WARNING: "No activity on the connection: warned the user that it "
    "closes in {secondsLeft} s",
    messages.SSH_TIME_LIMIT_WARNING: "The connection nears maxSessionDuration: warned the user "
    "that it closes in {secondsLeft} s",
}
_REACHED_FORMATS: dict[MessageCode, str] = {
    messages.SSH_IDLE_TIMEOUT: "Idle timeout reached: sent {signal} to {programs} program(s); "
    "closing the connection in {grace} s",
    messages.SSH_TIME_LIMIT_REACHED: "maxSessionDuration reached: sent {signal} to {programs} "
    "program(s); closing the connection in {grace} s",
}

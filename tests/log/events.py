"""Building log events the way the code under test receives them."""

from __future__ import annotations

from typing import Any

from twisted.logger import ILogObserver, LogEvent, Logger, LogLevel
from zope.interface import implementer

from conch_container.log import CodeLogger, MessageCode

#: 2024-05-01T12:00:00Z
T0 = 1714564800.0


@implementer(ILogObserver)
class EventList(list[LogEvent]):
    """An observer that keeps the events it sees."""

    def __call__(self, event: LogEvent) -> None:
        self.append(event)


def code_event(message: MessageCode, format: str, *, when: float = T0, **kwargs: Any) -> dict:
    """The event ``CodeLogger.event`` publishes, stamped at ``when``."""
    events = EventList()
    CodeLogger("tests.log", observer=events).event(message, format, **kwargs)
    [event] = events
    event["log_time"] = when
    return event


def foreign_event(
    level: LogLevel, format: str, *, when: float = T0, source: object = None, **kwargs: Any
) -> dict:
    """An event as Twisted or a library logs it (no code)."""
    events = EventList()
    Logger(namespace="twisted.test.foreign", source=source, observer=events).emit(
        level, format, **kwargs
    )
    [event] = events
    event["log_time"] = when
    return event

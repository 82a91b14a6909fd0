"""The bottom layer: what a message code is, and the levels events are logged at.

Everything that logs or raises with a code builds on this module, which
imports nothing of the project. The layers above it, each importing only
from below: :mod:`conch_container.messages` (the catalogue),
:mod:`conch_container.errors` (the error that carries a code), then
:mod:`conch_container.log` (the logger, the observers and their set-up).
"""

from __future__ import annotations

import enum

import attrs
from twisted.logger import LogLevel


class Level(enum.IntEnum):
    """Syslog severities: a smaller number is more severe (as in RFC 5424)."""

    EMERG = 0
    ALERT = 1
    CRIT = 2
    ERROR = 3
    WARNING = 4
    NOTICE = 5
    INFO = 6
    DEBUG = 7

    @property
    def label(self) -> str:
        """The lower-case name ContainerSSH writes into ``ljson`` lines."""
        return self.name.lower()

    @property
    def twisted_level(self) -> LogLevel:
        """The nearest :class:`twisted.logger.LogLevel`, for Twisted's own observers."""
        return _TO_TWISTED[self]

    @classmethod
    def parse(cls, value: object) -> Level:
        """Accept a level name (``notice``) or number (``5``) as the config does.

        :raises ValueError: for anything else.
        """
        if isinstance(value, bool):
            raise ValueError(f"invalid log level: {value!r}")
        if isinstance(value, int):
            return cls(value)
        if isinstance(value, str):
            text = value.strip().lower()
            if text.isdigit():
                return cls(int(text))
            aliases = {"warn": "warning", "err": "error", "critical": "crit", "emergency": "emerg"}
            text = aliases.get(text, text)
            for level in cls:
                if level.label == text:
                    return level
        raise ValueError(f"invalid log level: {value!r}")

    @classmethod
    def from_twisted(cls, level: LogLevel | None) -> Level:
        """The level for an event that Twisted itself (not our code) emitted."""
        if level is None:
            return cls.INFO
        return _FROM_TWISTED.get(level, cls.INFO)


_TO_TWISTED: dict[Level, LogLevel] = {
    Level.EMERG: LogLevel.critical,
    Level.ALERT: LogLevel.critical,
    Level.CRIT: LogLevel.critical,
    Level.ERROR: LogLevel.error,
    Level.WARNING: LogLevel.warn,
    Level.NOTICE: LogLevel.info,
    Level.INFO: LogLevel.info,
    Level.DEBUG: LogLevel.debug,
}

_FROM_TWISTED = {
    LogLevel.critical: Level.CRIT,
    LogLevel.error: Level.ERROR,
    LogLevel.warn: Level.WARNING,
    LogLevel.info: Level.INFO,
    LogLevel.debug: Level.DEBUG,
}


@attrs.frozen
class MessageCode:
    """One stable message code.

    :ivar code: the code as it appears in logs (``DOCKER_CONTAINER_CREATE``).
    :ivar level: the level the event is logged at unless the call site overrides it.
    :ivar section: the catalogue section (``Docker``, ``SSH``, ...).
    :ivar explanation: one or two sentences for the operator.
    :ivar own: True for codes this project adds to ContainerSSH's set.
    """

    code: str
    level: Level
    section: str
    explanation: str
    own: bool = False

    def __str__(self) -> str:
        return self.code

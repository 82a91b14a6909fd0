"""Turn a Twisted log event into the record that every output format writes.

Two kinds of event reach the observers. Ours come from
:class:`~conch_container.log.logger.CodeLogger` and carry a message code, a
level and the names of their fields. Everything else comes from Twisted itself
or from a library; such an event has no code, so it is given one here:

* an error or critical event (and any event carrying a failure) is
  ``UNKNOWN_ERROR`` at its own level, because an exception nobody handled is
  exactly what that code is for;
* a warning (including Python warnings, which Twisted turns into events) is
  ``CORE_FRAMEWORK_LOG`` at warning level;
* anything else is ``CORE_FRAMEWORK_LOG`` at debug level: Twisted's info
  messages ("Starting factory", "connection lost", ...) are per-connection
  chatter that must not reach the default ``notice`` output.

Conch also reports what the *peer* did at error level ("Got remote error" on
every ordinary client disconnect, "other side refused open", ...). Events whose
source is a connection-scoped object (a protocol, an SSH service or an SSH
channel) describe one client's behaviour, which our own SSH layer already logs
under proper codes; without a failure attached they are kept at debug level.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Mapping
from typing import Any

import attrs
from twisted.logger import LogEvent, LogLevel, formatEvent
from twisted.python.failure import Failure

from conch_container import messages
from conch_container.codes import Level
from conch_container.log.logger import (
    CODE_KEY,
    DETAILS_KEY,
    LEVEL_KEY,
    REDACTED,
    SECRET_FIELDS,
)

#: Keys that the legacy ``twisted.python.log`` bridge adds to an event; they are
#: plumbing, not details.
_LEGACY_KEYS = frozenset({"message", "isError", "system", "format", "time", "why", "failure"})

#: How deep nested detail values are converted before falling back to ``str()``.
_MAX_DEPTH = 8


@attrs.frozen
class LogRecord:
    """One event, ready to be written in any format.

    :ivar timestamp: seconds since the epoch.
    :ivar level: the severity the event is written at.
    :ivar code: the message code.
    :ivar message: the rendered message (one logical line, may contain newlines
        for foreign events; the formats deal with that).
    :ivar details: the event's fields, JSON-safe and with secrets redacted.
    :ivar traceback: the failure's traceback, present only at debug level.
    """

    timestamp: float
    level: Level
    code: str
    message: str
    details: Mapping[str, Any]
    traceback: str | None = None


def event_level(event: Mapping[str, Any]) -> tuple[str, Level]:
    """The code and level an event is written under.

    This is the cheap part of rendering: the observer calls it first and only
    renders events that pass its level filter.
    """
    code = event.get(CODE_KEY)
    if isinstance(code, str):
        return code, _own_level(event, code)
    return _foreign_level(event)


def _own_level(event: Mapping[str, Any], code: str) -> Level:
    level = event.get(LEVEL_KEY)
    if level is not None:
        try:
            return Level(level)
        except ValueError:
            pass
    # An event with a code but not from CodeLogger (a plain Logger called with
    # ``code=``): Twisted's five levels are coarser than ours, so keep the
    # catalogue's level when it agrees with the one the caller chose.
    twisted_level = event.get("log_level")
    entry = messages.CATALOGUE.get(code)
    if entry is not None and (twisted_level is None or entry.level.twisted_level is twisted_level):
        return entry.level
    return Level.from_twisted(twisted_level)


def _foreign_level(event: Mapping[str, Any]) -> tuple[str, Level]:
    twisted_level = event.get("log_level")
    has_failure = _failure_of(event) is not None
    if not has_failure and _is_connection_scoped(event.get("log_source")):
        return messages.CORE_FRAMEWORK_LOG.code, Level.DEBUG
    if has_failure or twisted_level in (LogLevel.error, LogLevel.critical):
        level = Level.from_twisted(twisted_level)
        # A failure logged below error level (rare, and deliberate) keeps the
        # level its author picked; info is still too loud for a library.
        return messages.UNKNOWN_ERROR.code, (Level.DEBUG if level is Level.INFO else level)
    if twisted_level is LogLevel.warn:
        return messages.CORE_FRAMEWORK_LOG.code, Level.WARNING
    return messages.CORE_FRAMEWORK_LOG.code, Level.DEBUG


def _is_connection_scoped(source: object) -> bool:
    return source is not None and isinstance(source, _connection_scoped_types())


@functools.cache
def _connection_scoped_types() -> tuple[type, ...]:
    # Imported on first use: the log package must not drag Conch in for a
    # ``--help`` or a config check.
    from twisted.conch.ssh.channel import SSHChannel
    from twisted.conch.ssh.service import SSHService
    from twisted.internet.protocol import Protocol

    return (Protocol, SSHService, SSHChannel)


def _failure_of(event: Mapping[str, Any]) -> Failure | None:
    failure = event.get("log_failure")
    if isinstance(failure, Failure):
        return failure
    # ``twisted.python.log.err`` puts the failure under its legacy key.
    failure = event.get("failure")
    if isinstance(failure, Failure) and event.get("isError"):
        return failure
    return None


def build_record(
    event: LogEvent,
    code: str,
    level: Level,
    *,
    include_traceback: bool = False,
) -> LogRecord:
    """Render ``event`` (already classified by :func:`event_level`).

    :param include_traceback: attach the failure's full traceback; the
        observer asks for it only when it writes debug output.
    """
    own = isinstance(event.get(CODE_KEY), str)
    details = _own_details(event) if own else _foreign_details(event)
    failure = _failure_of(event)
    traceback = None
    if failure is not None:
        details.setdefault("error", failure_summary(failure))
        if include_traceback:
            traceback = _traceback_of(failure)
    timestamp = event.get("log_time")
    if not isinstance(timestamp, int | float):
        timestamp = time.time()
    return LogRecord(
        timestamp=float(timestamp),
        level=level,
        code=code,
        message=_message_of(event, failure),
        details=details,
        traceback=traceback,
    )


def _own_details(event: Mapping[str, Any]) -> dict[str, Any]:
    names = event.get(DETAILS_KEY)
    if not isinstance(names, tuple | list):
        # A plain Logger called with ``code=``: every non-plumbing key is a field.
        names = [k for k in event if _is_field_name(k)]
    return {
        name: (REDACTED if name in SECRET_FIELDS else jsonable(event[name]))
        for name in names
        if name in event
    }


def _is_field_name(key: str) -> bool:
    return not (
        key.startswith("log_") or key.startswith("cs_") or key == CODE_KEY or key in _LEGACY_KEYS
    )


def _foreign_details(event: Mapping[str, Any]) -> dict[str, Any]:
    namespace = event.get("log_namespace")
    return {"namespace": namespace} if isinstance(namespace, str) else {}


def _message_of(event: LogEvent, failure: Failure | None) -> str:
    if failure is not None and event.get("isError") and "log_text" in event:
        # A legacy ``log.err``: its text is "why" plus the whole traceback,
        # which belongs in the details, not in the message.
        why = event.get("why")
        return str(why) if why else "Unhandled Error"
    if any(name in event for name in SECRET_FIELDS):
        # Second line of defence: a format naming a secret field renders the
        # placeholder, whoever built the event.
        event = {**event, **{k: REDACTED for k in SECRET_FIELDS if k in event}}
    return formatEvent(event)


def failure_summary(failure: Failure) -> str:
    """``ExceptionType: message`` on one line."""
    name = getattr(failure.type, "__name__", str(failure.type))
    try:
        text = failure.getErrorMessage()
    except Exception:
        text = ""
    summary = f"{name}: {text}" if text else name
    return " ".join(summary.split())


def _traceback_of(failure: Failure) -> str:
    try:
        return failure.getTraceback().rstrip("\n")
    except Exception as e:
        return f"(traceback unavailable: {e})"


def jsonable(value: Any, _depth: int = 0) -> Any:
    """``value`` as something :func:`json.dumps` accepts.

    Objects JSON has no type for become ``str()``; non-finite floats become
    strings (JSON has no NaN); secret-named keys of nested mappings are
    redacted too.
    """
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if _depth >= _MAX_DEPTH:
        return _str(value)
    if isinstance(value, Mapping):
        return {
            str(k): (REDACTED if k in SECRET_FIELDS else jsonable(v, _depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v, _depth + 1) for v in value]
    return _str(value)


def _str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"

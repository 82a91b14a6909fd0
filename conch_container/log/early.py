"""Log lines written straight to a stream, for when the log itself cannot be used.

Before the configuration is loaded there is no observer, and when the
configured output fails the observer cannot report that through itself; both
cases write one ``ljson`` line to standard error with the code, bypassing
Twisted's log publisher so that a failing output can never recurse.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from twisted.logger import LoggingFile, formatEvent

from conch_container.codes import Level, MessageCode
from conch_container.log.formats import format_ljson
from conch_container.log.logger import REDACTED, SECRET_FIELDS
from conch_container.log.records import LogRecord, jsonable


def real_stdout() -> TextIO:
    """The process's standard output, even while Twisted has redirected ``sys.stdout``.

    ``twistd`` replaces ``sys.stdout`` with a stream that logs what is written
    to it; writing log lines there would feed them back into the log.
    """
    return _unredirected(sys.stdout, sys.__stdout__)


def real_stderr() -> TextIO:
    """Like :func:`real_stdout`, for standard error."""
    return _unredirected(sys.stderr, sys.__stderr__)


def _unredirected(current: TextIO | None, original: TextIO | None) -> TextIO:
    if current is not None and not isinstance(current, LoggingFile):
        return current
    if original is not None:
        return original
    raise RuntimeError("no standard stream to write log lines to")


def emit_early(
    code: MessageCode,
    message: str,
    *,
    level: Level | None = None,
    stream: TextIO | None = None,
    **fields: Any,
) -> None:
    """Write one ``ljson`` line for ``code`` to standard error (or ``stream``).

    :param message: a format string over ``fields``, as for
        :meth:`~conch_container.log.logger.CodeLogger.event`.
    :param level: overrides the code's level.

    Secret-named fields are redacted. Errors writing the line are ignored:
    there is nowhere left to report them.
    """
    details = {k: (REDACTED if k in SECRET_FIELDS else v) for k, v in fields.items()}
    record = LogRecord(
        timestamp=time.time(),
        level=code.level if level is None else level,
        code=code.code,
        message=formatEvent({**details, "log_format": message}),
        details={k: jsonable(v) for k, v in details.items()},
    )
    try:
        out = real_stderr() if stream is None else stream
        out.write(format_ljson(record) + "\n")
        out.flush()
    except Exception:
        pass

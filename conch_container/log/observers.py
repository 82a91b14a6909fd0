"""The log observer: level filter, rendering, and where the lines go.

:class:`CodeLogObserver` is a :class:`twisted.logger.ILogObserver`. It sees
every event in the process (ours and Twisted's), drops those below the
configured level, renders the rest as a
:class:`~conch_container.log.records.LogRecord` and hands it to a sink:
:class:`StreamSink` (standard output), :class:`FileSink` (a file, reopened on
``SIGHUP``), :class:`MemorySink` (the ``test`` destination) or
:class:`~conch_container.log.syslog.SyslogSink`.

The observer never raises and never logs through Twisted's publisher: a sink
that fails is reported once on standard error as ``LOG_WRITE_FAILED``, and a
failed reopen is reported as ``LOG_ROTATE_FAILED`` through the old handle,
which stays in use. (The syslog sink only queues; it reports the outages of
its reactor transport on standard error itself, the same way.)
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Protocol, TextIO

from twisted.logger import ILogObserver, LogEvent
from zope.interface import implementer

from conch_container import messages
from conch_container.codes import Level, MessageCode
from conch_container.log.early import emit_early
from conch_container.log.formats import Formatter
from conch_container.log.logger import CODE_KEY, DETAILS_KEY, LEVEL_KEY, THRESHOLD_KEY
from conch_container.log.records import LogRecord, build_record, event_level


class Sink(Protocol):
    """Where rendered records go. Every method may raise; the observer copes."""

    def write(self, record: LogRecord) -> None:
        """Write one record."""

    def reopen(self) -> None:
        """Reopen the destination (after log rotation); on error keep the old one."""

    def close(self) -> None:
        """Release the destination."""


class StreamSink:
    """Lines to an already open text stream (standard output); never closes it."""

    def __init__(self, stream: TextIO, formatter: Formatter) -> None:
        self._stream = stream
        self._format = formatter

    def write(self, record: LogRecord) -> None:
        _write_line(self._stream, self._format(record))

    def reopen(self) -> None:
        pass

    def close(self) -> None:
        self._stream.flush()


class FileSink:
    """Lines appended to a file.

    :raises OSError: when the file cannot be opened.
    """

    #: ContainerSSH creates its log file with these permissions (before umask).
    MODE = 0o644

    def __init__(self, path: str, formatter: Formatter) -> None:
        self.path = path
        self._format = formatter
        self._file: TextIO | None = self._open()

    def _open(self) -> TextIO:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, self.MODE)
        try:
            return open(fd, "a", encoding="utf-8", errors="backslashreplace")
        except BaseException:
            os.close(fd)
            raise

    def write(self, record: LogRecord) -> None:
        if self._file is None:
            raise ValueError(f"log file {self.path} is closed")
        _write_line(self._file, self._format(record))

    def reopen(self) -> None:
        new = self._open()
        old, self._file = self._file, new
        if old is not None:
            try:
                old.close()
            except OSError:
                # Whatever the old file lost is lost; the new one works.
                pass

    def close(self) -> None:
        old, self._file = self._file, None
        if old is not None:
            old.close()


class MemorySink:
    """The ``test`` destination: records and lines kept in lists."""

    def __init__(self, formatter: Formatter) -> None:
        self._format = formatter
        self.records: list[LogRecord] = []
        self.lines: list[str] = []

    def write(self, record: LogRecord) -> None:
        self.lines.append(self._format(record))
        self.records.append(record)

    def reopen(self) -> None:
        pass

    def close(self) -> None:
        pass


def _write_line(stream: TextIO, line: str) -> None:
    try:
        stream.write(line + "\n")
    except UnicodeEncodeError:
        # A stream whose encoding cannot carry the line (an ASCII terminal, a
        # lone surrogate from a file name): write it escaped rather than lose it.
        encoding = getattr(stream, "encoding", None) or "ascii"
        stream.write((line + "\n").encode(encoding, "backslashreplace").decode(encoding))
    stream.flush()


@implementer(ILogObserver)
class CodeLogObserver:
    """Writes the events at or above ``level`` to ``sink``.

    An event that carries a level of its own (a connection with its own
    ``log.level``, see :meth:`~conch_container.log.logger.CodeLogger.at_level`)
    is filtered at that level instead.

    :param sink: where the records go.
    :param level: the least severe level written (default ``notice``).
    :param error_stream: where ``LOG_WRITE_FAILED`` is reported (standard
        error by default).
    """

    def __init__(
        self,
        sink: Sink,
        *,
        level: Level = Level.NOTICE,
        error_stream: TextIO | None = None,
    ) -> None:
        self.sink = sink
        self.level = level
        self._error_stream = error_stream
        # Twisted may log from any thread (thread pools, the resolver); one
        # writer at a time keeps lines whole. Re-entrant for reopen().
        self._lock = threading.RLock()
        self._local = threading.local()
        self._failing = False
        self._closed = False

    def __call__(self, event: LogEvent) -> None:
        # A sink that makes Twisted log (a stream redirected into the log)
        # would otherwise loop forever.
        if self._closed or getattr(self._local, "busy", False):
            return
        self._local.busy = True
        try:
            code, level = event_level(event)
            # A connection may have a level of its own (from a configuration server).
            threshold = event.get(THRESHOLD_KEY, self.level)
            if not isinstance(threshold, Level):
                threshold = self.level
            if level > threshold:
                return
            record = build_record(event, code, level, include_traceback=threshold >= Level.DEBUG)
            self._write(record)
        except Exception as e:
            self._report_failure(e)
        finally:
            self._local.busy = False

    def _write(self, record: LogRecord) -> None:
        with self._lock:
            try:
                self.sink.write(record)
            except Exception as e:
                self._report_failure(e)
            else:
                self._failing = False

    def _report_failure(self, error: Exception) -> None:
        # Once per outage: a full disk must not turn every event into a
        # second line on standard error.
        with self._lock:
            if self._failing:
                return
            self._failing = True
        emit_early(
            messages.LOG_WRITE_FAILED,
            "Cannot write to the log: {error}",
            stream=self._error_stream,
            error=f"{type(error).__name__}: {error}",
        )

    def reopen(self) -> None:
        """Reopen the destination, as ``SIGHUP`` asks after log rotation.

        On failure the old destination stays in use and ``LOG_ROTATE_FAILED``
        is written to it.
        """
        with self._lock:
            if self._closed:
                return
            try:
                self.sink.reopen()
            except Exception as e:
                self.emit(
                    messages.LOG_ROTATE_FAILED,
                    "Cannot reopen the log, still writing to the old one: {error}",
                    error=f"{type(e).__name__}: {e}",
                )

    def close(self) -> None:
        """Release the destination; later events are dropped.

        Remove the observer from the log publisher before closing it.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.sink.close()

    def emit(self, code: MessageCode, format: str, **fields: Any) -> None:
        """Log an event of the logging system itself, straight to this observer."""
        self(
            {
                "log_format": format,
                "log_time": time.time(),
                "log_level": code.level.twisted_level,
                "log_namespace": __name__,
                CODE_KEY: code.code,
                LEVEL_KEY: code.level,
                DETAILS_KEY: tuple(fields),
                **fields,
            }
        )


__all__ = ["CodeLogObserver", "FileSink", "MemorySink", "Sink", "StreamSink"]

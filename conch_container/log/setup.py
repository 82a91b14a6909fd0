"""Build the log output from ``config.log`` and install it.

Typical use in the composition root::

    output = start_logging(config.log, reactor=reactor)
    install(output.observer)

Before the configuration is loaded, :func:`emit_early` writes a coded line to
standard error (``CORE_CONFIG_ERROR`` for a broken file).

Under ``twistd`` the observer is best handed over as the application's
:class:`twisted.logger.ILogObserver` component, which ``twistd`` installs in
place of its own text observer; :func:`install` is for running without
``twistd`` (or when ``twistd``'s logging has not begun).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import attrs
from twisted.logger import LogBeginner, globalLogBeginner

from conch_container import messages
from conch_container.codes import Level, MessageCode
from conch_container.errors import GENERIC_USER_MESSAGE, ContainerSSHError
from conch_container.log.early import emit_early, real_stdout
from conch_container.log.formats import line_formatter, syslog_formatter
from conch_container.log.observers import CodeLogObserver, FileSink, MemorySink, Sink, StreamSink
from conch_container.log.syslog import SyslogSink

if TYPE_CHECKING:
    from conch_container.config import LogConfig

DESTINATIONS = ("stdout", "file", "syslog", "test")

__all__ = [
    "DESTINATIONS",
    "LogOutput",
    "LogSetupError",
    "emit_early",
    "install",
    "install_sighup_reopen",
    "start_logging",
]


class CallsFromThreads(Protocol):
    """The part of :class:`~twisted.internet.interfaces.IReactorThreads` used here."""

    def callFromThread(self, f: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        """Run ``f`` in the reactor thread."""


class LogSetupError(ContainerSSHError):
    """The configured log output cannot be used.

    The reason has already been written to standard error under the error's
    code; the caller only has to stop.
    """

    def __init__(self, code: MessageCode, explanation: str, **details: Any) -> None:
        super().__init__(code, GENERIC_USER_MESSAGE, explanation, **details)


@attrs.define(eq=False)
class LogOutput:
    """The running log output.

    :ivar observer: the :class:`~twisted.logger.ILogObserver` to install.
    :ivar memory: the records and lines, for the ``test`` destination.
    """

    observer: CodeLogObserver
    memory: MemorySink | None = None
    _restore_signal: Callable[[], None] | None = None

    def reopen(self) -> None:
        """Reopen the file or syslog connection (what ``SIGHUP`` does)."""
        self.observer.reopen()

    def close(self) -> None:
        """Restore the previous ``SIGHUP`` handler and release the destination."""
        restore, self._restore_signal = self._restore_signal, None
        if restore is not None:
            restore()
        self.observer.close()


def start_logging(
    log_config: LogConfig,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    reactor: CallsFromThreads | None = None,
) -> LogOutput:
    """Build the log output that ``log_config`` describes.

    :param log_config: ``config.log``, or any object with ``level``,
        ``format``, ``destination``, ``file`` and ``syslog`` (``destination``,
        ``facility``, ``tag``, ``pid``).
    :param stdout: the stream for the ``stdout`` destination (the process's
        real standard output by default, even if Twisted redirected it).
    :param stderr: where failures of the log itself are reported.
    :param reactor: when given and the destination is a file or syslog,
        ``SIGHUP`` reopens it from the reactor thread. The syslog destination
        sends through it (through the global reactor when none is given), so
        it must then be a whole reactor, not only ``callFromThread``.
    :raises LogSetupError: ``LOG_FILE_OPEN_FAILED`` when the file cannot be
        opened, ``CORE_CONFIG_ERROR`` for an unusable setting or syslog
        destination; already reported on ``stderr``.
    """
    try:
        level = Level.NOTICE if log_config.level is None else Level.parse(log_config.level)
        log_format = str(log_config.format or "ljson")
        formatter = line_formatter(log_format)
        destination = str(log_config.destination or "stdout")
        if destination not in DESTINATIONS:
            raise ValueError(f"unsupported log destination: {destination!r}")
    except ValueError as e:
        raise _fail(messages.CORE_CONFIG_ERROR, str(e), stderr) from e

    memory = None
    sink: Sink
    if destination == "file":
        try:
            sink = FileSink(str(log_config.file), formatter)
        except OSError as e:
            raise _fail(
                messages.LOG_FILE_OPEN_FAILED,
                f"cannot open log file {log_config.file}: {e.strerror or e}",
                stderr,
                file=str(log_config.file),
            ) from e
    elif destination == "syslog":
        syslog = log_config.syslog
        try:
            sink = SyslogSink(
                str(syslog.destination or ""),
                syslog_formatter(log_format),
                reactor=_global_reactor() if reactor is None else reactor,
                facility=str(syslog.facility or "auth"),
                tag=str(syslog.tag or ""),
                pid=bool(syslog.pid),
                error_stream=stderr,
            )
        except (OSError, ValueError) as e:
            raise _fail(
                messages.CORE_CONFIG_ERROR,
                f"cannot use syslog destination {syslog.destination}: {e}",
                stderr,
                destination=str(syslog.destination),
            ) from e
    elif destination == "test":
        sink = memory = MemorySink(formatter)
    else:
        sink = StreamSink(real_stdout() if stdout is None else stdout, formatter)

    observer = CodeLogObserver(sink, level=level, error_stream=stderr)
    restore = None
    if reactor is not None and destination in ("file", "syslog"):
        restore = install_sighup_reopen(reactor, observer.reopen)
    return LogOutput(observer, memory, restore)


def _global_reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def _fail(
    code: MessageCode, explanation: str, stderr: TextIO | None, **details: Any
) -> LogSetupError:
    emit_early(code, "{reason}", stream=stderr, reason=explanation, **details)
    return LogSetupError(code, explanation, **details)


def install_sighup_reopen(
    reactor: CallsFromThreads, reopen: Callable[[], None]
) -> Callable[[], None]:
    """Make ``SIGHUP`` call ``reopen`` in the reactor thread.

    A signal handler may run between any two bytecodes of the reactor thread,
    so it only schedules the work; :meth:`callFromThread` also wakes the
    reactor. Must be called from the main thread.

    :returns: a function that puts the previous handler back.
    """

    def on_sighup(signum: int, frame: FrameType | None) -> None:
        reactor.callFromThread(reopen)

    previous = signal.signal(signal.SIGHUP, on_sighup)

    def restore() -> None:
        signal.signal(signal.SIGHUP, previous)

    return restore


def install(observer: CodeLogObserver, beginner: LogBeginner = globalLogBeginner) -> None:
    """Send every log event of the process to ``observer``.

    Events logged before this call (kept by Twisted's start-up buffer) are
    replayed to it. Standard output and error are left alone: the observer
    may be writing to them.
    """
    beginner.beginLoggingTo([observer], discardBuffer=False, redirectStandardIO=False)

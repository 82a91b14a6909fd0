"""The ``syslog`` destination: RFC 3164 lines to a local socket or a UDP server.

Each record becomes one message ``<PRI>Mmm dd hh:mm:ss TAG[PID]: BODY`` where
PRI is ``facility * 8 + severity`` (our levels are syslog severities) and the
body is the ``ljson`` object without timestamp and level, or the ``text`` line
without them, exactly as ContainerSSH sends it. Where the messages go is read
as ContainerSSH reads it (:mod:`~conch_container.log.syslogdestination`).

Writing never blocks, whatever thread it comes from: :class:`SyslogSink`
frames the record and queues it (:mod:`~conch_container.log.linequeue`, a
bounded queue that drops its oldest line when full), and the reactor sends
the queue through a non-blocking transport
(:mod:`~conch_container.log.syslogsender`), reconnecting when the daemon goes
away. A record written in the reactor thread is sent at once when the
transport takes it; one written in another thread is handed over with
``callFromThread``.
"""

from __future__ import annotations

import os
import time
from typing import Any, TextIO

from twisted.internet.defer import Deferred, succeed
from twisted.python.threadable import isInIOThread

from conch_container import messages
from conch_container.log.early import emit_early
from conch_container.log.formats import Formatter
from conch_container.log.linequeue import LineQueue
from conch_container.log.records import LogRecord
from conch_container.log.syslogdestination import (
    DEFAULT_DESTINATION,
    UnixDestination,
    check_unix_socket,
    parse_destination,
)
from conch_container.log.syslogsender import SyslogSender

#: Facility names and numbers as ContainerSSH accepts them.
FACILITIES: dict[str, int] = {
    "kern": 0,
    "user": 1,
    "mail": 2,
    "daemon": 3,
    "auth": 4,
    "syslog": 5,
    "lpr": 6,
    "news": 7,
    "uucp": 8,
    "cron": 9,
    "authpriv": 10,
    "ftp": 11,
    "ntp": 12,
    "logaudit": 13,
    "logalert": 14,
    "clock": 15,
    **{f"local{i}": 16 + i for i in range(8)},
}

DEFAULT_TAG = "ContainerSSH"

#: How many lines may wait for the daemon before the oldest are dropped.
QUEUE_LIMIT = 1000

# RFC 3164 month names, independent of the locale.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def facility_number(name: str) -> int:
    """The number of a facility name.

    :raises ValueError: for a name ContainerSSH does not accept.
    """
    try:
        return FACILITIES[name]
    except KeyError:
        raise ValueError(f"invalid syslog facility: {name!r}") from None


def rfc3164_timestamp(timestamp: float) -> str:
    """``Mmm dd hh:mm:ss`` in local time, the day padded with a space."""
    t = time.localtime(timestamp)
    return f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


class SyslogSink:
    """Sends records to syslog without ever waiting for the daemon.

    :param destination: a Unix socket path or ``host:port``
        (:func:`~conch_container.log.syslogdestination.parse_destination`).
    :param formatter: the body formatter (see
        :func:`~conch_container.log.formats.syslog_formatter`).
    :param reactor: sends the lines; see
        :func:`~conch_container.log.sysloglinks.open_link` for what it must provide.
    :param facility: a facility name (:data:`FACILITIES`).
    :param tag: the tag in front of every message.
    :param pid: append ``[PID]`` to the tag; read at each write, because
        ``twistd`` may fork after the sink was made.
    :param queue_limit: how many lines may wait for the daemon.
    :param error_stream: where an unreachable daemon is reported as
        ``LOG_WRITE_FAILED`` (standard error by default).
    :raises ValueError: for a destination or facility ContainerSSH rejects.
    :raises OSError: when nothing listens at a Unix socket path. (A UDP
        server's name is resolved once the reactor runs.)
    """

    def __init__(
        self,
        destination: str,
        formatter: Formatter,
        *,
        reactor: Any,
        facility: str = "auth",
        tag: str = DEFAULT_TAG,
        pid: bool = False,
        queue_limit: int = QUEUE_LIMIT,
        error_stream: TextIO | None = None,
    ) -> None:
        target = parse_destination(destination)
        self._facility = facility_number(facility)
        if isinstance(target, UnixDestination):
            check_unix_socket(target.path)
        self.destination = destination or DEFAULT_DESTINATION
        self._tag = tag or DEFAULT_TAG
        self._pid = pid
        self._format = formatter
        self._reactor = reactor
        self._error_stream = error_stream
        self._lines = LineQueue(queue_limit)
        # The sender opens its link on the first drain, which runs once the
        # reactor does: after twistd has forked, never before.
        self._sender = SyslogSender(
            reactor, target, self._lines, notice=self._dropped_notice, report=self._report
        )
        self._closed = False
        self._gone = False
        self._closing_waiters: list[Deferred[None]] = []

    def frame(self, record: LogRecord) -> bytes:
        """The bytes of one syslog message (without stream framing)."""
        tag = f"{self._tag}[{os.getpid()}]" if self._pid else self._tag
        pri = self._facility * 8 + int(record.level)
        line = f"<{pri}>{rfc3164_timestamp(record.timestamp)} {tag}: {self._format(record)}"
        return line.encode("utf-8", "backslashreplace")

    def write(self, record: LogRecord) -> None:
        """Queue ``record`` for the daemon; from any thread, never blocking."""
        if self._closed:
            return
        wake = self._lines.put(self.frame(record))
        if self._reactor.running and isInIOThread():
            self._sender.drain()
        elif wake:
            self._reactor.callFromThread(self._sender.drain)

    def _dropped_notice(self, count: int) -> bytes:
        code = messages.LOG_LINES_DROPPED
        return self.frame(
            LogRecord(
                timestamp=time.time(),
                level=code.level,
                code=code.code,
                message=f"Dropped {count} log lines the syslog daemon did not take in time",
                details={"count": count},
            )
        )

    def _report(self, reason: str) -> None:
        emit_early(
            messages.LOG_WRITE_FAILED,
            "Cannot write to the log: {error}",
            stream=self._error_stream,
            error=reason,
            destination=self.destination,
        )

    def reopen(self) -> None:
        """Connect afresh (what ``SIGHUP`` asks); call in the reactor thread."""
        self._sender.reconnect()

    def close(self) -> None:
        """Send what the transport takes at once and close it; call in the reactor thread.

        Later records are dropped; :meth:`when_closed` tells when the
        transport is gone.
        """
        if not self._closed:
            self._closed = True
            self._sender.close().addBoth(self._transport_gone)

    def _transport_gone(self, result: object) -> None:
        self._gone = True
        waiting, self._closing_waiters = self._closing_waiters, []
        for waiter in waiting:
            waiter.callback(None)

    def when_closed(self) -> Deferred[None]:
        """Fires once the sink was closed and its transport is gone."""
        if self._gone:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._closing_waiters.append(waiter)
        return waiter

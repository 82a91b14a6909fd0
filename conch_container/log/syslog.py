"""The ``syslog`` destination: RFC 3164 lines to a local socket or a UDP server.

Each record becomes one message ``<PRI>Mmm dd hh:mm:ss TAG[PID]: BODY`` where
PRI is ``facility * 8 + severity`` (our levels are syslog severities) and the
body is the ``ljson`` object without timestamp and level, or the ``text`` line
without them, exactly as ContainerSSH sends it.

The destination follows ContainerSSH: an absolute path is a Unix socket, tried
as a stream socket first and then as a datagram socket (``/dev/log`` is a
datagram socket on most systems); anything else is ``host:port`` over UDP.

Writes never wait long: a datagram socket is non-blocking, so a syslog daemon
that falls behind costs dropped lines (reported once as ``LOG_WRITE_FAILED``)
instead of stalling every connection; a stream socket has a short send
timeout. A socket that fails (the daemon restarted) is reconnected once per
line before the line is given up.
"""

from __future__ import annotations

import os
import socket
import time

from conch_container.log.formats import Formatter
from conch_container.log.records import LogRecord

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

DEFAULT_DESTINATION = "/dev/log"
DEFAULT_TAG = "ContainerSSH"

#: How long a send on a stream socket may block the reactor.
STREAM_SEND_TIMEOUT = 1.0

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


def connect(destination: str) -> socket.socket:
    """A connected socket for a ``log.syslog.destination`` value.

    :raises OSError: when nothing listens there.
    :raises ValueError: for a destination that is neither a path nor ``host:port``.
    """
    destination = destination or DEFAULT_DESTINATION
    if destination.startswith("/"):
        return _connect_unix(destination)
    return _connect_udp(destination)


def _connect_unix(path: str) -> socket.socket:
    error: OSError | None = None
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        sock = socket.socket(socket.AF_UNIX, kind)
        try:
            sock.connect(path)
        except OSError as e:
            sock.close()
            error = e
            continue
        _configure(sock)
        return sock
    assert error is not None
    raise error


def _connect_udp(destination: str) -> socket.socket:
    host, sep, port_text = destination.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"syslog destination must be a path or host:port: {destination!r}")
    host = host.removeprefix("[").removesuffix("]")
    infos = socket.getaddrinfo(host, int(port_text), type=socket.SOCK_DGRAM)
    error: OSError | None = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.connect(address)
        except OSError as e:
            sock.close()
            error = e
            continue
        _configure(sock)
        return sock
    raise error or OSError(f"no address for {destination!r}")


def _configure(sock: socket.socket) -> None:
    if sock.type == socket.SOCK_STREAM:
        sock.settimeout(STREAM_SEND_TIMEOUT)
    else:
        sock.setblocking(False)


class SyslogSink:
    """Sends records to syslog.

    :param destination: a Unix socket path or ``host:port``.
    :param facility: a facility name (:data:`FACILITIES`).
    :param tag: the tag in front of every message.
    :param pid: append ``[PID]`` to the tag; read at each write, because
        ``twistd`` may fork after the sink was made.
    :param formatter: the body formatter (see
        :func:`~conch_container.log.formats.syslog_formatter`).
    :raises OSError, ValueError: when the destination cannot be used.
    """

    def __init__(
        self,
        destination: str,
        formatter: Formatter,
        *,
        facility: str = "auth",
        tag: str = DEFAULT_TAG,
        pid: bool = False,
    ) -> None:
        self.destination = destination or DEFAULT_DESTINATION
        self._facility = facility_number(facility)
        self._tag = tag or DEFAULT_TAG
        self._pid = pid
        self._format = formatter
        self._socket: socket.socket | None = connect(self.destination)

    def frame(self, record: LogRecord) -> bytes:
        """The bytes of one syslog message (without stream framing)."""
        tag = f"{self._tag}[{os.getpid()}]" if self._pid else self._tag
        pri = self._facility * 8 + int(record.level)
        line = f"<{pri}>{rfc3164_timestamp(record.timestamp)} {tag}: {self._format(record)}"
        return line.encode("utf-8", "backslashreplace")

    def write(self, record: LogRecord) -> None:
        data = self.frame(record)
        try:
            self._send(data)
        except (BlockingIOError, TimeoutError):
            # The daemon is behind: drop this line, keep the connection
            # (a stream may now hold half a line, so start afresh).
            if self._socket is not None and self._socket.type == socket.SOCK_STREAM:
                self._drop_socket()
            raise
        except OSError:
            # The daemon went away (restarted, socket recreated): one retry
            # on a fresh connection.
            self._drop_socket()
            self._send(data)

    def _send(self, data: bytes) -> None:
        if self._socket is None:
            self._socket = connect(self.destination)
        if self._socket.type == socket.SOCK_STREAM:
            self._socket.sendall(data + b"\n")
        else:
            self._socket.send(data)

    def _drop_socket(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()

    def reopen(self) -> None:
        new = connect(self.destination)
        self._drop_socket()
        self._socket = new

    def close(self) -> None:
        self._drop_socket()

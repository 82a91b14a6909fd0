"""What a ``log.syslog.destination`` value names, read as ContainerSSH reads it.

An absolute path is a Unix socket, tried as a stream socket first and then as
a datagram socket (``/dev/log`` is a datagram socket on most systems);
anything else is ``host:port`` over UDP, where the host may be a name
(resolved when the sender connects) or an address (IPv6 in brackets).
"""

from __future__ import annotations

import socket

import attrs

DEFAULT_DESTINATION = "/dev/log"


@attrs.frozen
class UnixDestination:
    """A local syslog socket."""

    path: str


@attrs.frozen
class UDPDestination:
    """A syslog server reached over UDP."""

    host: str
    port: int


Destination = UnixDestination | UDPDestination


def parse_destination(text: str) -> Destination:
    """The destination a configuration value names (the default for an empty one).

    :raises ValueError: for a value that is neither a path nor ``host:port``.
    """
    text = text or DEFAULT_DESTINATION
    if text.startswith("/"):
        return UnixDestination(text)
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"syslog destination must be a path or host:port: {text!r}")
    return UDPDestination(host.removeprefix("[").removesuffix("]"), int(port_text))


def check_unix_socket(path: str) -> None:
    """Check that a syslog daemon listens at ``path``, as a stream or a datagram socket.

    Done once, before the reactor runs, so that a wrong path is a
    configuration error rather than a log that silently goes nowhere. The
    sockets are non-blocking: a daemon whose backlog is full still counts as
    listening, and nothing here can wait.

    :raises OSError: when neither kind of socket can connect.
    """
    error: OSError | None = None
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_UNIX, kind) as probe:
            probe.setblocking(False)
            try:
                probe.connect(path)
            except BlockingIOError:
                return
            except OSError as e:
                error = e
                continue
            return
    assert error is not None
    raise error

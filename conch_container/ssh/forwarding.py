"""Local port forwarding (``direct-tcpip``): what the client asks for, and how
the container dials it.

``ssh -L`` and ``ssh -D`` open a ``direct-tcpip`` channel per connection
(RFC 4254, section 7.2) naming the host and port to reach from the server's
side, here from inside the user's container. The container dials it with
what a plain image offers: ``nc`` (busybox has it) or ``socat``, run as a
program whose stdin and stdout are the channel's data, so the program
machinery's flow control holds in both directions.
"""

from __future__ import annotations

import re
import shlex

import attrs

from conch_container.ssh.requests import PayloadReader, RequestRefused

#: Host names and addresses a forward may name: DNS names, IPv4, IPv6 (with
#: an optional zone). Anything else is refused before it reaches a shell.
_HOST = re.compile(r"[A-Za-z0-9._:%-]{1,253}")


@attrs.frozen
class ForwardTarget:
    """Where a ``direct-tcpip`` channel goes, and who asked, as the client says."""

    host: str
    port: int
    originator_host: str
    originator_port: int


class BadForwardTarget(ValueError):
    """The channel's payload names no host this server would dial."""


def parse_direct_tcpip(data: bytes) -> ForwardTarget:
    """The target of a ``direct-tcpip`` channel open.

    :raises BadForwardTarget: for a payload that does not decode, a port
        outside 1-65535 or a host name with characters no host has.
    :raises PayloadError: for a truncated payload.
    """
    reader = PayloadReader(data)
    host = reader.text()
    port = reader.uint32()
    originator_host = reader.text()
    originator_port = reader.uint32()
    if not _HOST.fullmatch(host):
        raise BadForwardTarget(f"not a host name or address: {host[:64]!r}")
    if not 0 < port < 65536:
        raise BadForwardTarget(f"not a port: {port}")
    return ForwardTarget(host, port, originator_host, originator_port)


def socket_dial_command(path: str) -> str:
    """A shell command that joins its stdin and stdout to the Unix socket at ``path``
    (``socat``: busybox's ``nc`` has no Unix sockets)."""
    socat = f"socat - {shlex.quote(f'UNIX-CONNECT:{path}')}"
    return (
        f"if command -v socat >/dev/null 2>&1; then exec {socat}; "
        "else echo 'socket forwarding needs the forwarding helper or socat in the image' >&2; "
        "exit 127; fi"
    )


#: The longest Unix socket path Linux takes (``sun_path`` less its NUL).
MAX_SOCKET_PATH = 107


def valid_socket_path(path: str) -> bool:
    """Whether ``path`` may name a Unix socket in the container: absolute, no NUL, short enough."""
    return (
        path.startswith("/") and "\x00" not in path and len(path.encode("utf-8")) <= MAX_SOCKET_PATH
    )


def parse_direct_streamlocal(data: bytes) -> ForwardTarget:
    """The socket of a ``direct-streamlocal@openssh.com`` channel open (OpenSSH's
    PROTOCOL 2.4: the path, then a reserved string and integer), as a target
    whose host is the path.

    :raises BadForwardTarget: for a path no socket could have.
    :raises PayloadError: for a truncated payload.
    """
    reader = PayloadReader(data)
    path = reader.text()
    if not valid_socket_path(path):
        raise BadForwardTarget(f"not a socket path: {path[:64]!r}")
    return ForwardTarget(path, 0, "", 0)


def valid_bind_host(host: str) -> bool:
    """Whether ``host`` may be listened on: empty (every address) or a host name or address."""
    return host == "" or _HOST.fullmatch(host) is not None


def dial_command(host: str, port: int) -> str:
    """A shell command that joins its stdin and stdout to ``host:port``.

    ``nc`` first (busybox's closes its sending side when stdin ends, so a
    request-response protocol completes), then ``socat``; without either it
    says so on stderr and exits with 127, as a shell does for a missing
    command.
    """
    nc = f"nc {shlex.quote(host)} {port}"
    socat = f"socat - {shlex.quote(f'TCP:{host}:{port}')}"
    return (
        f"if command -v nc >/dev/null 2>&1; then exec {nc}; "
        f"elif command -v socat >/dev/null 2>&1; then exec {socat}; "
        "else echo 'port forwarding needs nc or socat in the image' >&2; exit 127; fi"
    )


#: The cookie protocols an X server knows; anything else is refused.
_AUTH_PROTOCOLS = frozenset({"MIT-MAGIC-COOKIE-1", "XDM-AUTHORIZATION-1"})


@attrs.frozen
class X11Request:
    single_connection: bool
    auth_protocol: str
    auth_cookie: str = attrs.field(repr=False)
    screen: int


def parse_x11_request(data: bytes) -> X11Request:
    """An ``x11-req`` payload.

    :raises PayloadError: for a truncated payload.
    :raises RequestRefused: for a protocol or cookie no X server would take.
    """
    reader = PayloadReader(data)
    single = reader.boolean()
    protocol = reader.text()
    cookie = reader.text()
    screen = reader.uint32()
    if protocol not in _AUTH_PROTOCOLS:
        raise RequestRefused(f"unknown X11 authentication protocol {protocol[:40]!r}")
    if not cookie or len(cookie) > 256 or any(c not in "0123456789abcdefABCDEF" for c in cookie):
        raise RequestRefused("the X11 cookie is not hexadecimal")
    if screen > 1000:
        raise RequestRefused(f"not a screen number: {screen}")
    return X11Request(single, protocol, cookie, screen)

"""Checks for the string formats the config uses: listen addresses, URLs, SSH versions."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_SERVER_VERSION = re.compile(r"SSH-2\.0-[!-,.-~]+( [a-zA-Z0-9\- _.]+)?")
_CLIENT_VERSION = re.compile(r"SSH-2\.0-[a-zA-Z0-9]+(| [a-zA-Z0-9\- _.]+)")


def split_host_port(value: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) as Go's ``net.SplitHostPort``.

    :raises ValueError: if it is not of that form or the port is not 0-65535.
    """
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or value[end + 1 : end + 2] != ":":
            raise ValueError(value)
        host, port = value[1:end], value[end + 2 :]
    else:
        host, sep, port = value.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(value)
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(value)
    return host, int(port)


def host_port(value: str) -> str | None:
    """Check a listen address: ``host:port``; an empty host means all interfaces."""
    try:
        split_host_port(value)
    except ValueError:
        return "must be host:port, such as 0.0.0.0:2222 or [::]:2222"
    return None


def http_url(value: str) -> str | None:
    """Check an ``http://`` or ``https://`` URL with a host."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "must be a valid http:// or https:// URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be a valid http:// or https:// URL"
    return None


def server_version(value: str) -> str | None:
    """Check ``ssh.serverVersion`` as ContainerSSH does (RFC 4253 identification string)."""
    if len(value) > 253:
        return "must be at most 253 characters"
    if not _SERVER_VERSION.fullmatch(value):
        return (
            'must be "SSH-2.0-<software>" with optional " <comment>": no spaces or "-"'
            " in <software>, printable ASCII only"
        )
    return None


def client_version(value: str) -> str | None:
    """Check ``sshproxy.clientVersion`` as ContainerSSH does."""
    if not _CLIENT_VERSION.fullmatch(value):
        return 'must be "SSH-2.0-<letters and digits>" with optional " <comment>"'
    return None


def is_pem(value: str) -> bool:
    """Whether the text holds at least one PEM block."""
    return "-----BEGIN " in value and "-----END " in value

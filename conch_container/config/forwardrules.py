"""Allow and deny lists for port forwarding: ``host:port`` patterns for the
connections the container dials (``ssh -L``, ``ssh -D``) and port ranges for
the ports it listens on (``ssh -R``).

A target pattern is ``HOST:PORT``: ``HOST`` a shell-style pattern matched
case-insensitively against the host as the client named it (``*.internal``,
``127.0.0.1``, ``[::1]`` for an IPv6 address), ``PORT`` a port, a range
``LOW-HIGH`` or ``*``. A port pattern is a port, a range or ``*``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

import attrs


@attrs.frozen
class PortRange:
    low: int
    high: int

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.low <= port <= self.high


@attrs.frozen
class TargetPattern:
    host: str
    ports: PortRange

    def matches(self, host: str, port: int) -> bool:
        name = host.lower().removeprefix("[").removesuffix("]")
        return port in self.ports and fnmatch.fnmatchcase(name, self.host)


def parse_ports(text: str) -> PortRange:
    """A port pattern.

    :raises ValueError: saying what is wrong.
    """
    text = text.strip()
    if text == "*":
        return PortRange(0, 65535)
    low, dash, high = text.partition("-")
    try:
        first = int(low)
        last = int(high) if dash else first
    except ValueError:
        raise ValueError(f"{text!r} is not a port, a range LOW-HIGH or *") from None
    if not 0 <= first <= last <= 65535:
        raise ValueError(f"{text!r} is not a port range within 0-65535")
    return PortRange(first, last)


def parse_target(text: str) -> TargetPattern:
    """A ``HOST:PORT`` pattern.

    :raises ValueError: saying what is wrong.
    """
    host, colon, ports = text.strip().rpartition(":")
    if not colon or not host:
        raise ValueError(f"{text!r} is not HOST:PORT (use *:PORT or HOST:* for any)")
    host = host.lower().removeprefix("[").removesuffix("]")
    return TargetPattern(host, parse_ports(ports))


def target_problem(text: str) -> str | None:
    """Why ``text`` is no target pattern (a configuration check), or None."""
    try:
        parse_target(text)
    except ValueError as e:
        return str(e)
    return None


def ports_problem(text: str) -> str | None:
    """Why ``text`` is no port pattern (a configuration check), or None."""
    try:
        parse_ports(text)
    except ValueError as e:
        return str(e)
    return None


def any_target(patterns: Iterable[TargetPattern], host: str, port: int) -> bool:
    return any(pattern.matches(host, port) for pattern in patterns)


def any_port(ranges: Iterable[PortRange], port: int) -> bool:
    return any(port in ports for ports in ranges)

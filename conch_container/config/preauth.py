"""Settings of the ``ssh`` section that limit clients before they authenticate.

These are extensions: ContainerSSH has none of them. They follow OpenSSH's
``MaxStartups``, ``PerSourceMaxStartups``, ``PerSourceNetBlockSize`` and
``PerSourcePenalties``, with defaults chosen for a gateway (see
``docs/ssh.md``). The text forms (``100:30:500``, ``32:64``) are OpenSSH's, so
an operator can carry values over from ``sshd_config``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import attrs

from conch_container.config.kinds import (
    Bool,
    Choice,
    Duration,
    Int,
    ListOf,
    Section,
    Str,
    at_least,
    min_duration,
)
from conch_container.config.schema import Check, Context, fail, join, setting

#: OpenSSH's penalty table size, per address family.
DEFAULT_MAX_SOURCES = 65536

#: Narrowest blocks accepted: wider ones would put most of the Internet
#: behind one counter, so one client could lock out everyone.
_MIN_BITS = {4: 8, 6: 16}
_MAX_BITS = {4: 32, 6: 128}


def _numbers(text: str, count: int) -> list[int] | None:
    parts = text.split(":")
    if len(parts) != count or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    return [int(p) for p in parts]


def parse_max_startups(text: str) -> tuple[int, int, int]:
    """``start:rate:full`` as OpenSSH reads ``MaxStartups``; a single ``N`` is ``N:100:N``.

    :raises ValueError: with the problem, worded for the operator.
    """
    numbers = _numbers(text, 1)
    if numbers is not None:
        numbers = [numbers[0], 100, numbers[0]]
    else:
        numbers = _numbers(text, 3)
    if numbers is None:
        raise ValueError('must be "start:rate:full" (such as "100:30:500") or a single number')
    start, rate, full = numbers
    if full < 1:
        raise ValueError("full must be at least 1")
    if start > full:
        raise ValueError("start must not be greater than full")
    if not 1 <= rate <= 100:
        raise ValueError("rate must be a percentage from 1 to 100")
    return start, rate, full


def parse_net_block_size(text: str, default_ipv6: int = 64) -> tuple[int, int]:
    """``bits4[:bits6]`` as OpenSSH reads ``PerSourceNetBlockSize``.

    :raises ValueError: with the problem, worded for the operator.
    """
    numbers = _numbers(text, 1) or _numbers(text, 2)
    if numbers is None:
        raise ValueError('must be "ipv4bits:ipv6bits" (such as "32:64") or "ipv4bits"')
    ipv4, ipv6 = numbers if len(numbers) == 2 else (numbers[0], default_ipv6)
    for version, bits in ((4, ipv4), (6, ipv6)):
        if not _MIN_BITS[version] <= bits <= _MAX_BITS[version]:
            raise ValueError(
                f"IPv{version} block size must be from {_MIN_BITS[version]}"
                f" to {_MAX_BITS[version]} bits"
            )
    return ipv4, ipv6


def _problem_of(parse: Callable[[str], object]) -> Check:
    """A config check from a parser that raises ``ValueError``."""

    def check(value: Any) -> str | None:
        try:
            parse(value)
        except ValueError as error:
            return str(error)
        return None

    return check


def _network_problem(value: str) -> str | None:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as error:
        return f"must be an IP address or a CIDR network such as 192.0.2.0/24 ({error})"
    return None


class PenaltyDuration(Duration):
    """A penalty time, where ``0`` switches that penalty off instead of meaning the default."""

    zero_is_default = False


@attrs.frozen
class PerSourcePenaltiesConfig:
    """Penalties for client networks whose connections fail to log in.

    OpenSSH's ``PerSourcePenalties``: a connection that ends without a login
    adds penalty time to its source network (``ssh.perSourceNetBlockSize``);
    once more than ``min`` is owed, new connections from there are refused at
    once until it has run out.
    """

    enable: bool = setting(
        "enable",
        Bool(),
        True,
        doc="Whether penalties are applied at all.",
        extension=True,
    )
    auth_fail: float = setting(
        "authFail",
        PenaltyDuration(),
        5.0,
        doc="Added when a connection ends without a login after at least one failed attempt, "
        "or is disconnected for breaking the authentication rules; 0 turns it off.",
        extension=True,
    )
    no_auth: float = setting(
        "noAuth",
        PenaltyDuration(),
        1.0,
        doc="Added when a connection ends without trying to authenticate; 0 turns it off.",
        extension=True,
    )
    grace_exceeded: float = setting(
        "graceExceeded",
        PenaltyDuration(),
        10.0,
        doc="Added when a connection is cut off at `ssh.loginGraceTime`; 0 turns it off.",
        extension=True,
    )
    min: float = setting(
        "min",
        PenaltyDuration(),
        15.0,
        doc="Penalty time a network must owe before its connections are refused; "
        "must be less than `max`.",
        extension=True,
    )
    max: float = setting(
        "max",
        Duration(min_duration(1.0)),
        600.0,
        doc="The most penalty time a network can owe; further offences do not extend it.",
        extension=True,
    )
    exempt: tuple[str, ...] = setting(
        "exempt",
        ListOf(Str(_network_problem), type_name="list of addresses or CIDR networks"),
        (),
        doc="Addresses and networks never penalised (e.g. a monitoring host, or a load "
        "balancer that hides the clients' addresses).",
        extension=True,
    )
    max_sources: int = setting(
        "maxSources",
        Int(at_least(1)),
        DEFAULT_MAX_SOURCES,
        doc="Networks tracked at most, for IPv4 and for IPv6 each (about 300 bytes each).",
        extension=True,
    )
    overflow: str = setting(
        "overflow",
        Choice("permissive", "deny-all"),
        "permissive",
        doc="When the table is full: `permissive` forgets the penalties closest to expiry; "
        "`deny-all` refuses every connection not exempt until one expires.",
        extension=True,
    )


class PenaltiesSection(Section):
    """The ``perSourcePenalties`` block, with the check that spans two of its keys."""

    def __init__(self) -> None:
        super().__init__(PerSourcePenaltiesConfig)

    def parse(self, raw: object, ctx: Context, path: str, base: Any) -> Any:
        value = super().parse(raw, ctx, path, base)
        if value.enable and value.min >= value.max:
            # No penalty could ever be enforced: it is capped below the threshold.
            fail(join(path, "min"), "must be less than max")
        return value


max_startups_problem = _problem_of(parse_max_startups)
net_block_size_problem = _problem_of(parse_net_block_size)

"""Client addresses, grouped into the source networks that pre-authentication limits count.

One client rarely has one address: an IPv6 host picks from its whole /64, and
an attacker with a /64 has 2**64 addresses to rotate through. The limits
therefore count per *source network*: the client's address cut to a prefix
length (``ssh.perSourceNetBlockSize``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import NamedTuple

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class SourceNetwork(NamedTuple):
    """A client's address cut to its block: hashable and small, as table keys must be."""

    version: int
    network: int
    prefix: int

    def __str__(self) -> str:
        address: IPAddress
        if self.version == 4:
            address = ipaddress.IPv4Address(self.network)
        else:
            address = ipaddress.IPv6Address(self.network)
        return f"{address}/{self.prefix}"


def client_ip(address: IAddress | None) -> IPAddress | None:
    """The client's IP address, IPv4-mapped IPv6 addresses as IPv4; None for non-IP peers.

    A dual-stack listener on ``[::]`` sees IPv4 clients as ``::ffff:a.b.c.d``;
    they must be counted as the IPv4 clients they are.
    """
    if not isinstance(address, IPv4Address | IPv6Address):
        return None
    host = address.host.split("%", 1)[0]  # a link-local address may carry a zone
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class SourceNetworks:
    """Cuts client addresses to ``ipv4_bits`` / ``ipv6_bits`` prefixes."""

    def __init__(self, ipv4_bits: int, ipv6_bits: int) -> None:
        self._bits = {4: ipv4_bits, 6: ipv6_bits}
        self._host_bits = {4: 32 - ipv4_bits, 6: 128 - ipv6_bits}

    def of(self, ip: IPAddress) -> SourceNetwork:
        """The source network ``ip`` belongs to."""
        shift = self._host_bits[ip.version]
        masked = (int(ip) >> shift) << shift
        return SourceNetwork(ip.version, masked, self._bits[ip.version])


class ExemptList:
    """Addresses and networks that the penalties never touch."""

    def __init__(self, networks: Iterable[str]) -> None:
        self._networks = [ipaddress.ip_network(text, strict=True) for text in networks]

    def __contains__(self, ip: object) -> bool:
        return isinstance(ip, IPAddress) and any(
            ip.version == net.version and ip in net for net in self._networks
        )

    def __bool__(self) -> bool:
        return bool(self._networks)

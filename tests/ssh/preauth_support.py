"""Clients of the in-memory harness that come from an address the test chooses.

The pre-authentication limits count by the client's address, which the
listening port hands to ``buildProtocol``; :func:`connect_from` does what the
port does, and returns None where the port would close the socket.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.conch.ssh import keys
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.test.iosim import FakeTransport, connect

from conch_container.ssh.admission import Admission
from tests.ssh.harness import Client, Harness

SERVER_ADDRESS = IPv4Address("TCP", "192.0.2.1", 2222)


def peer(host: str, port: int = 50000) -> IPv4Address | IPv6Address:
    """The address of a client at ``host``."""
    if ":" in host:
        return IPv6Address("TCP", host, port)
    return IPv4Address("TCP", host, port)


def connect_from(
    harness: Harness,
    host: str,
    user: str = "user",
    passwords: list[str] | None = None,
    keys_: list[keys.Key] | None = None,
    manual: bool = False,
) -> Client | None:
    """Connect a client from ``host``, or None when the server refuses it at accept."""
    address = peer(host, 50000 + len(harness.clients))
    server = harness.factory.buildProtocol(address)
    if server is None:
        return None
    client = Client(user, passwords or [], keys_ or [], manual)
    client.server = server
    client.pump = connect(
        server,
        FakeTransport(server, isServer=True, hostAddress=SERVER_ADDRESS, peerAddress=address),
        client.transport,
        FakeTransport(
            client.transport, isServer=False, hostAddress=address, peerAddress=SERVER_ADDRESS
        ),
        clock=harness.reactor,
    )
    harness.clients.append(client)
    return client


def leave(harness: Harness, client: Client) -> None:
    """The client closes its connection; the server notices."""
    client.transport.transport.loseConnection()  # type: ignore[union-attr]
    harness.flush()


def draw_from(harness: Harness, draws: Callable[[], float]) -> Admission:
    """Give the harness's server a new admission whose early-drop lottery is ``draws``."""
    admission = Admission.from_config(harness.config.ssh, harness.reactor, harness.log, draws)
    harness.factory.admission = admission
    return admission

"""Scripted Terrapin attempts (CVE-2023-48795) against the gateway, over TCP.

A man in the middle inserts a packet into the client's stream during the
handshake (and deletes one after it, which the server never gets to see):
with strict key exchange the insertion alone ends the connection.
"""

from __future__ import annotations

import struct
from typing import Any

from twisted.conch.ssh import transport as conch_transport
from twisted.conch.ssh.common import NS
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from conch_container.ssh.packettransport import STRICT_KEX_CLIENT
from tests.integration.gateway import GatewayTestCase
from tests.ssh.harness import Client
from tests.ssh.test_packet_transport import client_class
from tests.ssh.test_strict_kex import injecting


def cleartext_packet(payload: bytes) -> bytes:
    """One packet before any keys: length, padding length, payload, at least 4 bytes of padding."""
    padding = 8 - (5 + len(payload)) % 8
    if padding < 4:
        padding += 8
    return struct.pack(">IB", 1 + len(payload) + padding, padding) + payload + b"\x00" * padding


def kexinit() -> bytes:
    """A client KEXINIT announcing strict key exchange."""
    names = [
        b"curve25519-sha256," + STRICT_KEX_CLIENT,
        b"ssh-ed25519",
        b"aes128-ctr",
        b"aes128-ctr",
        b"hmac-sha2-256",
        b"hmac-sha2-256",
        b"none",
        b"none",
        b"",
        b"",
    ]
    body = b"".join(NS(name) for name in names)
    return bytes((conch_transport.MSG_KEXINIT,)) + b"\x00" * 16 + body + b"\x00" * 5


class _Script(Protocol):
    """Sends its bytes once connected and keeps what the server sends until it closes."""

    def __init__(self, script: bytes) -> None:
        self.script = script
        self.received = b""
        self.closed: Deferred[bytes] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.script)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.closed.callback(self.received)


def server_messages(received: bytes) -> list[tuple[int, bytes]]:
    """The cleartext packets after the server's version line, as (type, payload)."""
    _version, _, rest = received.partition(b"\r\n")
    messages = []
    while len(rest) >= 5:
        length, padding = struct.unpack(">IB", rest[:5])
        payload = rest[5 : 4 + length - padding]
        messages.append((payload[0], payload[1:]))
        rest = rest[4 + length :]
    return messages


class TerrapinTests(GatewayTestCase):
    """Insertions during the handshake are refused."""

    def refusals(self) -> list[Any]:
        return [r for r in self.log_records if r.code == "SSH_PACKET_REFUSED"]

    async def test_ignore_before_kexinit(self) -> None:
        """An IGNORE ahead of the client's KEXINIT: the server disconnects with a protocol error."""
        script = _Script(
            b"SSH-2.0-Scripted_1.0\r\n"
            + cleartext_packet(bytes((conch_transport.MSG_IGNORE,)) + NS(b""))
            + cleartext_packet(kexinit())
        )
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port), script)
        received = await script.closed
        types = [message_type for message_type, _ in server_messages(received)]
        self.assertEqual(
            types, [conch_transport.MSG_KEXINIT, conch_transport.MSG_DISCONNECT], received
        )
        payload = server_messages(received)[-1][1]
        self.assertEqual(
            struct.unpack(">I", payload[:4])[0], conch_transport.DISCONNECT_PROTOCOL_ERROR
        )
        self.assertIn(b"KEXINIT was not the first packet", payload)
        [refusal] = self.refusals()
        self.assertIn("KEXINIT was not the first packet", repr(refusal))

    async def test_ignore_before_newkeys(self) -> None:
        """The Terrapin insertion: an IGNORE just before the client's NEWKEYS is refused."""
        transport_class = injecting(
            client_class(
                b"chacha20-poly1305@openssh.com",
                b"hmac-sha2-256-etm@openssh.com",
                b"curve25519-sha256@libssh.org",
            ),
            conch_transport.MSG_IGNORE,
            conch_transport.MSG_NEWKEYS,
        )
        client = Client("alice", ["wonderland"], [], transport_class=transport_class)
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port), client.transport)
        await client.lost
        self.assertFalse(client.authenticated.called)
        self.assertEqual(len(self.refusals()), 1, (client.disconnect_reason, self.log_records))
        [refusal] = self.refusals()
        self.assertIn("unexpected message type 2 during key exchange", repr(refusal))

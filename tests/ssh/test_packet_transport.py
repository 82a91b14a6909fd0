"""The server's packet path in a whole, in-memory connection.

Conch's client speaks none of the new algorithms, so the client here is
Conch's with this project's packet path (:class:`PacketPath`) and the
algorithm lists of each test: the handshake, the login and a session run
through the negotiated framing in both directions.
"""

from __future__ import annotations

import os
import struct
from typing import cast

from twisted.conch.ssh import transport as conch_transport
from twisted.trial.unittest import SynchronousTestCase

from conch_container.ssh.crypto.base import MAX_PACKET_LENGTH
from conch_container.ssh.crypto.codec import frame
from conch_container.ssh.crypto.suite import AEAD_CIPHERS, PacketProtection
from conch_container.ssh.packettransport import PacketPath
from tests.ssh.crypto.support import BLOCK_CIPHERS, COMBINATIONS, MACS
from tests.ssh.harness import (
    Client,
    ClientChannel,
    ClientTransport,
    Harness,
    exec_request,
    make_config,
)


class _ModernClientTransport(PacketPath, ClientTransport):
    """Conch's client transport with the project's packet path."""

    _secure = False

    def connectionSecure(self) -> None:
        # Conch's client calls this after every key exchange; asking for
        # ssh-userauth again after a rekey would be refused.
        if not self._secure:
            self._secure = True
            super().connectionSecure()


def client_class(
    cipher: bytes, mac: bytes, kex: bytes = b"curve25519-sha256"
) -> type[ClientTransport]:
    """A client transport class that offers only ``cipher``, ``mac`` and ``kex``."""
    return type(
        "Client",
        (_ModernClientTransport,),
        {"supportedCiphers": [cipher], "supportedMACs": [mac], "supportedKeyExchanges": [kex]},
    )


class CatSessions(SynchronousTestCase):
    """Login through :attr:`harness` with one cipher and MAC, and a ``cat`` session."""

    harness: Harness

    def login(self, cipher: bytes, mac: bytes, kex: bytes = b"curve25519-sha256") -> Client:
        client = self.harness.connect(
            passwords=["secret"], transport_class=client_class(cipher, mac, kex)
        )
        self.harness.flush()
        self.assertTrue(client.authenticated.called, (cipher, mac, client.disconnect_reason))
        return client

    def cat(self, client: Client) -> ClientChannel:
        """A session running ``cat``."""
        channel = self.harness.open_session(client)
        channel.request(b"exec", exec_request("cat"))
        self.harness.flush()
        return channel

    def assert_echoed(self, channel: ClientChannel, expected: bytes) -> None:
        """After EOF, ``cat`` has sent back ``expected`` and exited 0."""
        assert channel.conn is not None
        channel.conn.sendEOF(channel)
        self.harness.flush()
        self.assertEqual(channel.stdout, expected)
        self.assertEqual(channel.exit_status, 0)


class PacketTransportTests(CatSessions):
    """Login and a session through every framing."""

    def setUp(self) -> None:
        self.harness = Harness(
            config=make_config(
                ciphers=tuple(c.decode() for c in (*AEAD_CIPHERS, *BLOCK_CIPHERS)),
                macs=tuple(m.decode() for m in MACS),
                kex=("curve25519-sha256", "curve25519-sha256@libssh.org"),
            )
        )

    def test_every_combination(self) -> None:
        """Each cipher and MAC is negotiated, and 300 KB goes through ``cat`` and back."""
        data = os.urandom(300_000)
        for cipher, mac in COMBINATIONS:
            with self.subTest(cipher=cipher, mac=mac):
                client = self.login(cipher, mac)
                self.assertEqual(client.server.currentEncryptions.inCipType, cipher)
                channel = self.cat(client)
                for start in range(0, len(data), 30000):
                    channel.write(data[start : start + 30000])
                    self.harness.flush()
                self.assert_echoed(channel, data)

    def test_client_rekey(self) -> None:
        """After a key exchange the client starts mid-session, data flows under the new keys."""
        for cipher, mac in (
            (b"chacha20-poly1305@openssh.com", b"hmac-sha2-256"),
            (b"aes128-ctr", b"hmac-sha2-256-etm@openssh.com"),
        ):
            with self.subTest(cipher=cipher):
                channel = self.cat(self.login(cipher, mac))
                client = self.harness.clients[-1]
                channel.write(b"before ")
                self.harness.flush()
                first_keys = client.server.currentEncryptions
                client.transport.sendKexInit()
                channel.write(b"during ")
                self.harness.flush()
                self.assertIsNot(client.server.currentEncryptions, first_keys)
                channel.write(b"after")
                self.assert_echoed(channel, b"before during after")

    def test_key_exchanges(self) -> None:
        """Both curve25519 names work with an AEAD cipher.

        (Conch's client has no mlkem768x25519-sha256: AsyncSSH runs that one,
        in :mod:`tests.integration.test_asyncssh_client`.)
        """
        for kex in (b"curve25519-sha256", b"curve25519-sha256@libssh.org"):
            with self.subTest(kex=kex):
                client = self.login(b"chacha20-poly1305@openssh.com", b"hmac-sha2-256", kex)
                self.assertEqual(client.server.kexAlg, kex)

    def test_aead_without_a_common_mac(self) -> None:
        """An AEAD cipher needs no MAC in common, as with OpenSSH."""
        client = self.login(b"aes256-gcm@openssh.com", b"hmac-md5")
        self.assertEqual(client.server.currentEncryptions.outCipType, b"aes256-gcm@openssh.com")

    def test_oversized_packet_refused(self) -> None:
        """A packet length over 256 KiB ends the connection with a protocol error, logged."""
        client = self.login(b"aes128-gcm@openssh.com", b"hmac-sha2-256")
        server = client.server
        server.dataReceived(struct.pack(">L", MAX_PACKET_LENGTH + 16) + bytes(64))
        self.harness.flush()
        self.assertEqual(
            client.disconnect_reason,
            (
                conch_transport.DISCONNECT_PROTOCOL_ERROR,
                f"bad packet length {MAX_PACKET_LENGTH + 16}",
            ),
        )
        [event] = self.harness.events_with("SSH_PACKET_REFUSED")
        self.assertEqual(event["disconnectReason"], conch_transport.DISCONNECT_PROTOCOL_ERROR)
        self.assertTrue(client.lost.called)

    def test_tampered_packet_refused(self) -> None:
        """A packet that fails its tag ends the connection with a MAC error."""
        client = self.login(b"chacha20-poly1305@openssh.com", b"hmac-sha2-256")
        sealer = cast(PacketProtection, client.transport.currentEncryptions).sealer
        wire = bytearray(
            b"".join(
                sealer.seal(
                    client.transport.outgoingPacketSequence, frame(b"\x02", b"ignore", sealer)
                )
            )
        )
        wire[-1] ^= 1
        client.server.dataReceived(bytes(wire))
        self.harness.flush()
        assert client.disconnect_reason is not None
        self.assertEqual(client.disconnect_reason[0], conch_transport.DISCONNECT_MAC_ERROR)
        self.assertEqual(len(self.harness.events_with("SSH_PACKET_REFUSED")), 1)

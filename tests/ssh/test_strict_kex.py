"""Strict key exchange (``kex-strict-*-v00@openssh.com``), in memory.

The Terrapin attack (CVE-2023-48795) has a man in the middle insert a packet
during the handshake and delete one after it, so both sequence numbers stay
in step while the peer misses a message. Strict key exchange refuses
anything outside the key exchange before the first NEWKEYS and restarts the
sequence numbers at every NEWKEYS; the tests play the attacker's insertion
from a client and check the server's side of each rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.conch.ssh import transport as conch_transport
from twisted.conch.ssh.common import NS
from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.ssh.packettransport import STRICT_KEX_CLIENT, STRICT_KEX_SERVER
from conch_container.ssh.transport import ServerTransport
from tests.ssh.harness import Client, ClientTransport, Harness, exec_request, make_config
from tests.ssh.test_packet_transport import CatSessions, client_class

if TYPE_CHECKING:
    from tests.ssh.harness import ClientChannel

_CHACHA = b"chacha20-poly1305@openssh.com"
_ETM = b"hmac-sha2-256-etm@openssh.com"


def injecting(base: type[ClientTransport], message_type: int, before: int) -> type[ClientTransport]:
    """``base``, sending one ``message_type`` packet just before its first ``before`` packet.

    What a man in the middle inserts into the client's stream; Conch would
    hold the message back until the key exchange is over, so it is let through.
    """

    class Injecting(base):  # type: ignore[valid-type,misc]
        injected = False

        def _allowedKeyExchangeMessageType(self, messageType: int) -> bool:
            return messageType == message_type or super()._allowedKeyExchangeMessageType(
                messageType
            )

        def sendPacket(self, messageType: int, payload: bytes) -> None:
            if messageType == before and not self.injected:
                self.injected = True
                super().sendPacket(message_type, _payload(message_type))
            super().sendPacket(messageType, payload)

    return Injecting


def _payload(message_type: int) -> bytes:
    if message_type == conch_transport.MSG_DEBUG:
        return b"\x00" + NS(b"hello") + NS(b"")
    if message_type == conch_transport.MSG_UNIMPLEMENTED:
        return b"\x00\x00\x00\x00"
    return NS(b"")


class StrictKexTests(SynchronousTestCase):
    """The server's side of strict key exchange."""

    def setUp(self) -> None:
        self.harness = Harness(
            config=make_config(
                ciphers=(_CHACHA.decode(), "aes128-ctr"),
                macs=(_ETM.decode(), "hmac-sha2-256"),
                kex=("curve25519-sha256",),
            )
        )
        # The sequence numbers as the server takes the new keys into use
        # (the client's NEWKEYS has just been read).
        self.at_new_keys: list[tuple[int, int]] = []
        new_keys = ServerTransport._newKeys

        def recording(transport: Any) -> None:
            self.at_new_keys.append(
                (transport.incomingPacketSequence, transport.outgoingPacketSequence)
            )
            new_keys(transport)

        self.patch(ServerTransport, "_newKeys", recording)

    def connect(self, transport_class: type[ClientTransport]) -> Client:
        client = self.harness.connect(passwords=["secret"], transport_class=transport_class)
        self.harness.flush()
        return client

    def refusals(self) -> list[dict[str, Any]]:
        code = messages.SSH_PACKET_REFUSED.code
        return [e for e in self.harness.events if e.get("code") == code]

    def assert_refused(self, client: Client, reason: str) -> None:
        """The server logged the refusal, disconnected with a protocol error, and closed.

        (Whether the client can read the disconnect depends on where in the
        handshake it is: after the server's NEWKEYS it expects new keys.)
        """
        self.assertFalse(client.authenticated.called)
        self.assertEqual(client.server.sent_disconnect, conch_transport.DISCONNECT_PROTOCOL_ERROR)
        [event] = self.refusals()
        self.assertIn(reason, str(event.get("reason")))
        self.assertTrue(client.lost.called)

    def test_negotiated_when_the_client_offers_it(self) -> None:
        """Both ends announce it; the sequence numbers restart at 0 after NEWKEYS."""
        client = self.connect(client_class(_CHACHA, _ETM))
        self.assertTrue(client.authenticated.called, client.disconnect_reason)
        server = client.server
        self.assertTrue(server.strict_kex)
        self.assertIn(STRICT_KEX_SERVER, server.ourKexInitPayload)
        self.assertIn(STRICT_KEX_CLIENT, server.otherKexInitPayload)
        self.assertEqual(server.kexAlg, b"curve25519-sha256")
        # KEXINIT, ECDH and NEWKEYS each way: 3 without the reset.
        self.assertEqual(self.at_new_keys, [(0, 0)])

    def test_not_negotiated_without_the_client(self) -> None:
        """Conch's own client does not offer it: the sequence numbers run on, as before."""
        client = self.connect(ClientTransport)
        self.assertTrue(client.authenticated.called, client.disconnect_reason)
        self.assertFalse(client.server.strict_kex)
        self.assertEqual(self.at_new_keys, [(3, 3)])

    def test_every_rekey_resets(self) -> None:
        """A later key exchange resets both numbers too, and is not announced again."""
        client = self.connect(client_class(_CHACHA, _ETM))
        channel = self.harness.open_session(client)
        channel.request(b"exec", exec_request("cat"))
        channel.write(b"before ")
        self.harness.flush()
        client.transport.sendKexInit()
        self.assertNotIn(STRICT_KEX_CLIENT, client.transport.ourKexInitPayload)
        channel.write(b"after")
        self.harness.flush()
        self.assertNotIn(STRICT_KEX_SERVER, client.server.ourKexInitPayload)
        self.assertEqual(self.at_new_keys, [(0, 0), (0, 0)])
        assert channel.conn is not None
        channel.conn.sendEOF(channel)
        self.harness.flush()
        self.assertEqual(channel.stdout, b"before after")
        self.assertEqual(self.refusals(), [])

    def test_terrapin_insertion_refused(self) -> None:
        """IGNORE, DEBUG or UNIMPLEMENTED before the client's NEWKEYS ends the connection."""
        for message_type in (
            conch_transport.MSG_IGNORE,
            conch_transport.MSG_DEBUG,
            conch_transport.MSG_UNIMPLEMENTED,
        ):
            with self.subTest(message_type=message_type):
                self.harness.events.clear()
                transport_class = injecting(
                    client_class(_CHACHA, _ETM), message_type, conch_transport.MSG_NEWKEYS
                )
                client = self.connect(transport_class)
                self.assert_refused(
                    client, f"unexpected message type {message_type} during key exchange"
                )
                self.assertEqual(self.at_new_keys, [])

    def test_packet_before_kexinit_refused(self) -> None:
        """The client's KEXINIT must be its first packet."""
        transport_class = injecting(
            client_class(_CHACHA, _ETM), conch_transport.MSG_IGNORE, conch_transport.MSG_KEXINIT
        )
        client = self.connect(transport_class)
        self.assert_refused(client, "KEXINIT was not the first packet")

    def test_insertion_without_strict_kex_unchanged(self) -> None:
        """Without strict key exchange, an IGNORE during the handshake is ignored, as before."""
        transport_class = injecting(
            ClientTransport, conch_transport.MSG_IGNORE, conch_transport.MSG_NEWKEYS
        )
        client = self.connect(transport_class)
        self.assertTrue(client.authenticated.called, client.disconnect_reason)
        self.assertEqual(self.refusals(), [])
        self.assertEqual(self.at_new_keys, [(4, 3)])


class ServerRekeyTests(CatSessions):
    """The server starts a key exchange by volume and by time; the session carries on."""

    def setUp(self) -> None:
        self.harness = Harness(
            config=make_config(
                ciphers=(_CHACHA.decode(),),
                macs=(_ETM.decode(),),
                kex=("curve25519-sha256",),
                rekey_after_bytes=100_000,
                rekey_after_seconds=600.0,
            )
        )
        self.kexinits = 0
        send_kexinit = ServerTransport.sendKexInit

        def counting(transport: Any) -> None:
            self.kexinits += 1
            send_kexinit(transport)

        self.patch(ServerTransport, "sendKexInit", counting)

    def test_by_volume(self) -> None:
        """1 MB through ``cat`` with a 100 kB limit: several key exchanges, every byte back."""
        channel = self.cat(self.login(_CHACHA, _ETM))
        self.assertEqual(self.kexinits, 1)
        data = bytes(range(256)) * 4096
        for start in range(0, len(data), 16384):
            channel.write(data[start : start + 16384])
            self.harness.flush()
        self.assert_echoed(channel, data)
        self.assertGreater(self.kexinits, 5)
        events = self.harness.events_with("SSH_REKEY")
        self.assertEqual(len(events), self.kexinits - 1)
        for event in events:
            self.assertEqual((event["initiator"], event["reason"]), ("server", "volume"))
            self.assertGreaterEqual(max(event["bytesSent"], event["bytesReceived"]), 100_000)

    def test_by_time(self) -> None:
        """After ``rekeyAfterSeconds`` the server starts one, and again after as long."""
        channel = self.cat(self.login(_CHACHA, _ETM))
        self.harness.reactor.advance(599)
        self.harness.flush()
        self.assertEqual(self.kexinits, 1)
        self.harness.reactor.advance(1)
        self.harness.flush()
        self.assertEqual(self.kexinits, 2)
        [event] = self.harness.events_with("SSH_REKEY")
        self.assertEqual((event["initiator"], event["reason"]), ("server", "time"))
        channel.write(b"still here")
        self.harness.flush()
        self.harness.reactor.advance(600)
        self.harness.flush()
        self.assertEqual(self.kexinits, 3)
        self.assert_echoed(channel, b"still here")

    def cat_under_way(self) -> tuple[Client, ClientChannel]:
        """A client logged in, and its ``cat`` session with ``before `` echoed."""
        client = self.login(_CHACHA, _ETM)
        channel = self.cat(client)
        channel.write(b"before ")
        self.harness.flush()
        return client, channel

    def assert_one_exchange(self, client: Client, channel: ClientChannel, first_keys: Any) -> None:
        """The server sent one more KEXINIT, took new keys, and the session goes on."""
        self.assertEqual(self.kexinits, 2)
        self.assertIsNot(client.server.currentEncryptions, first_keys)
        channel.write(b"after")
        self.assert_echoed(channel, b"before during after")
        self.assertFalse(client.lost.called)

    def test_none_before_login(self) -> None:
        """A key exchange due before the login waits for it: OpenSSH's client refuses a
        KEXINIT during authentication, and sshd never sends one then."""
        client = self.login(_CHACHA, _ETM)
        server = client.server
        server.authenticated = False  # as during authentication
        server.rekey("time")
        self.harness.flush()
        self.assertEqual(self.kexinits, 1)
        server.authenticated = True
        # The login's service starts (a fresh one: the client is told of it after).
        server.setService(server.factory.services[b"ssh-connection"]())
        self.harness.flush()
        self.assertEqual(self.kexinits, 2)
        [event] = self.harness.events_with("SSH_REKEY")
        self.assertEqual(event["reason"], "time")

    def test_client_started(self) -> None:
        """A key exchange the client starts is logged as the client's."""
        client, channel = self.cat_under_way()
        first_keys = client.server.currentEncryptions
        client.transport.sendKexInit()
        channel.write(b"during ")
        self.harness.flush()
        self.assert_one_exchange(client, channel, first_keys)
        [event] = self.harness.events_with("SSH_REKEY")
        self.assertEqual((event["initiator"], event["reason"]), ("client", "client"))

    def test_crossed_kexinits(self) -> None:
        """The client's KEXINIT arrives while the server's is in flight: one exchange, data kept.

        Both ends sent KEXINIT before reading the other's (RFC 4253 7.1: each
        then takes the other's as the answer), with channel data queued
        behind them in both directions.
        """
        client, channel = self.cat_under_way()
        first_keys = client.server.currentEncryptions
        client.server.rekey()
        client.transport.sendKexInit()
        channel.write(b"during ")
        self.harness.flush()
        self.assert_one_exchange(client, channel, first_keys)

    def test_limit_reached_by_the_clients_kexinit(self) -> None:
        """The server's volume limit runs out on the client's own KEXINIT: still one exchange.

        The server starts its key exchange as it reads the packet, before it
        dispatches it; the client's KEXINIT then answers the server's.
        """
        client, channel = self.cat_under_way()
        first_keys = client.server.currentEncryptions
        # Every packet is over so small a limit, the server's own KEXINIT too.
        client.server.rekey_after_bytes = 1
        client.transport.sendKexInit()
        self.harness.flush()
        [event] = self.harness.events_with("SSH_REKEY")
        self.assertEqual(event["initiator"], "server")
        client.server.rekey_after_bytes = 0
        channel.write(b"during ")
        self.assert_one_exchange(client, channel, first_keys)

    def test_limit_reached_by_the_servers_answer(self) -> None:
        """The KEXINIT answering the client's crosses the limit: no second KEXINIT follows it."""
        client, channel = self.cat_under_way()
        first_keys = client.server.currentEncryptions
        # What went out under the current keys is 10 bytes short of the limit.
        client.server.rekey_after_bytes = client.server._bytes_out + 10
        client.transport.sendKexInit()
        channel.write(b"during ")
        self.harness.flush()
        self.assert_one_exchange(client, channel, first_keys)
        # Reading the client's KEXINIT crossed the limit before it was
        # dispatched: the server started (and logged) the one exchange.
        self.assertEqual(len(self.harness.events_with("SSH_REKEY")), 1)

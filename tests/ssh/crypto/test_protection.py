"""Every claimed cipher and MAC: round trips, tampering, sequence numbers."""

from __future__ import annotations

import os

from twisted.conch.ssh import transport as conch_transport
from twisted.trial.unittest import SynchronousTestCase

from conch_container.ssh.crypto.base import MAX_PACKET_LENGTH
from conch_container.ssh.crypto.codec import PacketReader
from conch_container.ssh.crypto.errors import PacketError
from conch_container.ssh.crypto.suite import AEAD_CIPHERS, PacketProtection
from tests.ssh.crypto.support import COMBINATIONS, IV, KEY, keyed, open_wire, plain_packet

SIZES = (0, 1, 15, 16, 17, 255, 4096, 32768)


class RoundTripTests(SynchronousTestCase):
    """What one end seals, the other opens."""

    def test_round_trip(self) -> None:
        """Payloads of many sizes, one after another, come back unchanged."""
        for cipher, mac in COMBINATIONS:
            sealer, opener = keyed(cipher, mac)
            for sequence, size in enumerate(SIZES):
                with self.subTest(cipher=cipher, mac=mac, size=size):
                    packet = plain_packet(os.urandom(size), sealer)
                    wire = b"".join(sealer.seal(sequence, packet))
                    self.assertEqual(open_wire(opener, sequence, wire), packet[4:])

    def test_sequence_wraps(self) -> None:
        """Packet 2**32 - 1 is followed by packet 0, as RFC 4253 section 6.4 says."""
        for cipher, mac in COMBINATIONS:
            sealer, opener = keyed(cipher, mac)
            for sequence in (0xFFFFFFFE, 0xFFFFFFFF, 0, 1):
                with self.subTest(cipher=cipher, mac=mac, sequence=sequence):
                    packet = plain_packet(os.urandom(40), sealer)
                    wire = b"".join(sealer.seal(sequence, packet))
                    self.assertEqual(open_wire(opener, sequence, wire), packet[4:])

    def test_gcm_invocation_counter_wraps(self) -> None:
        """AES-GCM's 64-bit invocation counter wraps to 0 (RFC 5647 section 7.1)."""
        iv = IV[:4] + b"\xff" * 8
        for cipher in (b"aes128-gcm@openssh.com", b"aes256-gcm@openssh.com"):
            sealer, opener = keyed(cipher, b"hmac-sha2-256", iv=iv)
            wrapped, _ = keyed(cipher, b"hmac-sha2-256", iv=IV[:4] + bytes(8))
            packet = plain_packet(b"\x02" + os.urandom(20), sealer)
            sealer.seal(0, packet)
            second = b"".join(sealer.seal(1, packet))
            self.assertEqual(second, b"".join(wrapped.seal(1, packet)))
            open_wire(
                opener, 0, b"".join(keyed(cipher, b"hmac-sha2-256", iv=iv)[0].seal(0, packet))
            )
            self.assertEqual(open_wire(opener, 1, second), packet[4:])


class TamperTests(SynchronousTestCase):
    """A changed byte anywhere, or the wrong packet number, is refused."""

    def test_flipped_bit_anywhere(self) -> None:
        """Flipping any bit after the length field fails the MAC or tag check."""
        for cipher, mac in COMBINATIONS:
            sealer, _ = keyed(cipher, mac)
            packet = plain_packet(os.urandom(30), sealer)
            wire = b"".join(sealer.seal(7, packet))
            for index in range(4, len(wire)):
                with self.subTest(cipher=cipher, mac=mac, index=index):
                    _, opener = keyed(cipher, mac)
                    tampered = bytearray(wire)
                    tampered[index] ^= 0x01
                    error = self.assertRaises(PacketError, open_wire, opener, 7, bytes(tampered))
                    self.assertEqual(error.reason, conch_transport.DISCONNECT_MAC_ERROR)

    def test_flipped_length(self) -> None:
        """A changed length is refused, by the length checks or, once enough arrived, the MAC."""
        for cipher, mac in COMBINATIONS:
            sealer, _ = keyed(cipher, mac)
            wire = b"".join(sealer.seal(7, plain_packet(os.urandom(30), sealer)))
            for index in range(4):
                with self.subTest(cipher=cipher, mac=mac, index=index):
                    _, opener = keyed(cipher, mac)
                    reader = PacketReader()
                    tampered = bytearray(wire)
                    tampered[index] ^= 0x10
                    # Whatever the length now says, the bytes that follow are enough.
                    reader.feed(bytes(tampered) + os.urandom(MAX_PACKET_LENGTH + 64))
                    self.assertRaises(PacketError, reader.next_payload, opener, 7)

    def test_out_of_order(self) -> None:
        """A packet opened in another one's place is refused.

        The MAC or tag covers the packet number (or, for AES-GCM, the
        invocation counter, which counts packets); ChaCha20-Poly1305's length
        key and classic framing's cipher state depend on it too.
        """
        for cipher, mac in COMBINATIONS:
            with self.subTest(cipher=cipher, mac=mac):
                sealer, opener = keyed(cipher, mac)
                sealer.seal(5, plain_packet(os.urandom(30), sealer))
                second = b"".join(sealer.seal(6, plain_packet(os.urandom(30), sealer)))
                reader = PacketReader()
                reader.feed(second + os.urandom(MAX_PACKET_LENGTH + 64))
                # Refused for its MAC, or for the length a wrong keystream decrypted.
                self.assertRaises(PacketError, reader.next_payload, opener, 5)


class NegotiationTests(SynchronousTestCase):
    """:class:`PacketProtection` and Conch's negotiation."""

    def test_aead_needs_no_mac(self) -> None:
        """With an AEAD cipher no MAC needs to be negotiated (OpenSSH PROTOCOL 1.6)."""
        for cipher in AEAD_CIPHERS:
            protection = PacketProtection(cipher, cipher, None, None)
            self.assertNotIn(None, protection.__dict__.values())
            self.assertEqual(protection.inMACType, cipher)

    def test_block_cipher_needs_a_mac(self) -> None:
        """Without a common MAC a block cipher leaves a None, which fails Conch's check."""
        protection = PacketProtection(b"aes128-ctr", b"aes128-ctr", None, None)
        self.assertIn(None, protection.__dict__.values())

    def test_short_key_refused(self) -> None:
        """ChaCha20-Poly1305 needs all 64 bytes of key material."""
        protection = PacketProtection(
            b"chacha20-poly1305@openssh.com", b"chacha20-poly1305@openssh.com", None, None
        )
        self.assertRaises(ValueError, protection.setKeys, IV, KEY[:32], IV, KEY[:32], b"", b"")

"""The packet reader and framing: any split of the byte stream, bounded buffering."""

from __future__ import annotations

import os
import struct
from typing import Any

from twisted.conch.ssh import transport as conch_transport
from twisted.trial.unittest import SynchronousTestCase

from conch_container.ssh.crypto.base import MAX_PACKET_LENGTH
from conch_container.ssh.crypto.codec import PacketReader, frame
from conch_container.ssh.crypto.errors import PacketError
from tests.ssh.crypto.support import COMBINATIONS, keyed

MESSAGES = (b"\x02", b"\x5e" + os.urandom(100), b"\x5e" + os.urandom(5000), b"\x15")


def sealed_stream(cipher: bytes, mac: bytes) -> tuple[bytes, Any]:
    """:data:`MESSAGES` sealed as packets 0, 1, ... back to back, and the matching opener."""
    sealer, opener = keyed(cipher, mac)
    stream = b"".join(
        b"".join(sealer.seal(n, frame(m[:1], m[1:], sealer))) for n, m in enumerate(MESSAGES)
    )
    return stream, opener


def read_all(reader: PacketReader, opener: Any, received: list[bytes]) -> None:
    """Take every whole payload out of the reader, numbering them on from ``received``."""
    payload = reader.next_payload(opener, len(received))
    while payload is not None:
        received.append(payload)
        payload = reader.next_payload(opener, len(received))


class ReaderTests(SynchronousTestCase):
    """:class:`PacketReader`."""

    def test_every_split(self) -> None:
        """However the stream is cut into reads, the same payloads come out."""
        for cipher, mac in COMBINATIONS:
            stream, _ = sealed_stream(cipher, mac)
            for size in (*range(1, 40), 63, 64, 65, 1000, 4096, len(stream)):
                with self.subTest(cipher=cipher, mac=mac, size=size):
                    _, opener = sealed_stream(cipher, mac)
                    reader = PacketReader()
                    received: list[bytes] = []
                    for start in range(0, len(stream), size):
                        reader.feed(stream[start : start + size])
                        read_all(reader, opener, received)
                    self.assertEqual(received, list(MESSAGES))
                    self.assertEqual(len(reader), 0)

    def test_one_byte_at_a_time(self) -> None:
        """Every split point, at once: one byte per read."""
        stream, opener = sealed_stream(b"chacha20-poly1305@openssh.com", b"hmac-sha2-256")
        reader = PacketReader()
        received: list[bytes] = []
        for index in range(len(stream)):
            reader.feed(stream[index : index + 1])
            read_all(reader, opener, received)
        self.assertEqual(received, list(MESSAGES))

    def test_several_packets_per_read(self) -> None:
        """A read holding several packets yields them all, in order."""
        for cipher, mac in COMBINATIONS:
            with self.subTest(cipher=cipher, mac=mac):
                stream, opener = sealed_stream(cipher, mac)
                reader = PacketReader()
                reader.feed(stream)
                received: list[bytes] = []
                read_all(reader, opener, received)
                self.assertEqual(received, list(MESSAGES))

    def test_oversized_length_refused_before_buffering(self) -> None:
        """A length over 256 KiB is refused as soon as it is read, with a protocol error."""
        _, opener = keyed(b"aes128-ctr", b"hmac-sha2-256-etm@openssh.com")
        reader = PacketReader()
        reader.feed(struct.pack(">L", MAX_PACKET_LENGTH + 16))
        error = self.assertRaises(PacketError, reader.next_payload, opener, 0)
        self.assertEqual(error.reason, conch_transport.DISCONNECT_PROTOCOL_ERROR)

    def test_largest_length_waits(self) -> None:
        """A length of exactly 256 KiB is allowed: the reader waits for the rest."""
        _, opener = keyed(b"aes128-gcm@openssh.com", b"hmac-sha2-256")
        reader = PacketReader()
        reader.feed(struct.pack(">L", MAX_PACKET_LENGTH))
        self.assertIsNone(reader.next_payload(opener, 0))

    def test_misaligned_and_short_lengths_refused(self) -> None:
        """A length that is not whole blocks, or too short for any packet, is refused."""
        _, opener = keyed(b"aes128-gcm@openssh.com", b"hmac-sha2-256")
        for length in (0, 5, 33, 1001):
            with self.subTest(length=length):
                reader = PacketReader()
                reader.feed(struct.pack(">L", length))
                error = self.assertRaises(PacketError, reader.next_payload, opener, 0)
                self.assertEqual(error.reason, conch_transport.DISCONNECT_PROTOCOL_ERROR)

    def test_bad_padding_refused(self) -> None:
        """Padding under 4 bytes, or longer than the packet, is refused."""
        for padding in (3, 250):
            with self.subTest(padding=padding):
                sealer, opener = keyed(b"aes128-gcm@openssh.com", b"hmac-sha2-256")
                packet = struct.pack(">LB", 28, padding) + bytes(27)
                reader = PacketReader()
                reader.feed(b"".join(sealer.seal(0, packet)))
                error = self.assertRaises(PacketError, reader.next_payload, opener, 0)
                self.assertEqual(error.reason, conch_transport.DISCONNECT_PROTOCOL_ERROR)


class FrameTests(SynchronousTestCase):
    """:func:`frame`."""

    def test_padding(self) -> None:
        """Padding is 4 or more bytes and aligns what the framing encrypts to the block size."""
        for cipher, mac in COMBINATIONS:
            sealer, _ = keyed(cipher, mac)
            for size in range(0, 70):
                with self.subTest(cipher=cipher, mac=mac, size=size):
                    packet = frame(b"\x5e", bytes(size), sealer)
                    length, padding = struct.unpack_from(">LB", packet)
                    self.assertEqual(len(packet), 4 + length)
                    self.assertEqual(length, 1 + 1 + size + padding)
                    self.assertGreaterEqual(padding, 4)
                    self.assertLess(padding, 4 + sealer.block_size)
                    aligned = length if sealer.length_outside else length + 4
                    self.assertEqual(aligned % sealer.block_size, 0)

    def test_random_padding(self) -> None:
        """The padding is random, so equal messages do not make equal packets."""
        sealer, _ = keyed(b"aes128-ctr", b"hmac-sha2-256")
        self.assertNotEqual(frame(b"\x5e", b"x", sealer), frame(b"\x5e", b"x", sealer))

"""Keys and packets for the packet-protection tests."""

from __future__ import annotations

import struct

from conch_container.ssh.crypto.base import PacketOpener, PacketSealer
from conch_container.ssh.crypto.suite import AEAD_CIPHERS, PacketProtection

KEY = bytes(range(64))
IV = bytes(range(100, 116))
INTEGRITY = bytes(range(128, 192))

#: The MACs claimed for the block ciphers, both framings.
MACS = (
    b"hmac-sha2-256-etm@openssh.com",
    b"hmac-sha2-512-etm@openssh.com",
    b"hmac-sha2-256",
    b"hmac-sha2-512",
)
BLOCK_CIPHERS = (b"aes128-ctr", b"aes192-ctr", b"aes256-ctr")

#: Every (cipher, MAC) combination the gateway claims; AEAD ciphers once each.
COMBINATIONS: tuple[tuple[bytes, bytes], ...] = (
    *((cipher, b"hmac-sha2-256") for cipher in AEAD_CIPHERS),
    *((cipher, mac) for cipher in BLOCK_CIPHERS for mac in MACS),
)


def keyed(
    cipher: bytes, mac: bytes, key: bytes = KEY, iv: bytes = IV
) -> tuple[PacketSealer, PacketOpener]:
    """A sealer and an opener with the same keys, as the two ends of one direction."""
    sending = PacketProtection(cipher, cipher, mac, mac)
    sending.setKeys(iv, key, iv, key, INTEGRITY, INTEGRITY)
    receiving = PacketProtection(cipher, cipher, mac, mac)
    receiving.setKeys(iv, key, iv, key, INTEGRITY, INTEGRITY)
    return sending.sealer, receiving.opener


def plain_packet(payload: bytes, sealer: PacketSealer, padding_byte: int = 0xA0) -> bytes:
    """A plaintext packet for ``payload`` with deterministic padding, aligned for ``sealer``."""
    block = sealer.block_size
    body = 1 + len(payload)
    padding = block - (body if sealer.length_outside else body + 4) % block
    if padding < 4:
        padding += block
    fill = bytes((padding_byte + i) & 0xFF for i in range(padding))
    return struct.pack(">LB", body + padding, padding) + payload + fill


def open_wire(opener: PacketOpener, sequence: int, wire: bytes) -> bytes:
    """What the opener makes of one whole packet on the wire (the plaintext after the length)."""
    length = opener.packet_length(sequence, wire[: opener.head_size])
    assert len(wire) == 4 + length + opener.tag_size, (len(wire), length)
    return opener.open(sequence, memoryview(wire))

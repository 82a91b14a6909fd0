"""``chacha20-poly1305@openssh.com``, as OpenSSH's PROTOCOL.chacha20poly1305 specifies.

The 64 bytes of key material are two ChaCha20 keys: the first 32 bytes are
K_2, which encrypts the packet and yields the per-packet Poly1305 key, the
last 32 are K_1, which only encrypts the 4-byte length. Both run with the
sequence number as a 64-bit big-endian nonce. The Poly1305 key is the first
32 bytes of K_2's block 0; the packet is encrypted from block 1 on; the tag
covers the encrypted length and the ciphertext, and is checked before
anything but the length is decrypted.

OpenSSH uses ChaCha20's original layout (64-bit block counter, 64-bit nonce);
``cryptography`` takes a 16-byte value that it reads as a 32-bit
little-endian counter and a 96-bit nonce. Writing the counter as 64-bit
little-endian followed by the big-endian sequence number gives the same
keystream as long as the counter stays below 2**32, which a packet of at most
256 KiB (4096 blocks) never reaches.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.poly1305 import Poly1305

from conch_container.ssh.crypto.base import checked_length
from conch_container.ssh.crypto.errors import bad_mac

NAME = b"chacha20-poly1305@openssh.com"
KEY_SIZE = 64
_TAG_SIZE = 16
_BLOCK_SIZE = 8
#: Encrypting one block of zeros yields the Poly1305 key and leaves the
#: keystream at block 1, where the packet starts.
_POLY_KEY_BLOCK = bytes(64)


def _keystream(key: bytes, sequence: int) -> Cipher[None]:
    # Block counter 0 (64-bit little-endian), then the nonce.
    return Cipher(algorithms.ChaCha20(key, bytes(8) + struct.pack(">Q", sequence)), None)


class _ChaCha20Poly1305:
    """Keys and keystreams shared by both directions' classes."""

    block_size = _BLOCK_SIZE
    tag_size = _TAG_SIZE

    def __init__(self, key: bytes) -> None:
        if len(key) < KEY_SIZE:
            raise ValueError(f"{NAME.decode()} needs {KEY_SIZE} bytes of key")
        self._main_key = key[:32]
        self._length_key = key[32:KEY_SIZE]

    def _crypt_length(self, sequence: int, data: bytes | memoryview) -> bytes:
        return _keystream(self._length_key, sequence).encryptor().update(data)


class ChaChaSealer(_ChaCha20Poly1305):
    """Outgoing ``chacha20-poly1305@openssh.com``."""

    length_outside = True

    def seal(self, sequence: int, packet: bytes) -> list[bytes]:
        """``K_1(length) || K_2(rest) || poly1305(both)``."""
        stream = _keystream(self._main_key, sequence).encryptor()
        poly_key = stream.update(_POLY_KEY_BLOCK)[:32]
        sealed = self._crypt_length(sequence, packet[:4]) + stream.update(memoryview(packet)[4:])
        return [sealed, Poly1305.generate_tag(poly_key, sealed)]


class ChaChaOpener(_ChaCha20Poly1305):
    """Incoming ``chacha20-poly1305@openssh.com``."""

    head_size = 4

    def packet_length(self, sequence: int, head: bytes) -> int:
        """The length, decrypted with K_1."""
        (length,) = struct.unpack(">L", self._crypt_length(sequence, head))
        return checked_length(length, _BLOCK_SIZE, length_outside=True)

    def open(self, sequence: int, wire: memoryview) -> bytes:
        """Check the tag, then decrypt everything after the length."""
        end = len(wire) - _TAG_SIZE
        stream = _keystream(self._main_key, sequence).encryptor()
        poly_key = stream.update(_POLY_KEY_BLOCK)[:32]
        try:
            Poly1305.verify_tag(poly_key, wire[:end], bytes(wire[end:]))
        except InvalidSignature:
            raise bad_mac() from None
        return stream.update(wire[4:end])

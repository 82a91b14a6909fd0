"""``aes128-gcm@openssh.com`` and ``aes256-gcm@openssh.com`` (RFC 5647 as OpenSSH runs them).

The packet length is sent in clear and authenticated as associated data;
everything after it is encrypted and followed by a 16-byte tag. The 12-byte
nonce is the first 12 bytes of the derived IV: 4 fixed bytes and a 64-bit
big-endian invocation counter that goes up by one per packet (and wraps).
The negotiated MAC is not used (OpenSSH PROTOCOL section 1.6).
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from conch_container.ssh.crypto.base import checked_length
from conch_container.ssh.crypto.errors import bad_mac

#: Key sizes by SSH name.
KEY_SIZES: dict[bytes, int] = {
    b"aes256-gcm@openssh.com": 32,
    b"aes128-gcm@openssh.com": 16,
}
_BLOCK_SIZE = 16
_TAG_SIZE = 16
_COUNTER_MASK = 0xFFFFFFFFFFFFFFFF


class _AESGCM:
    """The key and the invocation counter of one direction."""

    block_size = _BLOCK_SIZE
    tag_size = _TAG_SIZE

    def __init__(self, name: bytes, key: bytes, iv: bytes) -> None:
        self._aead = AESGCM(key[: KEY_SIZES[name]])
        self._fixed = iv[:4]
        (self._counter,) = struct.unpack(">Q", iv[4:12])

    def _next_nonce(self) -> bytes:
        nonce = self._fixed + struct.pack(">Q", self._counter)
        self._counter = (self._counter + 1) & _COUNTER_MASK
        return nonce


class GcmSealer(_AESGCM):
    """Outgoing AES-GCM."""

    length_outside = True

    def seal(self, sequence: int, packet: bytes) -> list[bytes]:
        """``length || E(rest) || tag``, the length as associated data."""
        length = packet[:4]
        return [length, self._aead.encrypt(self._next_nonce(), memoryview(packet)[4:], length)]


class GcmOpener(_AESGCM):
    """Incoming AES-GCM."""

    head_size = 4

    def packet_length(self, sequence: int, head: bytes) -> int:
        """The length, in clear."""
        (length,) = struct.unpack_from(">L", head)
        return checked_length(length, _BLOCK_SIZE, length_outside=True)

    def open(self, sequence: int, wire: memoryview) -> bytes:
        """Check the tag and decrypt."""
        try:
            return self._aead.decrypt(self._next_nonce(), wire[4:], wire[:4])
        except InvalidTag:
            raise bad_mac() from None

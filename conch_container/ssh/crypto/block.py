"""Block and stream ciphers with a separate MAC: the RFC 4253 framing and OpenSSH's ``-etm`` one.

The ciphers are Conch's (its ``SSHCiphers.cipherMap``: AES and 3DES in CTR
and CBC mode), run by ``cryptography``; ``none`` is the identity used before
the first key exchange.

Classic framing encrypts the whole packet, length included, and MACs the
plaintext, so the receiver must decrypt the first block to learn the length
(and keep it: the cipher's state has moved on). Encrypt-then-MAC leaves the
length in clear, encrypts the rest and MACs the ciphertext, which the receiver
checks before decrypting.
"""

from __future__ import annotations

import struct
from typing import Any, Protocol

from cryptography.hazmat.primitives.ciphers import Cipher
from twisted.conch.ssh.transport import SSHCiphers

from conch_container.ssh.crypto.base import checked_length
from conch_container.ssh.crypto.errors import bad_mac
from conch_container.ssh.crypto.mac import Mac


class _Stream(Protocol):
    def update(self, data: bytes | memoryview) -> bytes: ...


class _Identity:
    """The ``none`` cipher."""

    def update(self, data: bytes | memoryview) -> bytes:
        return bytes(data)


#: The block size ``none`` pads to (RFC 4253: at least 8).
_NONE_BLOCK_SIZE = 8


def block_ciphers() -> tuple[bytes, ...]:
    """The names of the block ciphers Conch knows, ``none`` left out."""
    return tuple(name for name in SSHCiphers.cipherMap if name != b"none")


def _cipher(name: bytes, key: bytes, iv: bytes) -> tuple[Cipher[Any] | None, int]:
    algorithm: Any
    mode: Any
    algorithm, key_size, mode = SSHCiphers.cipherMap[name]
    if algorithm is None:
        return None, _NONE_BLOCK_SIZE
    block: int = algorithm.block_size // 8
    return Cipher(algorithm(key[:key_size]), mode(iv[:block])), block


class _BlockDirection:
    """One direction's cipher stream and MAC."""

    _decrypts = False

    def __init__(self, name: bytes, key: bytes, iv: bytes, mac: Mac | None) -> None:
        cipher, self.block_size = _cipher(name, key, iv)
        self._stream: _Stream
        if cipher is None:
            self._stream = _Identity()
        else:
            self._stream = cipher.decryptor() if self._decrypts else cipher.encryptor()
        self._mac = mac
        self.length_outside = mac is not None and mac.spec.etm
        self.tag_size = 0 if mac is None else mac.spec.size


class BlockSealer(_BlockDirection):
    """Encrypts with a block or CTR cipher and appends a classic or EtM MAC."""

    def seal(self, sequence: int, packet: bytes) -> list[bytes]:
        """Classic: ``E(packet) || MAC(plain)``; EtM: ``length || E(rest) || MAC(cipher)``."""
        if self._mac is None:
            return [self._stream.update(packet)]
        if not self.length_outside:
            return [self._stream.update(packet), self._mac.tag(sequence, packet)]
        sealed = packet[:4] + self._stream.update(memoryview(packet)[4:])
        return [sealed, self._mac.tag(sequence, sealed)]


class BlockOpener(_BlockDirection):
    """The receiving side of :class:`BlockSealer`."""

    _decrypts = True

    def __init__(self, name: bytes, key: bytes, iv: bytes, mac: Mac | None) -> None:
        super().__init__(name, key, iv, mac)
        self.head_size = 4 if self.length_outside else self.block_size
        # Classic framing: the first block, decrypted to read the length.
        self._first = b""

    def packet_length(self, sequence: int, head: bytes) -> int:
        """The length, in clear (EtM) or from the decrypted first block (classic)."""
        if not self.length_outside:
            self._first = self._stream.update(head)
            head = self._first
        (length,) = struct.unpack_from(">L", head)
        return checked_length(length, self.block_size, self.length_outside)

    def open(self, sequence: int, wire: memoryview) -> bytes:
        """Check the MAC and decrypt; MAC before decryption for EtM, after for classic."""
        end = len(wire) - self.tag_size
        if self.length_outside:
            assert self._mac is not None
            if not self._mac.verify(sequence, wire[:end], wire[end:]):
                raise bad_mac()
            return self._stream.update(wire[4:end])
        first, self._first = self._first, b""
        plain = first + self._stream.update(wire[self.head_size : end])
        if self._mac is not None and not self._mac.verify(sequence, plain, wire[end:]):
            raise bad_mac()
        return plain[4:]

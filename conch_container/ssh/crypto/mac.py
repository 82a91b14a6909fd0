"""HMAC message authentication codes, classic and encrypt-then-MAC.

A classic MAC (RFC 4253 section 6.4) covers ``uint32 sequence || plaintext
packet``; an ``-etm@openssh.com`` MAC (OpenSSH PROTOCOL section 1.5) covers
``uint32 sequence || packet_length || ciphertext``, so the receiver checks it
before decrypting anything. The HMAC itself is the same either way.
"""

from __future__ import annotations

import hmac
import struct

import attrs


@attrs.frozen
class MacSpec:
    """An SSH MAC algorithm.

    :ivar digest: the ``hashlib`` name of the hash.
    :ivar size: the tag length, which is also the key length (RFC 4253).
    :ivar etm: True for encrypt-then-MAC.
    """

    digest: str
    size: int
    etm: bool

    def keyed(self, key: bytes) -> Mac:
        """The MAC with its key (the first :attr:`size` bytes of the derived key)."""
        return Mac(self, key[: self.size])


@attrs.frozen
class Mac:
    """One direction's MAC: a spec and a key."""

    spec: MacSpec
    key: bytes = attrs.field(repr=False)

    def tag(self, sequence: int, data: bytes | memoryview) -> bytes:
        """The MAC of ``data`` as packet number ``sequence``."""
        return hmac.digest(self.key, struct.pack(">L", sequence) + data, self.spec.digest)

    def verify(self, sequence: int, data: bytes | memoryview, tag: bytes | memoryview) -> bool:
        """True if ``tag`` is the MAC of ``data``; compared in constant time."""
        return hmac.compare_digest(self.tag(sequence, data), tag)


#: Every MAC the server implements, by SSH name: Conch's own classic ones and
#: OpenSSH's encrypt-then-MAC variants of the SHA-2 ones.
MACS: dict[bytes, MacSpec] = {
    b"hmac-sha2-512-etm@openssh.com": MacSpec("sha512", 64, etm=True),
    b"hmac-sha2-256-etm@openssh.com": MacSpec("sha256", 32, etm=True),
    b"hmac-sha2-512": MacSpec("sha512", 64, etm=False),
    b"hmac-sha2-384": MacSpec("sha384", 48, etm=False),
    b"hmac-sha2-256": MacSpec("sha256", 32, etm=False),
    b"hmac-sha1": MacSpec("sha1", 20, etm=False),
    b"hmac-md5": MacSpec("md5", 16, etm=False),
}

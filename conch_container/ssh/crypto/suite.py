"""The negotiated algorithms of a connection, and the sealer and opener they make.

:class:`PacketProtection` stands in for Conch's ``SSHCiphers`` in the
transport's ``nextEncryptions``/``currentEncryptions``: it keeps the four
negotiated names (Conch reads them for ``isEncrypted``/``isVerified`` and to
check that negotiation succeeded) and takes the derived keys through the same
``setKeys`` call, but builds this package's sealer and opener instead of
Conch's cipher objects.
"""

from __future__ import annotations

from typing import Any

from conch_container.ssh.crypto import chacha, gcm
from conch_container.ssh.crypto.base import PacketOpener, PacketSealer
from conch_container.ssh.crypto.block import BlockOpener, BlockSealer, block_ciphers
from conch_container.ssh.crypto.mac import MACS

#: Ciphers that authenticate the packet themselves: no MAC is negotiated for them.
AEAD_CIPHERS: tuple[bytes, ...] = (chacha.NAME, *gcm.KEY_SIZES)


def implemented_ciphers() -> tuple[bytes, ...]:
    """Every cipher the transport can run, the AEAD ones first."""
    return AEAD_CIPHERS + block_ciphers()


def implemented_macs() -> tuple[bytes, ...]:
    """Every MAC the transport can run, the encrypt-then-MAC ones first."""
    return tuple(MACS)


#: The sealer and opener classes of each framing: ChaCha20-Poly1305, AES-GCM, block cipher.
_SEALERS = (chacha.ChaChaSealer, gcm.GcmSealer, BlockSealer)
_OPENERS = (chacha.ChaChaOpener, gcm.GcmOpener, BlockOpener)


def _keyed(
    classes: tuple[Any, Any, Any],
    cipher: bytes,
    mac: bytes,
    key: bytes,
    iv: bytes,
    integrity: bytes,
) -> Any:
    """One direction's sealer or opener (per ``classes``) for the negotiated names."""
    chacha_class, gcm_class, block_class = classes
    if cipher == chacha.NAME:
        return chacha_class(key)
    if cipher in gcm.KEY_SIZES:
        return gcm_class(cipher, key, iv)
    spec = MACS.get(mac)
    return block_class(cipher, key, iv, None if spec is None else spec.keyed(integrity))


class PacketProtection:
    """Both directions' algorithms, and once keyed, their sealer and opener.

    The attribute names are Conch's (``SSHCiphers``), which reads them.
    A name is None when negotiation found no common algorithm, which Conch
    turns into a key-exchange failure. For an AEAD cipher the MAC name is the
    cipher's own: its MAC is implicit, and whatever MAC negotiation picked,
    or failed to pick, is not used (as OpenSSH does).
    """

    def __init__(
        self,
        outCipType: bytes | None,
        inCipType: bytes | None,
        outMACType: bytes | None,
        inMACType: bytes | None,
    ) -> None:
        self.outCipType = outCipType
        self.inCipType = inCipType
        self.outMACType = outCipType if outCipType in AEAD_CIPHERS else outMACType
        self.inMACType = inCipType if inCipType in AEAD_CIPHERS else inMACType
        self.sealer: PacketSealer = BlockSealer(b"none", b"", b"", None)
        self.opener: PacketOpener = BlockOpener(b"none", b"", b"", None)
        self.keyed = False

    @property
    def encBlockSize(self) -> int:
        """0 until keyed: Conch's client transport reads it to tell whether its keys are set."""
        return self.sealer.block_size if self.keyed else 0

    def setKeys(
        self,
        outIV: bytes,
        outKey: bytes,
        inIV: bytes,
        inKey: bytes,
        outInteg: bytes,
        inInteg: bytes,
    ) -> None:
        """Build the sealer and opener from the keys the key exchange derived."""
        assert self.outCipType is not None and self.inCipType is not None
        assert self.outMACType is not None and self.inMACType is not None
        self.sealer = _keyed(_SEALERS, self.outCipType, self.outMACType, outKey, outIV, outInteg)
        self.opener = _keyed(_OPENERS, self.inCipType, self.inMACType, inKey, inIV, inInteg)
        self.keyed = True


def unprotected() -> PacketProtection:
    """The protection before the first key exchange: ``none`` both ways."""
    return PacketProtection(b"none", b"none", b"none", b"none")

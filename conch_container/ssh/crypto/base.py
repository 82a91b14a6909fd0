"""What a packet protection is: one direction's sealer or opener.

The transport builds the plaintext packet (``uint32 packet_length``,
``byte padding_length``, payload, padding) and asks the sealer for the bytes
to send. On the way in, it asks the opener for the packet length once
:attr:`PacketOpener.head_size` bytes are there, and for the plaintext once
the whole packet (length, body and tag) is.
"""

from __future__ import annotations

from typing import Protocol

from conch_container.ssh.crypto.errors import bad_length

#: Sequence numbers are uint32 and wrap (RFC 4253 section 6.4).
SEQUENCE_MASK = 0xFFFFFFFF


class PacketSealer(Protocol):
    """Protects outgoing packets.

    :ivar block_size: the padded packet is a multiple of this.
    :ivar length_outside: True when the length field is not part of the
        encrypted, padded block (``-etm`` MACs and AEAD ciphers).
    """

    block_size: int
    length_outside: bool

    def seal(self, sequence: int, packet: bytes) -> list[bytes]:
        """The wire bytes for one plaintext ``packet`` (length field first)."""


class PacketOpener(Protocol):
    """Checks and decrypts incoming packets.

    :ivar head_size: how many bytes :meth:`packet_length` needs.
    :ivar tag_size: how many bytes of MAC or tag follow ``4 + packet_length``.
    """

    head_size: int
    tag_size: int

    def packet_length(self, sequence: int, head: bytes) -> int:
        """The packet length announced by the first :attr:`head_size` bytes.

        :raises PacketError: if the length does not fit the framing.
        """

    def open(self, sequence: int, wire: memoryview) -> bytes:
        """Verify and decrypt a whole packet; the plaintext after the length field.

        ``wire`` holds exactly ``4 + packet_length + tag_size`` bytes.

        :raises PacketError: if the MAC or tag does not verify.
        """


#: The largest ``packet_length`` accepted, as OpenSSH's ``PACKET_MAX_SIZE``:
#: four times the 32 KiB channel packets Conch and OpenSSH use, so that no
#: honest peer comes near it, while a corrupt or hostile length cannot make
#: the receiver buffer more than this.
MAX_PACKET_LENGTH = 256 * 1024

#: The smallest ``packet_length``: padding length, message type, four bytes of padding.
MIN_PACKET_LENGTH = 1 + 1 + 4


def checked_length(length: int, block_size: int, length_outside: bool) -> int:
    """``length`` if a packet of that length fits the framing.

    :raises PacketError: otherwise (too short, too long, not block-aligned).
    """
    if length < MIN_PACKET_LENGTH or length > MAX_PACKET_LENGTH:
        raise bad_length(f"bad packet length {length}")
    aligned = length if length_outside else length + 4
    if aligned % block_size:
        raise bad_length(f"packet length {length} not a multiple of the block size")
    return length

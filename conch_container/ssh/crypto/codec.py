"""Splitting the incoming byte stream into packets, and padding outgoing ones.

The reader keeps what arrived in one ``bytearray`` and consumes it from the
front (CPython makes that cheap: no copy of what remains); packets are cut
out through a ``memoryview``. It asks for a packet's length as soon as the
opener can tell it and refuses one over the limit before buffering it, so
the buffer never holds more than one packet plus one read from the socket.
"""

from __future__ import annotations

import os
import struct

from conch_container.ssh.crypto.base import PacketOpener, PacketSealer
from conch_container.ssh.crypto.errors import bad_length

#: RFC 4253 section 6: at least four bytes of padding.
_MIN_PADDING = 4


class PacketReader:
    """Buffers incoming bytes and returns whole, verified payloads."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        # The current packet's length, once its head was read: the opener's
        # state has moved past the head, so it must not be asked again.
        self._length: int | None = None

    def __len__(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        """Add bytes received from the peer."""
        self._buffer += data

    def next_payload(self, opener: PacketOpener, sequence: int) -> bytes | None:
        """The next packet's payload (message type first), or None until it is all here.

        :raises PacketError: for a length the framing does not allow, bad
            padding, or a MAC or tag that does not verify.
        """
        buffer = self._buffer
        length = self._length
        if length is None:
            if len(buffer) < opener.head_size:
                return None
            length = opener.packet_length(sequence, bytes(buffer[: opener.head_size]))
            self._length = length
        size = 4 + length + opener.tag_size
        if len(buffer) < size:
            return None
        # The view is a temporary: gone when open returns, so the buffer
        # can shrink (a live view would make the del below fail).
        plain = opener.open(sequence, memoryview(buffer)[:size])
        del buffer[:size]
        self._length = None
        return _unpad(plain)


def _unpad(plain: bytes) -> bytes:
    padding = plain[0]
    if padding < _MIN_PADDING or padding + 2 > len(plain):
        raise bad_length(f"bad padding length {padding}")
    return plain[1 : len(plain) - padding]


def frame(message: bytes, payload: bytes, sealer: PacketSealer) -> bytes:
    """The plaintext packet for ``message + payload``, padded for ``sealer``.

    ``message`` is the message-type byte (or empty when the payload is
    compressed and already carries it); the two are joined with the length,
    padding length and padding in one copy.
    """
    block = sealer.block_size
    body = 1 + len(message) + len(payload)
    padding = block - (body if sealer.length_outside else body + 4) % block
    if padding < _MIN_PADDING:
        padding += block
    return b"".join(
        (struct.pack(">LB", body + padding, padding), message, payload, os.urandom(padding))
    )

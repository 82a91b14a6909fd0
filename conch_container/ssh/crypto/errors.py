"""Why an incoming packet was refused."""

from __future__ import annotations

from twisted.conch.ssh import transport as conch_transport


class PacketError(Exception):
    """A packet the transport must not accept; the connection ends with ``reason``.

    :ivar reason: the SSH disconnect reason code sent to the peer.
    :ivar description: a short, secret-free text for the peer and the log.
    """

    def __init__(self, reason: int, description: str) -> None:
        super().__init__(description)
        self.reason = reason
        self.description = description


def bad_length(description: str) -> PacketError:
    """A packet length or padding the framing does not allow."""
    return PacketError(conch_transport.DISCONNECT_PROTOCOL_ERROR, description)


def bad_mac() -> PacketError:
    """An authentication tag or MAC that does not verify."""
    return PacketError(conch_transport.DISCONNECT_MAC_ERROR, "bad MAC")

"""Holding every session's output back while the client's socket does not drain.

The SSH window bounds what the gateway sends ahead of the client's reading,
but the client chooses the window, up to 2^32-1 bytes. A client that
announces a huge window and then stops reading its socket would have the
gateway pile output up in the TCP transport's write buffer. That buffer is
the second thing output waits for: the connection's
:class:`TransportGate` is registered with the TCP transport as a streaming
producer, so the transport pauses it when more than its ``bufferSize`` is
waiting to be sent and resumes it once that was sent; the gate passes both on
to every session channel of the connection.
"""

from __future__ import annotations

from typing import Any, Protocol
from weakref import WeakKeyDictionary

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer


class GatedChannel(Protocol):
    """What the gate needs of a channel."""

    def transport_paused(self) -> None:
        """Hold output back: the socket does not drain."""

    def transport_resumed(self) -> None:
        """Output may flow again."""


@implementer(IPushProducer)
class TransportGate:
    """The producer side of one connection's TCP transport, shared by its channels."""

    def __init__(self) -> None:
        self._channels: list[GatedChannel] = []
        self._paused = False
        self._first_resumed = 0

    @property
    def paused(self) -> bool:
        """Whether the socket is not draining now."""
        return self._paused

    def add(self, channel: GatedChannel) -> None:
        """Gate ``channel``'s output from now on (held back at once if paused)."""
        self._channels.append(channel)
        if self._paused:
            channel.transport_paused()

    def remove(self, channel: GatedChannel) -> None:
        """Stop gating ``channel``."""
        if channel in self._channels:
            self._channels.remove(channel)

    def pauseProducing(self) -> None:
        """The transport's buffer is full: hold back every channel."""
        self._paused = True
        for channel in list(self._channels):
            channel.transport_paused()

    def resumeProducing(self) -> None:
        """The transport's buffer drained: let the channels write again.

        A channel may fill the buffer again while being resumed, and the
        transport then pauses the gate at once; the channels not yet resumed
        stay held. So each resume starts with the next channel in turn,
        and no channel is always the one that gets the room.
        """
        self._paused = False
        channels = list(self._channels)
        if not channels:
            return
        start = self._first_resumed % len(channels)
        self._first_resumed = start + 1
        for channel in channels[start:] + channels[:start]:
            if self._paused:
                return
            channel.transport_resumed()

    def stopProducing(self) -> None:
        """The connection is gone: nothing can be sent any more."""
        self.pauseProducing()
        self._channels = []


#: One gate per TCP transport: a transport takes one producer, shared by all
#: channels of its connection; forgotten with the transport.
_GATES: WeakKeyDictionary[Any, TransportGate] = WeakKeyDictionary()


def transport_gate(connection: Any) -> TransportGate:
    """The gate of ``connection``'s TCP transport, registered with it on first use."""
    socket_transport = connection.transport.transport
    gate = _GATES.get(socket_transport)
    if gate is None:
        gate = TransportGate()
        socket_transport.registerProducer(gate, True)
        _GATES[socket_transport] = gate
    return gate

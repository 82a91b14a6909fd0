"""Autobahn's protocol timers on the reactor, one cancellable call each.

Autobahn schedules a WebSocket's handshake and ping timeouts through a
batched timer (txaio's): timers falling in the same 200 ms bucket share one
reactor call, and cancelling a timer leaves its bucket's call scheduled until
it fires. A connection closed just before a reactor stops (a test's end, a
gateway's shutdown) then leaves a call pending for nothing. With
:func:`unbatched` each timer is its own reactor call, gone when cancelled;
the few WebSockets a gateway holds gain nothing from batching.
:func:`cancel_close_timer` removes the one timer Autobahn leaves behind when
a connection is lost during a close handshake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IDelayedCall


class _Call:
    """A scheduled timer; cancelling one that already ran or was cancelled does nothing."""

    def __init__(self, call: IDelayedCall) -> None:
        self._call = call

    def cancel(self) -> None:
        if self._call.active():
            self._call.cancel()


class _ReactorTimers:
    """txaio's batched-timer interface (``call_later``), unbatched."""

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor

    def call_later(
        self, delay: float, func: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> _Call:
        return _Call(self._reactor.callLater(delay, func, *args, **kwargs))


def unbatched(factory: Any, reactor: Any) -> None:
    """Give an Autobahn WebSocket factory's protocols one reactor call per timer."""
    factory._batched_timer = _ReactorTimers(reactor)


def cancel_close_timer(protocol: Any) -> None:
    """Cancel a closed WebSocket's close-handshake timer.

    Autobahn cancels it only when the peer answers the close frame, not when
    the connection is lost first (the peer went away): the timer then stays
    scheduled for a second, for a connection that no longer exists. Called
    from ``onClose``, which Autobahn calls once the connection is gone.
    """
    call = getattr(protocol, "closeHandshakeTimeoutCall", None)
    if call is not None:
        protocol.closeHandshakeTimeoutCall = None
        call.cancel()

"""Server-side keepalives (``ssh.clientAliveInterval`` / ``ssh.clientAliveCountMax``).

Every interval the server sends the global request ``keepalive@openssh.com``
with want-reply set. Any answer, success or failure, proves the client is
alive and resets the miss counter. A request still unanswered when the next
one is due is a miss; after ``count_max`` misses in a row the connection is
considered dead. This is OpenSSH's ``ClientAliveInterval`` behaviour.

ContainerSSH only counts requests it failed to *send*, which over TCP almost
never happens while the kernel still buffers; counting missing replies is what
actually detects a client that vanished without closing its connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from conch_container import messages
from conch_container.log.logger import CodeLogger


class KeepAlive:
    """Sends keepalive requests on a timer and declares the peer dead after misses.

    :param clock: the reactor (or a test clock) to schedule on.
    :param interval: seconds between requests; must be positive.
    :param count_max: how many unanswered requests in a row end the connection.
    :param send: sends one request; returns a Deferred that fires (with any
        result, or a failure) when the answer arrives.
    :param dead: called once when the peer is considered dead.
    :param log: the connection's logger.
    """

    def __init__(
        self,
        clock: IReactorTime,
        interval: float,
        count_max: int,
        send: Callable[[], Deferred[Any]],
        dead: Callable[[], None],
        log: CodeLogger,
    ) -> None:
        if interval <= 0:
            raise ValueError("keepalive interval must be positive")
        self._interval = interval
        self._count_max = max(1, count_max)
        self._send = send
        self._dead = dead
        self._log = log
        self._loop = LoopingCall(self._tick)
        self._loop.clock = clock
        self._outstanding = 0
        self.misses = 0
        self._running = False

    def start(self) -> None:
        """Start sending; the first request goes out one interval from now."""
        if self._running:
            return
        self._running = True
        self._loop.start(self._interval, now=False)

    def stop(self) -> None:
        """Stop sending; answers that still arrive are ignored. Idempotent."""
        if not self._running:
            return
        self._running = False
        if self._loop.running:
            self._loop.stop()

    def _tick(self) -> None:
        if self._outstanding:
            self.misses += 1
            self._log.event(
                messages.SSH_KEEPALIVE_NORESP,
                "No answer to keepalive request ({misses} of {countMax})",
                misses=self.misses,
                countMax=self._count_max,
            )
            if self.misses >= self._count_max:
                self.stop()
                self._dead()
                return
        self._outstanding += 1
        d = self._send()
        d.addBoth(self._answered)

    def _answered(self, result: object) -> None:
        # Success and failure replies both mean the client is alive; a
        # failure that comes from the connection going away arrives after
        # stop() and is ignored. Either way nothing is left unhandled.
        if not self._running:
            return
        self._outstanding = max(0, self._outstanding - 1)
        self.misses = 0

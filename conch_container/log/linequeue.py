"""Lines waiting for a log transport: bounded, oldest dropped first, safe from any thread.

Twisted may log from any thread (thread pools, the resolver), but a reactor
transport may only be used from the reactor thread. The writer puts lines
here and asks the reactor to drain them; the reactor takes them when its
transport can carry them. When the destination is away or behind, the queue
fills up: then the oldest line is dropped and counted, so that the newest
lines (the ones about the outage) survive and the writer never waits.
"""

from __future__ import annotations

import threading
from collections import deque


class LineQueue:
    """A bounded queue of encoded lines.

    :param limit: how many lines may wait; one more drops the oldest.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a line queue must hold at least one line, not {limit}")
        self._lines: deque[bytes] = deque()
        self._limit = limit
        self._dropped = 0
        self._wake_pending = False
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._lines)

    def put(self, line: bytes) -> bool:
        """Add ``line`` at the end, dropping the oldest line if the queue is full.

        :returns: True when the reader must be woken up: no wake-up has been
            asked for since it last started draining.
        """
        with self._lock:
            if len(self._lines) >= self._limit:
                self._lines.popleft()
                self._dropped += 1
            self._lines.append(line)
            wake, self._wake_pending = not self._wake_pending, True
            return wake

    def draining(self) -> None:
        """The reader is about to take lines: the next :meth:`put` must wake it again."""
        with self._lock:
            self._wake_pending = False

    def take(self) -> bytes | None:
        """The oldest line, removed from the queue; None when empty."""
        with self._lock:
            return self._lines.popleft() if self._lines else None

    def put_back(self, line: bytes) -> None:
        """Return a line that could not be sent to the front, where it came from.

        If lines were added meanwhile and the queue is full, the returned line
        is the oldest and is the one dropped.
        """
        with self._lock:
            if len(self._lines) >= self._limit:
                self._dropped += 1
            else:
                self._lines.appendleft(line)

    def count_dropped(self, lines: int) -> None:
        """Count lines lost on the way (too big to send, a notice that did not go out)."""
        with self._lock:
            self._dropped += lines

    def take_dropped(self) -> int:
        """How many lines were dropped since the last call."""
        with self._lock:
            dropped, self._dropped = self._dropped, 0
            return dropped

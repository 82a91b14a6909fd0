"""How many connections may be authenticating at once: OpenSSH's ``MaxStartups``, per source too.

A connection that has not authenticated costs the gateway a key exchange, a
file descriptor and its login grace time, while the client has proved
nothing. Two limits bound that, counted from TCP accept until the login
succeeds or the connection closes:

- ``ssh.perSourceMaxStartups``: from one source network, so that one
  client (or one attacker) cannot hold all the places;
- ``ssh.maxStartups`` (``start:rate:full``): in all. From ``start`` pending
  connections on, a new one is refused with probability ``rate``%, rising
  linearly to 100% at ``full``. The random early drop lets some clients
  through while the server is swamped, rather than none until a place frees
  up, which a flood would never allow.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

import attrs

from conch_container.config.preauth import parse_max_startups
from conch_container.ssh.sources import SourceNetwork


class StartupRefusal(enum.Enum):
    """Why a new connection was refused a place among those authenticating."""

    PER_SOURCE = "its source network has perSourceMaxStartups connections authenticating"
    FULL = "maxStartups: too many connections authenticating"
    EARLY_DROP = "maxStartups: random early drop"


@attrs.frozen
class MaxStartups:
    """``start:rate:full`` as in OpenSSH."""

    start: int
    rate: int
    full: int

    @classmethod
    def parse(cls, text: str) -> MaxStartups:
        """From the ``ssh.maxStartups`` text (already validated at load)."""
        return cls(*parse_max_startups(text))

    def drop_probability(self, pending: int) -> float:
        """The chance a new connection is refused while ``pending`` others authenticate.

        0 below ``start``; ``rate``% at ``start``, rising linearly to 1 at
        ``full`` and beyond: OpenSSH's ``should_drop_connection``.
        """
        if pending < self.start:
            return 0.0
        if pending >= self.full:
            return 1.0
        rate = self.rate / 100
        return rate + (1 - rate) * (pending - self.start) / (self.full - self.start)


class StartupLimiter:
    """Counts the connections authenticating, in all and per source network.

    :param limits: the ``maxStartups`` thresholds.
    :param per_source: places one source network may hold.
    :param random: returns a float in ``[0, 1)``; the early-drop lottery.
    """

    def __init__(self, limits: MaxStartups, per_source: int, random: Callable[[], float]) -> None:
        self._limits = limits
        self._per_source = per_source
        self._random = random
        self._pending = 0
        self._by_source: dict[SourceNetwork, int] = {}

    @property
    def pending(self) -> int:
        """Connections accepted and not yet authenticated or closed."""
        return self._pending

    def pending_from(self, source: SourceNetwork) -> int:
        """Those of :attr:`pending` from ``source``."""
        return self._by_source.get(source, 0)

    def refusal(self, source: SourceNetwork | None) -> StartupRefusal | None:
        """Why a new connection from ``source`` may not start now, or None if it may.

        The per-source limit comes first: a client over its share is refused
        for that, whatever the lottery would have said.
        """
        if source is not None and self.pending_from(source) >= self._per_source:
            return StartupRefusal.PER_SOURCE
        chance = self._limits.drop_probability(self._pending)
        if chance >= 1.0:
            return StartupRefusal.FULL
        if chance > 0.0 and self._random() < chance:
            return StartupRefusal.EARLY_DROP
        return None

    def start(self, source: SourceNetwork | None) -> Startup:
        """Take a place for a connection from ``source``; the result gives it back."""
        self._pending += 1
        if source is not None:
            self._by_source[source] = self._by_source.get(source, 0) + 1
        return Startup(self, source)

    def _release(self, source: SourceNetwork | None) -> None:
        self._pending -= 1
        if source is None:
            return
        left = self._by_source[source] - 1
        if left:
            self._by_source[source] = left
        else:
            # Only networks with connections in progress are kept: the
            # table is never larger than the number of pending connections.
            del self._by_source[source]


class Startup:
    """One connection's place among those authenticating."""

    def __init__(self, limiter: StartupLimiter, source: SourceNetwork | None) -> None:
        self._limiter: StartupLimiter | None = limiter
        self._source = source

    def finish(self) -> None:
        """The connection authenticated or closed: give the place back (once)."""
        limiter, self._limiter = self._limiter, None
        if limiter is not None:
            limiter._release(self._source)

"""Penalties for source networks whose connections do not log in: OpenSSH's ``PerSourcePenalties``.

A connection that ends without a login adds penalty time to its source
network: ``authFail`` after failed attempts, ``noAuth`` when it never tried,
``graceExceeded`` when the login grace time cut it off. Penalty time owed
runs down with the clock, so isolated failures are forgotten; only a network
that owes more than ``min`` at once (three failed logins within a few
seconds, with the defaults) has its new connections refused, until the
penalty has run out. Further offences extend it, up to ``max``.

The table is bounded (``maxSources`` networks per address family). When it
is full, ``permissive`` forgets the penalties closest to expiry, and
``deny-all`` refuses every connection that is not exempt until one expires.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Mapping

import attrs
from twisted.internet.interfaces import IReactorTime

from conch_container import messages
from conch_container.config.preauth import PerSourcePenaltiesConfig
from conch_container.log.logger import CodeLogger
from conch_container.ssh.sources import ExemptList, IPAddress, SourceNetwork, SourceNetworks


class Offence(enum.Enum):
    """How a connection ended without a login."""

    AUTH_FAIL = "failed authentication"
    NO_AUTH = "closed without attempting authentication"
    GRACE_EXCEEDED = "did not log in within the login grace time"


class PenaltyRefusal(enum.Enum):
    """Why the penalties refuse a new connection."""

    PENALISED = "its source network is penalised for connections that did not log in"
    TABLE_FULL = "the penalty table is full and overflow is deny-all"


@attrs.frozen
class PenaltyPolicy:
    """The numbers behind the penalties, in seconds."""

    durations: Mapping[Offence, float]
    minimum: float
    maximum: float
    max_sources: int
    deny_all: bool

    @classmethod
    def from_config(cls, config: PerSourcePenaltiesConfig) -> PenaltyPolicy:
        return cls(
            durations={
                Offence.AUTH_FAIL: config.auth_fail,
                Offence.NO_AUTH: config.no_auth,
                Offence.GRACE_EXCEEDED: config.grace_exceeded,
            },
            minimum=config.min,
            maximum=config.max,
            max_sources=config.max_sources,
            deny_all=config.overflow == "deny-all",
        )


@attrs.define
class Penalty:
    """What one source network owes: until ``expiry``; enforced once ``active``."""

    expiry: float
    active: bool
    offence: Offence


class _FamilyTable:
    """The penalties of one address family, by network and by expiry.

    The heap may hold stale ``(expiry, network)`` entries for penalties that
    were extended since; they are skipped when popped, and the heap is
    rebuilt when they outnumber the live ones, so memory stays proportional
    to the networks tracked.
    """

    def __init__(self) -> None:
        self.entries: dict[SourceNetwork, Penalty] = {}
        self._by_expiry: list[tuple[float, SourceNetwork]] = []
        self.full_reported = False

    def __len__(self) -> int:
        return len(self.entries)

    def put(self, network: SourceNetwork, penalty: Penalty) -> None:
        """Add ``penalty``, or record that its expiry moved."""
        self.entries[network] = penalty
        heapq.heappush(self._by_expiry, (penalty.expiry, network))
        if len(self._by_expiry) > 2 * len(self.entries) + 64:
            self._by_expiry = [(p.expiry, n) for n, p in self.entries.items()]
            heapq.heapify(self._by_expiry)

    def expire(self, now: float) -> None:
        """Forget the penalties that have run out."""
        while self._by_expiry and self._by_expiry[0][0] < now:
            self._pop_soonest()

    def evict_soonest(self) -> None:
        """Forget the live penalty closest to expiry (table overflow, permissive)."""
        while self._by_expiry:
            if self._pop_soonest():
                return

    def _pop_soonest(self) -> bool:
        expiry, network = heapq.heappop(self._by_expiry)
        penalty = self.entries.get(network)
        if penalty is None or penalty.expiry != expiry:
            return False  # stale: the penalty was extended or is gone
        del self.entries[network]
        return True


class PenaltyBox:
    """Records offences per source network and says which networks are refused.

    :param policy: durations, thresholds, table size and overflow mode.
    :param networks: how addresses are grouped.
    :param exempt: addresses never penalised nor refused.
    :param clock: the reactor; penalties run down on its clock.
    :param log: where activations and a full table are logged.
    """

    def __init__(
        self,
        policy: PenaltyPolicy,
        networks: SourceNetworks,
        exempt: ExemptList,
        clock: IReactorTime,
        log: CodeLogger,
    ) -> None:
        self._policy = policy
        self._networks = networks
        self._exempt = exempt
        self._clock = clock
        self._log = log
        self._tables = {4: _FamilyTable(), 6: _FamilyTable()}

    def tracked(self, version: int) -> int:
        """Networks of IP ``version`` with a penalty on record, in force or not."""
        return len(self._tables[version])

    def owed(self, ip: IPAddress) -> float:
        """Seconds of penalty the network of ``ip`` still owes (0 if none)."""
        table = self._current_table(ip)
        penalty = table.entries.get(self._networks.of(ip))
        return 0.0 if penalty is None else max(0.0, penalty.expiry - self._clock.seconds())

    def refusal(self, ip: IPAddress) -> PenaltyRefusal | None:
        """Why a new connection from ``ip`` is refused, or None if it is not."""
        if ip in self._exempt:
            return None
        table = self._current_table(ip)
        if self._policy.deny_all and len(table) >= self._policy.max_sources:
            return PenaltyRefusal.TABLE_FULL
        penalty = table.entries.get(self._networks.of(ip))
        if penalty is None or not penalty.active:
            return None
        return PenaltyRefusal.PENALISED

    def penalise(self, ip: IPAddress, offence: Offence) -> None:
        """Add the penalty for ``offence`` to the network of ``ip``."""
        seconds = self._policy.durations[offence]
        if seconds <= 0 or ip in self._exempt:
            return
        table = self._current_table(ip)
        network = self._networks.of(ip)
        penalty = table.entries.get(network)
        if penalty is None:
            self._add(table, network, seconds, offence)
        else:
            self._extend(table, network, penalty, seconds, offence)

    def _current_table(self, ip: IPAddress) -> _FamilyTable:
        table = self._tables[ip.version]
        table.expire(self._clock.seconds())
        if len(table) < self._policy.max_sources:
            table.full_reported = False
        return table

    def _add(
        self, table: _FamilyTable, network: SourceNetwork, seconds: float, offence: Offence
    ) -> None:
        if len(table) >= self._policy.max_sources:
            self._report_full(table, network)
            if self._policy.deny_all:
                return
        now = self._clock.seconds()
        seconds = min(seconds, self._policy.maximum)
        penalty = Penalty(now + seconds, seconds > self._policy.minimum, offence)
        table.put(network, penalty)
        while len(table) > self._policy.max_sources:
            # Permissive: forgive the penalties closest to their end, which
            # may be the one just added (as OpenSSH does).
            table.evict_soonest()
        if penalty.active and network in table.entries:
            self._report_activated(network, penalty)

    def _extend(
        self,
        table: _FamilyTable,
        network: SourceNetwork,
        penalty: Penalty,
        seconds: float,
        offence: Offence,
    ) -> None:
        now = self._clock.seconds()
        penalty.expiry = min(penalty.expiry + seconds, now + self._policy.maximum)
        penalty.offence = offence
        table.put(network, penalty)
        if not penalty.active and penalty.expiry - now > self._policy.minimum:
            penalty.active = True
            self._report_activated(network, penalty)

    def _report_activated(self, network: SourceNetwork, penalty: Penalty) -> None:
        self._log.event(
            messages.SSH_PENALTY_ACTIVATED,
            "Refusing connections from {source} for {seconds:.0f} seconds: {reason}",
            source=str(network),
            seconds=penalty.expiry - self._clock.seconds(),
            reason=penalty.offence.value,
        )

    def _report_full(self, table: _FamilyTable, network: SourceNetwork) -> None:
        if table.full_reported:
            return
        table.full_reported = True
        self._log.event(
            messages.SSH_PENALTY_TABLE_FULL,
            "The penalty table holds {maxSources} IPv{version} networks: {effect}",
            maxSources=self._policy.max_sources,
            version=network.version,
            effect="refusing every connection not exempt until a penalty expires"
            if self._policy.deny_all
            else "forgetting the penalties closest to expiry",
        )

"""The decision, at TCP accept, whether a new connection may begin an SSH handshake.

A refused connection is closed before the server sends anything: no version
string, no key exchange, no ``SSH_CONNECTED`` event. Refusing has to cost
less than serving, or a flood wins either way. Each refusal is logged at
debug level; at warning level, the first refusal is logged at once and the
rest are summed up at most once a minute, so a flood does not flood the log.
"""

from __future__ import annotations

import random as _random
from collections import Counter
from collections.abc import Callable

from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime

from conch_container import messages
from conch_container.config.preauth import parse_net_block_size
from conch_container.config.ssh import SSHConfig
from conch_container.log.logger import CodeLogger
from conch_container.ssh.penalties import Offence, PenaltyBox, PenaltyPolicy, PenaltyRefusal
from conch_container.ssh.sources import (
    ExemptList,
    IPAddress,
    SourceNetwork,
    SourceNetworks,
    client_ip,
)
from conch_container.ssh.startups import MaxStartups, Startup, StartupLimiter, StartupRefusal
from conch_container.ssh.transport import format_address

Refusal = StartupRefusal | PenaltyRefusal

#: Seconds between two summaries of refused connections.
SUMMARY_INTERVAL = 60.0


class Admitted:
    """An admitted connection's link back to the limits: its login, or its end."""

    def __init__(
        self, startup: Startup, ip: IPAddress | None, penalties: PenaltyBox | None
    ) -> None:
        self._startup = startup
        self._ip = ip
        self._penalties = penalties

    def authenticated(self) -> None:
        """The user logged in: the connection no longer counts as authenticating."""
        self._startup.finish()

    def closed(self, offence: Offence | None) -> None:
        """The connection closed; ``offence`` is what it did wrong before a login, if anything."""
        self._startup.finish()
        if offence is not None and self._penalties is not None and self._ip is not None:
            self._penalties.penalise(self._ip, offence)
            self._penalties = None  # a connection is penalised once


class RefusalLog:
    """Logs refused connections: each at debug, a summary at warning.

    :param clock: schedules the summaries.
    :param log: the server's logger.
    """

    def __init__(self, clock: IReactorTime, log: CodeLogger) -> None:
        self._clock = clock
        self._log = log
        self._counts: Counter[Refusal] = Counter()
        self._summary: IDelayedCall | None = None

    def refused(self, refusal: Refusal, address: IAddress | None) -> None:
        """Log one refused connection."""
        remote = format_address(address) if address is not None else "unknown"
        code = (
            messages.SSH_PENALTY_REFUSED
            if isinstance(refusal, PenaltyRefusal)
            else messages.SSH_STARTUP_REFUSED
        )
        self._log.event(
            code,
            "Refused a connection from {remoteAddr}: {reason}",
            remoteAddr=remote,
            reason=refusal.value,
        )
        if self._summary is None:
            self._first(refusal, remote)
        else:
            self._counts[refusal] += 1

    def _first(self, refusal: Refusal, remote: str) -> None:
        self._log.event(
            messages.SSH_CONNECTIONS_REFUSED,
            "Refusing new connections ({remoteAddr}: {reason}); "
            "further refusals are summed up every {interval:.0f} seconds",
            remoteAddr=remote,
            reason=refusal.value,
            interval=SUMMARY_INTERVAL,
        )
        self._summary = self._clock.callLater(SUMMARY_INTERVAL, self._summarise)

    def _summarise(self) -> None:
        self._summary = None
        if not self._counts:
            return  # quiet again: the next refusal is reported at once
        counts, self._counts = self._counts, Counter()
        self._log.event(
            messages.SSH_CONNECTIONS_REFUSED,
            "Refused {refused} new connections in the last {interval:.0f} seconds: {reasons}",
            refused=sum(counts.values()),
            interval=SUMMARY_INTERVAL,
            reasons="; ".join(f"{count} x {r.value}" for r, count in counts.most_common()),
            counts={r.name: count for r, count in counts.items()},
        )
        self._summary = self._clock.callLater(SUMMARY_INTERVAL, self._summarise)

    def stop(self) -> None:
        """Drop the pending summary (the listener is closing)."""
        summary, self._summary = self._summary, None
        if summary is not None and summary.active():
            summary.cancel()
        self._counts.clear()


class Admission:
    """Admits or refuses new connections by penalties and startup limits.

    :param startups: the count of connections authenticating.
    :param penalties: penalised networks, or None when penalties are off.
    :param networks: how client addresses are grouped.
    :param refusals: where refusals are logged.
    """

    def __init__(
        self,
        startups: StartupLimiter,
        penalties: PenaltyBox | None,
        networks: SourceNetworks,
        refusals: RefusalLog,
    ) -> None:
        self.startups = startups
        self.penalties = penalties
        self._networks = networks
        self._refusals = refusals

    @classmethod
    def from_config(
        cls,
        ssh: SSHConfig,
        clock: IReactorTime,
        log: CodeLogger,
        random: Callable[[], float] | None = None,
    ) -> Admission:
        """Build from the ``ssh`` section; ``random`` replaces the system's for tests."""
        networks = SourceNetworks(*parse_net_block_size(ssh.per_source_net_block_size))
        draw = random if random is not None else _random.SystemRandom().random
        startups = StartupLimiter(
            MaxStartups.parse(ssh.max_startups), ssh.per_source_max_startups, draw
        )
        config = ssh.per_source_penalties
        penalties = None
        if config.enable:
            penalties = PenaltyBox(
                PenaltyPolicy.from_config(config),
                networks,
                ExemptList(config.exempt),
                clock,
                log,
            )
        return cls(startups, penalties, networks, RefusalLog(clock, log))

    def admit(self, address: IAddress | None) -> Admitted | None:
        """Admit a connection from ``address`` (counting it as authenticating), or log why not."""
        ip = client_ip(address)
        network = self._networks.of(ip) if ip is not None else None
        refusal = self._refusal(ip, network)
        if refusal is not None:
            self._refusals.refused(refusal, address)
            return None
        return Admitted(self.startups.start(network), ip, self.penalties)

    def _refusal(self, ip: IPAddress | None, network: SourceNetwork | None) -> Refusal | None:
        # Penalties first: a penalised network draws no lots and takes no place.
        if ip is not None and self.penalties is not None:
            refusal = self.penalties.refusal(ip)
            if refusal is not None:
                return refusal
        return self.startups.refusal(network)

    def stop(self) -> None:
        """The listener stopped: cancel pending log summaries."""
        self._refusals.stop()

"""The ``session`` section: time limits, and returning to the same container.

An extension (ContainerSSH has neither). It may vary per connection: a
configuration server can give one user longer limits than another, or a key.
"""

# setting() returns an attrs field declaration, not a shared default value.
# ruff: noqa: RUF009

from __future__ import annotations

from typing import Any

import attrs

from conch_container.config.kinds import Choice, Duration, Section, Str
from conch_container.config.schema import setting

#: Signals a timed-out program may be sent first (RFC 4254's names, without ``SIG``).
TIMEOUT_SIGNALS = ("TERM", "HUP", "INT", "KILL")


def _limit(key: str, doc: str) -> Any:
    return setting(key, Duration(_zero_or_a_second, flexible=True), 0.0, doc=doc, extension=True)


def _zero_or_a_second(value: float) -> str | None:
    return "must be 0 (no limit) or at least 1s" if 0 < value < 1 else None


@attrs.frozen
class ContainerKeyConfig:
    """Where a connection's container key comes from; connections of the same user
    with the same key share one container."""

    metadata: str = setting(
        "metadata",
        Str(),
        "",
        doc="Name of the authentication webhook's metadata entry (or the configuration "
        "server's) holding the key. Empty: not from metadata.",
        extension=True,
    )
    environment: str = setting(
        "environment",
        Str(),
        "",
        doc="Name of a variable of the connection's environment (as the authentication "
        "webhook or the configuration server set it) holding the key; used when `metadata` "
        "gives none. Empty: not from the webhooks' environment.",
        extension=True,
    )
    client_environment: str = setting(
        "clientEnvironment",
        Str(),
        "",
        doc="Name of a variable the client sends on its first session channel "
        "(`ssh -o SetEnv=CI_JOB_ID=...`, `SendEnv`; the `env` policy must allow it) holding "
        "the key, when the webhooks give none. The container is then chosen when the "
        "connection first needs one: at its first program (with that channel's variables), "
        "or earlier for port, X11 or agent forwarding (without a key). Empty: not from the "
        "client.",
        extension=True,
    )


@attrs.frozen
class SessionConfig:
    """Time limits of a connection (idle and absolute, each with a warning and a grace
    period), and the container key that lets connections share a container."""

    idle_timeout: float = _limit(
        "idleTimeout",
        "A connection with no input from the client and no output from its programs for this "
        "long is closed (after the warning and the grace period); 0: never. Keepalives do "
        "not count as input.",
    )
    max_session_duration: float = _limit(
        "maxSessionDuration",
        "A connection is closed this long after login, busy or not (after the warning and "
        "the grace period); 0: never.",
    )
    warning: float = setting(
        "warning",
        Duration(flexible=True),
        60.0,
        doc="How long before a limit is reached the user is warned, on each terminal of the "
        "connection (stderr of programs without one). A warning longer than the limit is "
        "given at login; 0: no warning.",
        extension=True,
    )
    warning_message: str = setting(
        "warningMessage",
        Str(),
        "",
        doc="The warning's text; `{reason}` (`idle` or `time limit`) and `{seconds}` (time "
        "left) are replaced. Empty: a built-in English text.",
        extension=True,
    )
    signal: str = setting(
        "signal",
        Choice(*TIMEOUT_SIGNALS),
        "TERM",
        doc="Signal sent to every running program when a limit is reached.",
        extension=True,
    )
    container_key: ContainerKeyConfig = setting(
        "containerKey",
        Section(ContainerKeyConfig),
        ContainerKeyConfig(),
        doc="Returning to the same container: where a connection's key comes from "
        "(see docs/container-reuse.md).",
        extension=True,
    )
    keep_alive: float = setting(
        "keepAlive",
        Duration(flexible=True),
        300.0,
        doc="How long a keyed container stays after its last connection closed, for the "
        "next connection with the same key; then it is removed. 0: removed at once.",
        extension=True,
    )
    grace: float = setting(
        "grace",
        Duration(flexible=True),
        10.0,
        doc="Time the programs have after the signal before the connection is closed "
        "(at once when no program runs).",
        extension=True,
    )

"""The ``security`` section: which requests a user may make, per request type."""

# setting() returns an attrs field declaration, not a shared default value.
# ruff: noqa: RUF009

from __future__ import annotations

from typing import Any

import attrs

from conch_container.config.forwardrules import ports_problem, target_problem
from conch_container.config.kinds import Choice, Int, ListOf, Section, Str, at_least
from conch_container.config.schema import PLANNED, setting

#: ``""`` falls back to ``defaultMode``, and then to ``enable``.
MODES = ("", "enable", "filter", "disable")


def _mode(doc: str, default: str = "") -> Any:
    return setting("mode", Choice(*MODES), default, doc=doc)


def _names(key: str, doc: str) -> Any:
    return setting(key, ListOf(Str()), (), doc=doc)


@attrs.frozen
class EnvSecurityConfig:
    """Environment variables (``env`` requests)."""

    mode: str = _mode("`enable`: all but `deny`; `filter`: only `allow`; `disable`: none.")
    allow: tuple[str, ...] = _names("allow", "Variable names allowed in `filter` mode.")
    deny: tuple[str, ...] = _names("deny", "Variable names refused in `enable` mode.")


@attrs.frozen
class CommandSecurityConfig:
    """Program execution (``exec`` requests)."""

    mode: str = _mode("`filter`: only commands exactly equal to one in `allow`.")
    allow: tuple[str, ...] = _names("allow", "Exact command strings allowed in `filter` mode.")


@attrs.frozen
class ShellSecurityConfig:
    """Interactive shells (``shell`` requests)."""

    mode: str = _mode("`filter` acts as `disable`.")


@attrs.frozen
class SubsystemSecurityConfig:
    """Subsystems such as ``sftp``."""

    mode: str = _mode("`enable`: all but `deny`; `filter`: only `allow`; `disable`: none.")
    allow: tuple[str, ...] = _names("allow", "Subsystems allowed in `filter` mode.")
    deny: tuple[str, ...] = _names("deny", "Subsystems refused in `enable` mode.")


@attrs.frozen
class TTYSecurityConfig:
    """Terminal allocation (``pty-req``)."""

    mode: str = _mode("`filter` acts as `disable`.")


@attrs.frozen
class SignalSecurityConfig:
    """Signals sent to programs (names without ``SIG``)."""

    mode: str = _mode("`enable`: all but `deny`; `filter`: only `allow`; `disable`: none.")
    allow: tuple[str, ...] = _names("allow", "Signals allowed in `filter` mode.")
    deny: tuple[str, ...] = _names("deny", "Signals refused in `enable` mode.")


def _targets(key: str, doc: str) -> Any:
    kind = ListOf(Str(target_problem), type_name="list of HOST:PORT patterns")
    return setting(key, kind, (), doc=doc, extension=True)


def _ports(key: str, doc: str) -> Any:
    kind = ListOf(Str(ports_problem), type_name="list of port patterns")
    return setting(key, kind, (), doc=doc, extension=True)


def _forwarding(key: str, doc: str) -> Any:
    return setting(key, Choice(*MODES), "disable", doc=doc)


@attrs.frozen
class ForwardingSecurityConfig:
    """Port, socket and X11 forwarding; all off unless enabled."""

    reverse_forwarding_mode: str = _forwarding(
        "reverseForwardingMode",
        "Remote port forwarding (`tcpip-forward`: `ssh -R`). `enable`: the user's container "
        "listens through the forwarding helper (connection mode only); `filter` and `disable` "
        "answer with failure (`SECURITY_REVERSE_FORWARDING_REJECTED`).",
    )
    forwarding_mode: str = _forwarding(
        "forwardingMode",
        "Local port forwarding (`direct-tcpip`: `ssh -L`, `ssh -D`). `enable`: each forwarded "
        "connection is dialled from the user's container, with the forwarding helper, or `nc` "
        "or `socat` from the image (connection mode only); `filter` and `disable` refuse the "
        "channel as administratively prohibited (`SECURITY_FORWARDING_REJECTED`). See "
        "[forwarding.md](forwarding.md).",
    )
    socket_forwarding_mode: str = _forwarding(
        "socketForwardingMode",
        "Connections to Unix sockets in the container (`direct-streamlocal@openssh.com`: "
        "`ssh -L port:/path`); refusals log `SECURITY_SOCKET_FORWARDING_REJECTED`.",
    )
    socket_listen_mode: str = _forwarding(
        "socketListenMode",
        "Unix socket listeners in the container (`streamlocal-forward@openssh.com`: "
        "`ssh -R /path:...`); refusals log `SECURITY_SOCKET_LISTEN_REJECTED`.",
    )
    x11_forwarding_mode: str = _forwarding("x11ForwardingMode", "X11 forwarding (`x11-req`).")
    allow: tuple[str, ...] = _targets(
        "allow",
        "With `forwardingMode: filter`, the only targets `ssh -L` and `ssh -D` may reach: "
        "`HOST:PORT` patterns, the host a shell-style pattern matched against the name the "
        "client sent (`*.internal:5432`, `127.0.0.1:*`, `[::1]:8000-8999`). Empty: `filter` "
        "refuses everything, as in ContainerSSH.",
    )
    deny: tuple[str, ...] = _targets(
        "deny",
        "With `forwardingMode: enable`, targets `ssh -L` and `ssh -D` may not reach "
        "(patterns as for `allow`). Names are matched as the client sent them, before the "
        "container resolves them: to confine users, prefer `filter` with `allow`.",
    )
    reverse_allow: tuple[str, ...] = _ports(
        "reverseAllow",
        "With `reverseForwardingMode: filter`, the only ports `ssh -R` may listen on in the "
        "container: a port, a range `LOW-HIGH`, or `*`. Port 0 (any free port) is allowed "
        "only by a pattern that contains 0.",
    )
    reverse_deny: tuple[str, ...] = _ports(
        "reverseDeny",
        "With `reverseForwardingMode: enable`, ports `ssh -R` may not listen on.",
    )
    agent_forwarding_mode: str = setting(
        "agentForwardingMode",
        Choice(*MODES),
        "disable",
        doc="SSH agent forwarding (`auth-agent-req@openssh.com`: `ssh -A`): a socket in the "
        "user's container, named by `SSH_AUTH_SOCK` in the program's environment, whose "
        "connections reach the client's agent. `filter` and `disable` refuse "
        "(`SECURITY_AGENT_FORWARDING_REJECTED`). Off by default, as in OpenSSH: whoever is root "
        "in the container can use the agent while the user is connected.",
        extension=True,
    )
    max_connections: int = setting(
        "maxConnections",
        Int(at_least(1)),
        256,
        doc="Forwarded connections open at the same time on one SSH connection: those the "
        "client opens (`ssh -L`, `ssh -D`) and those the container accepts for it (`ssh -R`, "
        "X11, the agent). Another one the client opens is refused as a resource shortage, "
        "another one the container accepts is closed at once (`SECURITY_MAX_FORWARDS`). They "
        "do not count against `ssh.maxChannels` or `maxSessions`. Each may hold up to "
        "`ssh.receiveWindowSize` of the client's data in the gateway.",
        extension=True,
    )


@attrs.frozen
class SecurityConfig:
    """Which requests users may make, applied in front of the backend.
    Every request type has a mode: ``enable`` (allowed, minus a deny list where
    there is one), ``filter`` (only what an allow list names), ``disable``
    (refused), or ``""`` to use ``defaultMode`` (and ``enable`` if that is
    empty too).
    """

    default_mode: str = setting(
        "defaultMode", Choice(*MODES), "", doc="Mode of every request type left unset."
    )
    force_command: str = setting(
        "forceCommand",
        Str(),
        "",
        doc="Run this command instead of whatever the user asked for; the request is passed "
        "in `SSH_ORIGINAL_COMMAND`.",
    )
    env: EnvSecurityConfig = setting(
        "env", Section(EnvSecurityConfig), EnvSecurityConfig(), doc="Environment variables."
    )
    command: CommandSecurityConfig = setting(
        "command", Section(CommandSecurityConfig), CommandSecurityConfig(), doc="Commands."
    )
    shell: ShellSecurityConfig = setting(
        "shell", Section(ShellSecurityConfig), ShellSecurityConfig(), doc="Shells."
    )
    subsystem: SubsystemSecurityConfig = setting(
        "subsystem",
        Section(SubsystemSecurityConfig),
        SubsystemSecurityConfig(),
        doc="Subsystems.",
    )
    tty: TTYSecurityConfig = setting(
        "tty", Section(TTYSecurityConfig), TTYSecurityConfig(), doc="Terminals."
    )
    signal: SignalSecurityConfig = setting(
        "signal", Section(SignalSecurityConfig), SignalSecurityConfig(), doc="Signals."
    )
    forwarding: ForwardingSecurityConfig = setting(
        "forwarding",
        Section(ForwardingSecurityConfig),
        ForwardingSecurityConfig(),
        doc="Forwarding (every kind is refused: forwarding is not implemented yet).",
        status=PLANNED,
    )
    max_sessions: int = setting(
        "maxSessions",
        Int(at_least(-1)),
        -1,
        doc="Session channels open at the same time on one connection; -1: unlimited "
        "(0 means the default). ContainerSSH counts every channel ever opened.",
    )
    #: ``command.mode: disable`` came from a translated ``kuberun`` section's
    #: ``disableCommand``, so refusals are logged as ``KUBERUN_EXEC_DISABLED``
    #: (:mod:`~conch_container.config.kuberun`). No key sets it.
    kuberun_disable_command: bool = attrs.field(default=False)

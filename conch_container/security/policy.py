"""Which requests a connection's ``security`` configuration permits.

:class:`SecurityPolicy` makes the decisions and nothing else: it logs nothing,
holds no state and never touches a backend, so each rule can be tested as a
table of request, mode and lists. A refusal comes back as a
:class:`~conch_container.errors.RequestRejected` for the caller to
log and raise; ``None`` means the request may go ahead.

The rules are ContainerSSH's (``internal/security``):

- every request type has a mode, ``enable``, ``filter`` or ``disable``; an
  unset mode falls back to ``defaultMode``, then to ``enable``;
- ``enable`` permits everything except what a deny list names (for the types
  that have one), ``filter`` only what the allow list names, ``disable``
  nothing; shells and terminals have no lists, so ``filter`` refuses them;
- a command is on the allow list only if it is exactly one of its strings;
- the subsystem deny list applies in ``enable`` mode only.

Before any list is consulted, an environment variable must be one a program
can be given at all: a portable name and a value without NUL (see
:mod:`conch_container.envnames`; ContainerSSH does not check this).

Signals follow ``signal.mode`` (ContainerSSH reads ``shell.mode`` for them),
and signal names are compared without their ``SIG`` prefix on both sides.
"""

from __future__ import annotations

import attrs

from conch_container import messages
from conch_container.backend.forwardprotocol import ConnectionType
from conch_container.codes import MessageCode
from conch_container.config.forwardrules import (
    PortRange,
    TargetPattern,
    any_port,
    any_target,
    parse_ports,
    parse_target,
)
from conch_container.config.security import SecurityConfig
from conch_container.envnames import env_rejection, variable_problem
from conch_container.errors import RequestRejected
from conch_container.interfaces import ProgramRequest

ENABLE = "enable"
FILTER = "filter"
DISABLE = "disable"

#: Where a forced command finds what the client asked for (OpenSSH's name).
ORIGINAL_COMMAND_VARIABLE = "SSH_ORIGINAL_COMMAND"


def effective_mode(mode: str, default_mode: str) -> str:
    """The mode in force: the request type's own, else ``defaultMode``, else ``enable``."""
    return mode or default_mode or ENABLE


def signal_name(name: str) -> str:
    """A signal's name as the policy compares it: without the ``SIG`` prefix."""
    return name.removeprefix("SIG")


@attrs.frozen
class _ForwardingGate:
    """One kind of forwarding under ``security.forwarding``: its mode's key, code
    and wording. ``enable`` permits unless the deny list matches, ``filter``
    only what the allow list matches (a kind without lists: nothing), any
    other mode nothing.

    :ivar what: the kind, as the log's explanation names it.
    :ivar disabled: what the user reads when the mode does not permit the kind.
    :ivar narrowed: what the user reads when a list refused this one request
        (None: the kind has no lists).
    :ivar in_deny, not_in_allow: why, for the log, a list refused it.
    """

    mode_key: str
    code: MessageCode
    what: str
    disabled: str
    narrowed: str | None = None
    in_deny: str = ""
    not_in_allow: str = ""

    def decide(
        self, mode: str, *, denied: bool = False, allowed: bool = False, **fields: object
    ) -> RequestRejected | None:
        """None when ``mode`` and the lists (``denied``, ``allowed``) permit; else the refusal."""
        lists = self.narrowed is not None
        if mode == ENABLE and not denied:
            return None
        if mode == FILTER and lists and allowed:
            return None
        if lists and mode == ENABLE:
            user, why = self.narrowed, self.in_deny
        elif lists and mode == FILTER:
            user, why = self.narrowed, self.not_in_allow
        else:
            user = self.disabled
            why = (
                f"it is not enabled in the security settings (security.forwarding.{self.mode_key})"
            )
        assert user is not None
        return RequestRejected(self.code, user, f"{self.what} is rejected because {why}.", **fields)


_FORWARD = _ForwardingGate(
    "forwardingMode",
    messages.SECURITY_FORWARDING_REJECTED,
    "Port forwarding",
    "Port forwarding is disabled.",
    "Port forwarding to this target is not permitted.",
    "the target is in security.forwarding.deny",
    "the target is not in security.forwarding.allow",
)
_REVERSE = _ForwardingGate(
    "reverseForwardingMode",
    messages.SECURITY_REVERSE_FORWARDING_REJECTED,
    "Remote port forwarding",
    "Remote port forwarding is disabled.",
    "Remote port forwarding on this port is not permitted.",
    "the port is in security.forwarding.reverseDeny",
    "the port is not in security.forwarding.reverseAllow",
)
_SOCKET = _ForwardingGate(
    "socketForwardingMode",
    messages.SECURITY_SOCKET_FORWARDING_REJECTED,
    "Unix socket forwarding",
    "Socket forwarding is disabled.",
)
_SOCKET_LISTEN = _ForwardingGate(
    "socketListenMode",
    messages.SECURITY_SOCKET_LISTEN_REJECTED,
    "Listening on a Unix socket",
    "Socket listening is disabled.",
)
_X11 = _ForwardingGate(
    "x11ForwardingMode",
    messages.SECURITY_X11_REJECTED,
    "X11 forwarding",
    "X11 forwarding is disabled.",
)
_AGENT = _ForwardingGate(
    "agentForwardingMode",
    messages.SECURITY_AGENT_FORWARDING_REJECTED,
    "Agent forwarding",
    "Agent forwarding is disabled.",
)


def _refusal(mode: str, name: str, allow: frozenset[str], deny: frozenset[str]) -> str | None:
    """Why a mode with allow and deny lists refuses ``name``, or ``None`` if it permits it."""
    if mode == DISABLE:
        return "it is disabled in the security settings"
    if mode == FILTER:
        return None if name in allow else "it is not on the allow list"
    return "it is on the deny list" if name in deny else None


@attrs.frozen
class SecurityPolicy:
    """The ``security`` settings of one connection, with every mode resolved.

    Build it with :meth:`from_config` from the connection's configuration,
    which may differ per user once the configuration webhook supplies it.

    :ivar max_sessions: concurrent session channels allowed, ``None`` for no limit.
    :ivar force_command: the command every program request becomes, or ``""``.
    :ivar command_disabled_by_kuberun: ``command_mode`` is ``disable`` because
        of a translated ``kuberun.pod.disableCommand``: a refused command is
        then a ``KUBERUN_EXEC_DISABLED``, as ContainerSSH logged it.
    """

    env_mode: str = ENABLE
    env_allow: frozenset[str] = frozenset()
    env_deny: frozenset[str] = frozenset()
    command_mode: str = ENABLE
    command_allow: frozenset[str] = frozenset()
    shell_mode: str = ENABLE
    subsystem_mode: str = ENABLE
    subsystem_allow: frozenset[str] = frozenset()
    subsystem_deny: frozenset[str] = frozenset()
    tty_mode: str = ENABLE
    signal_mode: str = ENABLE
    signal_allow: frozenset[str] = frozenset()
    signal_deny: frozenset[str] = frozenset()
    force_command: str = ""
    max_sessions: int | None = None
    command_disabled_by_kuberun: bool = False
    forwarding_mode: str = DISABLE
    reverse_forwarding_mode: str = DISABLE
    forward_allow: tuple[TargetPattern, ...] = ()
    forward_deny: tuple[TargetPattern, ...] = ()
    reverse_allow: tuple[PortRange, ...] = ()
    reverse_deny: tuple[PortRange, ...] = ()
    socket_forwarding_mode: str = DISABLE
    socket_listen_mode: str = DISABLE
    x11_forwarding_mode: str = DISABLE
    agent_forwarding_mode: str = DISABLE
    max_forwards: int = 256

    @classmethod
    def from_config(cls, config: SecurityConfig) -> SecurityPolicy:
        """The policy a ``security`` configuration section describes."""

        def mode(value: str) -> str:
            return effective_mode(value, config.default_mode)

        def signals(values: tuple[str, ...]) -> frozenset[str]:
            return frozenset(signal_name(v) for v in values)

        return cls(
            env_mode=mode(config.env.mode),
            env_allow=frozenset(config.env.allow),
            env_deny=frozenset(config.env.deny),
            command_mode=mode(config.command.mode),
            command_allow=frozenset(config.command.allow),
            shell_mode=mode(config.shell.mode),
            subsystem_mode=mode(config.subsystem.mode),
            subsystem_allow=frozenset(config.subsystem.allow),
            subsystem_deny=frozenset(config.subsystem.deny),
            tty_mode=mode(config.tty.mode),
            signal_mode=mode(config.signal.mode),
            signal_allow=signals(config.signal.allow),
            signal_deny=signals(config.signal.deny),
            force_command=config.force_command,
            max_sessions=None if config.max_sessions < 0 else config.max_sessions,
            command_disabled_by_kuberun=config.kuberun_disable_command,
            # Not subject to defaultMode: ContainerSSH's forwarding modes
            # default to disable on their own.
            forwarding_mode=config.forwarding.forwarding_mode,
            reverse_forwarding_mode=config.forwarding.reverse_forwarding_mode,
            forward_allow=tuple(parse_target(p) for p in config.forwarding.allow),
            forward_deny=tuple(parse_target(p) for p in config.forwarding.deny),
            reverse_allow=tuple(parse_ports(p) for p in config.forwarding.reverse_allow),
            reverse_deny=tuple(parse_ports(p) for p in config.forwarding.reverse_deny),
            socket_forwarding_mode=config.forwarding.socket_forwarding_mode,
            socket_listen_mode=config.forwarding.socket_listen_mode,
            x11_forwarding_mode=config.forwarding.x11_forwarding_mode,
            agent_forwarding_mode=config.forwarding.agent_forwarding_mode,
            max_forwards=config.forwarding.max_connections,
        )

    # Requests before the program starts

    def check_env(self, name: str, value: str = "") -> RequestRejected | None:
        """May the client set the environment variable ``name`` to ``value``?

        First, whether any program can be given the variable at all (a
        portable name, no NUL in the value: see :mod:`conch_container.envnames`);
        the lists compare whole names, which means nothing for a name that
        the backend would split at an ``=``. Of the value nothing else is
        looked at.
        """
        why = variable_problem(name, value)
        if why is None and self.force_command and name == ORIGINAL_COMMAND_VARIABLE:
            # The forced command must be able to trust it; OpenSSH sets it
            # itself, after the client's variables. Without this, a shell
            # request would carry any command past the command allow list
            # into the forced command.
            why = "it is reserved for the forced command"
        if why is None:
            why = _refusal(self.env_mode, name, self.env_allow, self.env_deny)
        if why is None:
            return None
        return env_rejection(name, why)

    def check_variable(self, name: str, value: str) -> RequestRejected | None:
        """May a program be given ``name=value`` at all, whatever the ``env`` policy says?

        For the variables that come with other requests (``TERM`` with a
        terminal), which the ``env`` lists do not judge.
        """
        why = variable_problem(name, value)
        return None if why is None else env_rejection(name, why)

    def check_tty(self) -> RequestRejected | None:
        """May the client have a terminal? (``filter`` has nothing to filter by: it refuses.)"""
        if self.tty_mode == ENABLE:
            return None
        return RequestRejected(
            messages.SECURITY_TTY_REJECTED,
            "TTY allocation disabled.",
            "TTY allocation is disabled in the security settings.",
        )

    # Programs

    def check_program(self, program: ProgramRequest) -> RequestRejected | None:
        """May the client run this shell, command or subsystem?

        The client's request is checked, before any ``forceCommand`` replaces
        it: the policies decide what users may ask for, the forced command is
        the operator's own choice.
        """
        if program.kind == "shell":
            return self._check_shell()
        if program.kind == "exec":
            return self._check_command(program.command)
        return self._check_subsystem(program.command)

    def _check_shell(self) -> RequestRejected | None:
        if self.shell_mode == ENABLE:
            return None
        return RequestRejected(
            messages.SECURITY_SHELL_REJECTED,
            "Shell execution disabled.",
            "Shell execution is disabled in the security settings.",
        )

    def _check_command(self, command: str) -> RequestRejected | None:
        if self.command_mode == DISABLE and self.command_disabled_by_kuberun:
            return RequestRejected(
                messages.KUBERUN_EXEC_DISABLED,
                "Command execution is disabled.",
                "Command execution is rejected because disableCommand is set in the kuberun "
                "configuration.",
                command=command,
            )
        if self.command_mode == DISABLE:
            why = "command execution is disabled in the security settings"
        elif self.command_mode == FILTER and command not in self.command_allow:
            why = "the command does not match the allow list"
        else:
            return None
        return RequestRejected(
            messages.SECURITY_EXEC_REJECTED,
            "Command execution disabled.",
            f"Command execution is rejected because {why}.",
            command=command,
        )

    def _check_subsystem(self, subsystem: str) -> RequestRejected | None:
        why = _refusal(self.subsystem_mode, subsystem, self.subsystem_allow, self.subsystem_deny)
        if why is None:
            return None
        return RequestRejected(
            messages.SECURITY_SUBSYSTEM_REJECTED,
            "Subsystem execution disabled.",
            f"The subsystem is rejected because {why}.",
            subsystem=subsystem,
        )

    def forced_program(self, program: ProgramRequest) -> tuple[ProgramRequest, str | None]:
        """What actually runs for a permitted request, and the ``SSH_ORIGINAL_COMMAND`` to set.

        Without ``forceCommand`` that is the request itself and no variable.
        With it, the forced command runs as an ``exec`` whatever was asked;
        the variable holds the exec command or the subsystem name, and is not
        set for a shell (as OpenSSH's ``ForceCommand`` does).
        """
        if not self.force_command:
            return program, None
        original = None if program.kind == "shell" else program.command
        return ProgramRequest("exec", self.force_command), original

    # While the program runs

    def check_signal(self, name: str) -> RequestRejected | None:
        """May the client deliver the signal ``name`` (with or without ``SIG``)?"""
        signal = signal_name(name)
        why = _refusal(self.signal_mode, signal, self.signal_allow, self.signal_deny)
        if why is None:
            return None
        return RequestRejected(
            messages.SECURITY_SIGNAL_REJECTED,
            "Sending signals is rejected.",
            f"Sending the signal is rejected because {why}.",
            signal=signal,
        )

    # Channels

    def check_forwarding(self, host: str, port: int) -> RequestRejected | None:
        """May the client open a connection to ``host:port`` from the container
        (``direct-tcpip``: ``ssh -L``, ``ssh -D``)? ``enable``: unless ``deny``
        matches; ``filter``: only if ``allow`` matches (nothing when empty, as
        in ContainerSSH); ``disable``: never."""
        return _FORWARD.decide(
            self.forwarding_mode,
            denied=any_target(self.forward_deny, host, port),
            allowed=any_target(self.forward_allow, host, port),
            host=host,
            port=port,
        )

    def check_reverse_forwarding(self, host: str, port: int) -> RequestRejected | None:
        """May the container listen on ``host:port`` for the client (``tcpip-forward``:
        ``ssh -R``)? ``enable``: unless ``reverseDeny`` has the port; ``filter``:
        only if ``reverseAllow`` has it; ``disable``: never."""
        return _REVERSE.decide(
            self.reverse_forwarding_mode,
            denied=any_port(self.reverse_deny, port),
            allowed=any_port(self.reverse_allow, port),
            host=host,
            port=port,
        )

    def check_socket_forwarding(self, path: str) -> RequestRejected | None:
        """May the client connect to the Unix socket ``path`` in the container
        (``direct-streamlocal@openssh.com``: ``ssh -L ...:/path``)?"""
        return _SOCKET.decide(self.socket_forwarding_mode, path=path)

    def check_socket_listen(self, path: str) -> RequestRejected | None:
        """May the container listen on the Unix socket ``path`` for the client
        (``streamlocal-forward@openssh.com``: ``ssh -R /path:...``)?"""
        return _SOCKET_LISTEN.decide(self.socket_listen_mode, path=path)

    def check_listen(self, kind: int, host: str, port: int) -> RequestRejected | None:
        """May the container listen for the client: a port (``ssh -R``), a Unix
        socket (``ssh -R /path``), an X11 display (``x11-req``) or an agent
        socket (``auth-agent-req@openssh.com``)? ``kind`` is the helper's
        connection type."""
        if kind == ConnectionType.PORT_FORWARD:
            return self.check_reverse_forwarding(host, port)
        if kind == ConnectionType.SOCKET_FORWARD:
            return self.check_socket_listen(host)
        if kind == ConnectionType.X11:
            return _X11.decide(self.x11_forwarding_mode)
        return _AGENT.decide(self.agent_forwarding_mode)

    def check_new_forward(self, open_forwards: int) -> RequestRejected | None:
        """May another forwarded connection open while ``open_forwards`` are open?"""
        if open_forwards < self.max_forwards:
            return None
        return RequestRejected(
            messages.SECURITY_MAX_FORWARDS,
            "Too many forwarded connections.",
            "The connection has reached the maximum number of forwarded connections open "
            "at once (security.forwarding.maxConnections).",
            maxConnections=self.max_forwards,
        )

    def check_new_session(self, open_sessions: int) -> RequestRejected | None:
        """May another session channel open while ``open_sessions`` are open?"""
        if self.max_sessions is None or open_sessions < self.max_sessions:
            return None
        return RequestRejected(
            messages.SECURITY_MAX_SESSIONS,
            "Too many sessions.",
            "The user has reached the maximum number of concurrent sessions on this connection.",
            maxSessions=self.max_sessions,
        )

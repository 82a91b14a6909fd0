"""The security filter: the ``security`` policy in front of any backend.

:class:`SecurityBackend` wraps an
:class:`~conch_container.interfaces.IContainerBackend` and provides the same
interface, and so do the connections and sessions it hands out: the SSH layer
talks to the filter as if it were the backend, and the backend never learns
the filter exists. Whatever backend an operator plugs in gets the policy.

Each connection reads its policy from ``context.config.security`` when it
connects, so a per-user configuration (from the configuration webhook)
applies to that user's connection only.

A refused request raises :class:`~conch_container.errors.RequestRejected`
after logging its ``SECURITY_*`` code with the rejected name or command (never
an environment variable's value); nothing reaches the backend, and the rest of
the connection carries on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zope.interface import implementer

from conch_container import messages
from conch_container.backend.forwardlisten import ListenRequest
from conch_container.deferreds import as_deferred
from conch_container.envnames import value_problem
from conch_container.errors import ContainerSSHError, RequestRejected
from conch_container.interfaces import (
    ConnectionContext,
    IBackendConnection,
    IBackendSession,
    IContainerBackend,
    ISessionIO,
    ProgramRequest,
    PtyRequest,
)
from conch_container.log.logger import CodeLogger
from conch_container.security.policy import ORIGINAL_COMMAND_VARIABLE, SecurityPolicy

#: What the user is told when the forced command cannot be given its variable.
EXEC_FAILED_USER_MESSAGE = "Could not execute program."


def _enforce(rejection: RequestRejected | None, log: CodeLogger) -> None:
    """Log and raise a policy's refusal; do nothing when the request is permitted."""
    if rejection is not None:
        rejection.log(log)
        raise rejection


@implementer(IContainerBackend)
class SecurityBackend:
    """Applies each connection's ``security`` settings in front of ``backend``.

    :param backend: the :class:`~conch_container.interfaces.IContainerBackend`
        that runs the programs.
    """

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    @property
    def name(self) -> str:
        """The wrapped backend's name: the filter is not a backend of its own."""
        return str(self._backend.name)

    async def connect(self, context: ConnectionContext) -> SecurityConnection:
        """Connect through the wrapped backend, under the connection's own policy."""
        policy = SecurityPolicy.from_config(context.config.security)
        connection = await as_deferred(self._backend.connect(context))
        return SecurityConnection(connection, policy, context.log)


@implementer(IBackendConnection)
class SecurityConnection:
    """One connection's backend resources, with its policy and its count of open sessions.

    ``maxSessions`` limits the session channels open *at the same time*: a
    session counts from :meth:`open_session` until its ``close``.

    :param connection: the wrapped :class:`~conch_container.interfaces.IBackendConnection`.
    :param policy: the connection's :class:`SecurityPolicy`.
    :param log: the connection's logger.
    """

    def __init__(self, connection: Any, policy: SecurityPolicy, log: CodeLogger) -> None:
        self._connection = connection
        self.policy = policy
        self._log = log
        self._open: set[SecuritySession] = set()
        self._forwards: set[_CountedSession] = set()

    @property
    def open_sessions(self) -> int:
        """How many sessions are open now."""
        return len(self._open)

    def open_session(self, channel_id: object) -> SecuritySession:
        """A session for a channel, unless the connection already has ``maxSessions`` open.

        :raises RequestRejected: (``SECURITY_MAX_SESSIONS``) at the limit; the
            SSH layer refuses the channel with ``OPEN_RESOURCE_SHORTAGE``.
        """
        log = self._log.bind(channelId=channel_id)
        _enforce(self.policy.check_new_session(len(self._open)), log)
        session = SecuritySession(
            self._connection.open_session(channel_id), self.policy, log, self._open.discard
        )
        self._open.add(session)
        return session

    def open_forward(self, channel_id: object, host: str, port: int, *, unix: bool = False) -> Any:
        """A session that runs the dialler of a forwarded connection, if the policy permits it.

        The session is the backend's own: the command and shell policy and a
        forced command concern what the user runs, not the dialler, and a
        forwarded connection does not count against ``maxSessions``.

        :raises RequestRejected: (``SECURITY_FORWARDING_REJECTED``) unless
            ``security.forwarding.forwardingMode`` enables it.
        :raises ContainerSSHError: (``SSH_FORWARD_FAILED``) when the backend
            cannot dial from its containers.
        """
        log = self._log.bind(channelId=channel_id)
        if unix:
            _enforce(self.policy.check_socket_forwarding(host), log)
        else:
            _enforce(self.policy.check_forwarding(host, port), log)
        _enforce(self.policy.check_new_forward(len(self._forwards)), log)
        open_forward = getattr(self._connection, "open_forward", None)
        if open_forward is None:
            raise ContainerSSHError(
                messages.SSH_FORWARD_FAILED,
                "Port forwarding is not available.",
                "this backend cannot dial connections from its containers",
            )
        forward = _CountedSession(
            open_forward(channel_id, host, port, unix=unix), self._forwards.discard
        )
        self._forwards.add(forward)
        return forward

    def open_listener(self, request: ListenRequest, on_connection: Any) -> Any:
        """A port, socket or X11 display the container listens on for the client, if
        the policy permits that kind of listening.

        Each connection the container accepts counts, until its channel closes,
        against ``security.forwarding.maxConnections`` with the ``ssh -L``/``-D``
        ones; one beyond the limit is closed at once (``SECURITY_MAX_FORWARDS``).

        :raises RequestRejected: (``SECURITY_*_REJECTED``) unless the mode of
            ``security.forwarding`` for that kind enables it.
        :raises ContainerSSHError: (``SSH_FORWARD_FAILED``) when the backend
            cannot listen in its containers.
        """
        _enforce(
            self.policy.check_listen(request.kind, request.bind_host, request.bind_port), self._log
        )
        open_listener = getattr(self._connection, "open_listener", None)
        if open_listener is None:
            raise ContainerSSHError(
                messages.SSH_FORWARD_FAILED,
                "Forwarding is not available.",
                "this backend cannot listen in its containers",
            )

        def accepted(connection: Any) -> None:
            # Connections the container accepts share the budget of forwarded
            # connections (security.forwarding.maxConnections) with ssh -L/-D:
            # one beyond it is closed at once, before any channel opens.
            refusal = self.policy.check_new_forward(len(self._forwards))
            if refusal is not None:
                refusal.log(self._log)
                connection.close()
                return
            counted = _CountedSession(connection, self._forwards.discard)
            self._forwards.add(counted)
            on_connection(counted)

        return open_listener(request, accepted)

    def close(self) -> Any:
        """Close the wrapped connection (and with it every session)."""
        return self._connection.close()


class _CountedSession:
    """A forwarded connection's backend session, counted until it is closed."""

    def __init__(self, session: Any, on_closed: Callable[[_CountedSession], None]) -> None:
        self._session = session
        self._on_closed = on_closed

    def __getattr__(self, name: str) -> Any:
        # Everything but close is the backend session's own.
        return getattr(self._session, name)

    def close(self) -> Any:
        self._on_closed(self)
        return self._session.close()


@implementer(IBackendSession)
class SecuritySession:
    """One channel's session: each request is checked before the backend sees it.

    :param session: the wrapped :class:`~conch_container.interfaces.IBackendSession`.
    :param policy: the connection's policy.
    :param log: bound to the connection and channel.
    :param closed: called with this session on its first :meth:`close`.
    """

    def __init__(
        self,
        session: Any,
        policy: SecurityPolicy,
        log: CodeLogger,
        closed: Callable[[SecuritySession], object],
    ) -> None:
        self._session = session
        self._policy = policy
        self._log = log
        self._closed_callback: Callable[[SecuritySession], object] | None = closed
        self._term: str | None = None

    def set_env(self, name: str, value: str) -> Any:
        """Pass a variable on if a program can be given it and the ``env`` policy permits it."""
        if self._is_terminal_type(name, value):
            _enforce(self._policy.check_variable(name, value), self._log)
        else:
            _enforce(self._policy.check_env(name, value), self._log)
        return self._session.set_env(name, value)

    def set_gateway_env(self, name: str, value: str) -> Any:
        """Pass a variable the gateway sets for its own features (``DISPLAY``,
        ``SSH_AUTH_SOCK``); the ``env`` policy judges the client's variables only."""
        return self._session.set_env(name, value)

    def _is_terminal_type(self, name: str, value: str) -> bool:
        # TERM from an accepted pty-req belongs to the terminal, not to the
        # env policy (OpenSSH and ContainerSSH set it with the terminal).
        return name == "TERM" and self._term is not None and value == self._term

    def set_pty(self, pty: PtyRequest) -> Any:
        """Pass a terminal request on if the ``tty`` policy permits terminals."""
        _enforce(self._policy.check_tty(), self._log)
        result = self._session.set_pty(pty)
        self._term = pty.term
        return result

    def start(self, program: ProgramRequest, io: ISessionIO) -> Any:
        """Start the program if permitted; with ``forceCommand``, start that instead.

        The policy judges what the client asked for; then, with a forced
        command, the client's exec command or subsystem name goes to the
        program as ``SSH_ORIGINAL_COMMAND`` and the forced command runs.

        :raises RequestRejected: when the policy refuses the request.
        :raises ~conch_container.errors.ContainerSSHError: (``SECURITY_EXEC_FAILED_SETENV``)
            when the backend refuses ``SSH_ORIGINAL_COMMAND``; nothing is started.
        """
        _enforce(self._policy.check_program(program), self._log)
        if not self._policy.force_command:
            return self._session.start(program, io)
        to_run, original = self._policy.forced_program(program)
        if original is not None:
            self._set_original_command(original)
        self._log.event(
            messages.SECURITY_EXEC_FORCING_COMMAND,
            "Forcing command execution to {command}",
            command=to_run.command,
            requestType=program.kind,
        )
        return self._session.start(to_run, io)

    def _set_original_command(self, original: str) -> None:
        """Give the forced command what the client asked for, as ``SSH_ORIGINAL_COMMAND``.

        It is set after every variable of the client's, so the program sees
        the gateway's value, as OpenSSH's sshd does.

        :raises ~conch_container.errors.ContainerSSHError: (``SECURITY_EXEC_FAILED_SETENV``)
            when the value cannot be an environment variable's or the backend refuses it.
        """
        why = value_problem(original)
        if why is None:
            try:
                self._session.set_env(ORIGINAL_COMMAND_VARIABLE, original)
            except ContainerSSHError as e:
                why = e.explanation
        if why is not None:
            raise ContainerSSHError(
                messages.SECURITY_EXEC_FAILED_SETENV,
                EXEC_FAILED_USER_MESSAGE,
                "Command execution failed because the security layer could not set "
                f"the SSH_ORIGINAL_COMMAND variable: {why}",
            )

    def write(self, data: bytes) -> Any:
        """Client stdin, passed on."""
        return self._session.write(data)

    def close_stdin(self) -> Any:
        """Client EOF, passed on."""
        return self._session.close_stdin()

    def register_input_producer(self, producer: Any) -> Any:
        """Stdin flow control, passed on (if the backend has it): no policy covers it."""
        register = getattr(self._session, "register_input_producer", None)
        return None if register is None else register(producer)

    def resize(self, columns: int, rows: int, width: int, height: int) -> Any:
        """A window change, passed on: no policy covers it."""
        return self._session.resize(columns, rows, width, height)

    def signal(self, name: str) -> Any:
        """Deliver a signal if the ``signal`` policy permits it."""
        _enforce(self._policy.check_signal(name), self._log)
        return self._session.signal(name)

    def close(self) -> Any:
        """Close the wrapped session; from now on it no longer counts as open."""
        callback, self._closed_callback = self._closed_callback, None
        if callback is not None:
            callback(self)
        return self._session.close()

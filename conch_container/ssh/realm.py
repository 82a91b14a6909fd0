"""The realm: from an authenticated user to a backend connection and an avatar.

This is ContainerSSH's ``OnHandshakeSuccess`` step: after authentication and
before the client may open a channel, the configuration server (when there is
one) decides the connection's configuration, then the backend prepares the
connection (in Docker connection mode: creates and starts the container). If
either refuses, the client is disconnected with the error's user-safe message.

The realm is built for one connection with everything it works with: the
connection itself, the backend, the configuration and the session registry
(the factory wires them, see :meth:`ContainerSSHFactory.portal_for
<conch_container.ssh.factory.ContainerSSHFactory.portal_for>`), the way
Conch's ``manhole_ssh.TerminalRealm`` is given what its avatars need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from twisted.conch.interfaces import IConchUser
from twisted.cred.portal import IRealm
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from zope.interface import implementer

from conch_container import messages
from conch_container.errors import GENERIC_USER_MESSAGE, ContainerSSHError
from conch_container.interfaces import ConnectionContext, IContainerBackend
from conch_container.log.logger import CodeLogger
from conch_container.metrics.recorders import (
    NULL_BACKEND_RECORDER,
    NULL_METRICS,
    BackendRecorder,
    Metrics,
)
from conch_container.ssh.avatar import ContainerAvatar, TeardownRegistry
from conch_container.ssh.checkers import AuthenticatedUser
from conch_container.ssh.transport import DISCONNECT_BY_APPLICATION

if TYPE_CHECKING:
    from conch_container.codes import Level
    from conch_container.config import AppConfig
    from conch_container.metadata import ConnectionMetadata
    from conch_container.webhook.connectionconfig import ConfigServerSource, ConnectionSettings


class ConnectionRejected(Exception):
    """The connection was closed after authentication; the user already got the message."""


class LoginTransport(Protocol):
    """What the realm needs of the connection a user logs in on.

    :class:`~conch_container.ssh.transport.ServerTransport` provides it.
    """

    @property
    def connection_id(self) -> str:
        """The connection's id, for the registry's account of what it waits for."""

    @property
    def lost(self) -> bool:
        """True once the client has gone."""

    @property
    def log(self) -> CodeLogger:
        """The connection's logger (bound to the user once authenticated)."""

    def authentication_succeeded(self, metadata: ConnectionMetadata) -> None:
        """A user authenticated: stop the login timer, log the handshake."""

    def disconnect(self, code: int, description: str) -> None:
        """Close the connection with a user-safe description."""

    def when_lost(self) -> Deferred[None]:
        """Fires once the client has gone (at once if it already has)."""

    def use_log_level(self, level: Level) -> None:
        """Log this connection's events at ``level`` from now on (its ``log.level``)."""


@implementer(IRealm)
class ConnectionRealm:
    """The realm for one SSH connection, built with what it needs.

    :param transport: the connection (:class:`LoginTransport`): the client
        to disconnect on a refusal, the connection's logger, whether the
        client is still there.
    :param backend: the :class:`~conch_container.interfaces.IContainerBackend` that
        connects the user.
    :param config: the gateway's configuration, given to the backend as the
        connection's.
    :param registry: the session registry
        (:class:`~conch_container.ssh.avatar.TeardownRegistry`): the backend
        setup and the avatar's teardown are handed to it, so that shutdown
        waits for them.
    :param config_source: the configuration server
        (:class:`~conch_container.webhook.connectionconfig.ConfigServerSource`),
        or None when there is none. Its call is not handed to the registry:
        a shutdown closes the connection, which cancels the call.
    :param clock: times the backend's set-up (needed only with ``backend_metrics``).
    :param metrics: counts the avatar's running sessions.
    :param backend_metrics: counts the backend's requests and errors and
        times its set-up.
    """

    def __init__(
        self,
        transport: LoginTransport,
        *,
        backend: IContainerBackend,
        config: AppConfig,
        registry: TeardownRegistry,
        config_source: ConfigServerSource | None = None,
        clock: IReactorTime | None = None,
        metrics: Metrics = NULL_METRICS,
        backend_metrics: BackendRecorder = NULL_BACKEND_RECORDER,
    ) -> None:
        self._transport = transport
        self._backend = backend
        self._config = config
        self._registry = registry
        self._config_source = config_source
        self._clock = clock
        self._metrics = metrics
        self._backend_metrics = backend_metrics

    def requestAvatar(self, avatarId: Any, mind: object, *interfaces: Any) -> Deferred[Any]:
        """Connect the user to the backend; fires with ``(IConchUser, avatar, logout)``."""
        if IConchUser not in interfaces:
            raise NotImplementedError("only IConchUser avatars are available")
        if not isinstance(avatarId, AuthenticatedUser):
            raise TypeError(f"unexpected avatar id {avatarId!r}")
        return Deferred.fromCoroutine(self._login(avatarId))

    def _reject(
        self, log: CodeLogger, reason: str, user_message: str, failure: Failure | None = None
    ) -> ConnectionRejected:
        log.event(
            messages.SSH_BACKEND_REJECTED_HANDSHAKE,
            "Backend rejected the connection: {reason}",
            reason=reason,
            failure=failure,
        )
        self._transport.disconnect(DISCONNECT_BY_APPLICATION, user_message)
        return ConnectionRejected(reason)

    def _reject_failure(self, log: CodeLogger, what: str) -> ConnectionRejected:
        """Reject for the exception being handled, with its user message if it has one."""
        failure = Failure()
        error = failure.value
        if isinstance(error, ContainerSSHError):
            return self._reject(log, error.explanation, error.user_message)
        return self._reject(
            log, f"{what} error: {failure.getErrorMessage()}", GENERIC_USER_MESSAGE, failure
        )

    async def _login(self, user: AuthenticatedUser) -> tuple[Any, ContainerAvatar, Any]:
        transport = self._transport
        registry = self._registry
        if transport.lost:
            # The client left while its credentials were being checked.
            raise ConnectionRejected("the client disconnected during authentication")
        transport.authentication_succeeded(user.metadata)
        log = transport.log
        if not registry.accepting:
            raise self._reject(log, "the server is shutting down", GENERIC_USER_MESSAGE)
        config, metadata = self._config, user.metadata
        if self._config_source is not None:
            settings = await self._fetch_settings(self._config_source, metadata, log)
            config, metadata = settings.config, settings.metadata
            if config.log.level != self._config.log.level:
                transport.use_log_level(config.log.level)
                log = transport.log
            if not registry.accepting:
                raise self._reject(log, "the server is shutting down", GENERIC_USER_MESSAGE)
        context = ConnectionContext(metadata=metadata, config=config, log=log)
        # Shutdown must wait for a backend that is still preparing, or the
        # container it is creating would outlive the gateway.
        settled: Deferred[None] = Deferred()
        registry.track(settled, f"backend setup for connection {transport.connection_id}")
        clock = self._clock
        started = clock.seconds() if clock is not None else 0.0
        # Counted under the backend this connection uses (a configuration
        # server may choose another than the static one).
        backend_metrics = (
            self._backend_metrics
            if config.backend == self._config.backend
            else self._metrics.backend(config.backend)
        )
        backend_metrics.request()
        try:
            try:
                connection = await maybeDeferred(self._backend.connect, context)
            except Exception:
                backend_metrics.error()
                raise self._reject_failure(log, "backend") from None
            if transport.lost or not registry.accepting:
                # Nobody will ever log this avatar out: release what the
                # backend prepared right away.
                await ContainerAvatar.close_backend_connection(connection, log)
                reason = (
                    "the client disconnected while the backend was preparing"
                    if transport.lost
                    else "the server is shutting down"
                )
                raise self._reject(log, reason, GENERIC_USER_MESSAGE)
            if clock is not None:
                backend_metrics.setup_latency(clock.seconds() - started)
            avatar = ContainerAvatar(
                connection, metadata, log, registry, self._metrics, session_config=config.session
            )
            return (IConchUser, avatar, avatar.logout)
        finally:
            settled.callback(None)

    async def _fetch_settings(
        self, source: ConfigServerSource, metadata: ConnectionMetadata, log: CodeLogger
    ) -> ConnectionSettings:
        """The connection's settings from the configuration server, or a refusal.

        The call is cancelled when the client leaves (or a shutdown closes the
        connection) meanwhile: nobody waits for the rest of its 60 seconds.
        """
        fetch = Deferred.fromCoroutine(source.settings_for(metadata, log))
        self._transport.when_lost().addCallback(lambda _: fetch.cancel())
        try:
            return await fetch
        except CancelledError:
            raise ConnectionRejected(
                "the client disconnected while its configuration was fetched"
            ) from None
        except Exception:
            raise self._reject_failure(log, "configuration server") from None

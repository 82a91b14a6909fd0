"""The avatar: one authenticated connection and its backend resources."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from twisted.conch.avatar import ConchUser
from twisted.conch.error import ConchError
from twisted.conch.ssh.connection import (
    OPEN_ADMINISTRATIVELY_PROHIBITED,
    OPEN_CONNECT_FAILED,
    OPEN_RESOURCE_SHORTAGE,
)
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.python.failure import Failure

from conch_container import messages
from conch_container.codes import Level
from conch_container.errors import ContainerSSHError, RequestRejected
from conch_container.log.logger import CodeLogger
from conch_container.metadata import ConnectionMetadata
from conch_container.metrics.recorders import NULL_METRICS, Metrics
from conch_container.ssh.channel import SessionChannel
from conch_container.ssh.forwardchannel import DirectStreamlocalChannel, DirectTcpipChannel
from conch_container.ssh.forwarding import (
    BadForwardTarget,
    parse_direct_streamlocal,
    parse_direct_tcpip,
)
from conch_container.ssh.remoteforward import RemoteForwards
from conch_container.ssh.requests import PayloadError, RequestRefused
from conch_container.ssh.session import ContainerSession

if TYPE_CHECKING:
    from conch_container.config.session import SessionConfig

#: Global requests answered with failure without a log line: OpenSSH clients
#: send this one every ``ServerAliveInterval``; ContainerSSH does the same.
#: OpenSSH's channel for a connection to a Unix socket (its PROTOCOL, 2.4).
STREAMLOCAL = b"direct-streamlocal@openssh.com"
_QUIET_GLOBAL_REQUESTS = frozenset({b"keepalive@openssh.com"})


class TeardownRegistry(Protocol):
    """What the SSH layer needs of the session registry.

    :class:`~conch_container.service.SessionRegistry` provides it.
    """

    @property
    def accepting(self) -> bool:
        """False once the gateway is shutting down."""

    def track(self, teardown: Deferred[Any], what: str) -> None:
        """Remember ``teardown`` (described by ``what``) until it finishes; shutdown waits."""


class ContainerAvatar(ConchUser):
    """What a user is, once logged in: a backend connection plus its sessions.

    Each session channel is created here, in :meth:`lookupChannel`, together
    with its own :class:`ContainerSession`. The avatar does not adapt to
    Conch's :class:`~twisted.conch.interfaces.ISession`: the channel handles
    the session requests itself (see :mod:`~conch_container.ssh.channel`).

    :param connection: the backend's
        :class:`~conch_container.interfaces.IBackendConnection`.
    :param metadata: the authenticated connection metadata.
    :param log: the connection's logger.
    :param registry: the session registry; the teardown is handed to it so
        that shutdown can wait for it.
    :param metrics: counts the sessions running a program.
    :param session_config: the connection's time limits (``session`` section);
        the connection service enforces them (:mod:`~conch_container.ssh.timeouts`),
        acting on the user through this avatar.
    """

    def __init__(
        self,
        connection: Any,
        metadata: ConnectionMetadata,
        log: CodeLogger,
        registry: TeardownRegistry,
        metrics: Metrics = NULL_METRICS,
        session_config: SessionConfig | None = None,
    ) -> None:
        super().__init__()
        # The channel types served; the connection refuses the others before
        # looking them up.
        self.channelLookup = {
            b"session": SessionChannel,
            b"direct-tcpip": DirectTcpipChannel,
            STREAMLOCAL: DirectStreamlocalChannel,
        }
        self.backend_connection = connection
        self.metadata = metadata
        self.log = log
        self._registry = registry
        self.metrics = metrics
        self._sessions: set[ContainerSession] = set()
        self._closing: set[Deferred[None]] = set()
        self._logged_out = False
        self._remote_forwards = RemoteForwards(self)
        self.session_config = session_config
        #: Set by the connection service: how the client is disconnected.
        self.disconnect: Callable[[str], None] | None = None

    def lookupChannel(
        self, channelType: bytes, windowSize: int, maxPacket: int, data: bytes
    ) -> Any:
        """A new channel; a session or ``direct-tcpip`` channel gets its backend
        session now, or is refused.

        Opening the backend session before the channel is confirmed lets the
        backend, or a policy in front of it, refuse the channel itself: a
        session or forward limit (``SECURITY_MAX_SESSIONS``,
        ``SECURITY_MAX_FORWARDS``) is answered with ``OPEN_RESOURCE_SHORTAGE``,
        forwarding the policy does not enable (``SECURITY_FORWARDING_REJECTED``)
        with ``OPEN_ADMINISTRATIVELY_PROHIBITED``,
        any other refusal with ``OPEN_CONNECT_FAILED``, each with the error's
        user-safe message.
        """
        channel_args = {
            "remoteWindow": windowSize,
            "remoteMaxPacket": maxPacket,
            "data": data,
            "avatar": self,
        }
        if channelType in (b"direct-tcpip", STREAMLOCAL):
            return self._direct_tcpip(channelType, data, channel_args)
        if channelType != b"session":
            return super().lookupChannel(channelType, windowSize, maxPacket, data)
        session = ContainerSession(
            self, self._open_backend(b"session", self.backend_connection.open_session), self.metrics
        )
        return SessionChannel(session, **channel_args)

    def _direct_tcpip(self, channel_type: bytes, data: bytes, channel_args: dict[str, Any]) -> Any:
        """A forwarded connection (to a port, or to a Unix socket), if the payload
        is sound and the policy permits it."""
        unix = channel_type == STREAMLOCAL
        try:
            target = parse_direct_streamlocal(data) if unix else parse_direct_tcpip(data)
        except (BadForwardTarget, PayloadError) as e:
            self._refuse_channel(
                channel_type, self.conn.localChannelID, str(e), OPEN_CONNECT_FAILED
            )
            raise ConchError("bad forwarding target", OPEN_CONNECT_FAILED) from None

        def open_forward(channel_id: object) -> Any:
            return self.backend_connection.open_forward(
                channel_id, target.host, target.port, unix=unix
            )

        # Not counted among the sessions running a program.
        session = ContainerSession(self, self._open_backend(channel_type, open_forward))
        channel_class = DirectStreamlocalChannel if unix else DirectTcpipChannel
        return channel_class(session, target, **channel_args)

    def _open_backend(self, channel_type: bytes, open_session: Any) -> Any:
        # Conch numbers the channel right after this lookup returns: it gets
        # the connection's next local channel id.
        channel_id = self.conn.localChannelID
        try:
            return open_session(channel_id)
        except ContainerSSHError as e:
            if not isinstance(e, RequestRejected):
                e.log(self.log.bind(channelId=channel_id))  # a policy's was logged already
            if e.code in (messages.SECURITY_MAX_SESSIONS, messages.SECURITY_MAX_FORWARDS):
                reason = OPEN_RESOURCE_SHORTAGE
            elif e.code in (
                messages.SECURITY_FORWARDING_REJECTED,
                messages.SECURITY_SOCKET_FORWARDING_REJECTED,
            ):
                reason = OPEN_ADMINISTRATIVELY_PROHIBITED
            else:
                reason = OPEN_CONNECT_FAILED
            self._refuse_channel(channel_type, channel_id, e.explanation, reason)
            description = e.user_message.encode("ascii", "replace").decode("ascii")
            raise ConchError(description, reason) from None

    def _refuse_channel(
        self, channel_type: bytes, channel_id: object, explanation: str, reason: int
    ) -> None:
        self.log.bind(channelId=channel_id).event(
            messages.SSH_NEW_CHANNEL_REJECTED,
            "Rejected new channel of type {channelType}: {reason}",
            channelType=channel_type.decode("ascii"),
            reason=explanation,
        )

    def session_for(self, backend_session: Any) -> ContainerSession:
        """A session around a backend session the gateway opened itself (a forwarded
        connection the container accepted); not counted among the programs."""
        return ContainerSession(self, backend_session)

    # Session bookkeeping, used by ContainerSession.

    def session_opened(self, session: ContainerSession) -> None:
        """A session channel now holds a backend session."""
        self._sessions.add(session)

    def closing(self, closed: Deferred[Any]) -> None:
        """Teardown under way (a listener's helper ending); logout waits for it."""
        self._closing.add(closed)
        closed.addBoth(lambda _: self._closing.discard(closed))

    def session_closing(self, session: ContainerSession, closed: Deferred[None]) -> None:
        """A session's backend teardown started; logout waits for it."""
        self._sessions.discard(session)
        self.closing(closed)

    @property
    def accepting_channels(self) -> bool:
        """False once the gateway is shutting down or this user logged out."""
        return not self._logged_out and bool(self._registry.accepting)

    def gotGlobalRequest(self, requestType: bytes, data: bytes) -> Any:
        """Serve ``tcpip-forward`` and its cancel; refuse the others, logging
        those that are not keepalives."""
        if requestType in _QUIET_GLOBAL_REQUESTS:
            return 0
        name = requestType.decode("ascii", "replace")
        self.log.event(
            messages.SSH_GLOBAL_REQUEST, "Global request {requestType}", requestType=name
        )
        if requestType == b"tcpip-forward" and not self._logged_out:
            return self._remote_forwards.request(data)
        if requestType == b"cancel-tcpip-forward":
            return self._remote_forwards.cancel(data)
        if requestType == b"streamlocal-forward@openssh.com" and not self._logged_out:
            return self._remote_forwards.request(data, unix=True)
        if requestType == b"cancel-streamlocal-forward@openssh.com":
            return self._remote_forwards.cancel(data, unix=True)
        self.log.event(
            messages.SSH_UNSUPPORTED_GLOBAL_REQUEST,
            "Unsupported global request {requestType}",
            requestType=name,
        )
        return 0

    # What the connection's time limits act on (ssh.timeouts.TimeoutTarget).

    def tell_user(self, text: str) -> int:
        """Write a notice to every running program's terminal (or stderr)."""
        return sum(1 for session in list(self._sessions) if session.tell_user(text))

    def signal_programs(self, name: str) -> int:
        """Send signal ``name`` to every running program; refusals are logged, not raised."""
        signalled = 0
        for session in list(self._sessions):
            if not session.running:
                continue
            try:
                d = session.signal(name)
            except RequestRefused as e:
                self._signal_refused(session, str(e))
                continue
            signalled += 1
            d.addErrback(self._signal_failed, session)
        return signalled

    def _signal_failed(self, failure: Failure, session: ContainerSession) -> None:
        self._signal_refused(session, failure.getErrorMessage())

    def _signal_refused(self, session: ContainerSession, reason: str) -> None:
        session.log.event(
            messages.SSH_CHANNEL_REQUEST_FAILED,
            "The time limit's signal did not reach the program: {reason}",
            requestType="signal",
            reason=reason,
            level=Level.DEBUG,
        )

    def close_connection(self, description: str) -> None:
        """Disconnect the client, telling it ``description``."""
        if self.disconnect is not None:
            self.disconnect(description)

    def logout(self) -> None:
        """The connection is gone: close the sessions, then the backend connection.

        Called synchronously by the transport; the teardown itself is
        asynchronous and handed to the session registry.
        """
        if self._logged_out:
            return
        self._logged_out = True
        for closed in self._remote_forwards.close():
            self.closing(closed)
        for session in list(self._sessions):
            session.close()
        teardown = Deferred.fromCoroutine(self._teardown())
        self._registry.track(teardown, f"teardown of connection {self.metadata.connection_id}")

    async def _teardown(self) -> None:
        if self._closing:
            await DeferredList(list(self._closing), consumeErrors=True)
        await self.close_backend_connection(self.backend_connection, self.log)

    @staticmethod
    async def close_backend_connection(connection: Any, log: CodeLogger) -> None:
        """Close a backend connection; log, never raise, whatever goes wrong."""
        try:
            await maybeDeferred(connection.close)
        except ContainerSSHError as e:
            e.log(log)
        except Exception:
            log.failure(
                messages.UNKNOWN_ERROR,
                "Closing the backend connection failed: {reason}",
            )

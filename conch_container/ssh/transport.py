"""The SSH transport for one TCP connection: identity, lifecycle logging, grace time."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, cast

from twisted.conch.ssh import transport as conch_transport
from twisted.conch.ssh.common import NS
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress, IDelayedCall
from twisted.python.failure import Failure

from conch_container import messages
from conch_container.log.logger import CodeLogger
from conch_container.metadata import ConnectionMetadata, new_connection_id

if TYPE_CHECKING:
    from conch_container.ssh.factory import ContainerSSHFactory

DISCONNECT_BY_APPLICATION = conch_transport.DISCONNECT_BY_APPLICATION
DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE = (
    conch_transport.DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE
)


def format_address(address: IAddress) -> str:
    """``"ip:port"``, or ``"[ip]:port"`` for IPv6, as ContainerSSH writes remote addresses."""
    if isinstance(address, IPv6Address):
        return f"[{address.host}]:{address.port}"
    if isinstance(address, IPv4Address):
        return f"{address.host}:{address.port}"
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is not None and port is not None:
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)


class ServerTransport(conch_transport.SSHServerTransport):
    """Conch's server transport, plus what the gateway needs per connection.

    The factory sets the algorithm offer and version string on each instance
    (never on the class). On top of Conch this class

    - gives every TCP connection its ContainerSSH connection id and remote
      address and logs ``SSH_CONNECTED``/``SSH_DISCONNECTED`` (and
      ``SSH_HANDSHAKE_FAILED`` when the client never got past authentication);
    - enforces the login grace time from the moment the TCP connection opens,
      so a client that never even finishes the key exchange is cut off too;
    - keeps the connection's metadata and logger for the services above it.

    :ivar connection_id: 32 hex characters, unique per TCP connection.
    :ivar remote_address: the client as ``"ip:port"``.
    :ivar authenticated: True once a user was authenticated on this connection.
    :ivar lost: True once the TCP connection is gone.
    """

    factory: ContainerSSHFactory
    connection_id = ""
    remote_address = ""
    username = ""
    authenticated = False
    lost = False
    log: CodeLogger
    _grace_call: IDelayedCall | None = None

    @property
    def clock(self) -> Any:
        """The reactor this connection schedules its timers on."""
        return self.factory.reactor

    def base_metadata(self) -> ConnectionMetadata:
        """What is known about the connection before a user is named."""
        version = getattr(self, "otherVersionString", b"") or b""
        return ConnectionMetadata(
            connection_id=self.connection_id,
            remote_address=self.remote_address,
            client_version=version.decode("utf-8", "replace"),
        )

    def connectionMade(self) -> None:
        """Identify and log the connection, start the grace timer, greet the client."""
        assert self.transport is not None
        self.connection_id = new_connection_id()
        self.remote_address = format_address(self.transport.getPeer())
        self.log = self.factory.log.bind(
            connectionId=self.connection_id, remoteAddr=self.remote_address
        )
        self.log.event(messages.SSH_CONNECTED, "Client connected from {remoteAddr}")
        self.factory.transport_started(self)
        grace = self.factory.login_grace_time
        if grace > 0:
            self._grace_call = self.clock.callLater(grace, self._grace_expired)
        super().connectionMade()

    def _grace_expired(self) -> None:
        self._grace_call = None
        if self.authenticated or self.lost:
            return
        self.log.event(
            messages.SSH_HANDSHAKE_TIMEOUT,
            "Client did not authenticate within {graceTime} seconds",
            graceTime=self.factory.login_grace_time,
        )
        self.disconnect(DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE, "login grace time exceeded")

    def _cancel_grace(self) -> None:
        if self._grace_call is not None:
            if self._grace_call.active():
                self._grace_call.cancel()
            self._grace_call = None

    def login_grace_expired(self) -> None:
        """The userauth service's own login timer ran out (the grace time covers it)."""
        if self._grace_call is not None:
            self._cancel_grace()
            self._grace_expired()

    def authentication_succeeded(self, metadata: ConnectionMetadata) -> None:
        """A user authenticated: stop the grace timer and log the handshake result."""
        self._cancel_grace()
        self.authenticated = True
        self.username = metadata.username
        self.log = self.log.bind(username=metadata.username)
        self.log.event(
            messages.SSH_HANDSHAKE_SUCCESSFUL,
            "SSH handshake successful for {username}",
            authenticatedUsername=metadata.effective_username,
        )

    def disconnect(self, code: int, description: str) -> None:
        """Send an SSH disconnect with a user-safe description and close the connection."""
        if self.lost or self.transport is None:
            return
        self.sendDisconnect(code, description.encode("utf-8", "replace"))

    def abort(self, code: int, description: str) -> None:
        """Like :meth:`disconnect`, without waiting for buffered data to drain.

        For a peer that no longer reads (keepalive timeout): a graceful close
        would wait for the kernel to give up on the unacknowledged data.
        """
        if self.lost or self.transport is None:
            return
        self.sendPacket(
            conch_transport.MSG_DISCONNECT,
            struct.pack(">L", code) + NS(description.encode("utf-8", "replace")) + NS(b""),
        )
        cast(Any, self.transport).abortConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:
        """Stop services, log the avatar out, and log how the connection ended."""
        self.lost = True
        self._cancel_grace()
        try:
            super().connectionLost(reason)
        finally:
            why = reason.getErrorMessage() if reason is not None else "connection closed"
            if not self.authenticated:
                self.log.event(
                    messages.SSH_HANDSHAKE_FAILED,
                    "Connection closed before authentication completed: {reason}",
                    reason=why,
                )
            self.log.event(messages.SSH_DISCONNECTED, "Client disconnected: {reason}", reason=why)
            # Last: by now the logout registered the teardown with the
            # registry, which is what whoever waits for closed connections
            # goes on to wait for.
            self.factory.transport_stopped(self)

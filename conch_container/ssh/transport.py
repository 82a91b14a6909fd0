"""The SSH transport for one TCP connection: identity, lifecycle logging, grace time."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, cast

from twisted.conch.ssh import transport as conch_transport
from twisted.conch.ssh.common import NS, getNS
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress, IDelayedCall
from twisted.python.failure import Failure

from conch_container import messages
from conch_container.audit.recorder import DISABLED, ConnectionAudit
from conch_container.codes import Level
from conch_container.log.logger import CodeLogger
from conch_container.metadata import ConnectionMetadata, new_connection_id
from conch_container.ssh.crypto.errors import PacketError
from conch_container.ssh.packettransport import PacketServerTransport
from conch_container.ssh.penalties import Offence

if TYPE_CHECKING:
    from conch_container.ssh.admission import Admitted
    from conch_container.ssh.factory import ContainerSSHFactory

DISCONNECT_BY_APPLICATION = conch_transport.DISCONNECT_BY_APPLICATION
DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE = (
    conch_transport.DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE
)
DISCONNECT_PROTOCOL_ERROR = conch_transport.DISCONNECT_PROTOCOL_ERROR
DISCONNECT_SERVICE_NOT_AVAILABLE = conch_transport.DISCONNECT_SERVICE_NOT_AVAILABLE

#: Disconnects the server sends to a client that broke the authentication
#: rules (too many attempts or requests, requests out of order): penalised
#: like failed attempts, even when no credential was ever checked.
_DISCONNECTS_FOR_AUTH_ABUSE = frozenset(
    {
        DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE,
        DISCONNECT_PROTOCOL_ERROR,
        DISCONNECT_SERVICE_NOT_AVAILABLE,
    }
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


#: What ``server-sig-algs`` (RFC 8308) announces: the signatures a client may
#: log in with, strongest first. Conch announces its host key algorithms
#: there instead, so with only an Ed25519 host key an OpenSSH client holding
#: an RSA key finds "no mutual signature algorithm" and never offers it. As
#: in OpenSSH's default, SHA-1 (``ssh-rsa``, ``ssh-dss``) is not announced; a
#: client that signs with it without asking is still verified, as before.
USER_SIGNATURE_ALGORITHMS = (
    b"ssh-ed25519",
    b"ecdsa-sha2-nistp256",
    b"ecdsa-sha2-nistp384",
    b"ecdsa-sha2-nistp521",
    b"rsa-sha2-512",
    b"rsa-sha2-256",
)


def _cancel(call: IDelayedCall | None) -> None:
    """Cancel a timer unless it is gone or already ran."""
    if call is not None and call.active():
        call.cancel()


#: Bytes read from the client's socket at once, and the output that may wait
#: in its send buffer before every session of the connection is paused.
SOCKET_BUFFER_SIZE = 256 * 1024


class ServerTransport(PacketServerTransport):
    """Conch's server transport, plus what the gateway needs per connection.

    The factory sets the algorithm offer and version string on each instance
    (never on the class). On top of Conch and the project's packet path
    (:class:`PacketServerTransport`) this class

    - gives every TCP connection its ContainerSSH connection id and remote
      address and logs ``SSH_CONNECTED``/``SSH_DISCONNECTED`` (and
      ``SSH_HANDSHAKE_FAILED`` when the client never got past authentication);
    - enforces the login grace time from the moment the TCP connection opens,
      so a client that never even finishes the key exchange is cut off too;
    - keeps the connection's metadata and logger for the services above it;
    - starts ``ssh-userauth`` once, after the key exchange, on the client's
      request, and nothing else: ``ssh-connection`` is started by a
      successful login only (see :meth:`ssh_SERVICE_REQUEST`);
    - stops acting on the client's packets once it sent a disconnect;
    - reports to the pre-authentication limits (:attr:`admission`) when the
      user logs in, and when the connection closes, with what it did wrong
      if it closes without a login (:meth:`preauth_offence`).

    :ivar connection_id: 32 hex characters, unique per TCP connection.
    :ivar remote_address: the client as ``"ip:port"``.
    :ivar authenticated: True once a user was authenticated on this connection.
    :ivar closing: True once this side sent a disconnect.
    :ivar lost: True once the TCP connection is gone.
    :ivar admission: set by the factory when it admitted the connection.
    """

    factory: ContainerSSHFactory
    connection_id = ""
    remote_address = ""
    username = ""
    authenticated = False
    #: Why a key exchange came due before the login, if one did.
    _rekey_due: str | None = None
    closing = False
    lost = False
    log: CodeLogger
    audit: ConnectionAudit = DISABLED
    admission: Admitted | None = None
    grace_exceeded = False
    auth_attempts = 0
    auth_unavailable = False
    sent_disconnect: int | None = None
    #: The connection's country label in the metrics.
    country = ""
    _grace_call: IDelayedCall | None = None
    _rekey_call: IDelayedCall | None = None
    _lost_waiters: list[Deferred[None]] | None = None

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

    def sendExtInfo(self, extensions: list[tuple[bytes, bytes]]) -> None:
        """Conch's extensions, with :data:`USER_SIGNATURE_ALGORITHMS` as ``server-sig-algs``."""
        accepted = b",".join(USER_SIGNATURE_ALGORITHMS)
        super().sendExtInfo(
            [(name, accepted if name == b"server-sig-algs" else v) for name, v in extensions]
        )

    def connectionMade(self) -> None:
        """Identify and log the connection, start the grace timer, greet the client."""
        assert self.transport is not None
        # Read the client's packets in large pieces, and let up to this much
        # output wait in the socket's buffer before the sessions are held back
        # (Twisted's 64 KiB default stops and restarts them every few packets).
        self.transport.bufferSize = SOCKET_BUFFER_SIZE  # type: ignore[attr-defined]
        self.connection_id = new_connection_id()
        self.remote_address = format_address(self.transport.getPeer())
        self.log = self.factory.log.bind(
            connectionId=self.connection_id, remoteAddr=self.remote_address
        )
        self.log.event(messages.SSH_CONNECTED, "Client connected from {remoteAddr}")
        self.country = self.factory.metrics.connected(self.remote_address)
        self.audit = self.factory.audit_connection(self)
        self.factory.transport_started(self)
        grace = self.factory.login_grace_time
        if grace > 0:
            self._grace_call = self.clock.callLater(grace, self._grace_expired)
        super().connectionMade()

    def _grace_expired(self) -> None:
        self._grace_call = None
        if self.authenticated or self.lost:
            return
        self.grace_exceeded = True
        self.log.event(
            messages.SSH_HANDSHAKE_TIMEOUT,
            "Client did not authenticate within {graceTime} seconds",
            graceTime=self.factory.login_grace_time,
        )
        self.disconnect(DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE, "login grace time exceeded")

    def _newKeys(self) -> None:
        """New keys are in use: the server starts the next key exchange ``rekeyAfterSeconds`` on."""
        super()._newKeys()
        self._cancel_rekey_timer()
        seconds = self.factory.rekey_after_seconds
        if seconds > 0 and not self.lost:
            self._rekey_call = self.clock.callLater(seconds, self._rekey_timer_expired)

    def _rekey_timer_expired(self) -> None:
        self._rekey_call = None
        self.rekey("time")

    def _cancel_rekey_timer(self) -> None:
        _cancel(self._rekey_call)
        self._rekey_call = None

    def rekey(self, reason: str = "requested") -> None:
        """Start a new key exchange, unless the connection is closing or no user has
        logged in yet.

        As OpenSSH's sshd, the server never starts one before authentication:
        OpenSSH's client refuses a KEXINIT during it ("bad message during
        authentication"). One that came due meanwhile starts once the login
        succeeded, after the client was told (see :meth:`setService`).
        """
        if self.closing or self.lost:
            return
        if not self.authenticated:
            self._rekey_due = reason
            return
        super().rekey(reason)

    def setService(self, service: Any) -> None:
        """Start a service; after the login (``ssh-connection``), a key exchange that
        came due during authentication."""
        super().setService(service)
        if self.authenticated and self._rekey_due is not None:
            reason, self._rekey_due = self._rekey_due, None
            self.rekey(reason)

    def rekey_started(self, reason: str, sent: int, received: int) -> None:
        self.log.event(
            messages.SSH_REKEY,
            "Starting a new key exchange ({reason}) after {bytesSent} bytes sent and "
            "{bytesReceived} received",
            initiator="server",
            reason=reason,
            bytesSent=sent,
            bytesReceived=received,
        )

    def ssh_KEXINIT(self, packet: bytes) -> None:
        """A client's KEXINIT after the first key exchange starts a new one: logged."""
        if self.sessionID is not None and self._keyExchangeState == self._KEY_EXCHANGE_NONE:
            self.log.event(
                messages.SSH_REKEY,
                "The client started a new key exchange",
                initiator="client",
                reason="client",
            )
        super().ssh_KEXINIT(packet)

    def _cancel_grace(self) -> None:
        _cancel(self._grace_call)
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
        if self.admission is not None:
            self.admission.authenticated()

        self.username = metadata.username
        self.log = self.log.bind(username=metadata.username)
        self.audit.handshake_successful(metadata.effective_username)
        self.factory.metrics.handshake_succeeded(self.country)
        self.log.event(
            messages.SSH_HANDSHAKE_SUCCESSFUL,
            "SSH handshake successful for {username}",
            authenticatedUsername=metadata.effective_username,
        )

    def when_lost(self) -> Deferred[None]:
        """Fires once the TCP connection is gone (at once if it already is)."""
        if self.lost:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        if self._lost_waiters is None:
            self._lost_waiters = []
        self._lost_waiters.append(waiter)
        return waiter

    def use_log_level(self, level: Level) -> None:
        """Filter this connection's events at ``level`` from now on (a per-user ``log.level``)."""
        self.log = self.log.at_level(level)

    def authentication_attempted(self) -> None:
        """The client sent a credential to check (a password or a signed public key)."""
        self.auth_attempts += 1

    def authentication_unavailable(self) -> None:
        """An authenticator could not decide: the failure is the gateway's, not the client's."""
        self.auth_unavailable = True

    def preauth_offence(self) -> Offence | None:
        """What this connection, closed without a login, did to earn its source a penalty.

        None when it logged in, when the server ended it for reasons of its
        own (shutdown), or when an authenticator could not decide: a webhook
        outage must not lock users out once it is over.
        """
        if self.authenticated or self.auth_unavailable:
            return None
        if self.grace_exceeded:
            return Offence.GRACE_EXCEEDED
        if self.sent_disconnect == DISCONNECT_BY_APPLICATION:
            return None
        # Attempts are counted when a check starts (leaving before the answer
        # still counts) and, by Conch's userauth service, when one failed
        # (which includes methods that are not enabled).
        failed = getattr(self.service, "loginAttempts", 0)
        if self.auth_attempts or failed or self.sent_disconnect in _DISCONNECTS_FOR_AUTH_ABUSE:
            return Offence.AUTH_FAIL
        return Offence.NO_AUTH

    def disconnect(self, code: int, description: str) -> None:
        """Send an SSH disconnect with a user-safe description and close the connection."""
        if self.lost or self.closing or self.transport is None:
            return
        self.sendDisconnect(code, description.encode("utf-8", "replace"))

    def sendDisconnect(self, reason: int, desc: bytes) -> None:
        """Send ``MSG_DISCONNECT`` and close; whatever the client sends after it is ignored."""
        self.closing = True
        if self.sent_disconnect is None:
            self.sent_disconnect = reason
        super().sendDisconnect(reason, desc)

    def dispatchMessage(self, messageNum: int, payload: bytes) -> None:
        """Hand a packet on, unless the connection is already being closed.

        One read from the socket may hold many packets, and Conch dispatches
        them all; after a disconnect, the ones behind it must not be acted on
        (another password check, another service).
        """
        if self.closing:
            return
        super().dispatchMessage(messageNum, payload)

    def packet_refused(self, error: PacketError) -> None:
        """Log why the client's packet ends the connection (never its content)."""
        self.log.event(
            messages.SSH_PACKET_REFUSED,
            "Refused a packet from the client: {reason}",
            reason=error.description,
            disconnectReason=error.reason,
        )

    def ssh_SERVICE_REQUEST(self, packet: bytes) -> None:
        """Start ``ssh-userauth`` once; refuse every other service request.

        Conch would start a fresh service for every request the factory
        allows; a second ``ssh-userauth`` would reset the failure count before
        login and allow guessing (and a second avatar) after it. Only a
        successful login starts ``ssh-connection``.
        """
        try:
            name, _ = getNS(packet)
        except (struct.error, IndexError):
            name = b""
        refusal = self._service_request_refusal(name)
        if refusal is None:
            super().ssh_SERVICE_REQUEST(packet)
            return
        code, reason = refusal
        self.log.event(
            messages.SSH_SERVICE_REQUEST_REFUSED,
            "Refused a request for the {service} service: {reason}",
            service=name.decode("ascii", "replace"),
            reason=reason,
        )
        self.disconnect(code, reason)

    def _service_request_refusal(self, name: bytes) -> tuple[int, str] | None:
        """Why a service request is refused (disconnect code, user-safe reason), or None."""
        if not self.isEncrypted("both"):
            return DISCONNECT_PROTOCOL_ERROR, "service request before key exchange"
        if self.service is not None or self.authenticated:
            return DISCONNECT_PROTOCOL_ERROR, "a service was already started"
        if self.factory.getService(self, name) is None:
            return DISCONNECT_SERVICE_NOT_AVAILABLE, "service not available"
        return None

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
        self._cancel_rekey_timer()
        try:
            super().connectionLost(reason)
        finally:
            why = reason.getErrorMessage() if reason is not None else "connection closed"
            offence = self.preauth_offence()
            if not self.authenticated:
                self._log_handshake_failed(why, offence)
                self.audit.handshake_failed(why)
                self.factory.metrics.handshake_failed(self.country)
            self.log.event(messages.SSH_DISCONNECTED, "Client disconnected: {reason}", reason=why)
            self.factory.metrics.disconnected(self.country)
            self.audit.disconnected()
            if self.admission is not None:
                self.admission.closed(offence)
            waiters, self._lost_waiters = self._lost_waiters or [], None
            for waiter in waiters:
                waiter.callback(None)
            # Last: by now the logout registered the teardown with the
            # registry, which is what whoever waits for closed connections
            # goes on to wait for.
            self.factory.transport_stopped(self)

    def _log_handshake_failed(self, why: str, offence: Offence | None) -> None:
        # The offence, if any, tells the operator what penalty the source
        # owes for this connection (ssh.perSourcePenalties).
        log = self.log if offence is None else self.log.bind(offence=offence.value)
        log.event(
            messages.SSH_HANDSHAKE_FAILED,
            "Connection closed before authentication completed: {reason}",
            reason=why,
        )

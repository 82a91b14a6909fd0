"""The SSH server factory: everything the per-connection objects share."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from twisted.conch.ssh.factory import SSHFactory
from twisted.conch.ssh.service import SSHService
from twisted.conch.ssh.userauth import SSHUserAuthServer
from twisted.cred.credentials import ICredentials, ISSHPrivateKey
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.python.failure import Failure

from conch_container import messages
from conch_container.audit.recorder import DISABLED, ConnectionAudit
from conch_container.errors import GENERIC_USER_MESSAGE, ContainerSSHError
from conch_container.log.logger import CodeLogger
from conch_container.metrics.recorders import NULL_METRICS, Metrics
from conch_container.ssh.admission import Admission
from conch_container.ssh.algorithms import AlgorithmOffer, select_algorithms
from conch_container.ssh.checkers import (
    AuthenticationUnavailable,
    PasswordChecker,
    PublicKeyChecker,
)
from conch_container.ssh.connection import ServerConnection
from conch_container.ssh.hostkeys import load_host_keys
from conch_container.ssh.realm import ConnectionRealm
from conch_container.ssh.transport import DISCONNECT_BY_APPLICATION, ServerTransport
from conch_container.ssh.userauth import UserAuthServer

if TYPE_CHECKING:
    from conch_container.audit.service import AuditLog
    from conch_container.config import AppConfig
    from conch_container.webhook.connectionconfig import ConfigServerSource


def carries_credential(credentials: ICredentials) -> bool:
    """A password, or a public key with a signature: something that is checked."""
    if ISSHPrivateKey.providedBy(credentials):
        return bool(getattr(credentials, "signature", None))
    return True


def _start_failed(explanation: str) -> ContainerSSHError:
    return ContainerSSHError(messages.SSH_START_FAILED, GENERIC_USER_MESSAGE, explanation)


class ConnectionPortal(Portal):
    """One connection's portal; tells the transport what its logins amount to.

    For the per-source penalties the transport must know whether the client
    tried a credential (a password, or a signed public key; not a query
    whether a key would do), counted when the check starts, so that leaving
    before the answer does not pass for never having tried; and whether an
    authenticator could not decide, which is the gateway's fault (a webhook
    outage), not the client's.

    :param transport: the connection.
    :param realm: the connection's :class:`~conch_container.ssh.realm.ConnectionRealm`.
    """

    def __init__(self, transport: ServerTransport, realm: ConnectionRealm) -> None:
        super().__init__(realm)
        self._transport = transport

    def login(self, credentials: ICredentials, mind: object, *interfaces: Any) -> Any:
        if carries_credential(credentials):
            self._transport.authentication_attempted()
        d = super().login(credentials, mind, *interfaces)
        d.addErrback(self._note_unavailable)
        return d

    def _note_unavailable(self, failure: Failure) -> Failure:
        if failure.check(AuthenticationUnavailable):
            self._transport.authentication_unavailable()
        return failure


class ContainerSSHFactory(SSHFactory):
    """Builds a :class:`ServerTransport` per TCP connection.

    All settings are read once, here, from ``config.ssh``; a configuration
    the server cannot run with (no usable host key, no cipher this server
    implements, no authenticator) raises :class:`ContainerSSHError` with code
    ``SSH_START_FAILED`` at construction, before anything listens.

    :param config: the :class:`~conch_container.config.AppConfig`.
    :param authenticators: an object with attributes ``password``,
        ``public_key`` and ``authz``, each an authenticator or ``None``.
    :param backend: the :class:`~conch_container.interfaces.IContainerBackend`.
    :param registry: the session registry (``track(deferred, what)`` and
        ``accepting``); connection teardowns are handed to it.
    :param reactor: the reactor whose clock the connections' timers use.
    :param log: the server's logger.
    :param instance_id: identifies this gateway instance (logged with the
        start-up events; backends may label resources with it).
    :param random: the early-drop lottery of ``ssh.maxStartups`` (a float in
        ``[0, 1)`` per call); the system's random source by default.
    :param audit: the :class:`~conch_container.audit.service.AuditLog` that
        records every connection, or None when the audit log is off.
    :param config_source: the configuration server
        (:class:`~conch_container.webhook.connectionconfig.ConfigServerSource`)
        each connection's realm asks, or None without one.
    :param metrics: where connections, handshakes, sessions and the
        backend's set-up are counted.
    """

    protocol = ServerTransport
    primes = None

    def __init__(
        self,
        config: AppConfig,
        authenticators: Any,
        backend: Any,
        registry: Any,
        reactor: IReactorTime,
        log: CodeLogger,
        instance_id: str = "",
        random: Callable[[], float] | None = None,
        audit: AuditLog | None = None,
        config_source: ConfigServerSource | None = None,
        metrics: Metrics = NULL_METRICS,
    ) -> None:
        ssh = config.ssh
        self.config = config
        self.authenticators = authenticators
        self.backend = backend
        self.registry = registry
        self.reactor = reactor
        self.log = log
        self.instance_id = instance_id
        self.audit = audit
        self.config_source = config_source
        self.metrics = metrics
        self.backend_metrics = metrics.backend(config.backend)
        if authenticators.password is None and authenticators.public_key is None:
            raise _start_failed(
                "no authentication method is configured (auth.password, auth.publicKey)"
            )
        self.privateKeys = load_host_keys(ssh.hostkeys)
        self.publicKeys = {kind: key.public() for kind, key in self.privateKeys.items()}
        self.offer: AlgorithmOffer = select_algorithms(
            ssh.ciphers, ssh.kex, ssh.macs, log, ssh.host_key_algorithms, self.privateKeys
        )
        self.server_version = self._version_string(ssh.server_version)
        self.banner: str = ssh.banner or ""
        self.login_grace_time = float(ssh.login_grace_time)
        self.max_auth_tries = max(1, int(ssh.max_auth_tries))
        self.rekey_after_bytes = int(ssh.rekey_after_bytes)
        self.rekey_after_seconds = float(ssh.rekey_after_seconds)
        # Our own services, on the instance: the class attribute of
        # SSHFactory is shared by every Conch server in the process. Conch
        # builds a service by calling what is here without arguments, so a
        # service that needs settings is given them here (the type Conch's
        # attribute is inferred with says classes only).
        self.services: dict[bytes, Callable[[], SSHService]] = {  # type: ignore[assignment]
            b"ssh-userauth": UserAuthServer,
            b"ssh-connection": partial(ServerConnection, ssh),
        }
        self._transports: set[ServerTransport] = set()
        self._closed_waiters: list[Deferred[None]] = []
        self.admission = Admission.from_config(ssh, reactor, log, random)

    @staticmethod
    def _version_string(version: str) -> bytes:
        if not version.startswith("SSH-2.0-") or "\r" in version or "\n" in version:
            raise _start_failed(f"ssh.serverVersion must start with SSH-2.0-: {version!r}")
        try:
            return version.encode("ascii")
        except UnicodeEncodeError:
            raise _start_failed("ssh.serverVersion must be ASCII") from None

    def buildProtocol(self, addr: IAddress | None) -> ServerTransport | None:  # type: ignore[override]
        """A transport for a new TCP connection, with this server's offer.

        None when the pre-authentication limits refuse the connection: the
        listening port then closes the socket before anything is sent,
        which is the cheapest answer to a flood.
        """
        admitted = self.admission.admit(addr)
        if admitted is None:
            return None
        t = ServerTransport()
        t.factory = self
        t.admission = admitted
        t.ourVersionString = self.server_version
        t.supportedCiphers = list(self.offer.ciphers)
        t.supportedKeyExchanges = list(self.offer.key_exchanges)
        t.supportedMACs = list(self.offer.macs)
        t.supportedPublicKeys = list(self.offer.host_key_algorithms)
        # Go's SSH library (ContainerSSH) offers no compression either.
        t.supportedCompressions = [b"none"]
        t.rekey_after_bytes = self.rekey_after_bytes
        return t

    def getService(self, transport: Any, service: bytes) -> Any:
        """What Conch calls to build the service to start, or None (which disconnects the client).

        ``ssh-userauth`` only while no service runs: it is started once, and a
        second one would begin with a fresh failure count. ``ssh-connection``
        only for the userauth service that has just logged the client in
        (Conch asks for it then), never on the client's say-so.
        """
        running = getattr(transport, "service", None)
        if service == b"ssh-userauth":
            return self.services.get(service) if running is None else None
        if service == b"ssh-connection":
            logged_in = hasattr(transport, "avatar") and isinstance(running, SSHUserAuthServer)
            return self.services.get(service) if logged_in else None
        return None

    def portal_for(self, transport: ServerTransport) -> Portal:
        """A portal for one connection: its realm and checkers know the connection."""
        realm = ConnectionRealm(
            transport,
            backend=self.backend,
            config=self.config,
            registry=self.registry,
            config_source=self.config_source,
            clock=self.reactor,
            metrics=self.metrics,
            backend_metrics=self.backend_metrics,
        )
        portal = ConnectionPortal(transport, realm)
        base = transport.base_metadata()
        auth = self.authenticators
        if auth.public_key is not None:
            portal.registerChecker(
                PublicKeyChecker(auth.public_key, auth.authz, base, transport.log, transport.audit)
            )
        if auth.password is not None:
            portal.registerChecker(
                PasswordChecker(auth.password, auth.authz, base, transport.log, transport.audit)
            )
        return portal

    def audit_connection(self, transport: ServerTransport) -> ConnectionAudit:
        """The audit recorder of a new connection (a silent one without an audit log)."""
        if self.audit is None:
            return DISABLED
        assert transport.transport is not None
        peer = transport.transport.getPeer()
        return self.audit.connection(
            transport.connection_id, getattr(peer, "host", str(peer)), transport.log
        )

    def stopFactory(self) -> None:
        """The listener closed: drop the pending summary of refused connections."""
        self.admission.stop()

    # Live connections, for shutdown.

    def transport_started(self, transport: ServerTransport) -> None:
        """A connection opened."""
        self._transports.add(transport)

    def transport_stopped(self, transport: ServerTransport) -> None:
        """A connection closed."""
        self._transports.discard(transport)
        if not self._transports:
            waiters, self._closed_waiters = self._closed_waiters, []
            for waiter in waiters:
                waiter.callback(None)

    def wait_closed(self) -> Deferred[None]:
        """Fires once no connection is open (at once when none is)."""
        if not self._transports:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._closed_waiters.append(waiter)
        return waiter

    @property
    def connections(self) -> frozenset[ServerTransport]:
        """The open connections."""
        return frozenset(self._transports)

    def close_all(self, reason: str) -> int:
        """Disconnect every open connection with ``reason`` (user-safe); returns how many."""
        transports = list(self._transports)
        if transports:
            self.log.event(
                messages.SSH_SHUTDOWN,
                "Closing {count} open SSH connections: {reason}",
                count=len(transports),
                reason=reason,
            )
        for transport in transports:
            transport.disconnect(DISCONNECT_BY_APPLICATION, reason)
        return len(transports)

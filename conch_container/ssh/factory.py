"""The SSH server factory: everything the per-connection objects share."""

from __future__ import annotations

from itertools import chain
from typing import Any

from twisted.conch.ssh.factory import SSHFactory
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress, IReactorTime

from conch_container import messages
from conch_container.errors import GENERIC_USER_MESSAGE, ContainerSSHError
from conch_container.log.logger import CodeLogger
from conch_container.ssh.algorithms import AlgorithmOffer, select_algorithms
from conch_container.ssh.checkers import PasswordChecker, PublicKeyChecker
from conch_container.ssh.connection import ServerConnection
from conch_container.ssh.hostkeys import load_host_keys
from conch_container.ssh.realm import ConnectionRealm
from conch_container.ssh.transport import DISCONNECT_BY_APPLICATION, ServerTransport
from conch_container.ssh.userauth import UserAuthServer


def _start_failed(explanation: str) -> ContainerSSHError:
    return ContainerSSHError(messages.SSH_START_FAILED, GENERIC_USER_MESSAGE, explanation)


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
    """

    protocol = ServerTransport
    primes = None

    def __init__(
        self,
        config: Any,
        authenticators: Any,
        backend: Any,
        registry: Any,
        reactor: IReactorTime,
        log: CodeLogger,
        instance_id: str = "",
    ) -> None:
        ssh = config.ssh
        self.config = config
        self.authenticators = authenticators
        self.backend = backend
        self.registry = registry
        self.reactor = reactor
        self.log = log
        self.instance_id = instance_id
        if authenticators.password is None and authenticators.public_key is None:
            raise _start_failed(
                "no authentication method is configured (auth.password, auth.publicKey)"
            )
        self.privateKeys = load_host_keys(ssh.hostkeys)
        self.publicKeys = {kind: key.public() for kind, key in self.privateKeys.items()}
        self.offer: AlgorithmOffer = select_algorithms(ssh.ciphers, ssh.kex, ssh.macs, log)
        self.server_version = self._version_string(ssh.server_version)
        self.banner: str = ssh.banner or ""
        self.login_grace_time = float(ssh.login_grace_time)
        self.max_auth_tries = max(1, int(ssh.max_auth_tries))
        self.client_alive_interval = float(ssh.client_alive_interval or 0)
        self.client_alive_count_max = max(1, int(ssh.client_alive_count_max or 1))
        # Our own services, on the instance: the class attribute of
        # SSHFactory is shared by every Conch server in the process.
        self.services = {
            b"ssh-userauth": UserAuthServer,
            b"ssh-connection": ServerConnection,
        }
        self._public_key_algorithms = list(
            chain.from_iterable(k.supportedSignatureAlgorithms() for k in self.privateKeys.values())
        )
        self._transports: set[ServerTransport] = set()
        self._closed_waiters: list[Deferred[None]] = []

    @staticmethod
    def _version_string(version: str) -> bytes:
        if not version.startswith("SSH-2.0-") or "\r" in version or "\n" in version:
            raise _start_failed(f"ssh.serverVersion must start with SSH-2.0-: {version!r}")
        try:
            return version.encode("ascii")
        except UnicodeEncodeError:
            raise _start_failed("ssh.serverVersion must be ASCII") from None

    def buildProtocol(self, addr: IAddress | None) -> ServerTransport:  # type: ignore[override]
        """A transport for a new TCP connection, with this server's offer."""
        t = ServerTransport()
        t.factory = self
        t.ourVersionString = self.server_version
        t.supportedCiphers = list(self.offer.ciphers)
        t.supportedKeyExchanges = list(self.offer.key_exchanges)
        t.supportedMACs = list(self.offer.macs)
        t.supportedPublicKeys = list(self._public_key_algorithms)
        # Go's SSH library (ContainerSSH) offers no compression either.
        t.supportedCompressions = [b"none"]
        return t

    def getService(self, transport: Any, service: bytes) -> Any:
        """The service class for a request, or None (which disconnects the client)."""
        if service == b"ssh-userauth" or hasattr(transport, "avatar"):
            return self.services.get(service)
        return None

    def portal_for(self, transport: ServerTransport) -> Portal:
        """A portal for one connection: its realm and checkers know the connection."""
        portal = Portal(ConnectionRealm(transport))
        base = transport.base_metadata()
        auth = self.authenticators
        if auth.public_key is not None:
            portal.registerChecker(
                PublicKeyChecker(auth.public_key, auth.authz, base, transport.log)
            )
        if auth.password is not None:
            portal.registerChecker(PasswordChecker(auth.password, auth.authz, base, transport.log))
        return portal

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

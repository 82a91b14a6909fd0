"""A whole SSH server in memory, and a Conch client to talk to it.

The server is the real :class:`ContainerSSHFactory` with the fake backend and
in-memory authenticators; the client is Conch's own client transport,
userauth and connection, connected through :mod:`twisted.test.iosim` on a
:class:`MemoryReactorClock`. Nothing touches a socket or real time.
"""

from __future__ import annotations

import struct
from typing import Any, cast

import attrs
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.conch.ssh import common, connection, keys, transport, userauth
from twisted.conch.ssh.channel import SSHChannel
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import ILogObserver
from twisted.python.failure import Failure
from twisted.test.iosim import FakeTransport, IOPump, connect
from zope.interface import implementer

from conch_container.config import AppConfig, SSHConfig
from conch_container.config.ssh import CONTAINERSSH_MACS
from conch_container.errors import ContainerSSHError
from conch_container.interfaces import IAuthorizer, IPasswordAuthenticator, IPublicKeyAuthenticator
from conch_container.log.logger import CodeLogger
from conch_container.messages import AUTH_BACKEND_ERROR
from conch_container.metadata import AuthResult, ConnectionMetadata, MetadataValue
from conch_container.metrics import NULL_METRICS, Metrics
from conch_container.service import SessionRegistry
from conch_container.ssh.factory import ContainerSSHFactory
from conch_container.testing.backend import FakeBackend


def new_ed25519_pem() -> str:
    """A fresh Ed25519 private key in OpenSSH PEM form."""
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()


HOST_KEY_PEM = new_ed25519_pem()
USER_KEY = keys.Key.fromString(new_ed25519_pem())
OTHER_KEY = keys.Key.fromString(new_ed25519_pem())


def authorized(key: keys.Key) -> str:
    """The authorized_keys form the authenticator receives (type and base64, no comment)."""
    return " ".join(key.public().toString("openssh").decode().split()[:2])


def collecting_log(events: list[dict[str, Any]]) -> CodeLogger:
    """A logger whose events are appended to ``events``."""
    return CodeLogger("tests", observer=cast(ILogObserver, events.append))


def make_config(**ssh: Any) -> AppConfig:
    """The default configuration with our host key and the given ``ssh`` settings.

    The MACs are ContainerSSH's list, not the default: Conch's client (the
    harness's) speaks neither an AEAD cipher nor an ``-etm`` MAC, so it needs
    the classic ``hmac-sha2-256`` the default no longer offers.
    """
    ssh.setdefault("hostkeys", (HOST_KEY_PEM,))
    ssh.setdefault("macs", CONTAINERSSH_MACS)
    return AppConfig(ssh=attrs.evolve(SSHConfig(), **ssh))


@implementer(IPasswordAuthenticator)
class Passwords:
    """Users and their passwords; ``unavailable`` makes every check fail to decide."""

    name = "memory"

    def __init__(self, users: dict[str, str] | None = None) -> None:
        self.users = dict(users or {"user": "secret"})
        self.unavailable = False
        self.calls: list[tuple[ConnectionMetadata, bytes]] = []

    async def authenticate_password(self, metadata: ConnectionMetadata, password: bytes) -> Any:
        self.calls.append((metadata, password))
        if self.unavailable:
            raise ContainerSSHError(AUTH_BACKEND_ERROR, "unavailable", "webhook down")
        ok = self.users.get(metadata.username, "").encode() == password
        return AuthResult(
            ok,
            environment={"FROM_AUTH": MetadataValue("password")} if ok else {},
        )


@implementer(IPublicKeyAuthenticator)
class PublicKeys:
    """Users and their authorized keys."""

    name = "memory"

    def __init__(self, users: dict[str, list[str]] | None = None) -> None:
        self.users = dict(users or {"user": [authorized(USER_KEY)]})
        self.unavailable = False
        self.calls: list[tuple[ConnectionMetadata, str]] = []

    async def authenticate_public_key(self, metadata: ConnectionMetadata, public_key: str) -> Any:
        self.calls.append((metadata, public_key))
        if self.unavailable:
            raise ContainerSSHError(AUTH_BACKEND_ERROR, "unavailable", "webhook down")
        ok = public_key in self.users.get(metadata.username, [])
        return AuthResult(ok, authenticated_username=f"{metadata.username}-key" if ok else "")


@implementer(IAuthorizer)
class Authorizer:
    """Allows the users in ``allowed``."""

    name = "memory"

    def __init__(self, allowed: set[str]) -> None:
        self.allowed = allowed
        self.calls: list[ConnectionMetadata] = []

    async def authorize(self, metadata: ConnectionMetadata) -> AuthResult:
        self.calls.append(metadata)
        return AuthResult(
            metadata.effective_username in self.allowed,
            environment={"FROM_AUTHZ": MetadataValue("yes")},
        )


@attrs.define
class Authenticators:
    password: Any = None
    public_key: Any = None
    authz: Any = None


class ClientChannel(SSHChannel):
    """A client session channel that records everything the server sends."""

    name = b"session"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opened: Deferred[None] = Deferred()
        self.closed_d: Deferred[None] = Deferred()
        self.stdout = b""
        self.stderr = b""
        self.eof = False
        self.exit_status: int | None = None
        self.exit_signal: tuple[str, bool, str] | None = None
        self.order: list[str] = []
        self.open_failure: Any = None

    def channelOpen(self, specificData: bytes) -> None:
        self.opened.callback(None)

    def openFailed(self, reason: Any) -> None:
        self.open_failure = reason
        self.opened.errback(reason)

    def dataReceived(self, data: bytes) -> None:
        self.order.append("data")
        self.stdout += data

    def extReceived(self, dataType: int, data: bytes) -> None:
        self.order.append("ext")
        self.stderr += data

    def eofReceived(self) -> None:
        self.order.append("eof")
        self.eof = True

    def closed(self) -> None:
        self.order.append("closed")
        self.closed_d.callback(None)

    def request_exit_status(self, data: bytes) -> int:
        self.order.append("exit-status")
        (self.exit_status,) = struct.unpack(">L", data)
        return 1

    def request_exit_signal(self, data: bytes) -> int:
        self.order.append("exit-signal")
        name, rest = common.getNS(data)
        message, _ = common.getNS(rest[1:])
        self.exit_signal = (name.decode(), rest[0:1] == b"\x01", message.decode())
        return 1

    def request(self, name: bytes, data: bytes = b"", want_reply: bool = True) -> Any:
        """Send a channel request; with a reply, a Deferred that fails when refused."""
        assert self.conn is not None
        return self.conn.sendRequest(self, name, data, wantReply=want_reply)


def _state(data: Deferred[Any]) -> str:
    result: list[str] = []
    # Consumes a failure: a refused request is an expected outcome here.
    data.addBoth(lambda r: result.append("failed" if isinstance(r, Failure) else "ok"))
    return result[0] if result else "pending"


class ClientConnection(connection.SSHConnection):
    """The client's connection service; records (and optionally ignores) global requests."""

    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client
        self.global_requests: list[bytes] = []
        self.answer_global_requests = True

    def serviceStarted(self) -> None:
        super().serviceStarted()
        self.client.authenticated.callback(self)

    def ssh_GLOBAL_REQUEST(self, packet: bytes) -> None:
        request_type, _ = common.getNS(packet)
        self.global_requests.append(request_type)
        if self.answer_global_requests:
            super().ssh_GLOBAL_REQUEST(packet)

    def gotGlobalRequest(self, requestType: bytes, data: bytes) -> int:
        return 0

    hold_window = False

    def adjustWindow(self, channel: Any, bytesToAdd: int) -> None:
        """A slow reader: while ``hold_window`` is set, the server gets no more window."""
        if not self.hold_window:
            super().adjustWindow(channel, bytesToAdd)

    def release_window(self, channel: Any) -> None:
        """Read everything: give the server back all the window used so far."""
        self.hold_window = False
        used = channel.localWindowSize - channel.localWindowLeft
        if used:
            super().adjustWindow(channel, used)


class ClientUserAuth(userauth.SSHUserAuthClient):
    """Tries the passwords and keys the test gave it, in order; records banners."""

    def __init__(self, client: Client) -> None:
        super().__init__(client.user.encode(), ClientConnection(client))
        self.client = client
        self.preferredOrder = [b"publickey", b"password"]

    def getPassword(self, prompt: bytes | None = None) -> Any:
        if not self.client.passwords:
            return None
        return succeed(self.client.passwords.pop(0).encode())

    def getPublicKey(self) -> Any:
        if not self.client.keys:
            return None
        self._current = self.client.keys.pop(0)
        return self._current.public()

    def getPrivateKey(self) -> Any:
        return succeed(self._current)

    def ssh_USERAUTH_BANNER(self, packet: bytes) -> None:
        message, _ = common.getNS(packet)
        self.client.banners.append(message.decode())

    def ssh_USERAUTH_FAILURE(self, packet: bytes) -> Any:
        self.client.failures += 1
        if self.client.manual:
            # The test sends its own requests; do not try anything or give up.
            return None
        return super().ssh_USERAUTH_FAILURE(packet)


class ClientTransport(transport.SSHClientTransport):
    """Conch's client transport; trusts any host key, records the disconnect reason."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def verifyHostKey(self, hostKey: bytes, fingerprint: str) -> Any:
        self.client.host_key = hostKey
        return succeed(True)

    def connectionSecure(self) -> None:
        self.client.userauth = ClientUserAuth(self.client)
        self.requestService(self.client.userauth)

    def receiveError(self, reasonCode: int, description: bytes) -> None:
        self.client.disconnect_reason = (reasonCode, description.decode())

    def connectionLost(self, reason: Any = None) -> None:
        super().connectionLost(reason)
        if not self.client.lost.called:
            self.client.lost.callback(None)


class Client:
    """One client connection to the harness's server."""

    def __init__(
        self,
        user: str,
        passwords: list[str],
        keys_: list[keys.Key],
        manual: bool = False,
        transport_class: type[ClientTransport] = ClientTransport,
    ) -> None:
        self.user = user
        self.manual = manual
        self.passwords = list(passwords)
        self.keys = list(keys_)
        self.banners: list[str] = []
        self.failures = 0
        self.host_key: bytes | None = None
        self.disconnect_reason: tuple[int, str] | None = None
        self.authenticated: Deferred[ClientConnection] = Deferred()
        self.lost: Deferred[None] = Deferred()
        self.userauth: ClientUserAuth | None = None
        self.transport = transport_class(self)
        self.server: Any = None
        self.pump: IOPump | None = None

    @property
    def connection(self) -> ClientConnection:
        """The client's connection service, once authenticated."""
        assert self.authenticated.called
        return cast(ClientConnection, self.authenticated.result)


class Harness:
    """The server under test, its collaborators, and helpers to drive clients."""

    def __init__(
        self,
        config: AppConfig | None = None,
        authenticators: Authenticators | None = None,
        backend: FakeBackend | None = None,
        metrics: Metrics = NULL_METRICS,
    ) -> None:
        self.reactor = MemoryReactorClock()
        self.events: list[dict[str, Any]] = []
        self.log = collecting_log(self.events)
        self.config = config or make_config()
        self.authenticators = authenticators or Authenticators(
            password=Passwords(), public_key=PublicKeys()
        )
        self.backend = backend or FakeBackend(self.reactor, subsystems={"echo": "cat"})
        self.registry = SessionRegistry(self.reactor, self.log)
        self.factory = ContainerSSHFactory(
            self.config,
            self.authenticators,
            self.backend,
            self.registry,
            self.reactor,
            self.log,
            "test-instance",
            metrics=metrics,
        )
        self.factory.doStart()
        self.clients: list[Client] = []

    def connect(
        self,
        user: str = "user",
        passwords: list[str] | None = None,
        keys_: list[keys.Key] | None = None,
        manual: bool = False,
        transport_class: type[ClientTransport] = ClientTransport,
    ) -> Client:
        """Connect a client and run the handshake as far as it goes without time passing.

        A ``manual`` client sends only the initial ``none`` request by itself;
        the test sends the rest through ``client.userauth.askForAuth``.
        ``transport_class`` replaces Conch's client transport (other algorithms).
        """
        client = Client(user, passwords or [], keys_ or [], manual, transport_class)
        server = self.factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", 2222))
        client.server = server
        client.pump = connect(
            server,
            FakeTransport(
                server,
                isServer=True,
                hostAddress=IPv4Address("TCP", "192.0.2.1", 2222),
                peerAddress=IPv4Address("TCP", "198.51.100.7", 50123),
            ),
            client.transport,
            FakeTransport(client.transport, isServer=False),
            clock=self.reactor,
        )
        self.clients.append(client)
        return client

    def connect_protocol(self, protocol: Any) -> IOPump:
        """Connect any client protocol (e.g. one built by a Conch endpoint) to the server."""
        server = self.factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", 2222))
        return connect(
            server,
            FakeTransport(
                server,
                isServer=True,
                hostAddress=IPv4Address("TCP", "192.0.2.1", 2222),
                peerAddress=IPv4Address("TCP", "198.51.100.8", 50124),
            ),
            protocol,
            FakeTransport(
                protocol,
                isServer=False,
                hostAddress=IPv4Address("TCP", "198.51.100.8", 50124),
                peerAddress=IPv4Address("TCP", "192.0.2.1", 2222),
            ),
            clock=self.reactor,
        )

    def login(self, user: str = "user", password: str = "secret") -> Client:
        """Connect and authenticate with a password; fails the test if that does not work."""
        client = self.connect(user, passwords=[password])
        self.flush()
        assert client.authenticated.called, "login did not complete"
        return client

    def flush(self) -> None:
        """Move every byte and run every call that is due now."""
        for _ in range(100):
            moved = False
            for client in self.clients:
                assert client.pump is not None
                if client.pump.flush():
                    moved = True
            self.reactor.advance(0)
            if not moved:
                return

    def advance(self, seconds: float) -> None:
        """Let time pass (in small steps), moving bytes in between."""
        step = min(seconds, 0.5) or seconds
        elapsed = 0.0
        while elapsed < seconds:
            self.flush()
            self.reactor.advance(min(step, seconds - elapsed))
            elapsed += step
        self.flush()

    def open_session(self, client: Client, window: int = 0) -> ClientChannel:
        """Open a session channel on an authenticated client."""
        channel = ClientChannel(localWindow=window, conn=client.connection)
        client.connection.openChannel(channel)
        self.flush()
        return channel

    def codes(self) -> list[str]:
        """The message codes logged so far, in order."""
        return [e["code"] for e in self.events if "code" in e]

    def events_with(self, code: str) -> list[dict[str, Any]]:
        """The events logged with ``code``."""
        return [e for e in self.events if e.get("code") == code]

    def disconnect_all(self) -> None:
        """Close every client connection and let the server notice."""
        for client in self.clients:
            if not client.lost.called:
                client.transport.transport.loseConnection()  # type: ignore[union-attr]
        self.flush()


def exec_request(command: str) -> bytes:
    return common.NS(command.encode())


def pty_request(term: str = "xterm", columns: int = 80, rows: int = 25) -> bytes:
    return common.NS(term.encode()) + struct.pack(">4L", columns, rows, 0, 0) + common.NS(b"")


def env_request(name: str, value: str) -> bytes:
    return common.NS(name.encode()) + common.NS(value.encode())


def window_change(columns: int, rows: int) -> bytes:
    return struct.pack(">4L", columns, rows, 0, 0)


def request_result(d: Deferred[Any] | None) -> str:
    """``ok``, ``failed`` or ``pending`` for a channel request Deferred."""
    if d is None:
        return "no-reply"
    return _state(d)

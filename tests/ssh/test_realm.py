"""The realm, built with its collaborators: no factory, no SSH transport."""

from __future__ import annotations

from typing import Any

from twisted.conch.interfaces import IConchUser
from twisted.cred.portal import IRealm
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from conch_container import messages
from conch_container.config import AppConfig
from conch_container.errors import GENERIC_USER_MESSAGE, ContainerSSHError
from conch_container.interfaces import ConnectionContext
from conch_container.log.logger import CodeLogger
from conch_container.metadata import ConnectionMetadata
from conch_container.service import SessionRegistry
from conch_container.ssh.avatar import ContainerAvatar
from conch_container.ssh.checkers import AuthenticatedUser
from conch_container.ssh.realm import ConnectionRealm, ConnectionRejected
from conch_container.ssh.transport import DISCONNECT_BY_APPLICATION
from conch_container.testing.backend import FakeBackend
from tests.ssh.harness import collecting_log


class FakeLoginTransport:
    """The connection a user logs in on, recording what the realm does to it."""

    def __init__(self, log: CodeLogger) -> None:
        self.connection_id = "0123456789abcdef0123456789abcdef"
        self.lost = False
        self.log = log
        self.logged_in: list[ConnectionMetadata] = []
        self.disconnects: list[tuple[int, str]] = []

    def authentication_succeeded(self, metadata: ConnectionMetadata) -> None:
        self.logged_in.append(metadata)

    def disconnect(self, code: int, description: str) -> None:
        self.disconnects.append((code, description))


class BrokenBackend:
    """A backend whose ``connect`` fails with an error it did not mean to raise."""

    name = "broken"

    async def connect(self, context: ConnectionContext) -> Any:
        raise RuntimeError("engine exploded")


class RealmTestCase(SynchronousTestCase):
    """A realm with the fake backend, a real session registry and a fake connection."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.events: list[dict[str, Any]] = []
        log = collecting_log(self.events)
        self.backend = FakeBackend(self.clock)
        self.config = AppConfig()
        self.registry = SessionRegistry(self.clock, log)
        self.transport = FakeLoginTransport(log)
        self.realm = self.realm_with(self.backend)
        self.user = AuthenticatedUser(
            ConnectionMetadata(
                connection_id=self.transport.connection_id,
                remote_address="198.51.100.7:50123",
                username="user",
            ),
            "password",
        )

    def realm_with(self, backend: Any) -> ConnectionRealm:
        return ConnectionRealm(
            self.transport, backend=backend, config=self.config, registry=self.registry
        )

    def login(self) -> Any:
        return self.realm.requestAvatar(self.user, None, IConchUser)

    def assertRejected(self, login: Any, user_message: str, reason: str) -> None:
        """The login failed: the client got ``user_message``, the log says ``reason``."""
        self.failureResultOf(login, ConnectionRejected)
        self.assertEqual(self.transport.disconnects, [(DISCONNECT_BY_APPLICATION, user_message)])
        rejections = [
            e["reason"]
            for e in self.events
            if e.get("code") == messages.SSH_BACKEND_REJECTED_HANDSHAKE.code
        ]
        self.assertEqual(rejections, [reason])


class LoginTests(RealmTestCase):
    """A user the backend accepts."""

    def test_provides_irealm(self) -> None:
        """The realm is a cred realm."""
        verifyObject(IRealm, self.realm)

    def test_avatar_holds_the_backend_connection(self) -> None:
        """The avatar gets what the backend prepared, from the realm's own backend and config."""
        interface, avatar, logout = self.successResultOf(self.login())
        self.assertIs(interface, IConchUser)
        self.assertIsInstance(avatar, ContainerAvatar)
        [connection] = self.backend.connections
        self.assertIs(avatar.backend_connection, connection)
        self.assertIs(connection.context.config, self.config)
        self.assertIs(connection.context.metadata, self.user.metadata)
        self.assertEqual(avatar.logout, logout)

    def test_connection_told_of_the_login(self) -> None:
        """The connection hears of the login before the backend is asked."""
        self.backend.hold_connects = True
        self.login()
        self.assertEqual(self.transport.logged_in, [self.user.metadata])
        self.assertEqual(self.backend.connections, [])

    def test_setup_tracked_by_the_registry(self) -> None:
        """Shutdown waits for a backend that is still preparing the connection."""
        self.backend.hold_connects = True
        d = self.login()
        self.assertEqual(self.registry.pending, 1)
        self.backend.release_connects()
        self.successResultOf(d)
        self.assertEqual(self.registry.pending, 0)

    def test_logout_hands_the_teardown_to_the_registry(self) -> None:
        """Logging out removes the container, through the realm's registry."""
        _, _, logout = self.successResultOf(self.login())
        self.assertEqual(self.backend.live_containers, ["fake0001"])
        logout()
        self.assertEqual(self.backend.live_containers, [])
        self.assertEqual(self.registry.pending, 0)

    def test_only_conch_users(self) -> None:
        """An avatar for any other interface is not available."""
        self.assertRaises(NotImplementedError, self.realm.requestAvatar, self.user, None, IRealm)


class RefusalTests(RealmTestCase):
    """A login the backend, the registry or the client ends."""

    def test_backend_refuses(self) -> None:
        """The client is disconnected with the error's user message; the log has the rest."""
        self.backend.connect_error = ContainerSSHError(
            messages.DOCKER_CONTAINER_CREATE_FAILED, "No container for you.", "image missing"
        )
        self.assertRejected(self.login(), "No container for you.", "image missing")

    def test_backend_fails(self) -> None:
        """An unexpected backend error reaches the client as the generic message only."""
        self.realm = self.realm_with(BrokenBackend())
        self.assertRejected(self.login(), GENERIC_USER_MESSAGE, "backend error: engine exploded")

    def test_shutting_down(self) -> None:
        """While the gateway shuts down the backend is not asked."""
        self.registry.accepting = False
        self.assertRejected(self.login(), GENERIC_USER_MESSAGE, "the server is shutting down")
        self.assertEqual(self.backend.created, [])

    def test_client_left_during_authentication(self) -> None:
        """A client gone before the login completed is neither logged in nor disconnected."""
        self.transport.lost = True
        self.failureResultOf(self.login(), ConnectionRejected)
        self.assertEqual(self.transport.logged_in, [])
        self.assertEqual(self.transport.disconnects, [])
        self.assertEqual(self.backend.created, [])

    def test_client_leaves_while_the_backend_prepares(self) -> None:
        """What the backend prepared for a client that left is released at once."""
        self.backend.hold_connects = True
        d = self.login()
        self.transport.lost = True
        self.backend.release_connects()
        self.assertRejected(
            d, GENERIC_USER_MESSAGE, "the client disconnected while the backend was preparing"
        )
        self.assertEqual(self.backend.created, ["fake0001"])
        self.assertEqual(self.backend.live_containers, [])
        self.assertEqual(self.registry.pending, 0)

    def test_shutdown_while_the_backend_prepares(self) -> None:
        """A connection prepared while the gateway began shutting down is released at once."""
        self.backend.hold_connects = True
        d = self.login()
        self.registry.accepting = False
        self.backend.release_connects()
        self.assertRejected(d, GENERIC_USER_MESSAGE, "the server is shutting down")
        self.assertEqual(self.backend.live_containers, [])

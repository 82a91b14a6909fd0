"""The realm, built with its collaborators and no SSH factory behind it."""

from __future__ import annotations

from typing import Any, cast

from twisted.conch.interfaces import IConchUser
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.logger import ILogObserver
from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.config import parse_config
from conch_container.errors import ContainerSSHError
from conch_container.interfaces import ConnectionContext
from conch_container.log.logger import CodeLogger
from conch_container.metadata import ConnectionMetadata
from conch_container.service import SessionRegistry
from conch_container.ssh.avatar import ContainerAvatar
from conch_container.ssh.checkers import AuthenticatedUser
from conch_container.ssh.realm import ConnectionRealm, ConnectionRejected


class StubTransport:
    """What the realm needs of a connection: its log, liveness and a way to disconnect."""

    connection_id = "c0ffee"

    def __init__(self, log: CodeLogger) -> None:
        self.log = log
        self.lost = False
        self.succeeded: list[ConnectionMetadata] = []
        self.disconnected: list[tuple[int, str]] = []

    def authentication_succeeded(self, metadata: ConnectionMetadata) -> None:
        self.succeeded.append(metadata)

    def disconnect(self, reason: int, message: str) -> None:
        self.disconnected.append((reason, message))


class StubBackend:
    """Connects every user, or refuses with ``refusal``."""

    def __init__(self, refusal: ContainerSSHError | None = None) -> None:
        self.refusal = refusal
        self.contexts: list[ConnectionContext] = []

    def connect(self, context: ConnectionContext) -> Deferred[Any]:
        self.contexts.append(context)
        if self.refusal is not None:
            raise self.refusal
        return succeed(object())


class RealmTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        log = CodeLogger("tests.realm", observer=cast(ILogObserver, self.events.append))
        self.transport = StubTransport(log)
        self.config = parse_config({})
        self.registry = SessionRegistry(Clock(), log)
        self.user = AuthenticatedUser(
            ConnectionMetadata(
                connection_id="c0ffee", remote_address="127.0.0.1:2222", username="alice"
            ),
            "password",
        )

    def realm(self, backend: StubBackend) -> ConnectionRealm:
        return ConnectionRealm(
            self.transport,  # type: ignore[arg-type]
            backend=backend,
            config=self.config,
            registry=self.registry,
        )

    def test_login_connects_the_backend_with_the_given_config(self) -> None:
        backend = StubBackend()
        result = self.realm(backend).requestAvatar(self.user, None, IConchUser)
        interface, avatar, _ = self.successResultOf(result)
        self.assertIs(interface, IConchUser)
        self.assertIsInstance(avatar, ContainerAvatar)
        [context] = backend.contexts
        self.assertIs(context.config, self.config)
        self.assertIs(context.metadata, self.user.metadata)
        self.assertEqual(self.transport.succeeded, [self.user.metadata])
        self.assertEqual(self.registry.pending, 0)  # the backend setup is no longer tracked

    def test_backend_refusal_disconnects_with_the_user_message(self) -> None:
        refusal = ContainerSSHError(messages.DOCKER_CONFIG_ERROR, "No container for you.", "why")
        result = self.realm(StubBackend(refusal)).requestAvatar(self.user, None, IConchUser)
        self.failureResultOf(result, ConnectionRejected)
        [(_, message)] = self.transport.disconnected
        self.assertEqual(message, "No container for you.")
        codes = [e.get("code") for e in self.events]
        self.assertIn("SSH_BACKEND_REJECTED_HANDSHAKE", codes)

    def test_shutting_down_refuses_before_the_backend(self) -> None:
        backend = StubBackend()
        self.registry.accepting = False
        result = self.realm(backend).requestAvatar(self.user, None, IConchUser)
        self.failureResultOf(result, ConnectionRejected)
        self.assertEqual(backend.contexts, [])

"""The ``ssh-userauth`` service is started once; ``ssh-connection`` only by a login."""

from __future__ import annotations

import struct
from typing import Any

from twisted.conch.ssh import common, transport, userauth
from twisted.conch.ssh.transport import DISCONNECT_PROTOCOL_ERROR
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from conch_container.ssh.connection import ServerConnection
from conch_container.ssh.userauth import UserAuthServer
from tests.ssh.harness import Authenticators, Client, Harness, Passwords, PublicKeys, make_config

OTHER_PASSWORD = "other-secret"


def two_users() -> Harness:
    """A server with ``user`` (password ``secret``) and ``other``."""
    return Harness(
        authenticators=Authenticators(
            password=Passwords({"user": "secret", "other": OTHER_PASSWORD}),
            public_key=PublicKeys(),
        )
    )


def request_service(client: Client, name: bytes) -> None:
    """Send ``SSH_MSG_SERVICE_REQUEST`` from the client, whatever state it is in."""
    client.transport.sendPacket(transport.MSG_SERVICE_REQUEST, common.NS(name))


def password_request(client: Client, user: str, password: str) -> None:
    """Send a password ``SSH_MSG_USERAUTH_REQUEST`` from the client, by hand."""
    client.transport.sendPacket(
        userauth.MSG_USERAUTH_REQUEST,
        common.NS(user.encode())
        + common.NS(b"ssh-connection")
        + common.NS(b"password")
        + b"\x00"
        + common.NS(password.encode()),
    )


def password_checks(harness: Harness) -> list[tuple[str, bytes]]:
    """The (username, password) pairs the password authenticator was asked about."""
    calls: Any = harness.authenticators.password.calls
    return [(metadata.username, password) for metadata, password in calls]


class SecondUserauthBeforeLoginTests(SynchronousTestCase):
    """A client that asks for ``ssh-userauth`` again before logging in."""

    def test_request_disconnects_without_a_new_service(self) -> None:
        """The second request ends the connection; the running userauth is not replaced."""
        harness = Harness()
        client = harness.connect("user", manual=True)
        harness.flush()
        first = client.server.service
        self.assertIsInstance(first, UserAuthServer)
        request_service(client, b"ssh-userauth")
        harness.flush()
        self.assertTrue(client.lost.called)
        self.assertEqual(
            client.disconnect_reason, (DISCONNECT_PROTOCOL_ERROR, "a service was already started")
        )
        self.assertIs(client.server.service, first)
        [event] = harness.events_with("SSH_SERVICE_REQUEST_REFUSED")
        self.assertEqual(event["service"], "ssh-userauth")

    def test_failure_count_is_not_reset(self) -> None:
        """Retrying after every few wrong passwords never gets past maxAuthTries in total.

        Each round sends five wrong passwords (one less than the limit),
        then a new ``ssh-userauth`` request, then five more; were the count
        reset, every round would get five more checks.
        """
        harness = Harness()
        client = harness.connect("user", manual=True)
        harness.flush()
        assert client.userauth is not None
        for _round in range(5):
            for i in range(5):
                client.userauth.askForAuth(b"password", b"\x00" + common.NS(b"wrong%d" % i))
                harness.advance(1)
            request_service(client, b"ssh-userauth")
            harness.flush()
        self.assertTrue(client.lost.called)
        self.assertEqual(len(password_checks(harness)), 5)
        self.assertEqual(
            client.disconnect_reason, (DISCONNECT_PROTOCOL_ERROR, "a service was already started")
        )
        self.assertEqual(len(harness.events_with("SSH_SERVICE_REQUEST_REFUSED")), 1)

    def test_passwords_behind_the_request_are_not_checked(self) -> None:
        """Requests that arrive with the refused service request are dropped, not checked."""
        harness = Harness()
        client = harness.connect("user", manual=True)
        harness.flush()
        request_service(client, b"ssh-userauth")
        for i in range(20):
            password_request(client, "user", f"guess{i}")
        harness.advance(30)
        self.assertTrue(client.lost.called)
        self.assertEqual(password_checks(harness), [])

    def test_request_while_a_check_is_pending(self) -> None:
        """A failure that was still being delayed is not answered after the disconnect."""
        harness = Harness()
        client = harness.connect("user", manual=True)
        harness.flush()
        assert client.userauth is not None
        client.userauth.askForAuth(b"password", b"\x00" + common.NS(b"wrong"))
        harness.flush()
        failures = client.failures
        request_service(client, b"ssh-userauth")
        harness.advance(2)
        self.assertTrue(client.lost.called)
        self.assertEqual(client.failures, failures)
        self.assertEqual(harness.events_with("SSH_AUTH_TOO_MANY_ATTEMPTS"), [])


class SecondUserauthAfterLoginTests(SynchronousTestCase):
    """A logged-in client that asks for ``ssh-userauth`` again."""

    def test_no_further_password_check(self) -> None:
        """After login a new userauth is refused: no other user's password is ever checked."""
        harness = two_users()
        client = harness.login("user", "secret")
        request_service(client, b"ssh-userauth")
        for i in range(20):
            password_request(client, "other", f"guess{i}")
        password_request(client, "other", OTHER_PASSWORD)
        harness.advance(30)
        self.assertTrue(client.lost.called)
        self.assertEqual(
            client.disconnect_reason, (DISCONNECT_PROTOCOL_ERROR, "a service was already started")
        )
        self.assertEqual(password_checks(harness), [("user", b"secret")])
        self.assertEqual(len(harness.events_with("SSH_AUTH_SUCCESSFUL")), 1)
        [event] = harness.events_with("SSH_SERVICE_REQUEST_REFUSED")
        self.assertEqual(event["username"], "user")

    def test_first_login_is_logged_out_once(self) -> None:
        """The first login keeps its avatar; its container is removed exactly once at the end."""
        harness = two_users()
        client = harness.login("user", "secret")
        harness.open_session(client)
        avatar = client.server.avatar
        request_service(client, b"ssh-userauth")
        password_request(client, "other", OTHER_PASSWORD)
        harness.advance(5)
        self.assertTrue(client.lost.called)
        self.assertIs(client.server.avatar, avatar)
        self.assertEqual(len(harness.backend.connections), 1)
        self.assertEqual(harness.backend.created, ["fake0001"])
        self.assertEqual(harness.backend.removed, ["fake0001"])
        self.assertEqual(harness.backend.live_containers, [])
        self.assertEqual(len(harness.events_with("SSH_HANDSHAKE_SUCCESSFUL")), 1)

    def test_connection_service_cannot_be_requested_again(self) -> None:
        """A logged-in client cannot replace its ``ssh-connection`` service either."""
        harness = Harness()
        client = harness.login()
        harness.open_session(client)
        connection = client.server.service
        request_service(client, b"ssh-connection")
        harness.flush()
        self.assertTrue(client.lost.called)
        self.assertIs(client.server.service, connection)
        self.assertEqual(harness.backend.removed, harness.backend.created)


class ConnectionServiceFirst(Client):
    """A client that asks for ``ssh-connection`` right after the key exchange."""

    def __init__(self) -> None:
        super().__init__("user", [], [])
        client = self

        class Transport(type(self.transport)):  # type: ignore[misc]
            def connectionSecure(self) -> None:
                request_service(client, b"ssh-connection")

        self.transport = Transport(self)


class ConnectionServiceByRequestTests(SynchronousTestCase):
    """``ssh-connection`` is only ever started by a successful login."""

    def test_connection_service_without_login(self) -> None:
        """Requested instead of ``ssh-userauth``, it is not available: disconnect."""
        harness = Harness()
        client = ConnectionServiceFirst()
        pump = harness.connect_protocol(client.transport)
        for _ in range(20):
            pump.flush()
            harness.reactor.advance(0)
        self.assertTrue(client.lost.called)
        self.assertEqual(
            client.disconnect_reason,
            (transport.DISCONNECT_SERVICE_NOT_AVAILABLE, "service not available"),
        )
        self.assertEqual(harness.backend.created, [])
        [event] = harness.events_with("SSH_SERVICE_REQUEST_REFUSED")
        self.assertEqual(event["service"], "ssh-connection")

    def test_connection_service_during_authentication(self) -> None:
        """Requested while ``ssh-userauth`` runs, it ends the connection."""
        harness = Harness()
        client = harness.connect("user", manual=True)
        harness.flush()
        request_service(client, b"ssh-connection")
        harness.flush()
        self.assertTrue(client.lost.called)
        self.assertEqual(
            client.disconnect_reason, (DISCONNECT_PROTOCOL_ERROR, "a service was already started")
        )
        self.assertFalse(client.server.authenticated)


def unencrypted_packet(message: int, payload: bytes) -> bytes:
    """An SSH binary packet before any key exchange: length, padding, no MAC."""
    body = bytes([message]) + payload
    padding = 8 - (len(body) + 5) % 8
    if padding < 4:
        padding += 8
    return struct.pack(">LB", len(body) + padding + 1, padding) + body + b"\x00" * padding


class ServiceBeforeKeyExchangeTests(SynchronousTestCase):
    """No service starts on an unencrypted connection."""

    def test_userauth_before_key_exchange(self) -> None:
        """A service request before the key exchange is a protocol error."""
        harness = Harness()
        server = harness.factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", 2222))
        wire = StringTransport(peerAddress=IPv4Address("TCP", "203.0.113.9", 4000))
        server.makeConnection(wire)
        server.dataReceived(b"SSH-2.0-Test\r\n")
        server.dataReceived(
            unencrypted_packet(transport.MSG_SERVICE_REQUEST, common.NS(b"ssh-userauth"))
        )
        self.assertTrue(wire.disconnecting)
        self.assertIsNone(server.service)
        [event] = harness.events_with("SSH_SERVICE_REQUEST_REFUSED")
        self.assertEqual(event["reason"], "service request before key exchange")


class GetServiceTests(SynchronousTestCase):
    """The factory's answer to "which service class?", by connection state."""

    def setUp(self) -> None:
        self.factory = Harness(config=make_config()).factory

    def state(self, service: Any = None, avatar: bool = False) -> Any:
        class State:
            pass

        state = State()
        state.service = service  # type: ignore[attr-defined]
        if avatar:
            state.avatar = object()  # type: ignore[attr-defined]
        return state

    def test_userauth_only_first(self) -> None:
        """``ssh-userauth`` while nothing runs; never once a service runs."""
        self.assertIs(self.factory.getService(self.state(), b"ssh-userauth"), UserAuthServer)
        running = UserAuthServer()
        self.assertIsNone(self.factory.getService(self.state(running), b"ssh-userauth"))
        connection = ServerConnection(make_config().ssh)
        state = self.state(connection, avatar=True)
        self.assertIsNone(self.factory.getService(state, b"ssh-userauth"))

    def test_connection_only_after_login_from_userauth(self) -> None:
        """``ssh-connection`` only for a logged-in userauth service (Conch asks then)."""
        get = self.factory.getService
        self.assertIsNone(get(self.state(), b"ssh-connection"))
        self.assertIsNone(get(self.state(UserAuthServer()), b"ssh-connection"))
        self.assertIsNone(get(self.state(avatar=True), b"ssh-connection"))
        running = ServerConnection(make_config().ssh)
        self.assertIsNone(get(self.state(running, avatar=True), b"ssh-connection"))
        state = self.state(UserAuthServer(), avatar=True)
        self.assertIsInstance(get(state, b"ssh-connection")(), ServerConnection)

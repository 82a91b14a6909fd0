"""Authentication against the whole SSH server, in memory, with Conch's client."""

from __future__ import annotations

from typing import Any

from twisted.conch.ssh import common
from twisted.conch.ssh.transport import DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from conch_container.errors import AUTH_UNAVAILABLE_USER_MESSAGE
from conch_container.interfaces import IPasswordAuthenticator
from conch_container.metadata import ConnectionMetadata
from conch_container.ssh.userauth import UserAuthServer
from tests.ssh.harness import (
    OTHER_KEY,
    USER_KEY,
    Authenticators,
    Authorizer,
    Harness,
    Passwords,
    PublicKeys,
    authorized,
    make_config,
)


@implementer(IPasswordAuthenticator)
class NeverAnswers:
    """A password authenticator that never decides (a webhook that hangs)."""

    name = "hanging"

    def authenticate_password(self, metadata: ConnectionMetadata, password: bytes) -> Any:
        return Deferred()


class PasswordTests(SynchronousTestCase):
    """Password authentication."""

    def test_correct_password_logs_in(self) -> None:
        """A correct password logs the user in; the authenticator saw the connection's metadata."""
        harness = Harness()
        client = harness.login("user", "secret")
        self.assertTrue(client.authenticated.called)
        passwords = harness.authenticators.password
        [(metadata, password)] = passwords.calls
        self.assertEqual(password, b"secret")
        self.assertEqual(metadata.username, "user")
        self.assertEqual(metadata.remote_address, "198.51.100.7:50123")
        self.assertEqual(len(metadata.connection_id), 32)
        self.assertTrue(metadata.client_version.startswith("SSH-2.0-"))
        self.assertIn("SSH_AUTH_SUCCESSFUL", harness.codes())
        self.assertIn("SSH_HANDSHAKE_SUCCESSFUL", harness.codes())
        [event] = harness.events_with("SSH_AUTH_SUCCESSFUL")
        self.assertEqual(event["authtype"], "password")
        self.assertEqual(event["username"], "user")
        self.assertNotIn("secret", repr(harness.events))

    def test_wrong_password_is_refused_after_a_delay(self) -> None:
        """A wrong password is answered with failure, one second later."""
        harness = Harness()
        client = harness.connect("user", passwords=["wrong"])
        harness.flush()
        self.assertEqual(client.failures, 1)  # the initial "none" request
        harness.advance(1)
        self.assertFalse(client.authenticated.called)
        self.assertEqual(client.failures, 2)
        [event] = harness.events_with("SSH_AUTH_FAILED")
        self.assertEqual(event["authtype"], "password")

    def test_unavailable_authenticator_sends_banner_then_failure(self) -> None:
        """When the authenticator cannot decide, the user is told so in a banner."""
        harness = Harness()
        harness.authenticators.password.unavailable = True
        client = harness.connect("user", passwords=["secret"])
        harness.advance(1)
        self.assertFalse(client.authenticated.called)
        self.assertEqual(client.banners, [AUTH_UNAVAILABLE_USER_MESSAGE + "\n"])
        self.assertEqual(client.failures, 2)
        self.assertIn("SSH_AUTH_UNAVAILABLE", harness.codes())
        self.assertNotIn("SSH_AUTH_FAILED", harness.codes())

    def test_too_many_attempts_disconnect(self) -> None:
        """The sixth failed attempt ends the connection (ContainerSSH's MaxAuthTries)."""
        harness = Harness()
        client = harness.connect("user", passwords=[f"wrong{i}" for i in range(10)])
        harness.advance(10)
        self.assertTrue(client.lost.called)
        self.assertEqual(
            client.disconnect_reason,
            (DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE, "too many authentication failures"),
        )
        self.assertEqual(len(harness.authenticators.password.calls), 6)
        # "none", then five refused passwords; the sixth gets the disconnect.
        self.assertEqual(client.failures, 6)
        self.assertEqual(len(harness.events_with("SSH_AUTH_TOO_MANY_ATTEMPTS")), 1)
        self.assertIn("SSH_HANDSHAKE_FAILED", harness.codes())
        self.assertIn("SSH_DISCONNECTED", harness.codes())

    def test_max_auth_tries_is_configurable(self) -> None:
        """``ssh.maxAuthTries`` sets the number of attempts."""
        harness = Harness(config=make_config(max_auth_tries=2))
        client = harness.connect("user", passwords=["a", "b", "c"])
        harness.advance(5)
        self.assertTrue(client.lost.called)
        self.assertEqual(len(harness.authenticators.password.calls), 2)

    def test_password_not_configured(self) -> None:
        """With only public keys configured, password is not offered and a try is logged."""
        harness = Harness(authenticators=Authenticators(public_key=PublicKeys()))
        client = harness.connect("user", manual=True)
        harness.flush()
        assert client.userauth is not None
        client.userauth.askForAuth(b"password", b"\x00" + common.NS(b"secret"))
        harness.flush()
        self.assertIn("AUTH_DISABLED", harness.codes())
        self.assertFalse(client.authenticated.called)

    def test_keyboard_interactive_is_not_supported(self) -> None:
        """Keyboard-interactive is refused and logged as not supported."""
        harness = Harness()
        client = harness.connect("user", manual=True)
        harness.flush()
        assert client.userauth is not None
        client.userauth.askForAuth(b"keyboard-interactive", common.NS(b"") + common.NS(b""))
        harness.flush()
        [event] = harness.events_with("AUTH_NOT_SUPPORTED")
        self.assertEqual(event["authtype"], "keyboard-interactive")


class PublicKeyTests(SynchronousTestCase):
    """Public key authentication."""

    def test_authorized_key_logs_in_with_one_authenticator_call(self) -> None:
        """The key query is answered locally; the authenticator sees the signed attempt only."""
        harness = Harness()
        client = harness.connect("user", keys_=[USER_KEY])
        harness.flush()
        self.assertTrue(client.authenticated.called)
        [(metadata, key)] = harness.authenticators.public_key.calls
        self.assertEqual(key, authorized(USER_KEY))
        self.assertEqual(metadata.username, "user")
        self.assertEqual(harness.authenticators.password.calls, [])
        context: Any = harness.backend.connections[0].context
        self.assertEqual(context.metadata.authenticated_username, "user-key")

    def test_unknown_key_is_refused(self) -> None:
        """A key the authenticator does not know is refused, after one call."""
        harness = Harness()
        client = harness.connect("user", keys_=[OTHER_KEY])
        harness.flush()
        self.assertFalse(client.authenticated.called)
        self.assertEqual(len(harness.authenticators.public_key.calls), 1)
        [event] = harness.events_with("SSH_AUTH_FAILED")
        self.assertEqual(event["authtype"], "pubkey")
        self.assertEqual(harness.backend.created, [])

    def test_unavailable_key_authenticator(self) -> None:
        """An undecided public key check tells the user authentication is unavailable."""
        harness = Harness()
        harness.authenticators.public_key.unavailable = True
        client = harness.connect("user", keys_=[USER_KEY])
        harness.flush()
        self.assertIn(AUTH_UNAVAILABLE_USER_MESSAGE + "\n", client.banners)
        self.assertIn("SSH_AUTH_UNAVAILABLE", harness.codes())

    def test_bad_signature_is_refused_without_asking(self) -> None:
        """A signature that does not verify is refused before the authenticator is asked."""
        harness = Harness()
        client = harness.connect("user", manual=True)
        harness.flush()
        assert client.userauth is not None
        blob = USER_KEY.public().blob()
        client.userauth.askForAuth(
            b"publickey",
            b"\x01"
            + common.NS(b"ssh-ed25519")
            + common.NS(blob)
            + common.NS(common.NS(b"ssh-ed25519") + common.NS(b"\x00" * 64)),
        )
        harness.flush()
        self.assertEqual(harness.authenticators.public_key.calls, [])
        [event] = harness.events_with("SSH_AUTH_FAILED")
        self.assertEqual(event["reason"], "invalid signature")


class AuthorizationTests(SynchronousTestCase):
    """The authorizer confirms or refuses authenticated users."""

    def test_authorizer_refuses(self) -> None:
        """A user the authorizer refuses is not logged in."""
        harness = Harness(
            authenticators=Authenticators(password=Passwords(), authz=Authorizer(set()))
        )
        client = harness.connect("user", passwords=["secret"])
        harness.advance(1)
        self.assertFalse(client.authenticated.called)
        self.assertIn("AUTHZ_FAILED", harness.codes())
        self.assertEqual(harness.backend.created, [])

    def test_authorizer_accepts_and_adds_metadata(self) -> None:
        """The authorizer sees the merged metadata; what it adds reaches the backend."""
        authz = Authorizer({"user"})
        harness = Harness(authenticators=Authenticators(password=Passwords(), authz=authz))
        harness.login("user", "secret")
        [seen] = authz.calls
        self.assertEqual(seen.environment["FROM_AUTH"].value, "password")
        metadata: Any = harness.backend.connections[0].context.metadata
        self.assertEqual(metadata.environment["FROM_AUTHZ"].value, "yes")
        self.assertEqual(metadata.environment["FROM_AUTH"].value, "password")


class BannerAndGraceTests(SynchronousTestCase):
    """The configured banner and the login grace time."""

    def test_banner_is_sent_before_authentication(self) -> None:
        """``ssh.banner`` reaches the client before it is authenticated."""
        harness = Harness(config=make_config(banner="Welcome!\nBe nice.\n"))
        client = harness.connect("user", passwords=["secret"])
        harness.flush()
        self.assertEqual(client.banners, ["Welcome!\nBe nice.\n"])
        self.assertTrue(client.authenticated.called)

    def test_no_banner_by_default(self) -> None:
        """Without ``ssh.banner`` no banner is sent."""
        harness = Harness()
        client = harness.login()
        self.assertEqual(client.banners, [])

    def test_login_grace_time(self) -> None:
        """A client still not authenticated when the grace time ends is disconnected."""
        harness = Harness(
            config=make_config(login_grace_time=30.0),
            authenticators=Authenticators(password=NeverAnswers()),
        )
        client = harness.connect("user", passwords=["secret"])
        harness.advance(29)
        self.assertFalse(client.lost.called)
        harness.advance(2)
        self.assertTrue(client.lost.called)
        self.assertEqual(
            client.disconnect_reason,
            (DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE, "login grace time exceeded"),
        )
        self.assertEqual(len(harness.events_with("SSH_HANDSHAKE_TIMEOUT")), 1)

    def test_grace_time_counts_from_tcp_connect(self) -> None:
        """A client that never even sends its version is disconnected after the grace time."""
        harness = Harness(config=make_config(login_grace_time=10.0))
        server = harness.factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", 2222))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "203.0.113.9", 4000))
        server.makeConnection(transport)
        harness.reactor.advance(10)
        self.assertTrue(transport.disconnecting)
        server.connectionLost(None)
        self.assertEqual(
            harness.codes()[-3:],
            ["SSH_HANDSHAKE_TIMEOUT", "SSH_HANDSHAKE_FAILED", "SSH_DISCONNECTED"],
        )
        [connected] = harness.events_with("SSH_CONNECTED")
        self.assertEqual(connected["remoteAddr"], "203.0.113.9:4000")

    def test_leaving_during_authentication(self) -> None:
        """A client that leaves before logging in stops the userauth service, leaving no timer."""
        harness = Harness(
            config=make_config(login_grace_time=30.0),
            authenticators=Authenticators(password=NeverAnswers()),
        )
        client = harness.connect("user", passwords=["secret"])
        harness.flush()
        self.assertIsInstance(client.server.service, UserAuthServer)
        harness.disconnect_all()
        self.assertEqual(harness.reactor.getDelayedCalls(), [])
        self.assertEqual(harness.codes()[-2:], ["SSH_HANDSHAKE_FAILED", "SSH_DISCONNECTED"])

    def test_grace_timer_stops_after_login(self) -> None:
        """An authenticated connection outlives the grace time."""
        harness = Harness(config=make_config(login_grace_time=10.0))
        client = harness.login()
        harness.advance(60)
        self.assertFalse(client.lost.called)

"""Tests for conch_container.auth.factory: building authenticators from the ``auth`` section."""

from __future__ import annotations

from typing import Any

import attrs
import bcrypt
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from conch_container.auth.factory import AuthConfigError, build_authenticators
from conch_container.auth.static import StaticAuthenticator
from conch_container.auth.webhook import WebhookAuthenticator, WebhookAuthorizer
from conch_container.config import (
    AuthConfig,
    AuthzConfig,
    GSSAPIAuthConfig,
    KeyboardInteractiveAuthConfig,
    PasswordAuthConfig,
    PublicKeyAuthConfig,
    StaticUsersConfig,
)
from conch_container.metadata import ConnectionMetadata
from conch_container.testing.threads import NonThreadPool, SynchronousReactorThreads
from conch_container.testing.webhook import AuthWebhookResource, WebhookUser, memory_agent
from tests.webhook.support import ClientConfig

HOOK = ClientConfig(url="http://auth.test/", auth_timeout=30.0)


def _build(auth: AuthConfig, **kwargs: Any) -> Any:
    kwargs.setdefault("reactor", Clock())
    return build_authenticators(auth, **kwargs)


class FactoryTests(SynchronousTestCase):
    def users_file(self) -> str:
        path = self.mktemp()
        hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
        with open(path, "w") as f:
            f.write(f"users:\n  demo:\n    passwordHash: '{hashed}'\n")
        return path

    def test_all_disabled(self) -> None:
        """``method: ""`` everywhere builds nothing; start and stop still work."""
        built = _build(AuthConfig())
        self.assertEqual((built.password, built.public_key, built.authz), (None, None, None))
        self.successResultOf(built.start())
        self.successResultOf(built.stop())

    def test_webhooks(self) -> None:
        """Webhook methods build webhook authenticators; equal HTTP blocks share one client."""
        auth = AuthConfig(
            password=PasswordAuthConfig("webhook", webhook=HOOK),
            public_key=PublicKeyAuthConfig("webhook", webhook=HOOK),
            authz=AuthzConfig("webhook", webhook=attrs.evolve(HOOK, url="http://authz.test/")),
        )
        built = _build(auth)
        self.assertIsInstance(built.password, WebhookAuthenticator)
        self.assertIsInstance(built.public_key, WebhookAuthenticator)
        self.assertIsInstance(built.authz, WebhookAuthorizer)
        self.assertIs(built.password._caller.client, built.public_key._caller.client)
        self.assertEqual(len(built._clients), 2)
        self.assertEqual(built.password._caller._auth_timeout, 30.0)
        self.successResultOf(built.stop())

    def test_webhook_end_to_end(self) -> None:
        """The built webhook authenticator talks to the configured server."""
        resource = AuthWebhookResource({"demo": WebhookUser(password="pw")})
        auth = AuthConfig(password=PasswordAuthConfig("webhook", webhook=HOOK))
        built = _build(auth, http_agent=memory_agent(resource))
        metadata = ConnectionMetadata(
            connection_id="c" * 32, remote_address="[::1]:5", username="demo"
        )
        result = self.successResultOf(built.password.authenticate_password(metadata, b"pw"))
        self.assertTrue(result.success)
        self.assertEqual(resource.requests[0].body["remoteAddress"], "[::1]:5")

    def test_static_shared(self) -> None:
        """Both methods on the same users file share one static authenticator."""
        path = self.users_file()
        static = StaticUsersConfig(users_file=path)
        auth = AuthConfig(
            password=PasswordAuthConfig("static", static=static),
            public_key=PublicKeyAuthConfig("static", static=static),
        )
        built = _build(auth, reactor=SynchronousReactorThreads(), thread_pool=NonThreadPool())
        self.assertIsInstance(built.password, StaticAuthenticator)
        self.assertIs(built.password, built.public_key)
        self.successResultOf(built.start())
        metadata = ConnectionMetadata(connection_id="c" * 32, remote_address="a:1", username="demo")
        self.assertTrue(
            self.successResultOf(built.password.authenticate_password(metadata, b"pw")).success
        )
        self.successResultOf(built.stop())

    def test_errors(self) -> None:
        """Unknown, unavailable and incomplete methods are errors naming the option."""
        cases = [
            (
                AuthConfig(password=PasswordAuthConfig("ldap")),
                "auth.password.method: unknown method",
            ),
            (AuthConfig(password=PasswordAuthConfig("kerberos")), "not available in this version"),
            (AuthConfig(public_key=PublicKeyAuthConfig("kerberos")), "auth.publicKey.method"),
            (
                AuthConfig(keyboard_interactive=KeyboardInteractiveAuthConfig("oauth2")),
                "auth.keyboardInteractive.method: 'oauth2' is not available",
            ),
            (AuthConfig(gssapi=GSSAPIAuthConfig("kerberos")), "auth.gssapi.method"),
            (AuthConfig(authz=AuthzConfig("static")), "auth.authz.method: unknown method"),
            (
                AuthConfig(password=PasswordAuthConfig("webhook")),
                "auth.password.webhook.url: required",
            ),
            (AuthConfig(authz=AuthzConfig("webhook")), "auth.authz.webhook.url: required"),
            (AuthConfig(password=PasswordAuthConfig("static")), "auth.password.static.usersFile"),
            (
                AuthConfig(
                    password=PasswordAuthConfig("webhook", webhook=ClientConfig(url="ftp://x"))
                ),
                "auth.password.webhook.url: not an http",
            ),
            (
                AuthConfig(
                    public_key=PublicKeyAuthConfig(
                        "webhook", webhook=ClientConfig(url="https://x", cipher=("RC4",))
                    )
                ),
                "auth.publicKey.webhook.cipher: unsupported cipher suite: RC4",
            ),
        ]
        for auth, expected in cases:
            with self.assertRaises(AuthConfigError, msg=expected) as caught:
                _build(auth)
            self.assertIn(expected, str(caught.exception))

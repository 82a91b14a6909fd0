"""Building the SSH server from the configuration."""

from __future__ import annotations

from typing import Any

from twisted.conch.ssh import keys
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from conch_container.errors import ContainerSSHError
from conch_container.service import SessionRegistry
from conch_container.ssh.connection import ServerConnection
from conch_container.ssh.factory import ContainerSSHFactory
from conch_container.ssh.userauth import UserAuthServer
from conch_container.testing.backend import FakeBackend
from tests.ssh.harness import (
    HOST_KEY_PEM,
    Authenticators,
    Passwords,
    collecting_log,
    make_config,
)


def build(config: Any, authenticators: Any = None) -> ContainerSSHFactory:
    reactor = MemoryReactorClock()
    log = collecting_log([])
    return ContainerSSHFactory(
        config,
        authenticators or Authenticators(password=Passwords()),
        FakeBackend(reactor),
        SessionRegistry(reactor, log),
        reactor,
        log,
        "id",
    )


class FactoryTests(SynchronousTestCase):
    """:class:`ContainerSSHFactory` construction."""

    def assertStartFails(self, config: Any, fragment: str, authenticators: Any = None) -> None:
        with self.assertRaises(ContainerSSHError) as caught:
            build(config, authenticators)
        self.assertEqual(caught.exception.code.code, "SSH_START_FAILED")
        self.assertIn(fragment, caught.exception.explanation)

    def test_host_keys(self) -> None:
        """Each configured key is a host key, by type; the public halves are derived."""
        factory = build(make_config(hostkeys=(HOST_KEY_PEM, _rsa_pem().decode())))
        self.assertEqual(set(factory.privateKeys), {b"ssh-ed25519", b"ssh-rsa"})
        self.assertTrue(all(k.isPublic() for k in factory.publicKeys.values()))

    def test_no_host_key(self) -> None:
        """A server without host keys does not start."""
        self.assertStartFails(make_config(hostkeys=()), "no host keys")

    def test_unreadable_host_key(self) -> None:
        """A host key that cannot be read is named by position, not content."""
        self.assertStartFails(
            make_config(hostkeys=(HOST_KEY_PEM, "-----BEGIN NONSENSE-----\nAAAA\n")),
            "ssh.hostkeys[1]",
        )

    def test_public_host_key(self) -> None:
        """A public key is not a host key."""
        public = keys.Key.fromString(HOST_KEY_PEM).public().toString("openssh").decode()
        self.assertStartFails(make_config(hostkeys=(public,)), "public key")

    def test_no_authenticator(self) -> None:
        """A server nobody could log in to does not start."""
        self.assertStartFails(make_config(), "no authentication method", Authenticators())

    def test_own_services(self) -> None:
        """The factory's services are its own; Conch's class attribute is untouched."""
        from twisted.conch.ssh.factory import SSHFactory

        config = make_config()
        factory = build(config)
        self.assertIs(factory.services[b"ssh-userauth"], UserAuthServer)
        connection = factory.services[b"ssh-connection"]()
        self.assertIsInstance(connection, ServerConnection)
        self.assertIs(connection.limits, config.ssh)
        self.assertIsNot(SSHFactory.services[b"ssh-userauth"], UserAuthServer)
        self.assertIsNone(factory.getService(object(), b"no-such-service"))


def _rsa_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )

"""Which algorithms the server offers."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from conch_container.errors import ContainerSSHError
from conch_container.ssh.algorithms import (
    implemented_ciphers,
    implemented_key_exchanges,
    implemented_macs,
    select_algorithms,
)
from tests.ssh.harness import Harness, collecting_log, make_config


class SelectAlgorithmsTests(SynchronousTestCase):
    """:func:`select_algorithms`."""

    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.log = collecting_log(self.events)

    def test_containerssh_defaults(self) -> None:
        """ContainerSSH's default lists are offered as written, with no warning."""
        offer = select_algorithms((), (), (), self.log)
        self.assertEqual(
            offer.ciphers,
            (
                b"chacha20-poly1305@openssh.com",
                b"aes256-gcm@openssh.com",
                b"aes128-gcm@openssh.com",
                b"aes256-ctr",
                b"aes192-ctr",
                b"aes128-ctr",
            ),
        )
        self.assertEqual(
            offer.key_exchanges,
            (
                b"curve25519-sha256@libssh.org",
                b"ecdh-sha2-nistp521",
                b"ecdh-sha2-nistp384",
                b"ecdh-sha2-nistp256",
            ),
        )
        self.assertEqual(offer.macs, (b"hmac-sha2-256-etm@openssh.com", b"hmac-sha2-256"))
        self.assertEqual(offer.unsupported, {})
        self.assertEqual(self.events, [])

    def test_modern_names_are_implemented(self) -> None:
        """The AEAD ciphers, the -etm MACs and the modern key exchanges are offered."""
        offer = select_algorithms(
            ("aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"),
            ("mlkem768x25519-sha256", "curve25519-sha256", "curve25519-sha256@libssh.org"),
            ("hmac-sha2-512-etm@openssh.com", "hmac-sha2-256-etm@openssh.com"),
            self.log,
        )
        self.assertEqual(
            offer.ciphers, (b"aes128-gcm@openssh.com", b"chacha20-poly1305@openssh.com")
        )
        self.assertEqual(
            offer.key_exchanges,
            (b"mlkem768x25519-sha256", b"curve25519-sha256", b"curve25519-sha256@libssh.org"),
        )
        self.assertEqual(
            offer.macs, (b"hmac-sha2-512-etm@openssh.com", b"hmac-sha2-256-etm@openssh.com")
        )
        self.assertEqual(self.events, [])

    def test_configured_order_is_kept(self) -> None:
        """The offer keeps the configured order, not Conch's."""
        offer = select_algorithms(
            ("aes128-ctr", "aes256-ctr"), ("ecdh-sha2-nistp256",), ("hmac-sha1", "hmac-sha2-512")
        )
        self.assertEqual(offer.ciphers, (b"aes128-ctr", b"aes256-ctr"))
        self.assertEqual(offer.macs, (b"hmac-sha1", b"hmac-sha2-512"))

    def test_unsupported_names_are_logged_once(self) -> None:
        """Every left-out name is listed in a single warning."""
        select_algorithms(
            ("tripledescbcID", "aes128-ctr", "arcfour"),
            ("diffie-hellman-group1-sha1", "curve25519-sha256@libssh.org"),
            ("hmac-sha1-96", "hmac-sha2-256"),
            self.log,
        )
        [event] = self.events
        self.assertEqual(event["code"], "SSH_ALGORITHM_UNSUPPORTED")
        self.assertEqual(event["unsupportedCiphers"], ["tripledescbcID", "arcfour"])
        self.assertEqual(event["unsupportedKex"], ["diffie-hellman-group1-sha1"])
        self.assertEqual(event["unsupportedMacs"], ["hmac-sha1-96"])

    def test_nothing_usable_is_a_start_error(self) -> None:
        """A list with nothing this server implements cannot start a server."""
        with self.assertRaises(ContainerSSHError) as caught:
            select_algorithms(("arcfour256",), (), ())
        self.assertEqual(caught.exception.code.code, "SSH_START_FAILED")
        self.assertIn("ssh.ciphers", caught.exception.explanation)

    def test_group_exchange_is_not_offered(self) -> None:
        """Diffie-Hellman group exchange needs a moduli file the server does not load."""
        self.assertNotIn(b"diffie-hellman-group-exchange-sha256", implemented_key_exchanges())
        self.assertIn(b"curve25519-sha256@libssh.org", implemented_key_exchanges())
        self.assertIn(b"aes128-ctr", implemented_ciphers())
        self.assertIn(b"hmac-sha2-256", implemented_macs())


class NegotiationTests(SynchronousTestCase):
    """The offer reaches the wire."""

    def test_client_negotiates_the_configured_algorithms(self) -> None:
        """What is negotiated comes from the offer (the client's preference picks among it).

        Conch's client speaks neither AES-GCM nor the -etm MACs, so it picks
        the CTR cipher and classic MAC the offer has too.
        """
        harness = Harness(
            config=make_config(
                ciphers=("aes128-gcm@openssh.com", "aes192-ctr", "aes128-ctr"),
                kex=("diffie-hellman-group1-sha1", "ecdh-sha2-nistp384"),
                macs=("hmac-sha2-256-etm@openssh.com", "hmac-sha2-512"),
            )
        )
        client = harness.login()
        server = client.server
        self.assertEqual(
            server.supportedCiphers, [b"aes128-gcm@openssh.com", b"aes192-ctr", b"aes128-ctr"]
        )
        self.assertEqual(server.supportedCompressions, [b"none"])
        self.assertEqual(server.kexAlg, b"ecdh-sha2-nistp384")
        self.assertEqual(server.currentEncryptions.outCipType, b"aes192-ctr")
        self.assertEqual(server.currentEncryptions.outMACType, b"hmac-sha2-512")
        self.assertEqual(len(harness.events_with("SSH_ALGORITHM_UNSUPPORTED")), 1)
        harness.login()
        self.assertEqual(len(harness.events_with("SSH_ALGORITHM_UNSUPPORTED")), 1)

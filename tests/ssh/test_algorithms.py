"""Which algorithms the server offers."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa
from twisted.trial.unittest import SynchronousTestCase

from conch_container.config import SSHConfig, load_config
from conch_container.config.ssh import CONTAINERSSH_CIPHERS, CONTAINERSSH_KEX, CONTAINERSSH_MACS
from conch_container.errors import ContainerSSHError
from conch_container.ssh.algorithms import (
    implemented_ciphers,
    implemented_host_key_algorithms,
    implemented_key_exchanges,
    implemented_macs,
    select_algorithms,
)
from conch_container.ssh.hostkeys import load_host_keys
from conch_container.ssh.transport import USER_SIGNATURE_ALGORITHMS
from tests.config.material import ecdsa_pem, ed25519_pem, fixture, rsa_pem
from tests.ssh.harness import ClientTransport, Harness, collecting_log, make_config


class SelectAlgorithmsTests(SynchronousTestCase):
    """:func:`select_algorithms`."""

    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.log = collecting_log(self.events)

    def test_gateway_defaults(self) -> None:
        """Empty lists mean the gateway's own defaults: no SHA-1, no NIST curve, EtM MACs only."""
        offer = select_algorithms((), (), (), self.log)
        self.assertEqual(offer.ciphers, tuple(c.encode() for c in CONTAINERSSH_CIPHERS))
        self.assertEqual(
            offer.key_exchanges,
            (b"mlkem768x25519-sha256", b"curve25519-sha256", b"curve25519-sha256@libssh.org"),
        )
        self.assertEqual(
            offer.macs, (b"hmac-sha2-256-etm@openssh.com", b"hmac-sha2-512-etm@openssh.com")
        )
        self.assertEqual(offer.unsupported, {})
        self.assertEqual(self.events, [])

    def test_defaults_are_implemented(self) -> None:
        """Every name of every default list is one the transport runs."""
        for defaults, implemented in (
            (SSHConfig().ciphers, implemented_ciphers()),
            (SSHConfig().kex, implemented_key_exchanges()),
            (SSHConfig().macs, implemented_macs()),
            (SSHConfig().host_key_algorithms, implemented_host_key_algorithms()),
        ):
            for name in defaults:
                self.assertIn(name.encode(), implemented)

    def test_defaults_follow_ssh_audit_guidance(self) -> None:
        """No SHA-1, no CBC, no NIST curve, no MAC over the plaintext, no group exchange.

        The quick form of what tests.integration.test_ssh_audit checks with ssh-audit.
        """
        ssh = SSHConfig()
        names = (*ssh.ciphers, *ssh.kex, *ssh.macs, *ssh.host_key_algorithms)
        self.assertFalse([n for n in names if "sha1" in n or n in ("ssh-rsa", "ssh-dss")])
        self.assertFalse([c for c in ssh.ciphers if "cbc" in c])
        self.assertFalse([k for k in ssh.kex if "nistp" in k or "group-exchange" in k])
        self.assertFalse([m for m in ssh.macs if not m.endswith("-etm@openssh.com")])

    def test_containerssh_defaults(self) -> None:
        """ContainerSSH's default lists, as its 0.4 dump writes them, are offered as written.

        No warning: every name is implemented, and an RSA host key (what
        ContainerSSH generates) is offered with its SHA-2 signatures.
        """
        ssh = load_config(fixture("config-0.4-full.yaml")).ssh
        self.assertEqual(
            (ssh.ciphers, ssh.kex, ssh.macs),
            (CONTAINERSSH_CIPHERS, CONTAINERSSH_KEX, CONTAINERSSH_MACS),
        )
        offer = select_algorithms(
            ssh.ciphers,
            ssh.kex,
            ssh.macs,
            self.log,
            ssh.host_key_algorithms,
            load_host_keys([rsa_pem()]),
        )
        self.assertEqual(offer.ciphers, tuple(c.encode() for c in CONTAINERSSH_CIPHERS))
        self.assertEqual(offer.key_exchanges, tuple(k.encode() for k in CONTAINERSSH_KEX))
        self.assertEqual(offer.macs, tuple(m.encode() for m in CONTAINERSSH_MACS))
        self.assertEqual(offer.host_key_algorithms, (b"rsa-sha2-512", b"rsa-sha2-256"))
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


def dsa_pem() -> str:
    """A new DSA private key (what ContainerSSH accepts as ``ssh-dss``)."""
    key = dsa.generate_private_key(key_size=1024)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


class HostKeyAlgorithmTests(SynchronousTestCase):
    """Which signature algorithms the host keys are offered with (``ssh.hostKeyAlgorithms``)."""

    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.log = collecting_log(self.events)

    def offer(self, pems: list[str], configured: tuple[str, ...] = ()) -> tuple[bytes, ...]:
        return select_algorithms(
            (), (), (), self.log, configured or SSHConfig().host_key_algorithms,
            load_host_keys(pems),
        ).host_key_algorithms  # fmt: skip

    def test_rsa_key_signs_with_sha2_only(self) -> None:
        """An RSA host key is offered as rsa-sha2-512/256, never as SHA-1 ``ssh-rsa``."""
        self.assertEqual(self.offer([rsa_pem()]), (b"rsa-sha2-512", b"rsa-sha2-256"))
        self.assertEqual(self.events, [])

    def test_only_configured_key_types(self) -> None:
        """A name is offered only when a host key of its type is configured."""
        self.assertEqual(self.offer([ed25519_pem()]), (b"ssh-ed25519",))
        self.assertEqual(
            self.offer([ecdsa_pem(), ed25519_pem()]), (b"ssh-ed25519", b"ecdsa-sha2-nistp256")
        )

    def test_ssh_rsa_when_configured(self) -> None:
        """An operator who lists ``ssh-rsa`` gets it, in the configured order."""
        self.assertEqual(
            self.offer([rsa_pem()], ("rsa-sha2-256", "ssh-rsa")), (b"rsa-sha2-256", b"ssh-rsa")
        )

    def test_sha1_only_key_is_a_start_error(self) -> None:
        """A DSA key alone signs with SHA-1 only: the error says which setting to change."""
        with self.assertRaises(ContainerSSHError) as caught:
            self.offer([dsa_pem()])
        self.assertEqual(caught.exception.code.code, "SSH_START_FAILED")
        self.assertIn("ssh.hostKeyAlgorithms", caught.exception.explanation)
        self.assertIn("usable: ssh-dss", caught.exception.explanation)
        self.assertEqual(self.offer([dsa_pem()], ("ssh-dss",)), (b"ssh-dss",))

    def test_unimplemented_names_are_logged(self) -> None:
        """Certificate names (not implemented) join the one unsupported-algorithms warning."""
        self.offer([ed25519_pem()], ("ssh-ed25519-cert-v01@openssh.com", "ssh-ed25519"))
        [event] = self.events
        self.assertEqual(event["code"], "SSH_ALGORITHM_UNSUPPORTED")
        self.assertEqual(
            event["unsupportedHostKeyAlgorithms"], ["ssh-ed25519-cert-v01@openssh.com"]
        )

    def test_without_host_keys(self) -> None:
        """Without host keys there is no host key offer (and no error)."""
        self.assertEqual(select_algorithms((), (), ()).host_key_algorithms, ())


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

    def test_rsa_host_key_on_the_wire(self) -> None:
        """With an RSA host key the key exchange is signed with SHA-2; a client that only
        accepts ``ssh-rsa`` finds no host key algorithm in common."""
        harness = Harness(config=make_config(hostkeys=(rsa_pem(),)))
        client = harness.login()
        self.assertEqual(client.server.supportedPublicKeys, [b"rsa-sha2-512", b"rsa-sha2-256"])
        self.assertEqual(client.server.keyAlg, b"rsa-sha2-512")

        class SHA1OnlyClient(ClientTransport):
            supportedPublicKeys = [b"ssh-rsa"]

        refused = harness.connect(transport_class=SHA1OnlyClient)
        assert refused.pump is not None
        refused.pump.flush()
        self.assertTrue(refused.lost.called)
        self.assertIsNone(refused.host_key)

    def test_server_sig_algs_name_the_user_key_signatures(self) -> None:
        """``server-sig-algs`` lists the SHA-2 RSA signatures even with only an Ed25519
        host key, so an OpenSSH client signs its RSA key with them (not SHA-1)."""
        harness = Harness()
        client = harness.login()
        self.assertEqual(client.server.supportedPublicKeys, [b"ssh-ed25519"])
        announced = client.transport.peerExtensions[b"server-sig-algs"].split(b",")
        self.assertEqual(announced, list(USER_SIGNATURE_ALGORITHMS))
        self.assertIn(b"rsa-sha2-512", announced)
        self.assertNotIn(b"ssh-rsa", announced)

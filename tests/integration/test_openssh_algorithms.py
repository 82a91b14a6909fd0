"""Every cipher and MAC the gateway claims, with the real OpenSSH client.

Each test forces one cipher (``ssh -c``) and, for the ciphers that need one,
one MAC (``ssh -m``): the connection only comes up if the gateway speaks that
exact combination. Through it runs one exec whose stdin is 10 MB of random
bytes, sent back by ``cat``, with an exit code of its own: login, output,
exit status and a long stream each way, through every framing (AEAD,
encrypt-then-MAC and classic), each under strict key exchange (the client
offers it and says at debug level 3 that it is in use). Then the same with
the client starting a new key exchange every megabyte.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from twisted.internet.utils import getProcessOutputAndValue

from conch_container.config.ssh import DEFAULT_CIPHERS
from tests.integration.gateway import GatewayTestCase

STREAM_SIZE = 10 * 1024 * 1024
#: What OpenSSH's client logs at debug level 3 once both ends announced strict key exchange.
STRICT_KEX = b"will use strict KEX ordering"
CLAIMED_MACS = (
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256",
    "hmac-sha2-512",
)


class _RoundTrips(GatewayTestCase):
    """A gateway offering every claimed cipher and MAC, and the round trip through it."""

    timeout = 300
    config_overrides: dict[str, Any] = {
        "ssh": {"ciphers": list(DEFAULT_CIPHERS), "macs": list(CLAIMED_MACS)},
    }

    async def round_trip(self, *options: str, size: int = STREAM_SIZE) -> bytes:
        """``cat; exit 3`` with 10 MB in: the same 10 MB out, exit status 3; returns stderr.

        The client logs at debug level 3, where it says whether strict key
        exchange is in use: it must be.
        """
        blob = self.dir.child("blob")
        if not blob.exists():
            blob.setContent(os.urandom(size))
        received = self.dir.child("received")
        argv = " ".join(self.ssh_args("-o", "LogLevel=DEBUG3", *options))
        _out, err, code = await getProcessOutputAndValue(
            "/bin/sh",
            ["-c", f"ssh {argv} 'cat; exit 3' < {blob.path} > {received.path}"],
            env=dict(os.environ),
        )
        self.assertEqual(code, 3, err)
        self.assertEqual(
            hashlib.sha256(received.getContent()).hexdigest(),
            hashlib.sha256(blob.getContent()).hexdigest(),
        )
        self.assertIn(STRICT_KEX, err)
        return err


class OpenSSHAlgorithmTests(_RoundTrips):
    """Login, exec and 10 MB each way, per cipher and MAC."""

    async def test_chacha20_poly1305(self) -> None:
        """``chacha20-poly1305@openssh.com`` (its MAC is implicit)."""
        await self.round_trip("-c", "chacha20-poly1305@openssh.com")

    async def test_aes128_gcm(self) -> None:
        """``aes128-gcm@openssh.com`` (its MAC is implicit)."""
        await self.round_trip("-c", "aes128-gcm@openssh.com")

    async def test_aes256_gcm(self) -> None:
        """``aes256-gcm@openssh.com`` (its MAC is implicit)."""
        await self.round_trip("-c", "aes256-gcm@openssh.com")

    async def test_aes128_ctr_sha256_etm(self) -> None:
        """``aes128-ctr`` with ``hmac-sha2-256-etm@openssh.com``."""
        await self.round_trip("-c", "aes128-ctr", "-m", "hmac-sha2-256-etm@openssh.com")

    async def test_aes128_ctr_sha512_etm(self) -> None:
        """``aes128-ctr`` with ``hmac-sha2-512-etm@openssh.com``."""
        await self.round_trip("-c", "aes128-ctr", "-m", "hmac-sha2-512-etm@openssh.com")

    async def test_aes128_ctr_sha256(self) -> None:
        """``aes128-ctr`` with ``hmac-sha2-256``."""
        await self.round_trip("-c", "aes128-ctr", "-m", "hmac-sha2-256")

    async def test_aes128_ctr_sha512(self) -> None:
        """``aes128-ctr`` with ``hmac-sha2-512``."""
        await self.round_trip("-c", "aes128-ctr", "-m", "hmac-sha2-512")

    async def test_aes192_ctr_sha256_etm(self) -> None:
        """``aes192-ctr`` with ``hmac-sha2-256-etm@openssh.com``."""
        await self.round_trip("-c", "aes192-ctr", "-m", "hmac-sha2-256-etm@openssh.com")

    async def test_aes192_ctr_sha512_etm(self) -> None:
        """``aes192-ctr`` with ``hmac-sha2-512-etm@openssh.com``."""
        await self.round_trip("-c", "aes192-ctr", "-m", "hmac-sha2-512-etm@openssh.com")

    async def test_aes192_ctr_sha256(self) -> None:
        """``aes192-ctr`` with ``hmac-sha2-256``."""
        await self.round_trip("-c", "aes192-ctr", "-m", "hmac-sha2-256")

    async def test_aes192_ctr_sha512(self) -> None:
        """``aes192-ctr`` with ``hmac-sha2-512``."""
        await self.round_trip("-c", "aes192-ctr", "-m", "hmac-sha2-512")

    async def test_aes256_ctr_sha256_etm(self) -> None:
        """``aes256-ctr`` with ``hmac-sha2-256-etm@openssh.com``."""
        await self.round_trip("-c", "aes256-ctr", "-m", "hmac-sha2-256-etm@openssh.com")

    async def test_aes256_ctr_sha512_etm(self) -> None:
        """``aes256-ctr`` with ``hmac-sha2-512-etm@openssh.com``."""
        await self.round_trip("-c", "aes256-ctr", "-m", "hmac-sha2-512-etm@openssh.com")

    async def test_aes256_ctr_sha256(self) -> None:
        """``aes256-ctr`` with ``hmac-sha2-256``."""
        await self.round_trip("-c", "aes256-ctr", "-m", "hmac-sha2-256")

    async def test_aes256_ctr_sha512(self) -> None:
        """``aes256-ctr`` with ``hmac-sha2-512``."""
        await self.round_trip("-c", "aes256-ctr", "-m", "hmac-sha2-512")


class OpenSSHRekeyTests(_RoundTrips):
    """The client starts a new key exchange every megabyte (``RekeyLimit=1M``), mid-stream."""

    async def rekeying_round_trip(self, *options: str) -> None:
        """The round trip, with at least five key exchanges after the first one."""
        err = await self.round_trip("-o", "RekeyLimit=1M", *options)
        self.assertGreater(err.count(b"SSH2_MSG_NEWKEYS received"), 5, err[-2000:])

    async def test_chacha20_poly1305(self) -> None:
        """``chacha20-poly1305@openssh.com``."""
        await self.rekeying_round_trip("-c", "chacha20-poly1305@openssh.com")

    async def test_aes256_gcm(self) -> None:
        """``aes256-gcm@openssh.com``."""
        await self.rekeying_round_trip("-c", "aes256-gcm@openssh.com")

    async def test_aes128_ctr_sha256_etm(self) -> None:
        """``aes128-ctr`` with ``hmac-sha2-256-etm@openssh.com``."""
        await self.rekeying_round_trip("-c", "aes128-ctr", "-m", "hmac-sha2-256-etm@openssh.com")

    async def test_aes256_ctr_sha512(self) -> None:
        """``aes256-ctr`` with ``hmac-sha2-512``."""
        await self.rekeying_round_trip("-c", "aes256-ctr", "-m", "hmac-sha2-512")


class OpenSSHServerRekeyTests(_RoundTrips):
    """The server starts a new key exchange every megabyte (``ssh.rekeyAfterBytes``), mid-stream."""

    config_overrides: dict[str, Any] = {
        "ssh": {
            "ciphers": list(DEFAULT_CIPHERS),
            "macs": list(CLAIMED_MACS),
            "rekeyAfterBytes": 1024 * 1024,
        },
    }

    async def test_50_mb_through_cat(self) -> None:
        """50 MB each way under chacha20-poly1305: dozens of key exchanges, every byte back."""
        err = await self.round_trip("-c", "chacha20-poly1305@openssh.com", size=50 * 1024 * 1024)
        # OpenSSH's own limit for this cipher is far above 50 MB: every
        # KEXINIT after the first is the server's.
        self.assertGreater(err.count(b"SSH2_MSG_KEXINIT received"), 20, err[-2000:])


class OpenSSHKeyExchangeTests(GatewayTestCase):
    """The key exchanges ContainerSSH configurations name, with the default ciphers and MACs."""

    config_overrides: dict[str, Any] = {
        "ssh": {"kex": ["curve25519-sha256", "curve25519-sha256@libssh.org"]},
    }

    async def test_curve25519_sha256(self) -> None:
        """``curve25519-sha256`` with the default (AEAD-first) cipher."""
        out, err, code = await self.ssh(
            "echo ok", "-o", "KexAlgorithms=curve25519-sha256", "-o", "LogLevel=DEBUG3"
        )
        self.assertEqual((out, code), (b"ok\n", 0), err)
        self.assertIn(STRICT_KEX, err)

    async def test_curve25519_sha256_libssh_alias(self) -> None:
        """The ``curve25519-sha256@libssh.org`` name ContainerSSH's defaults use."""
        out, err, code = await self.ssh(
            "echo ok", "-o", "KexAlgorithms=curve25519-sha256@libssh.org", "-o", "LogLevel=DEBUG3"
        )
        self.assertEqual((out, code), (b"ok\n", 0), err)
        self.assertIn(STRICT_KEX, err)

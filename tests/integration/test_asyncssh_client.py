"""A second client implementation through the gateway: AsyncSSH.

AsyncSSH has its own implementation of every algorithm claimed, and it has
``mlkem768x25519-sha256``, which neither the OpenSSH client installed here
nor Conch's client offer. Each test forces one cipher, MAC and key exchange,
logs in with a key, and sends 10 MB through ``cat`` and back with an exit
code of its own.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from twisted.internet.utils import getProcessOutputAndValue

from tests.integration.gateway import GatewayTestCase

CLIENT = os.path.join(os.path.dirname(__file__), "asyncssh_client.py")
STREAM_SIZE = 10 * 1024 * 1024
#: The MAC offered with the AEAD ciphers, which do not use it.
SHA256_ETM = "hmac-sha2-256-etm@openssh.com"


class AsyncSSHClientTests(GatewayTestCase):
    """Login, exec and 10 MB each way with AsyncSSH."""

    timeout = 300
    config_overrides: dict[str, Any] = {
        "ssh": {
            "kex": ["mlkem768x25519-sha256", "curve25519-sha256", "curve25519-sha256@libssh.org"],
            "macs": ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com"],
        },
    }

    def setUp(self) -> Any:
        try:
            import asyncssh  # noqa: F401
        except ImportError:
            self.fail("asyncssh is a test dependency (setup.cfg, extras 'test')")
        return super().setUp()

    async def run_client(self, cipher: str, mac: str, kex: str) -> None:
        """Log in with only these algorithms; ``cat; exit 3`` echoes 10 MB and exits 3."""
        out, err, code = await getProcessOutputAndValue(
            sys.executable,
            [CLIENT, str(self.port), self.key_file.path, cipher, mac, kex, str(STREAM_SIZE)],
            env=dict(os.environ),
        )
        self.assertEqual(code, 0, err)
        result = json.loads(out)
        self.assertEqual(
            result, {"ciphers": [cipher, cipher], "exit_status": 3, "echoed": True}, err
        )

    async def test_chacha20_poly1305_mlkem(self) -> None:
        """``chacha20-poly1305@openssh.com`` after ``mlkem768x25519-sha256``."""
        await self.run_client(
            "chacha20-poly1305@openssh.com",
            "hmac-sha2-256-etm@openssh.com",
            "mlkem768x25519-sha256",
        )

    async def test_aes128_gcm_curve25519(self) -> None:
        """``aes128-gcm@openssh.com`` after ``curve25519-sha256``."""
        await self.run_client("aes128-gcm@openssh.com", SHA256_ETM, "curve25519-sha256")

    async def test_aes256_gcm_libssh_alias(self) -> None:
        """``aes256-gcm@openssh.com`` after ``curve25519-sha256@libssh.org``."""
        await self.run_client(
            "aes256-gcm@openssh.com",
            "hmac-sha2-256-etm@openssh.com",
            "curve25519-sha256@libssh.org",
        )

    async def test_aes256_ctr_sha512_etm(self) -> None:
        """``aes256-ctr`` with ``hmac-sha2-512-etm@openssh.com``."""
        await self.run_client(
            "aes256-ctr", "hmac-sha2-512-etm@openssh.com", "mlkem768x25519-sha256"
        )

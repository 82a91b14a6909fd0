"""A second client implementation through the gateway: AsyncSSH.

AsyncSSH has its own implementation of every algorithm claimed, and it has
``mlkem768x25519-sha256``, which neither the OpenSSH client installed here
nor Conch's client offer. Each test forces one cipher, MAC and key exchange
(the key exchanges taken in turn so that each is used), logs in with a key,
and streams 50 MB through ``cat; exit 3`` and back with exit status 3, for
every pair of a claimed cipher and a claimed MAC. In
:class:`AsyncSSHClientRekeyTests` the client starts a key exchange every
16 MiB it sent (``rekey_bytes``); in :class:`AsyncSSHServerRekeyTests` the
gateway does, every 16 MiB (``ssh.rekeyAfterBytes``). AsyncSSH's log does
not say who began a key exchange, so each class leaves only one end with a
limit inside the stream: the other end's is its default (1 GiB for the
gateway, 1 GB for AsyncSSH).
"""

from __future__ import annotations

import os

from conch_container.config.ssh import DEFAULT_CIPHERS
from tests.integration.interop import (
    SERVER_REKEY_BYTES,
    ClientScriptTestCase,
    add_round_trip_tests,
)

#: The claimed key exchanges AsyncSSH implements, the two curve25519 names included.
KEX = (
    "mlkem768x25519-sha256",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
)


class _AsyncSSHTestCase(ClientScriptTestCase):
    client_library = "asyncssh"
    client_script = os.path.join(os.path.dirname(__file__), "asyncssh_client.py")
    ciphers = DEFAULT_CIPHERS
    key_exchanges = KEX


class AsyncSSHClientRekeyTests(_AsyncSSHTestCase):
    """Every pair, 50 MB each way, the client starting a key exchange every 16 MiB."""

    #: AsyncSSH's ``rekey_bytes``.
    client_rekey_argument = str(16 * 1024 * 1024)


class AsyncSSHServerRekeyTests(_AsyncSSHTestCase):
    """Every pair, 50 MB each way, the gateway starting a key exchange every 16 MiB."""

    server_rekey_bytes = SERVER_REKEY_BYTES


add_round_trip_tests(AsyncSSHClientRekeyTests, AsyncSSHServerRekeyTests)

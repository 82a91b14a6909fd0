"""A third client implementation through the gateway: paramiko.

paramiko (5.x) implements, of what the gateway claims, ``aes128-ctr``,
``aes192-ctr``, ``aes256-ctr``, ``aes128-gcm@openssh.com`` and
``aes256-gcm@openssh.com``; the four claimed MACs, the ``-etm@openssh.com``
ones included; and the key exchanges ``mlkem768x25519-sha256``,
``curve25519-sha256@libssh.org`` and ``ecdh-sha2-nistp256/384/521``. It lacks
``chacha20-poly1305@openssh.com`` and the plain ``curve25519-sha256`` name
(it only knows the ``@libssh.org`` alias), so those two are not tested here.

Every test forces one cipher, MAC and key exchange (paramiko's security
options; the key exchanges are taken in turn so that each is used), logs in
with a key, and streams 50 MB through ``cat; exit 3`` and back with exit
status 3, for every cipher and MAC pair. In :class:`ParamikoClientRekeyTests`
the client starts a key exchange (``Transport.renegotiate_keys``) between
the two halves of the upload, while the echo is still flowing; in
:class:`ParamikoServerRekeyTests` the gateway starts one every 16 MiB
(``ssh.rekeyAfterBytes``), about three per stream.
"""

from __future__ import annotations

import os

from tests.integration.interop import (
    SERVER_REKEY_BYTES,
    ClientScriptTestCase,
    add_round_trip_tests,
)

#: Of the gateway's claimed ciphers, those paramiko implements.
CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
)
#: Of the gateway's claimed key exchanges, those paramiko implements.
KEX = (
    "mlkem768x25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
)


class _ParamikoTestCase(ClientScriptTestCase):
    client_library = "paramiko"
    client_script = os.path.join(os.path.dirname(__file__), "paramiko_client.py")
    ciphers = CIPHERS
    key_exchanges = KEX


class ParamikoClientRekeyTests(_ParamikoTestCase):
    """Every pair, 50 MB each way, the client starting a key exchange half way through."""

    #: ``renegotiate_keys`` between the two halves of the upload.
    client_rekey_argument = "1"
    rekeyed_by = "client"


class ParamikoServerRekeyTests(_ParamikoTestCase):
    """Every pair, 50 MB each way, the gateway starting a key exchange every 16 MiB."""

    server_rekey_bytes = SERVER_REKEY_BYTES
    rekeyed_by = "server"


add_round_trip_tests(ParamikoClientRekeyTests, ParamikoServerRekeyTests)

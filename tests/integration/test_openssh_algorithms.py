"""Every cipher and MAC the gateway claims, with the real OpenSSH client, rekeyed mid-stream.

Each test forces one cipher (``ssh -c``) and, for the ciphers that need one,
one MAC (``ssh -m``): the connection only comes up if the gateway speaks that
exact combination. Through it runs one exec whose stdin is 50 MB of random
bytes, sent back by ``cat``, with an exit code of its own: login, output,
exit status and a long stream each way, through every framing (AEAD,
encrypt-then-MAC and classic), each under strict key exchange (the client
offers it and says at debug level 3 that it is in use). Every combination
runs twice: with the client starting a key exchange every 16 MiB
(``RekeyLimit``), and with the gateway doing so (``ssh.rekeyAfterBytes``).
The client's debug log tells who started each key exchange (who sent the
first KEXINIT) and how much had gone each way by then, which shows that it
happened in the middle of the stream. A session also outlives the
gateway's ``ssh.rekeyAfterSeconds`` twice, and both ends rekeying every
megabyte makes dozens of key exchanges in one stream.

The combinations are every claimed cipher with every claimed MAC that the
installed client offers (an AEAD cipher once: its MAC is implicit);
:meth:`OpenSSHDebugLogTests.test_every_offered_combination` fails when the
client offers a claimed combination that has no test. All of them run with
the full 50 MB: the module takes about 45 s on two cores.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from typing import Any

import attrs
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SynchronousTestCase

from conch_container.config.ssh import DEFAULT_CIPHERS
from tests.integration.gateway import SSH, GatewayTestCase
from tests.integration.interop import (
    AEAD_CIPHERS,
    CLAIMED_MACS,
    SERVER_REKEY_BYTES,
    STREAM_SIZE,
    PairTest,
    add_pair_tests,
    cipher_mac_pairs,
)

#: What OpenSSH's client logs at debug level 3 once both ends announced strict key exchange.
STRICT_KEX = b"will use strict KEX ordering"
#: Every combination of a claimed cipher and a claimed MAC.
PAIRS = cipher_mac_pairs(DEFAULT_CIPHERS)
#: A key exchange with at least this much gone each way before it, and at
#: least this much of the stream still to go, began in the middle of the
#: stream (the login is a few kilobytes).
STREAMED = 1024 * 1024
_KEXINIT = re.compile(rb"SSH2_MSG_KEXINIT (sent|received)")
_REKEYING_OUT = re.compile(
    rb"ssh_set_newkeys: rekeying out, input (\d+) bytes .*output (\d+) bytes"
)


@functools.cache
def random_stream(size: int = STREAM_SIZE) -> tuple[str, str]:
    """A file of ``size`` random bytes, written once per process, and its SHA-256 (hex)."""
    directory = tempfile.mkdtemp(prefix="stream-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    path = os.path.join(directory, "blob")
    data = os.urandom(size)
    with open(path, "wb") as blob:
        blob.write(data)
    return path, hashlib.sha256(data).hexdigest()


@attrs.frozen
class KeyExchange:
    """One key exchange as the client's debug log shows it.

    :ivar by: ``client`` or ``server``: who sent the first KEXINIT.
    :ivar received: bytes the client had received on the connection when
        this exchange switched keys (OpenSSH counts them from the start of
        the connection; 0 for the first exchange, which it does not report).
    :ivar sent: bytes the client had sent by then.
    """

    by: str
    received: int = 0
    sent: int = 0


def key_exchanges(debug_log: bytes) -> list[KeyExchange]:
    """Every key exchange in an OpenSSH client's ``LogLevel=DEBUG3`` output, in order."""
    exchanges: list[KeyExchange] = []
    first: bytes | None = None
    for line in debug_log.splitlines():
        kexinit = _KEXINIT.search(line)
        if kexinit is not None:
            if first is None:
                first = kexinit.group(1)
            else:
                exchanges.append(KeyExchange("client" if first == b"sent" else "server"))
                first = None
        volumes = _REKEYING_OUT.search(line)
        if volumes is not None and exchanges:
            received, sent = (int(v) for v in volumes.groups())
            exchanges[-1] = attrs.evolve(exchanges[-1], received=received, sent=sent)
    return exchanges


def offered_by_client(kind: str) -> frozenset[str]:
    """The algorithms of one kind (``cipher``, ``mac``) the installed OpenSSH client offers."""
    if SSH is None:
        return frozenset()
    listing = subprocess.run([SSH, "-Q", kind], capture_output=True, check=True, text=True)
    return frozenset(listing.stdout.split())


class _RoundTrips(GatewayTestCase):
    """A gateway offering every claimed cipher and MAC, and the round trip through it."""

    timeout = 300
    config_overrides: dict[str, Any] = {
        "ssh": {"ciphers": list(DEFAULT_CIPHERS), "macs": list(CLAIMED_MACS)},
    }
    #: Who starts the key exchanges in the middle of the stream: ``client`` or ``server``.
    rekeyed_by = ""
    #: Client options that make it so.
    client_options: tuple[str, ...] = ()

    async def round_trip(self, *options: str) -> bytes:
        """``cat; exit 3`` with 50 MB in: the same 50 MB out, exit status 3; returns stderr.

        The client logs at debug level 3, where it says whether strict key
        exchange is in use: it must be. Only the output's hash is kept.
        """
        blob, digest = random_stream()
        argv = " ".join(self.ssh_args("-o", "LogLevel=DEBUG3", *options))
        out, err, code = await getProcessOutputAndValue(
            "/bin/bash",
            ["-c", f"set -o pipefail; ssh {argv} 'cat; exit 3' < {blob} | sha256sum"],
            env=dict(os.environ),
        )
        self.assertEqual(code, 3, err[-4000:])
        self.assertEqual(out.split()[0].decode(), digest)
        self.assertIn(STRICT_KEX, err)
        return err

    def assert_rekeyed_mid_stream(self, debug_log: bytes, by: str) -> None:
        """A key exchange ``by`` began after a megabyte each way, a megabyte before the end."""
        exchanges = key_exchanges(debug_log)
        mid_stream = [
            kex
            for kex in exchanges
            if kex.by == by
            and min(kex.received, kex.sent) >= STREAMED
            and max(kex.received, kex.sent) <= STREAM_SIZE - STREAMED
        ]
        self.assertTrue(mid_stream, exchanges)


class OpenSSHClientRekeyTests(_RoundTrips):
    """Every pair, 50 MB each way, the client starting a key exchange every 16 MiB."""

    rekeyed_by = "client"
    client_options = ("-o", "RekeyLimit=16M")


class OpenSSHServerRekeyTests(_RoundTrips):
    """Every pair, 50 MB each way, the gateway starting a key exchange every 16 MiB."""

    config_overrides: dict[str, Any] = {
        "ssh": {
            "ciphers": list(DEFAULT_CIPHERS),
            "macs": list(CLAIMED_MACS),
            "rekeyAfterBytes": SERVER_REKEY_BYTES,
        },
    }
    rekeyed_by = "server"


def _pair_test(_index: int, cipher: str, mac: str) -> PairTest[_RoundTrips]:
    algorithms = ("-c", cipher) if cipher in AEAD_CIPHERS else ("-c", cipher, "-m", mac)

    async def test(self: _RoundTrips) -> None:
        err = await self.round_trip(*self.client_options, *algorithms)
        self.assert_rekeyed_mid_stream(err, self.rekeyed_by)

    implicit = " (its MAC is implicit)" if cipher in AEAD_CIPHERS else f" with ``{mac}``"
    test.__doc__ = f"``{cipher}``{implicit}: 50 MB each way, rekeyed mid-stream."
    return test


add_pair_tests((OpenSSHClientRekeyTests, OpenSSHServerRekeyTests), PAIRS, _pair_test)


class OpenSSHFrequentRekeyTests(_RoundTrips):
    """Both ends limit their keys to about a megabyte: one starts a new exchange before the other.

    Which end gets there first is up to how each counts (OpenSSH counts the
    bytes on the wire, the gateway those of the payload); the point is
    dozens of key exchanges in one stream, with channel data waiting in both
    directions at each.
    """

    config_overrides: dict[str, Any] = {
        "ssh": {
            "ciphers": list(DEFAULT_CIPHERS),
            "macs": list(CLAIMED_MACS),
            "rekeyAfterBytes": 1024 * 1024,
        },
    }

    async def test_every_megabyte(self) -> None:
        """More than 40 key exchanges under chacha20-poly1305, every byte back."""
        err = await self.round_trip("-o", "RekeyLimit=1M", "-c", "chacha20-poly1305@openssh.com")
        self.assertGreater(len(key_exchanges(err)), 40, err[-2000:])


class OpenSSHServerTimeRekeyTests(GatewayTestCase):
    """The gateway starts a key exchange every second (``ssh.rekeyAfterSeconds``)."""

    config_overrides: dict[str, Any] = {"ssh": {"rekeyAfterSeconds": "1s"}}

    async def test_session_carries_on(self) -> None:
        """A session that outlives the keys twice: the server rekeys, the output arrives whole."""
        out, err, code = await self.ssh(
            "echo before; sleep 2.5; echo after; exit 3", "-o", "LogLevel=DEBUG3"
        )
        self.assertEqual((out, code), (b"before\nafter\n", 3), err[-2000:])
        by_server = [kex for kex in key_exchanges(err)[1:] if kex.by == "server"]
        self.assertTrue(by_server, err[-2000:])


class OpenSSHDebugLogTests(SynchronousTestCase):
    """The pairs tested are every claimed pair the client offers; its log is read right."""

    def test_every_offered_combination(self) -> None:
        """Each claimed cipher and MAC the client offers is in a tested pair, and only those."""
        ciphers = offered_by_client("cipher") & set(DEFAULT_CIPHERS)
        macs = offered_by_client("mac") & set(CLAIMED_MACS)
        self.assertEqual(
            set(PAIRS),
            set(cipher_mac_pairs(sorted(ciphers), [m for m in CLAIMED_MACS if m in macs])),
        )

    def test_key_exchanges(self) -> None:
        """Who began each key exchange, and what went each way under the keys it replaced."""
        log = b"\r\n".join(
            [
                b"debug1: SSH2_MSG_KEXINIT sent",
                b"debug1: SSH2_MSG_KEXINIT received",
                b"debug1: SSH2_MSG_NEWKEYS received",
                b"debug1: SSH2_MSG_KEXINIT received",
                b"debug1: SSH2_MSG_KEXINIT sent",
                b"debug1: ssh_set_newkeys: rekeying out, input 150 bytes 9 blocks, "
                b"output 160 bytes 10 blocks",
                b"debug1: ssh_set_newkeys: rekeying in, input 151 bytes 9 blocks, "
                b"output 20 bytes 2 blocks",
                b"debug1: SSH2_MSG_KEXINIT sent",
                b"debug1: SSH2_MSG_KEXINIT received",
                b"debug1: ssh_set_newkeys: rekeying out, input 7 bytes 1 blocks, "
                b"output 8 bytes 1 blocks",
            ]
        )
        self.assertEqual(
            key_exchanges(log),
            [
                KeyExchange("client"),
                KeyExchange("server", received=150, sent=160),
                KeyExchange("client", received=7, sent=8),
            ],
        )


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

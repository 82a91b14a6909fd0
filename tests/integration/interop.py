"""What the tests with other SSH client implementations share.

Each client runs as its own process (a script next to this module) that
logs in, streams :data:`STREAM_SIZE` random bytes through ``cat; exit 3``
and prints one JSON line: what was negotiated, the exit status, whether
every byte came back, and each key exchange after the first with how much
of the stream had gone out and come back when it began (``rekeys``).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

from twisted.internet.utils import getProcessOutputAndValue

from tests.integration.gateway import GatewayTestCase

#: Bytes each way through ``cat``.
STREAM_SIZE = 50 * 1024 * 1024
#: ``ssh.rekeyAfterBytes`` for the server-initiated key exchanges: about
#: three of them in a 50 MB stream.
SERVER_REKEY_BYTES = 16 * 1024 * 1024
#: The MACs the gateway claims (``ssh.macs`` names it implements and documents).
CLAIMED_MACS = (
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256",
    "hmac-sha2-512",
)
#: Ciphers whose integrity protection is their own: the MAC is not negotiated for them.
AEAD_CIPHERS = frozenset(
    {"chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com"}
)

_Case = TypeVar("_Case", bound=GatewayTestCase)
#: A test method for one cipher and MAC pair.
PairTest = Callable[[_Case], Coroutine[Any, Any, None]]


def cipher_mac_pairs(
    ciphers: Iterable[str], macs: Iterable[str] = CLAIMED_MACS
) -> tuple[tuple[str, str], ...]:
    """Every cipher with every MAC; an AEAD cipher once, with the first MAC (it uses none)."""
    macs = tuple(macs)
    return tuple(
        (cipher, mac)
        for cipher in ciphers
        for mac in (macs[:1] if cipher in AEAD_CIPHERS else macs)
    )


def add_pair_tests(
    cases: Iterable[type[_Case]],
    pairs: Iterable[tuple[str, str]],
    make: Callable[[int, str, str], PairTest[_Case]],
) -> None:
    """Give each of ``cases`` one test method per pair, ``make(index, cipher, mac)``.

    The methods are named after the pair (``test_aes128_ctr_hmac_sha2_256``,
    ``test_aes128_gcm``) so that a failure names the combination.
    """
    pairs = tuple(pairs)
    for case in cases:
        for index, (cipher, mac) in enumerate(pairs):
            name = cipher if cipher in AEAD_CIPHERS else f"{cipher}_{mac}"
            test_name = "test_" + name.replace("@openssh.com", "").replace("-", "_")
            setattr(case, test_name, make(index, cipher, mac))


def mid_stream(rekeys: list[dict[str, Any]], size: int = STREAM_SIZE) -> list[dict[str, Any]]:
    """The key exchanges that began while the stream was under way, in either direction."""
    return [rekey for rekey in rekeys if 0 < rekey["sent"] < size or 0 < rekey["received"] < size]


class ClientScriptTestCase(GatewayTestCase):
    """Runs a client script against the gateway: one round trip per cipher and MAC pair.

    A subclass names the script and its library, the ciphers and key
    exchanges the gateway offers (with every claimed MAC), and how the key
    exchange in the middle of the stream comes about.
    """

    timeout = 300
    #: The library the script needs (a test dependency).
    client_library = ""
    #: The script, a path next to this module.
    client_script = ""
    #: The ciphers offered (``ssh.ciphers``): one test per pair of one and a claimed MAC.
    ciphers: tuple[str, ...] = ()
    #: The key exchanges offered (``ssh.kex``), one per test in turn, so that each is used.
    key_exchanges: tuple[str, ...] = ()
    #: The gateway's ``ssh.rekeyAfterBytes``; 0 for its default (1 GiB).
    server_rekey_bytes = 0
    #: The script's last argument: how (or whether) the client rekeys.
    client_rekey_argument = "0"
    #: Who begins the key exchange mid-stream (``client`` or ``server``); None
    #: when the script cannot tell, and only one end has a limit within the stream.
    rekeyed_by: str | None = None

    def setUp(self) -> Any:
        try:
            importlib.import_module(self.client_library)
        except ImportError:
            self.fail(f"{self.client_library} is a test dependency (setup.cfg, extras 'test')")
        return super().setUp()

    def config_data(self) -> dict[str, Any]:
        data = super().config_data()
        data["ssh"] = {
            **data["ssh"],
            "ciphers": list(self.ciphers),
            "kex": list(self.key_exchanges),
            "macs": list(CLAIMED_MACS),
        }
        if self.server_rekey_bytes:
            data["ssh"]["rekeyAfterBytes"] = self.server_rekey_bytes
        return data

    async def run_client(self, *arguments: str) -> dict[str, Any]:
        """Run the script with the port and key file first; its JSON result."""
        out, err, code = await getProcessOutputAndValue(
            sys.executable,
            [self.client_script, str(self.port), self.key_file.path, *arguments],
            env=dict(os.environ),
        )
        self.assertEqual(code, 0, err)
        result: dict[str, Any] = json.loads(out)
        self.assertEqual((result["exit_status"], result["echoed"]), (3, True), err)
        return result

    async def round_trip(self, cipher: str, mac: str, kex: str) -> None:
        """50 MB each way, with only these algorithms offered, rekeyed mid-stream."""
        result = await self.run_client(
            cipher, mac, kex, str(STREAM_SIZE), self.client_rekey_argument
        )
        self.assertEqual(result["ciphers"], [cipher, cipher])
        if cipher not in AEAD_CIPHERS:
            self.assertEqual(result["macs"], [mac, mac])
        self.assert_rekeyed_mid_stream(result, self.rekeyed_by)

    def assert_rekeyed_mid_stream(self, result: dict[str, Any], by: str | None) -> None:
        """At least one key exchange began mid-stream, by ``by`` (``client`` or ``server``)."""
        started = [
            rekey for rekey in mid_stream(result["rekeys"]) if by is None or rekey["by"] == by
        ]
        who = by or "either end"
        self.assertTrue(started, f"no key exchange begun by the {who} mid-stream: {result}")


def _round_trip_test(index: int, cipher: str, mac: str) -> PairTest[ClientScriptTestCase]:
    async def test(self: ClientScriptTestCase) -> None:
        await self.round_trip(cipher, mac, self.key_exchanges[index % len(self.key_exchanges)])

    test.__doc__ = f"``{cipher}`` with ``{mac}``: 50 MB each way, rekeyed mid-stream."
    return test


def add_round_trip_tests(*cases: type[ClientScriptTestCase]) -> None:
    """Give each of ``cases`` a round trip test per pair of one of its ciphers and a claimed MAC."""
    for case in cases:
        add_pair_tests([case], cipher_mac_pairs(case.ciphers), _round_trip_test)

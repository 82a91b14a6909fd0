"""Pre-authentication limits against the real OpenSSH client and a flood of raw TCP connections.

The whole gateway on the real reactor (:mod:`tests.integration.gateway`),
listening on 127.0.0.1. Clients pick their source among the loopback
addresses: OpenSSH with ``-o BindAddress=127.0.0.2``, raw sockets by binding
before they connect. 127.0.0.2 plays the attacker, 127.0.0.1 the user.

Login times under the flood are printed (``login during ...``), compared
with a login before it; only a generous sanity limit is asserted.
"""

from __future__ import annotations

import resource
import socket
import sys
import time
from collections.abc import Callable
from ipaddress import ip_address
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from conch_container.ssh.admission import Admission
from tests.integration.gateway import GatewayTestCase, reactor
from tests.integration.processes import Output, clean_env, until

ATTACKER = "127.0.0.2"
#: Idle connections the attacker opens.
FLOOD = 1000
#: The default ``ssh.perSourceMaxStartups``.
PER_SOURCE = 32
#: A login that takes longer than this is broken, not slow.
SANITY_LIMIT = 30.0


def raise_open_file_limit(needed: int) -> Callable[[], None]:
    """Raise this process's soft descriptor limit to ``needed`` (within the hard limit).

    The gateway runs in the test's process and holds one descriptor per
    connection it accepts. Returns what restores the previous limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return lambda: None
    wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


#: The attacker, run as a child process so that it does not share the
#: gateway's interpreter: connects COUNT times from SOURCE to 127.0.0.1:PORT,
#: sends a version string on each, says so, and keeps every socket until its
#: standard input closes. A connection the gateway refuses is closed by it at
#: once; its socket is kept all the same, as an attacker would keep it.
FLOODER = """
import resource, socket, sys
port, count, source = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < count + 64:
    wanted = count + 64 if hard == resource.RLIM_INFINITY else min(count + 64, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
sockets = []
for _ in range(count):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    try:
        sock.sendall(b"SSH-2.0-IdleFlood_1.0\\r\\n")
    except OSError:
        pass
    sockets.append(sock)
sys.stdout.write("connected %d\\n" % len(sockets))
sys.stdout.flush()
sys.stdin.read()
"""


def thd_first_bytes(port: int, source: str) -> bytes:
    """What the gateway sends first to a new connection from ``source`` (b"" if it closes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        try:
            return sock.recv(64)
        except ConnectionResetError:
            return b""


class PreauthTestCase(GatewayTestCase):
    """Helpers shared by the tests below."""

    timeout = 240

    @property
    def admission(self) -> Admission:
        return self.root.getServiceNamed("ssh")._factory.admission  # type: ignore[no-any-return]

    def records(self, code: str) -> list[Any]:
        return [record for record in self.log_records if record.code == code]

    async def eventually(self, condition: Callable[[], bool], what: str) -> None:
        """Wait (polling the reactor) until ``condition()`` holds; fail after 30 s."""
        deadline = time.monotonic() + 30
        while not condition():
            if time.monotonic() > deadline:
                self.fail(f"timed out waiting for {what}")
            await deferLater(reactor, 0.05, lambda: None)

    async def timed_login(self) -> float:
        """alice logs in from 127.0.0.1 with OpenSSH and runs a command; returns seconds taken."""
        started = time.monotonic()
        out, err, code = await self.ssh("echo in")
        elapsed = time.monotonic() - started
        self.assertEqual((out, code), (b"in\n", 0), err)
        self.assertLess(elapsed, SANITY_LIMIT)
        return elapsed

    async def flood(self, count: int = FLOOD) -> float:
        """Open ``count`` idle connections from the attacker (kept until the test ends).

        Returns the seconds the attacker took to connect them all.
        """
        self.addCleanup(raise_open_file_limit(count + 1024))
        started = time.monotonic()
        output = Output()
        args = [sys.executable, "-c", FLOODER, str(self.port), str(count), ATTACKER]
        process = reactor.spawnProcess(output, sys.executable, args, env=clean_env())
        self.addCleanup(lambda: output.ended)
        self.addCleanup(process.closeStdin)
        await until(lambda: b"connected" in output.output or output.ended.called, 60, "flood")
        self.assertIn(f"connected {count}".encode(), output.output)
        return time.monotonic() - started

    def pending_from_attacker(self) -> int:
        startups = self.admission.startups
        return startups.pending_from(self.admission_network(ATTACKER))

    def admission_network(self, host: str) -> Any:
        return self.admission._networks.of(ip_address(host))


class PenaltyTests(PreauthTestCase):
    """A failed password login penalises its address, and only that address."""

    # One failed login owes more than ``min`` (15 s): penalised at once.
    config_overrides = {"ssh": {"perSourcePenalties": {"authFail": "30s"}}}

    async def test_penalised_address_refused_other_logs_in(self) -> None:
        """After a failed login from 127.0.0.2 its next connection is closed unanswered,
        even with the right key; 127.0.0.1 logs in as usual."""
        bind = ("-o", f"BindAddress={ATTACKER}")
        _, _, code = await self.ssh("true", *bind, password="not the password")
        self.assertNotEqual(code, 0)
        await self.eventually(
            lambda: bool(self.records("SSH_PENALTY_ACTIVATED")), "the penalty to be in force"
        )
        [activated] = self.records("SSH_PENALTY_ACTIVATED")
        self.assertEqual(activated.details["source"], f"{ATTACKER}/32")

        _, err, code = await self.ssh("true", *bind)
        self.assertEqual(code, 255)
        # Closed before the server's identification string: no key exchange.
        self.assertIn(b"kex_exchange_identification", err)

        await self.timed_login()
        [refused] = self.records("SSH_PENALTY_REFUSED")
        self.assertTrue(refused.details["remoteAddr"].startswith(f"{ATTACKER}:"))
        self.assertEqual(len(self.records("SSH_CONNECTIONS_REFUSED")), 1)
        attacker_connections = [
            r
            for r in self.records("SSH_CONNECTED")
            if r.details["remoteAddr"].startswith(f"{ATTACKER}:")
        ]
        self.assertEqual(len(attacker_connections), 1)


class IdleFloodTests(PreauthTestCase):
    """1,000 idle connections from one address, with the default limits."""

    async def test_login_during_idle_flood(self) -> None:
        """The attacker holds only its per-source share (32 by default); the other
        968 connections are closed at accept; a login from 127.0.0.1, while the
        flood comes in and after, is not held up."""
        before = await self.timed_login()
        flooding = Deferred.fromCoroutine(self.flood())
        while_flooding = await self.timed_login()
        flood_time = await flooding
        await self.eventually(
            lambda: (
                len(self.records("SSH_STARTUP_REFUSED")) + self.pending_from_attacker() >= FLOOD
            ),
            "every flood connection to be accepted or refused",
        )
        self.assertEqual(self.pending_from_attacker(), PER_SOURCE)
        self.assertEqual(len(self.records("SSH_STARTUP_REFUSED")), FLOOD - PER_SOURCE)

        after = await self.timed_login()
        print(
            f"login during a flood of {FLOOD} idle connections (default limits): "
            f"{while_flooding:.2f} s while it came in ({flood_time:.2f} s), "
            f"{after:.2f} s with it in place (before the flood: {before:.2f} s)"
        )
        self.assertEqual(self.pending_from_attacker(), PER_SOURCE)
        self.assertIn(len(self.records("SSH_CONNECTIONS_REFUSED")), (1, 2))


class HeldFloodTests(PreauthTestCase):
    """1,000 idle connections all held by a gateway whose limits allow them."""

    config_overrides = {
        "ssh": {"maxStartups": "2000:30:4000", "perSourceMaxStartups": 2000},
    }

    async def test_login_with_thousand_idle_connections_held(self) -> None:
        """With 1,000 pre-authentication connections open on the gateway, a login still
        succeeds: idle connections cost the reactor nothing until they send."""
        before = await self.timed_login()
        flood_time = await self.flood()
        await self.eventually(
            lambda: self.pending_from_attacker() >= FLOOD, "every flood connection to be held"
        )
        during = await self.timed_login()
        print(
            f"login with {FLOOD} idle connections held ({flood_time:.2f} s to open): "
            f"{during:.2f} s (before the flood: {before:.2f} s)"
        )
        self.assertEqual(self.admission.startups.pending, FLOOD)
        self.assertEqual(self.records("SSH_STARTUP_REFUSED"), [])


class GraceFloodTests(PreauthTestCase):
    """Idle connections that run out the login grace time get their address penalised."""

    config_overrides = {"ssh": {"loginGraceTime": "2s"}}

    async def test_idle_flood_penalised(self) -> None:
        """32 idle connections cut off at the grace time owe 320 s: the address's next
        connection is closed before the server's version string; 127.0.0.1 still logs in."""
        greeting = await deferToThread(thd_first_bytes, self.port, ATTACKER)
        self.assertTrue(greeting.startswith(b"SSH-2.0-"), greeting)
        await self.flood(100)
        await self.eventually(
            lambda: bool(self.records("SSH_PENALTY_ACTIVATED")), "the penalty to be in force"
        )
        await self.eventually(lambda: self.pending_from_attacker() == 0, "the cut-offs")
        first = await deferToThread(thd_first_bytes, self.port, ATTACKER)
        self.assertEqual(first, b"")
        self.assertEqual(len(self.records("SSH_PENALTY_REFUSED")), 1)
        timeouts = self.records("SSH_HANDSHAKE_TIMEOUT")
        self.assertEqual(len(timeouts), PER_SOURCE)
        await self.timed_login()

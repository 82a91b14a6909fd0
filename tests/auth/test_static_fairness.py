"""Static users: one source address cannot take every pending password check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bcrypt
from twisted.trial.unittest import SynchronousTestCase

from conch_container.auth.static import StaticAuthenticator, parse_users, source_key
from conch_container.errors import ContainerSSHError
from conch_container.metadata import AuthResult, ConnectionMetadata
from conch_container.testing.threads import NonThreadPool, SynchronousReactorThreads
from tests.webhook.support import capturing_logger, with_code

HASH = bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode("ascii")
USERS = f"users:\n  demo:\n    passwordHash: '{HASH}'\n"

FLOODER = "203.0.113.5"
NEIGHBOUR = "198.51.100.7"


class HeldPool(NonThreadPool):
    """A thread pool whose work waits until the test lets it run, one item at a time."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[tuple[Any, Callable[..., Any], tuple[Any, ...]]] = []

    def callInThreadWithCallback(
        self,
        onResult: Callable[[bool, Any], object] | None,
        func: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> None:
        self.held.append((onResult, func, args))

    def run(self, index: int) -> None:
        """Run one held work item now (as the pool thread would)."""
        on_result, func, args = self.held.pop(index)
        super().callInThreadWithCallback(on_result, func, *args)

    def run_all(self) -> None:
        while self.held:
            self.run(0)


def metadata(address: str, port: int = 40000) -> ConnectionMetadata:
    remote = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    return ConnectionMetadata(connection_id="ab" * 16, remote_address=remote, username="demo")


class FairnessTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.pool = HeldPool()
        self.log, self.events = capturing_logger()
        self.authenticator = StaticAuthenticator(
            parse_users(USERS, "users.yaml"),
            reactor=SynchronousReactorThreads(),
            log=self.log,
            thread_pool=self.pool,
            max_pending=64,
            max_pending_per_address=4,
        )

    def attempt(self, address: str, password: bytes, port: int = 40000) -> Any:
        return self.authenticator.authenticate_password(metadata(address, port), password)

    def test_flood_from_one_address_leaves_room_for_others(self) -> None:
        """70 checks from one address: 4 wait, the rest fail at once; another address logs in."""
        flood = [self.attempt(FLOODER, b"guess%d" % i, 40000 + i) for i in range(70)]
        waiting = flood[:4]
        for d in waiting:
            self.assertNoResult(d)
        for d in flood[4:]:
            self.assertEqual(self.successResultOf(d), AuthResult(success=False))
        self.assertEqual(len(self.pool.held), 4)
        busy = with_code(self.events, "AUTH_STATIC_ADDRESS_BUSY")
        self.assertEqual(len(busy), 66)
        self.assertEqual(busy[0]["source"], FLOODER)
        self.assertNotIn("guess", repr(self.events))

        login = self.attempt(NEIGHBOUR, b"secret")
        self.assertNoResult(login)
        self.assertEqual(len(self.pool.held), 5)
        self.pool.run(4)
        self.assertTrue(self.successResultOf(login).success)
        for d in waiting:
            self.assertNoResult(d)

    def test_flood_never_makes_logins_unavailable(self) -> None:
        """However many checks one address starts, nobody is told "unavailable"."""
        results = [self.attempt(FLOODER, b"guess") for _ in range(200)]
        login = self.attempt(NEIGHBOUR, b"secret")
        self.pool.run_all()
        for d in results:
            self.assertIsInstance(self.successResultOf(d), AuthResult)
        self.assertTrue(self.successResultOf(login).success)
        self.assertEqual(with_code(self.events, "AUTH_BACKEND_ERROR"), [])

    def test_address_gets_its_slots_back(self) -> None:
        """Once its checks have finished, the same address is checked again."""
        for _ in range(4):
            self.attempt(FLOODER, b"guess")
        self.assertFalse(self.successResultOf(self.attempt(FLOODER, b"secret")).success)
        self.pool.run_all()
        login = self.attempt(FLOODER, b"secret")
        self.pool.run_all()
        self.assertTrue(self.successResultOf(login).success)
        self.assertEqual(self.authenticator._pending_by_source, {})

    def test_ipv6_counts_by_64(self) -> None:
        """Addresses in one IPv6 /64 share a limit; another /64 does not."""
        for i in range(4):
            self.attempt(f"2001:db8:1:2::{i + 1}", b"guess")
        same_64 = self.attempt("2001:db8:1:2:ffff::9", b"secret")
        other_64 = self.attempt("2001:db8:1:3::1", b"secret")
        self.assertFalse(self.successResultOf(same_64).success)
        self.assertNoResult(other_64)
        self.pool.run(len(self.pool.held) - 1)
        self.assertTrue(self.successResultOf(other_64).success)

    def test_total_bound_still_applies(self) -> None:
        """Many addresses together still meet ``max_pending``, as "unavailable"."""
        for i in range(16):
            for _ in range(4):
                self.attempt(f"192.0.2.{i + 1}", b"guess")
        failure = self.failureResultOf(self.attempt("192.0.2.200", b"secret"), ContainerSSHError)
        self.assertEqual(failure.value.code.code, "AUTH_BACKEND_ERROR")


class SourceKeyTests(SynchronousTestCase):
    def test_keys(self) -> None:
        """IPv4 as is, IPv4-mapped IPv6 as IPv4, IPv6 by /64, anything else unchanged."""
        self.assertEqual(source_key("203.0.113.5"), "203.0.113.5")
        self.assertEqual(source_key("::ffff:203.0.113.5"), "203.0.113.5")
        self.assertEqual(source_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64")
        self.assertEqual(source_key("unix-socket"), "unix-socket")

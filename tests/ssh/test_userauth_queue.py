"""Limits on what a client may send before it is authenticated.

Requests waiting behind a pending check are capped per connection, and
requests without a credential (``none``, unsigned public key queries) share
a budget of their own.
"""

from __future__ import annotations

from typing import Any

from twisted.conch.ssh import common
from twisted.conch.ssh.transport import (
    DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE,
    DISCONNECT_PROTOCOL_ERROR,
)
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from conch_container.interfaces import IPasswordAuthenticator
from conch_container.metadata import ConnectionMetadata
from conch_container.ssh.userauth import (
    MAX_QUEUED_BYTES,
    MAX_QUEUED_REQUESTS,
    QUERIES_PER_ATTEMPT,
    UserAuthServer,
)
from tests.ssh.harness import (
    OTHER_KEY,
    USER_KEY,
    Authenticators,
    Client,
    Harness,
    Passwords,
    PublicKeys,
    make_config,
)


@implementer(IPasswordAuthenticator)
class Hanging:
    """A password authenticator that never answers (a webhook that does not respond)."""

    name = "hanging"

    def __init__(self) -> None:
        self.calls = 0

    def authenticate_password(self, metadata: ConnectionMetadata, password: bytes) -> Any:
        self.calls += 1
        return Deferred()


def hanging_harness() -> tuple[Harness, Hanging]:
    hanging = Hanging()
    return Harness(authenticators=Authenticators(password=hanging)), hanging


def send_password(client: Client, password: bytes) -> None:
    assert client.userauth is not None
    client.userauth.askForAuth(b"password", b"\x00" + common.NS(password))


def userauth_of(client: Client) -> UserAuthServer:
    service = client.server.service
    assert isinstance(service, UserAuthServer)
    return service


class PendingRequestTests(SynchronousTestCase):
    """Requests queued behind a check that does not finish."""

    def test_flood_is_cut_off_one_request_at_a_time(self) -> None:
        """2,000 requests: the queue never exceeds its cap and the client is gone early."""
        harness, hanging = hanging_harness()
        client = harness.connect("user", manual=True)
        harness.flush()
        service = userauth_of(client)
        longest = 0
        sent = 0
        for sent in range(1, 2001):
            send_password(client, b"guess%d" % sent)
            harness.flush()
            longest = max(longest, service.pending_requests)
            if client.lost.called:
                break
        self.assertTrue(client.lost.called)
        # One request in the check, the cap waiting, and the one too many.
        self.assertEqual(sent, MAX_QUEUED_REQUESTS + 2)
        self.assertEqual(longest, MAX_QUEUED_REQUESTS)
        self.assertEqual(service.pending_requests, 0)
        self.assertEqual(hanging.calls, 1)
        self.assertEqual(
            client.disconnect_reason,
            (DISCONNECT_PROTOCOL_ERROR, "too many pending authentication requests"),
        )
        [event] = harness.events_with("SSH_AUTH_TOO_MANY_PENDING")
        self.assertEqual(event["pending"], MAX_QUEUED_REQUESTS)
        self.assertIn("SSH_HANDSHAKE_FAILED", harness.codes())

    def test_flood_in_one_read(self) -> None:
        """2,000 requests arriving at once: one check, the rest are never looked at."""
        harness, hanging = hanging_harness()
        client = harness.connect("user", manual=True)
        harness.flush()
        service = userauth_of(client)
        for i in range(2000):
            send_password(client, b"guess%d" % i)
        harness.advance(60)
        self.assertTrue(client.lost.called)
        self.assertEqual(hanging.calls, 1)
        self.assertEqual(service.pending_requests, 0)
        self.assertEqual(len(harness.events_with("SSH_AUTH_TOO_MANY_PENDING")), 1)

    def test_queued_bytes_are_bounded(self) -> None:
        """Large requests reach the byte limit before the count limit."""
        harness, hanging = hanging_harness()
        client = harness.connect("user", manual=True)
        harness.flush()
        service = userauth_of(client)
        size = MAX_QUEUED_BYTES // 3
        longest = 0
        for _ in range(MAX_QUEUED_REQUESTS + 2):
            send_password(client, b"x" * size)
            harness.flush()
            longest = max(longest, service.pending_requests)
            if client.lost.called:
                break
        self.assertTrue(client.lost.called)
        self.assertLess(longest, MAX_QUEUED_REQUESTS)
        self.assertLessEqual(longest * size, MAX_QUEUED_BYTES)
        self.assertEqual(hanging.calls, 1)
        self.assertEqual(len(harness.events_with("SSH_AUTH_TOO_MANY_PENDING")), 1)

    def test_a_few_requests_ahead_are_answered(self) -> None:
        """A client that sends up to the cap ahead of the answers gets every one answered."""
        harness = Harness(config=make_config(max_auth_tries=20))
        client = harness.connect("user", manual=True)
        harness.flush()
        before = client.failures
        for i in range(MAX_QUEUED_REQUESTS + 1):
            send_password(client, b"wrong%d" % i)
        harness.advance(MAX_QUEUED_REQUESTS + 2)
        self.assertFalse(client.lost.called)
        self.assertEqual(client.failures - before, MAX_QUEUED_REQUESTS + 1)
        self.assertEqual(harness.events_with("SSH_AUTH_TOO_MANY_PENDING"), [])
        send_password(client, b"secret")
        harness.flush()
        self.assertTrue(client.authenticated.called)


def key_query(key: Any) -> bytes:
    """The method data of an unsigned public key query for ``key``."""
    return b"\x00" + common.NS(b"ssh-ed25519") + common.NS(key.public().blob())


class QueryBudgetTests(SynchronousTestCase):
    """``none`` requests and unsigned key queries are limited too."""

    def run_until_lost(self, harness: Harness, client: Client, send: Any, limit: int) -> int:
        """Call ``send`` (one request) until the connection is lost; return how many were sent."""
        for sent in range(1, limit + 1):
            send()
            harness.flush()
            if client.lost.called:
                return sent
        self.fail(f"still connected after {limit} requests")

    def assertCutOffAtBudget(self, harness: Harness, client: Client) -> None:
        budget = QUERIES_PER_ATTEMPT * 6
        self.assertEqual(
            client.disconnect_reason,
            (DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE, "too many authentication requests"),
        )
        [event] = harness.events_with("SSH_AUTH_TOO_MANY_ATTEMPTS")
        self.assertEqual(event["queries"], budget)
        self.assertEqual(event["username"], "user")

    def test_endless_none_requests(self) -> None:
        """``none`` after ``none``: the one past 10 x maxAuthTries ends the connection."""
        harness = Harness()
        client = harness.connect("user", manual=True)
        harness.flush()
        assert client.userauth is not None
        userauth = client.userauth
        sent = self.run_until_lost(harness, client, lambda: userauth.askForAuth(b"none", b""), 500)
        # The client's own first "none" counts as well.
        self.assertEqual(sent + 1, QUERIES_PER_ATTEMPT * 6 + 1)
        self.assertEqual(client.failures, QUERIES_PER_ATTEMPT * 6)
        self.assertCutOffAtBudget(harness, client)

    def test_endless_key_queries(self) -> None:
        """Unsigned key queries, always answered "yes", are cut off at the same budget."""
        harness = Harness()
        client = harness.connect("user", manual=True)
        harness.flush()
        assert client.userauth is not None
        userauth = client.userauth
        answers: list[bytes] = []
        # Record the server's "this key would do" instead of signing.
        userauth.ssh_USERAUTH_PK_OK = answers.append  # type: ignore[method-assign]
        keys = [USER_KEY, OTHER_KEY]

        def query() -> None:
            userauth.askForAuth(b"publickey", key_query(keys[len(answers) % 2]))

        self.run_until_lost(harness, client, query, 500)
        # The budget minus the client's initial "none".
        self.assertEqual(len(answers), QUERIES_PER_ATTEMPT * 6 - 1)
        self.assertEqual(harness.authenticators.public_key.calls, [])
        self.assertCutOffAtBudget(harness, client)

    def test_budget_follows_max_auth_tries(self) -> None:
        """The budget is ``maxAuthTries`` times 10."""
        harness = Harness(config=make_config(max_auth_tries=2))
        client = harness.connect("user", manual=True)
        harness.flush()
        assert client.userauth is not None
        userauth = client.userauth
        sent = self.run_until_lost(harness, client, lambda: userauth.askForAuth(b"none", b""), 500)
        self.assertEqual(sent + 1, QUERIES_PER_ATTEMPT * 2 + 1)

    def test_signed_attempts_are_not_queries(self) -> None:
        """A client with many keys reaches maxAuthTries, not the query budget."""
        harness = Harness(
            authenticators=Authenticators(password=Passwords(), public_key=PublicKeys({"user": []}))
        )
        client = harness.connect("user", keys_=[USER_KEY] * 10)
        harness.flush()
        self.assertTrue(client.lost.called)
        self.assertEqual(len(harness.authenticators.public_key.calls), 6)
        [event] = harness.events_with("SSH_AUTH_TOO_MANY_ATTEMPTS")
        self.assertEqual(event["attempts"], 6)

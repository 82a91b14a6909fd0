"""Tests for conch_container.auth.static: the embedded static users."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bcrypt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.internet import defer, reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from conch_container.auth.static import (
    StaticAuthenticator,
    StaticUsersError,
    hash_password,
    load_users,
    parse_public_key,
    parse_users,
)
from conch_container.errors import ContainerSSHError
from conch_container.interfaces import IPasswordAuthenticator, IPublicKeyAuthenticator
from conch_container.metadata import AuthResult, ConnectionMetadata, MetadataValue
from conch_container.testing.threads import NonThreadPool, SynchronousReactorThreads
from tests.webhook.support import capturing_logger, codes, with_code


def _public_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode("ascii")


KEY = _public_key()
OTHER_KEY = _public_key()
HASH = bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode("ascii")


def _metadata(username: str) -> ConnectionMetadata:
    return ConnectionMetadata(
        connection_id="ab" * 16, remote_address="127.0.0.1:4000", username=username
    )


USERS_YAML = f"""
users:
  demo:
    passwordHash: "{HASH}"
    authorizedKeys:
      - {KEY} demo@laptop
    environment:
      FOO: bar
      TOKEN: {{value: t0k3n, sensitive: true}}
    metadata: {{team: ops}}
  keyonly:
    authorizedKeys: ['no-pty,command="echo a b" {OTHER_KEY} comment with spaces']
"""


class ParseTests(SynchronousTestCase):
    def test_full_example(self) -> None:
        """A users file with every option parses into StaticUser values."""
        users = parse_users(USERS_YAML, "users.yaml")
        self.assertEqual(sorted(users), ["demo", "keyonly"])
        demo = users["demo"]
        self.assertEqual(demo.password_hash, HASH.encode())
        self.assertEqual(demo.authorized_keys, {parse_public_key(KEY)})
        self.assertEqual(
            demo.environment, {"FOO": MetadataValue("bar"), "TOKEN": MetadataValue("t0k3n", True)}
        )
        self.assertEqual(demo.metadata, {"team": MetadataValue("ops")})
        self.assertIsNone(users["keyonly"].password_hash)
        self.assertEqual(users["keyonly"].authorized_keys, {parse_public_key(OTHER_KEY)})

    def test_errors_name_file_and_key(self) -> None:
        """Each invalid file is refused with the file name and the key path of the problem."""
        cases = [
            ("users: [", "invalid YAML"),
            ("- a\n", "must be a mapping"),
            ("{}", "users: missing"),
            ("users: {}\nextra: 1\n", "extra: unknown key"),
            ("users: []\n", "users: must be a mapping"),
            ("users: {demo: x}\n", "users.demo: must be a mapping"),
            ("users: {demo: {passwordHash: plain}}\n", "users.demo.passwordHash: not a bcrypt"),
            (f'users: {{demo: {{passwordHash: "{HASH}", shell: x}}}}\n', "users.demo.shell"),
            ("users: {demo: {}}\n", "users.demo: needs a passwordHash or authorizedKeys"),
            ("users: {demo: {authorizedKeys: ssh-ed25519}}\n", "users.demo.authorizedKeys:"),
            ("users: {demo: {authorizedKeys: [nonsense]}}\n", "users.demo.authorizedKeys[0]"),
            (
                "users: {demo: {authorizedKeys: ['ssh-rsa " + KEY.split()[1] + "']}}\n",
                "does not hold a ssh-rsa key",
            ),
            (
                f"users: {{demo: {{passwordHash: '{HASH}', environment: {{PORT: 22}}}}}}\n",
                "users.demo.environment.PORT: must be a string",
            ),
            (
                f"users: {{demo: {{passwordHash: '{HASH}', metadata: {{k: {{value: 1}}}}}}}}\n",
                "users.demo.metadata.k.value",
            ),
            (
                f"users:\n  demo: {{passwordHash: '{HASH}'}}\n  demo: {{passwordHash: '{HASH}'}}\n",
                "duplicate key 'demo'",
            ),
            (f"users: {{1: {{passwordHash: '{HASH}'}}}}\n", "users.1: user names"),
        ]
        for text, expected in cases:
            with self.assertRaises(StaticUsersError, msg=text) as caught:
                parse_users(text, "/etc/users.yaml")
            message = str(caught.exception)
            self.assertTrue(message.startswith("/etc/users.yaml: "), message)
            self.assertIn(expected, message)

    def test_malformed_yaml_names_the_problem(self) -> None:
        """Values PyYAML cannot construct are YAML errors, positioned where YAML knows where."""
        cases = [
            ("? [a]\n: 1\n", "invalid YAML: found unhashable key (line 1, column 3)"),
            (
                "users: !!map [a]\n",
                "expected a mapping node, but found sequence (line 1, column 8)",
            ),
            ("users: 2001-02-30\n", "does not fit its type (day is out of range for month)"),
            ("users: !!int x\n", "does not fit its type (invalid literal for int()"),
            ("users: !!bool maybe\n", "invalid YAML: a value does not fit its type"),
            ("users: !!timestamp x\n", "invalid YAML: a value does not fit its type"),
            ("users: 1" + "0" * 5000 + "\n", "does not fit its type (Exceeds the limit"),
            ('users: "\\U80001000"\n', "invalid YAML: a value does not fit its type"),
            ("users: !!binary abc\n", "invalid YAML: failed to decode base64 data"),
        ]
        for text, expected in cases:
            with self.assertRaises(StaticUsersError, msg=text) as caught:
                parse_users(text, "/etc/users.yaml")
            message = str(caught.exception)
            self.assertTrue(message.startswith("/etc/users.yaml: invalid YAML: "), message)
            self.assertIn(expected, message)
            self.assertNotIn("\n", message)

    def test_integer_key_too_long_to_print(self) -> None:
        """A 0x key longer than str() converts is refused, not a ValueError from a message."""
        with self.assertRaises(StaticUsersError) as caught:
            parse_users("users:\n  ? 0x" + "f" * 5000 + "\n  : {}\n", "users.yaml")
        self.assertIn("invalid YAML: a value does not fit its type", str(caught.exception))

    def test_shape_limits(self) -> None:
        """Deep nesting, alias bombs and recursive aliases are refused with the key path."""
        deep = "users: " + "[" * 101 + "]" * 101 + "\n"
        nested = "users: " + "[" * 3000 + "]" * 3000 + "\n"  # deeper than the parser recurses
        bomb = "a: &a [" + ", ".join(["x"] * 60) + "]\n"
        for level in "bcd":
            bomb += f"{level}: &{level} [" + ", ".join([f"*{chr(ord(level) - 1)}"] * 60) + "]\n"
        cases = [
            (deep, "users" + "[0]" * 99 + ": nested more than 100 levels deep"),
            (nested, "/etc/users.yaml: invalid YAML: nested more than 100 levels deep"),
            (bomb, "the document holds more than 200000 values"),
            ("users: &u [*u]\n", "users[0]: the value contains itself"),
            ("users: &u {demo: *u}\n", "invalid YAML: found unconstructable recursive node"),
        ]
        for text, expected in cases:
            with self.assertRaises(StaticUsersError, msg=text[:40]) as caught:
                parse_users(text, "/etc/users.yaml")
            self.assertIn(expected, str(caught.exception))

    def test_unreadable(self) -> None:
        """A missing file is an error naming it."""
        path = self.mktemp()
        with self.assertRaises(StaticUsersError) as caught:
            load_users(path)
        self.assertIn(path, str(caught.exception))
        self.assertIn("cannot read", str(caught.exception))

    def test_key_lines(self) -> None:
        """Options and comments around a key are ignored; the blob is what counts."""
        blob = parse_public_key(KEY)
        self.assertEqual(parse_public_key(f"  {KEY} some comment "), blob)
        self.assertEqual(parse_public_key(f'from="10.0.0.1",command="a b c" {KEY} x'), blob)
        self.assertRaises(ValueError, parse_public_key, "ssh-ed25519 !!!")
        self.assertRaises(ValueError, parse_public_key, "")


class HashPasswordTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        """hash_password makes a bcrypt hash that the users file accepts and that matches."""
        hashed = hash_password("pässword", rounds=4)
        self.assertTrue(bcrypt.checkpw("pässword".encode(), hashed.encode()))
        parse_users(f"users: {{u: {{passwordHash: '{hashed}'}}}}", "f")

    def test_limits(self) -> None:
        """Empty passwords and passwords bcrypt would truncate are refused."""
        self.assertRaises(ValueError, hash_password, "")
        self.assertRaises(ValueError, hash_password, "x" * 73)


class _Harness:
    def __init__(self, text: str = USERS_YAML, **kwargs: Any) -> None:
        self.pool = NonThreadPool()
        self.reactor = SynchronousReactorThreads()
        self.log, self.events = capturing_logger()
        self.authenticator = StaticAuthenticator(
            parse_users(text, "users.yaml"),
            reactor=self.reactor,
            log=self.log,
            thread_pool=self.pool,
            **kwargs,
        )

    def password(self, test: SynchronousTestCase, user: str, password: bytes) -> AuthResult:
        return test.successResultOf(
            self.authenticator.authenticate_password(_metadata(user), password)
        )

    def key(self, test: SynchronousTestCase, user: str, key: str) -> AuthResult:
        return test.successResultOf(
            self.authenticator.authenticate_public_key(_metadata(user), key)
        )


class AuthenticatorTests(SynchronousTestCase):
    def test_provides(self) -> None:
        """The static authenticator provides both authentication interfaces."""
        h = _Harness()
        verifyObject(IPasswordAuthenticator, h.authenticator)
        verifyObject(IPublicKeyAuthenticator, h.authenticator)

    def test_good_password(self) -> None:
        """The right password succeeds with the user's environment and metadata."""
        h = _Harness()
        result = h.password(self, "demo", b"secret")
        self.assertEqual(
            result,
            AuthResult(
                success=True,
                authenticated_username="demo",
                environment={"FOO": MetadataValue("bar"), "TOKEN": MetadataValue("t0k3n", True)},
                metadata={"team": MetadataValue("ops")},
            ),
        )
        self.assertEqual(h.pool.calls, 1)
        self.assertEqual(codes(h.events), ["AUTH", "AUTH_SUCCESSFUL"])
        self.assertEqual(h.events[0]["authtype"], "password")
        self.assertEqual(h.events[0]["username"], "demo")

    def test_bad_password(self) -> None:
        """A wrong password fails, logged AUTH_FAILED, never with the password."""
        h = _Harness()
        self.assertEqual(h.password(self, "demo", b"secreT"), AuthResult(False))
        self.assertEqual(codes(h.events), ["AUTH", "AUTH_FAILED"])
        self.assertNotIn("secreT", repr(h.events))

    def test_unknown_user_costs_a_check(self) -> None:
        """An unknown user fails after the same bcrypt work as a known one."""
        h = _Harness()
        self.assertFalse(h.password(self, "nobody", b"secret").success)
        self.assertEqual(h.pool.calls, 1)
        self.assertEqual(with_code(h.events, "AUTH_FAILED")[0]["reason"], "unknown user")

    def test_user_without_password(self) -> None:
        """A key-only user cannot log in with a password, and it still costs a check."""
        h = _Harness()
        self.assertFalse(h.password(self, "keyonly", b"").success)
        self.assertEqual(h.pool.calls, 1)

    def test_long_password_truncated_like_bcrypt(self) -> None:
        """Passwords are checked on their first 72 bytes, as other bcrypt tools hash them."""
        long = b"a" * 80
        hashed = bcrypt.hashpw(long[:72], bcrypt.gensalt(4)).decode()
        h = _Harness(f"users: {{u: {{passwordHash: '{hashed}'}}}}")
        self.assertTrue(h.password(self, "u", long).success)

    def test_keys(self) -> None:
        """A listed key succeeds (comments and options ignored); others fail."""
        h = _Harness()
        self.assertTrue(h.key(self, "demo", KEY).success)
        self.assertTrue(h.key(self, "keyonly", OTHER_KEY + " whatever").success)
        self.assertFalse(h.key(self, "demo", OTHER_KEY).success)
        self.assertFalse(h.key(self, "nobody", KEY).success)
        self.assertFalse(h.key(self, "demo", "garbage").success)
        self.assertEqual(h.pool.calls, 0)

    def test_dummy_hash_cost(self) -> None:
        """Unknown users are checked at the highest cost among the users' hashes."""
        hashed = bcrypt.hashpw(b"x", bcrypt.gensalt(5)).decode()
        seen: list[bytes] = []
        h = _Harness(f"users: {{a: {{passwordHash: '{HASH}'}}, b: {{passwordHash: '{hashed}'}}}}")
        original = h.pool.callInThreadWithCallback

        def spy(on_result: Callable[..., Any], func: Callable[..., Any], *args: Any) -> None:
            seen.append(args[1])
            original(on_result, func, *args)

        h.pool.callInThreadWithCallback = spy  # type: ignore[method-assign, assignment]
        h.password(self, "nobody", b"x")
        self.assertTrue(seen[0].startswith(b"$2b$05$"))

    def test_pending_bound(self) -> None:
        """Past ``max_pending`` checks in flight, logins are refused as unavailable."""

        class Stalled(NonThreadPool):
            def callInThreadWithCallback(self, *args: Any, **kwargs: Any) -> None:
                self.calls += 1

        h = _Harness(max_pending=2)
        h.authenticator._pool = Stalled()
        first = h.authenticator.authenticate_password(_metadata("demo"), b"a")
        second = h.authenticator.authenticate_password(_metadata("demo"), b"b")
        third = h.authenticator.authenticate_password(_metadata("demo"), b"c")
        self.assertNoResult(first)
        self.assertNoResult(second)
        failure = self.failureResultOf(third, ContainerSSHError)
        self.assertEqual(failure.value.code.code, "AUTH_BACKEND_ERROR")

    def test_from_file_logs(self) -> None:
        """Loading a file logs AUTH_STATIC_USERS_LOADED with the count."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(USERS_YAML)
        log, events = capturing_logger()
        StaticAuthenticator.from_file(path, reactor=SynchronousReactorThreads(), log=log)
        [event] = with_code(events, "AUTH_STATIC_USERS_LOADED")
        self.assertEqual((event["count"], event["file"]), (2, path))

    def test_own_pool_lifecycle(self) -> None:
        """start() starts the authenticator's own pool and stop() stops it; stop is idempotent."""
        authenticator = StaticAuthenticator({}, reactor=SynchronousReactorThreads())
        self.successResultOf(authenticator.stop())
        self.successResultOf(authenticator.start())
        self.assertTrue(authenticator._pool.started)
        self.successResultOf(authenticator.stop())
        self.successResultOf(authenticator.stop())
        self.assertFalse(authenticator._pool.started)

    def test_injected_pool_untouched(self) -> None:
        """A pool passed in belongs to the caller: start/stop leave it alone."""
        h = _Harness()
        self.successResultOf(h.authenticator.start())
        self.assertFalse(h.pool.started)


class ThreadedTests(TestCase):
    def test_real_threads(self) -> defer.Deferred[None]:
        """With its own thread pool and the real reactor, checks run off the reactor thread."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(USERS_YAML)
        authenticator = StaticAuthenticator.from_file(path, reactor=reactor)
        authenticator.start()
        self.addCleanup(authenticator.stop)

        async def check() -> None:
            good = authenticator.authenticate_password(_metadata("demo"), b"secret")
            bad = authenticator.authenticate_password(_metadata("demo"), b"nope")
            results = await defer.gatherResults([good, bad])
            self.assertEqual([r.success for r in results], [True, False])

        return defer.Deferred.fromCoroutine(check())

"""Embedded static users: a conch-container extension (ContainerSSH has no such method).

``auth.password.method: static`` and/or ``auth.publicKey.method: static``
with ``static: {usersFile: PATH}`` authenticate against a YAML users file
(see :mod:`conch_container.auth.users_file` for its format).

bcrypt is slow on purpose (about 0.2 s at cost 12), so checks run on a small
thread pool owned by the authenticator; an unknown user costs a check too, so
response times do not reveal which users exist.

The checks waiting for that pool are shared by every client, so each source
address may hold only a few of them (:func:`source_key`): a flood from one
address fails its own logins, not everybody's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

import bcrypt
from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from conch_container import messages
from conch_container.auth.users_file import (
    BCRYPT_MAX_PASSWORD,
    DEFAULT_ROUNDS,
    StaticUser,
    StaticUsersError,
    hash_password,
    load_users,
    parse_public_key,
    parse_users,
)
from conch_container.errors import AUTH_UNAVAILABLE_USER_MESSAGE, ContainerSSHError
from conch_container.interfaces import IPasswordAuthenticator, IPublicKeyAuthenticator
from conch_container.log import CodeLogger, Level
from conch_container.metadata import AuthResult, ConnectionMetadata

__all__ = [
    "StaticAuthenticator",
    "StaticUser",
    "StaticUsersError",
    "hash_password",
    "load_users",
    "parse_public_key",
    "parse_users",
    "source_key",
    "thd_check_password",
]


def thd_check_password(password: bytes, password_hash: bytes) -> bool:
    """Compare a password with a bcrypt hash (runs in a pool thread)."""
    try:
        # Other bcrypt tools hash only the first 72 bytes; so must the check.
        return bcrypt.checkpw(password[:BCRYPT_MAX_PASSWORD], password_hash)
    except ValueError:
        return False


def _dummy_hash(users: Mapping[str, StaticUser]) -> bytes:
    """A well-formed hash at the highest cost in use, which no password matches.

    bcrypt recomputes from the salt and compares, so any 53 characters after
    the cost make a hash that costs as much to check as a real one.
    """
    costs = [int(u.password_hash[4:6]) for u in users.values() if u.password_hash is not None]
    return b"$2b$%02d$" % max(costs, default=DEFAULT_ROUNDS) + b"." * 53


def source_key(remote_ip: str) -> str:
    """Who a password check is counted against: the client's address.

    An IPv6 client usually controls a whole /64 (its own subnet), so IPv6
    addresses count by their /64; IPv4-mapped IPv6 addresses count as the
    IPv4 address they are.
    """
    try:
        address = ipaddress.ip_address(remote_ip)
    except ValueError:
        return remote_ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


# ---------------------------------------------------------------------------
# The authenticator


@implementer(IPasswordAuthenticator, IPublicKeyAuthenticator)
class StaticAuthenticator:
    """Authenticates against static users.

    :param users: name to :class:`StaticUser` (see :func:`load_users`).
    :param reactor: results come back through its ``callFromThread``.
    :param thread_pool: where bcrypt runs; by default a pool of ``max_threads``
        threads that :meth:`start` starts and :meth:`stop` stops. Tests pass
        :class:`conch_container.testing.threads.NonThreadPool`.
    :param max_pending: password checks allowed in flight; beyond it logins are
        refused as unavailable rather than queued without bound.
    :param max_pending_per_address: password checks one source address (see
        :func:`source_key`) may have in flight; beyond it that address's
        logins fail at once, as a wrong password would, so that one address
        cannot fill ``max_pending`` and lock everybody else out.
    """

    name = "static"

    def __init__(
        self,
        users: Mapping[str, StaticUser],
        *,
        reactor: Any,
        log: CodeLogger | None = None,
        thread_pool: Any = None,
        max_threads: int = 2,
        max_pending: int = 64,
        max_pending_per_address: int = 4,
    ) -> None:
        self._users = dict(users)
        self._reactor = reactor
        self._log = log if log is not None else CodeLogger("conch_container.auth.static")
        self._owns_pool = thread_pool is None
        self._pool = (
            ThreadPool(minthreads=0, maxthreads=max_threads, name="conch-container-bcrypt")
            if thread_pool is None
            else thread_pool
        )
        self._max_pending = max_pending
        self._pending = 0
        self._max_pending_per_address = max_pending_per_address
        # Source address to checks in flight; an address leaves with its last check.
        self._pending_by_source: dict[str, int] = {}
        self._dummy = _dummy_hash(self._users)
        self._running = False

    @classmethod
    def from_file(
        cls, path: str, *, reactor: Any, log: CodeLogger | None = None, **kwargs: Any
    ) -> StaticAuthenticator:
        """Load ``path`` (see :func:`load_users`) and build an authenticator for it.

        :raises StaticUsersError: when the file is unreadable or invalid.
        """
        users = load_users(path)
        log = log if log is not None else CodeLogger("conch_container.auth.static")
        log.event(
            messages.AUTH_STATIC_USERS_LOADED,
            "Loaded {count} static users from {file}",
            count=len(users),
            file=path,
        )
        return cls(users, reactor=reactor, log=log, **kwargs)

    @property
    def users(self) -> Mapping[str, StaticUser]:
        """The users, by name."""
        return self._users

    def start(self) -> Deferred[None]:
        """Start the bcrypt thread pool (only one this authenticator made)."""
        if self._owns_pool and not self._running:
            self._pool.start()
        self._running = True
        return succeed(None)

    def stop(self) -> Deferred[None]:
        """Stop the bcrypt thread pool. Idempotent; safe before :meth:`start`."""
        if self._owns_pool and self._running:
            self._pool.stop()
        self._running = False
        return succeed(None)

    def authenticate_password(
        self, metadata: ConnectionMetadata, password: bytes
    ) -> Deferred[AuthResult]:
        """Check ``password`` against the user's bcrypt hash."""
        return Deferred.fromCoroutine(self._password(metadata, password))

    def authenticate_public_key(
        self, metadata: ConnectionMetadata, public_key: str
    ) -> Deferred[AuthResult]:
        """Check that ``public_key`` is one of the user's authorized keys."""
        log = self._log.bind(**metadata.log_fields(), authtype="pubkey")
        log.event(messages.AUTH, "Public key authentication request")
        user = self._users.get(metadata.username)
        try:
            blob = parse_public_key(public_key)
        except ValueError:
            blob = b""
        if user is None:
            return succeed(self._failed(log, "Public key authentication", "unknown user"))
        if blob not in user.authorized_keys:
            return succeed(self._failed(log, "Public key authentication", "key not authorized"))
        return succeed(self._succeeded(log, "Public key authentication", user))

    async def _password(self, metadata: ConnectionMetadata, password: bytes) -> AuthResult:
        log = self._log.bind(**metadata.log_fields(), authtype="password")
        log.event(messages.AUTH, "Password authentication request")
        source = source_key(metadata.remote_ip)
        if self._pending_by_source.get(source, 0) >= self._max_pending_per_address:
            log.event(
                messages.AUTH_STATIC_ADDRESS_BUSY,
                "{pending} password checks from {source} are in progress, failing this one",
                pending=self._pending_by_source[source],
                source=source,
            )
            return AuthResult(success=False)
        if self._pending >= self._max_pending:
            log.event(
                messages.AUTH_BACKEND_ERROR,
                "Too many password checks in progress ({pending}), refusing this one",
                level=Level.WARNING,
                pending=self._pending,
            )
            raise ContainerSSHError(
                messages.AUTH_BACKEND_ERROR,
                AUTH_UNAVAILABLE_USER_MESSAGE,
                "too many static password checks in progress",
                authtype="password",
            )
        user = self._users.get(metadata.username)
        # Unknown users and users without a password cost a check as well.
        stored = user.password_hash if user is not None else None
        self._check_started(source)
        try:
            matches = await deferToThreadPool(
                self._reactor,
                self._pool,
                thd_check_password,
                bytes(password),
                stored if stored is not None else self._dummy,
            )
        finally:
            self._check_ended(source)
        if user is None:
            return self._failed(log, "Password authentication", "unknown user")
        if stored is None:
            return self._failed(log, "Password authentication", "user has no password")
        if not matches:
            return self._failed(log, "Password authentication", "wrong password")
        return self._succeeded(log, "Password authentication", user)

    def _check_started(self, source: str) -> None:
        self._pending += 1
        self._pending_by_source[source] = self._pending_by_source.get(source, 0) + 1

    def _check_ended(self, source: str) -> None:
        self._pending -= 1
        left = self._pending_by_source[source] - 1
        if left:
            self._pending_by_source[source] = left
        else:
            del self._pending_by_source[source]

    @staticmethod
    def _failed(log: CodeLogger, method: str, reason: str) -> AuthResult:
        log.event(
            messages.AUTH_FAILED,
            "{method} failed: {reason}",
            level=Level.DEBUG,
            method=method,
            reason=reason,
        )
        return AuthResult(success=False)

    @staticmethod
    def _succeeded(log: CodeLogger, method: str, user: StaticUser) -> AuthResult:
        log.event(messages.AUTH_SUCCESSFUL, "{method} successful", level=Level.DEBUG, method=method)
        return AuthResult(
            success=True,
            authenticated_username=user.name,
            environment=user.environment,
            metadata=user.metadata,
        )

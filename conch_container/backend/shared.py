"""Returning to the same container: connections that share one by key.

A CI runner opens a new SSH connection for every command of a job, ``scp``
follows ``ssh``, a laptop's Wi-Fi drops: each wants the next connection to
land in the container the last one used. With ``session.containerKey``
configured, a connection carries a *container key* (an authentication
metadata entry, or a variable of the environment the webhooks gave the
connection), and connections of the same authenticated user with the same key
share one container:

- the first creates it, through the backend as usual;
- the next ones join it: their programs get their own environment, their
  files are written into it, and their log lines name it;
- when the last one closes, the container stays for ``session.keepAlive`` and
  is then removed; a connection with the key in the meantime takes it back;
- a container that stopped meanwhile (the backend says so) is replaced.

The key is qualified by the backend and the authenticated user name: whatever
a webhook says, no user ever lands in another user's container. Everything
here works through :class:`~conch_container.interfaces.IBackendConnection`
and two optional methods a backend connection may have (``write_files`` and
``still_running``), so it serves every backend alike.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.python.failure import Failure
from zope.interface import implementer

from conch_container import messages
from conch_container.backend.containerkey import container_key, key_digest
from conch_container.backend.latekey import LateKeyConnection
from conch_container.deferreds import Once
from conch_container.errors import ContainerSSHError
from conch_container.interfaces import ConnectionContext, IBackendConnection
from conch_container.log.logger import CodeLogger
from conch_container.metrics.recorders import SharedCounts

#: Unused keyed containers kept for one user at once (the oldest goes first).
MAX_KEPT_PER_USER = 8


class _Shared:
    """One keyed container: the backend connection and who uses it."""

    def __init__(self, ident: tuple[str, str, str], digest: str) -> None:
        self.ident = ident
        self.digest = digest
        self.ready: Once[Any] = Once()
        self.connection: Any = None
        self.users = 0
        self.keep_alive = 0.0
        self.expiry: Any = None
        #: When its last connection closed (while kept).
        self.kept_since = 0.0
        self.removing = False
        self.log: CodeLogger | None = None


class SharedContainers:
    """The keyed containers of the gateway, over every backend.

    :param reactor: the clock of the keep-alive timers.
    """

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._shared: dict[tuple[str, str, str], _Shared] = {}
        self._removals: set[Deferred[Any]] = set()
        self._stopped = False

    def __len__(self) -> int:
        return len(self._shared)

    @property
    def counts(self) -> SharedCounts:
        """Keyed containers in use, and kept for their next connection."""
        in_use = sum(1 for shared in self._shared.values() if shared.users > 0)
        return SharedCounts(in_use=in_use, kept=len(self._shared) - in_use)

    async def connect(
        self,
        backend_name: str,
        connect: Callable[[ConnectionContext], Any],
        context: ConnectionContext,
    ) -> Any:
        """The connection of ``context``: its own (``connect``), or its key's shared one.

        When the key is to come from a variable the client sends
        (``clientEnvironment``) and the webhooks gave none, the container is
        chosen later, when it is first needed (:mod:`~conch_container.backend.latekey`).
        """
        if self._stopped:
            return await maybeDeferred(connect, context)
        key = container_key(context)
        if key is not None:
            return await self.connect_with_key(backend_name, connect, context, key)
        variable = context.config.session.container_key.client_environment
        if variable:
            return LateKeyConnection(self, backend_name, connect, context, variable)
        return await maybeDeferred(connect, context)

    async def connect_with_key(
        self,
        backend_name: str,
        connect: Callable[[ConnectionContext], Any],
        context: ConnectionContext,
        key: str,
    ) -> Any:
        """The shared container of ``key`` for this connection's user: joined, or created."""
        metadata: Any = context.metadata
        ident = (backend_name, metadata.authenticated_username, key)
        digest = key_digest(key)
        log = context.log.bind(containerKey=digest)
        shared = self._shared.get(ident)
        if shared is not None and not shared.removing:
            joined = await self._join(shared, context, log)
            if joined is not None:
                return joined
        return await self._create(ident, digest, connect, context, log)

    async def _create(
        self,
        ident: tuple[str, str, str],
        digest: str,
        connect: Callable[[ConnectionContext], Any],
        context: ConnectionContext,
        log: CodeLogger,
    ) -> Any:
        shared = _Shared(ident, digest)
        self._shared[ident] = shared
        shared.users = 1
        shared.keep_alive = context.config.session.keep_alive
        shared.log = log
        log.event(
            messages.CONTAINER_KEY_NEW,
            "First connection with container key {containerKey}: its container is kept for "
            "the user's next connections with the same key",
        )
        try:
            connection = await maybeDeferred(connect, context)
        except BaseException as e:
            if self._shared.get(ident) is shared:
                del self._shared[ident]
            shared.ready.fire(Failure(e))
            raise
        shared.connection = connection
        shared.ready.fire(connection)
        return SharedConnection(self, shared, connection, env=[], log=log, joined=False)

    async def _join(
        self, shared: _Shared, context: ConnectionContext, log: CodeLogger
    ) -> SharedConnection | None:
        """Join ``shared``; None when its container is gone (the caller makes a new one)."""
        shared.users += 1
        self._cancel_expiry(shared)
        try:
            connection = await shared.ready.wait()
            still_running = getattr(connection, "still_running", None)
            if still_running is not None and not await maybeDeferred(still_running):
                log.event(
                    messages.CONTAINER_KEY_STALE,
                    "The container of key {containerKey} is no longer running: removing it, "
                    "making a new one",
                )
                shared.users -= 1
                self._remove(shared)
                return None
        except BaseException:
            shared.users -= 1
            # The creating connection failed: this one tries on its own.
            return None
        shared.keep_alive = context.config.session.keep_alive
        metadata: Any = context.metadata
        env = [(name, value.value) for name, value in metadata.environment.items()]
        handle = SharedConnection(self, shared, connection, env=env, log=log, joined=True)
        log.event(
            messages.CONTAINER_KEY_JOINED,
            "Joined the container of key {containerKey} ({users} connection(s) use it now)",
            users=shared.users,
        )
        write_files = getattr(connection, "write_files", None)
        if metadata.files and write_files is not None:
            try:
                await maybeDeferred(write_files, metadata.files)
            except BaseException:
                await handle.close()
                raise
        return handle

    def released(self, shared: _Shared, log: CodeLogger) -> None:
        """A connection of ``shared`` closed."""
        shared.users -= 1
        if shared.users > 0 or shared.removing:
            return
        if self._stopped or shared.keep_alive <= 0:
            self._remove(shared)
            return
        log.event(
            messages.CONTAINER_KEY_KEPT,
            "Last connection of container key {containerKey} closed: the container is kept "
            "for {keepAlive} s",
            keepAlive=shared.keep_alive,
        )
        shared.kept_since = self._reactor.seconds()
        shared.expiry = self._reactor.callLater(shared.keep_alive, self._expired, shared)
        self._bound_kept(shared.ident[:2], log)

    def _bound_kept(self, owner: tuple[str, str], log: CodeLogger) -> None:
        """At most :data:`MAX_KEPT_PER_USER` unused containers per user: a client
        that connects with ever new keys must not leave a container per key."""
        kept = [
            shared
            for shared in self._shared.values()
            if shared.ident[:2] == owner and shared.users == 0 and not shared.removing
        ]
        if len(kept) <= MAX_KEPT_PER_USER:
            return
        oldest = min(kept, key=lambda shared: shared.kept_since)
        log.event(
            messages.CONTAINER_KEY_EXPIRED,
            "More than {limit} unused containers are kept for this user: removing the one "
            "of key {expiredKey}, unused the longest",
            limit=MAX_KEPT_PER_USER,
            expiredKey=oldest.digest,
        )
        self._remove(oldest)

    def _expired(self, shared: _Shared) -> None:
        shared.expiry = None
        if shared.users == 0:
            if shared.log is not None:
                shared.log.event(
                    messages.CONTAINER_KEY_EXPIRED,
                    "No connection with container key {containerKey} for {keepAlive} s: "
                    "removing its container",
                    keepAlive=shared.keep_alive,
                )
            self._remove(shared)

    def _cancel_expiry(self, shared: _Shared) -> None:
        if shared.expiry is not None and shared.expiry.active():
            shared.expiry.cancel()
        shared.expiry = None

    def _remove(self, shared: _Shared) -> None:
        shared.removing = True
        self._cancel_expiry(shared)
        if self._shared.get(shared.ident) is shared:
            del self._shared[shared.ident]
        if shared.connection is None:
            return
        removal = maybeDeferred(shared.connection.close)
        self._removals.add(removal)
        removal.addBoth(lambda _: self._removals.discard(removal))

    def stop(self) -> Deferred[Any]:
        """The gateway stops: remove every kept container now; fires when they are gone.

        Containers still in use are removed by their connections' own close (and
        by their backend's stop).
        """
        self._stopped = True
        for shared in list(self._shared.values()):
            if shared.users == 0:
                self._remove(shared)
        return DeferredList(list(self._removals), consumeErrors=True)


@implementer(IBackendConnection)
class SharedConnection:
    """One SSH connection's use of a keyed container.

    Sessions, forwards and listeners are the container's, opened for this
    connection; closing only releases this connection's hold on the
    container (the SSH layer has already closed its sessions by then).
    """

    def __init__(
        self,
        registry: SharedContainers,
        shared: _Shared,
        connection: Any,
        *,
        env: list[tuple[str, str]],
        log: CodeLogger,
        joined: bool,
    ) -> None:
        self._registry = registry
        self._shared = shared
        self.connection = connection
        self._env = env
        self._log = log
        #: A joining connection's programs are logged under it, not under the
        #: connection that made the container (when the backend can do that).
        self._own_session_log = (
            joined and "log" in inspect.signature(connection.open_session).parameters
        )
        self._closed = False

    def open_session(self, channel_id: object) -> Any:
        if self._own_session_log:
            session = self.connection.open_session(channel_id, log=self._log)
        else:
            session = self.connection.open_session(channel_id)
        # A joining connection's environment could not be the container's own:
        # each program gets it (the client's env requests may still replace it).
        set_env = getattr(session, "set_gateway_env", session.set_env)
        for name, value in self._env:
            try:
                set_env(name, value)
            except ContainerSSHError as e:
                e.log(self._log)
        return session

    def close(self) -> Deferred[None]:
        if not self._closed:
            self._closed = True
            self._registry.released(self._shared, self._log)
        return succeed(None)

    def __getattr__(self, name: str) -> Any:
        # Whatever else the backend connection offers (open_forward,
        # open_listener, its container id): the container's, as for its own
        # connection. What it lacks stays missing.
        return getattr(self.connection, name)

"""A container key the client sends itself, and the container chosen when it arrives.

With ``session.containerKey.clientEnvironment: CI_JOB_ID`` the key is a
variable the client sends (``ssh -o SetEnv=CI_JOB_ID=4711 host make``). Such
a variable arrives on a session channel, after the login, so the container
cannot be chosen at login as it is otherwise. :class:`LateKeyConnection` stands
in for the backend connection until the connection first needs a container:

- the first program to start decides, with the variables of its own channel:
  with the variable, the key's shared container
  (:meth:`~conch_container.backend.shared.SharedContainers.connect_with_key`);
  without it, a container of the connection's own;
- a port, X11 or agent forward needed before any program (OpenSSH sends the
  X11 and agent requests before the variables) gets a container of the
  connection's own, without a key (``CONTAINER_KEY_ABSENT`` says why);
- every later session and forward uses that same container.

A failure to make the container then refuses that program or forward (the
client reads "exec request failed", for example), instead of the login.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from zope.interface import implementer

from conch_container import messages
from conch_container.backend.containerkey import usable_key
from conch_container.deferreds import Once
from conch_container.errors import GENERIC_USER_MESSAGE, ContainerSSHError
from conch_container.interfaces import ConnectionContext, IBackendConnection, IBackendSession

if TYPE_CHECKING:
    from conch_container.backend.shared import SharedContainers


@implementer(IBackendConnection)
class LateKeyConnection:
    """A connection whose container is chosen when it is first needed.

    :param variable: the name of the variable the client sends with the key.
    """

    def __init__(
        self,
        registry: SharedContainers,
        backend_name: str,
        connect: Callable[[ConnectionContext], Any],
        context: ConnectionContext,
        variable: str,
    ) -> None:
        self._registry = registry
        self._backend_name = backend_name
        self._connect = connect
        self._context = context
        self._variable = variable
        self._log = context.log
        self._chosen: Once[Any] | None = None
        self._closed = False

    def resolve(self, env: dict[str, str] | None, why: str) -> Deferred[Any]:
        """The connection's backend connection, chosen now if it is not yet.

        :param env: the variables of the channel whose program needs it first,
            or None when a forward needs it.
        :param why: what needs it, for the log.
        """
        if self._chosen is None:
            chosen: Once[Any] = Once()
            self._chosen = chosen
            Deferred.fromCoroutine(self._choose(env, why)).addBoth(chosen.fire)
        return self._chosen.wait()

    async def _choose(self, env: dict[str, str] | None, why: str) -> Any:
        if self._closed:
            raise ContainerSSHError(
                messages.CONTAINER_KEY_ABSENT,
                GENERIC_USER_MESSAGE,
                "the connection closed before its container was chosen",
            )
        value = (env or {}).get(self._variable)
        key = usable_key(value, f"client variable {self._variable}", self._log) if value else None
        if key is not None:
            return await self._registry.connect_with_key(
                self._backend_name, self._connect, self._context, key
            )
        self._log.event(
            messages.CONTAINER_KEY_ABSENT,
            "The {why} needs a container and the client sent no {variable} before it: this "
            "connection gets a container of its own",
            why=why,
            variable=self._variable,
        )
        return await maybeDeferred(self._connect, self._context)

    def open_session(self, channel_id: object) -> LateSession:
        return LateSession(
            self, lambda connection: connection.open_session(channel_id), key_source=True
        )

    def open_forward(
        self, channel_id: object, host: str, port: int, *, unix: bool = False
    ) -> LateSession:
        return LateSession(
            self,
            lambda connection: connection.open_forward(channel_id, host, port, unix=unix),
            key_source=False,
        )

    def open_listener(self, request: Any, on_connection: Any) -> LateListener:
        return LateListener(self, request, on_connection)

    def close(self) -> Deferred[None]:
        """Close the chosen connection, if one was (or is being) chosen; never fails."""
        self._closed = True
        if self._chosen is None:
            return succeed(None)
        d = self._chosen.wait()
        d.addCallback(lambda connection: maybeDeferred(connection.close))
        d.addErrback(lambda _: None)  # nothing was made: nothing to close
        return d


@implementer(IBackendSession)
class LateSession:
    """A session (or a forward's dialler) on a connection whose container is not chosen yet.

    What comes before the start (variables, terminal) is kept and handed to
    the real session once the container is there.

    :param key_source: this channel's variables may hold the key (a session
        channel; a forward's dialler has none).
    """

    def __init__(
        self,
        owner: LateKeyConnection,
        opener: Callable[[Any], Any],
        *,
        key_source: bool,
    ) -> None:
        self._owner = owner
        self._opener = opener
        self._key_source = key_source
        self._env: dict[str, str] = {}
        self._before: list[Callable[[Any], object]] = []
        self._real: Any = None
        self._closed = False

    def set_env(self, name: str, value: str) -> None:
        self._env[name] = value
        self._before.append(lambda real: real.set_env(name, value))

    def set_gateway_env(self, name: str, value: str) -> None:
        self._before.append(
            lambda real: getattr(real, "set_gateway_env", real.set_env)(name, value)
        )

    def set_pty(self, pty: Any) -> None:
        self._before.append(lambda real: real.set_pty(pty))

    def register_input_producer(self, producer: Any) -> None:
        if self._real is not None:
            self._real.register_input_producer(producer)
        else:
            self._before.append(lambda real: real.register_input_producer(producer))

    def start(self, program: Any, io: Any) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._start(program, io))

    async def _start(self, program: Any, io: Any) -> Any:
        why = "first program" if self._key_source else "port forward"
        connection = await self._owner.resolve(self._env if self._key_source else None, why)
        if self._closed:
            raise ContainerSSHError(
                messages.CONTAINER_KEY_ABSENT, GENERIC_USER_MESSAGE, "the channel closed"
            )
        real = self._opener(connection)
        for step in self._before:
            step(real)
        self._before = []
        self._real = real
        return await maybeDeferred(real.start, program, io)

    def _running(self) -> Any:
        if self._real is None:
            raise ContainerSSHError(
                messages.CONTAINER_KEY_ABSENT, GENERIC_USER_MESSAGE, "no program running yet"
            )
        return self._real

    def write(self, data: bytes) -> None:
        self._running().write(data)

    def close_stdin(self) -> None:
        self._running().close_stdin()

    def resize(self, columns: int, rows: int, width: int, height: int) -> Any:
        return self._running().resize(columns, rows, width, height)

    def signal(self, name: str) -> Any:
        return self._running().signal(name)

    def close(self) -> Deferred[None]:
        self._closed = True
        if self._real is None:
            return succeed(None)
        return maybeDeferred(self._real.close)


class LateListener:
    """A port or socket the container is to listen on, once the container is chosen."""

    def __init__(self, owner: LateKeyConnection, request: Any, on_connection: Any) -> None:
        self._owner = owner
        self._request = request
        self._on_connection = on_connection
        self._real: Any = None
        self._closed = False

    def start(self) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._start())

    async def _start(self) -> Any:
        kind = getattr(self._request.kind, "name", "listener").lower().replace("_", " ")
        connection = await self._owner.resolve(None, kind)
        self._real = connection.open_listener(self._request, self._on_connection)
        if self._closed:
            await maybeDeferred(self._real.close)
            raise ContainerSSHError(
                messages.CONTAINER_KEY_ABSENT, GENERIC_USER_MESSAGE, "the listener was closed"
            )
        return await self._real.start()

    @property
    def bound_port(self) -> int:
        """The port or display the container listens on (once started)."""
        return int(self._real.bound_port) if self._real is not None else 0

    def stop(self) -> None:
        """Stop listening (the client cancelled the forward)."""
        self._closed = True
        if self._real is not None:
            self._real.stop()

    def run_command(self, command: str, timeout: float) -> Any:
        if self._real is None:
            raise ContainerSSHError(
                messages.CONTAINER_KEY_ABSENT, GENERIC_USER_MESSAGE, "not listening yet"
            )
        return self._real.run_command(command, timeout)

    def close(self) -> Deferred[None]:
        self._closed = True
        if self._real is None:
            return succeed(None)
        return maybeDeferred(self._real.close)

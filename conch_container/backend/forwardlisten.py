"""A port the user's container listens on for the client (``ssh -R``), on any backend.

One forwarding helper (:mod:`~conch_container.backend.forwardprotocol`) per
listening port: it listens in the container and announces each connection
it accepts; the SSH layer opens a ``forwarded-tcpip`` channel to the client
for it and drives the connection as it drives a session's program, through
a :class:`ListenedConnection` (an ``IBackendSession``). So windows, audit and
back-pressure work as for a ``direct-tcpip`` channel.

The connections of one port share the helper's stream. While one of them
cannot pass on output (the client's window for it is full), the whole
stream pauses; while the helper does not take input, every connection's
client input pauses. Nothing piles up in the gateway; the price is that a
stalled connection holds up the others of the same port, where ``ssh -L``
connections (a helper each) are independent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred, succeed

from conch_container import messages
from conch_container.backend.forwardprotocol import (
    ConnectionType,
    Packet,
    PacketDecoder,
    PacketType,
    ProtocolError,
    decode_map,
    encode_packet,
    end_helper,
    setup_payload,
    text_field,
    uint_field,
)
from conch_container.deferreds import DeadlineExceeded, with_deadline
from conch_container.errors import ContainerSSHError
from conch_container.interfaces import ExitStatus, ISessionIO, ProgramRequest
from conch_container.log.logger import CodeLogger

LISTEN_FAILED_MESSAGE = "The port could not be opened in the container."
#: How long the helper may take to start and listen.
LISTEN_TIMEOUT = 30.0
_MAX_REPORT = 512
#: The status a connection's "program" ends with (it has none of its own).
_ENDED = ExitStatus(code=0)


@attrs.frozen
class ListenRequest:
    """What to listen on in the container, as the helper's setup packet says it.

    :ivar kind: ``PORT_FORWARD`` (``ssh -R``), ``SOCKET_FORWARD`` (``ssh -R
        /path``), ``X11`` (a display for ``x11-req``) or ``SSH_AGENT`` (a
        socket for ``auth-agent-req@openssh.com``).
    :ivar bind_host: the address, or the socket's path.
    :ivar bind_port: the port (0: the helper chooses).
    :ivar single_connection: stop listening after the first connection (X11).
    :ivar screen: the X11 screen number.
    :ivar auth_protocol: the X11 authentication protocol (``MIT-MAGIC-COOKIE-1``).
    :ivar auth_cookie: the X11 cookie, in hex, as the client sent it.
    """

    kind: ConnectionType
    bind_host: str = ""
    bind_port: int = 0
    single_connection: bool = False
    screen: int = 0
    auth_protocol: str = attrs.field(default="", repr=False)
    auth_cookie: str = attrs.field(default="", repr=False)

    @property
    def unix(self) -> bool:
        """Whether the helper listens on a Unix socket at :attr:`bind_host`."""
        return self.kind in (ConnectionType.SOCKET_FORWARD, ConnectionType.SSH_AGENT)

    def setup(self) -> bytes:
        return setup_payload(
            self.kind,
            bind_host=self.bind_host,
            bind_port=self.bind_port,
            protocol="unix" if self.unix else "tcp",
            screen=str(self.screen) if self.kind == ConnectionType.X11 else "",
            single_connection=self.single_connection,
            auth_protocol=self.auth_protocol,
            auth_cookie=self.auth_cookie,
        )


@attrs.frozen
class Accepted:
    """A connection the helper accepted, as its NEW_CONNECTION packet says."""

    originator_host: str
    originator_port: int


def _failure(reason: str) -> ContainerSSHError:
    return ContainerSSHError(messages.SSH_FORWARD_FAILED, LISTEN_FAILED_MESSAGE, reason)


class ForwardListener:
    """One listening port in the container, served by a forwarding helper.

    :param open_session: makes a new backend session in the container.
    :param command: the helper's command line (a shell command).
    :param on_connection: called with each :class:`ListenedConnection`; the
        SSH layer opens a channel for it and then starts it, or refuses it.
    """

    def __init__(
        self,
        *,
        reactor: Any,
        open_session: Callable[[], Any],
        command: str,
        request: ListenRequest,
        on_connection: Callable[[ListenedConnection], Any],
        log: CodeLogger,
    ) -> None:
        self._reactor = reactor
        self._open_session = open_session
        self._command = command
        self.request = request
        self.bind_host = request.bind_host
        self.bind_port = request.bind_port
        #: The port listened on, once listening (the helper's choice for 0;
        #: for X11, the display number).
        self.bound_port = request.bind_port
        self._on_connection = on_connection
        self._log = log
        self._inner: Any = None
        self._decoder = PacketDecoder(self._packet)
        self._listening: Deferred[int] | None = None
        self._connections: dict[int, ListenedConnection] = {}
        self._stderr = bytearray()
        self._producer: Any = None
        self._pausers: set[int] = set()
        self._input_producers: dict[int, Any] = {}
        self._input_paused = False
        self._ended = False
        self._stopping = False

    # -- starting

    def start(self) -> Deferred[int]:
        """Listen; fires with the port bound (the one asked for, or the one chosen for 0).

        Fails with ``SSH_FORWARD_FAILED`` when the helper is not there or
        cannot listen (the port is taken, the address is not the container's).
        """
        return Deferred.fromCoroutine(self._start())

    async def _start(self) -> int:
        listening: Deferred[int] = Deferred()
        self._listening = listening
        try:
            return await with_deadline(self._reactor, LISTEN_TIMEOUT, self._listen(listening))
        except DeadlineExceeded:
            self.close()
            raise _failure(f"the helper did not listen within {LISTEN_TIMEOUT:g} s") from None
        except ContainerSSHError:
            self.close()
            raise

    async def _listen(self, listening: Deferred[int]) -> int:
        self._inner = inner = self._open_session()
        await inner.start(ProgramRequest("exec", self._command), self)
        inner.write(encode_packet(PacketType.SETUP, 0, self.request.setup()))
        register = getattr(inner, "register_input_producer", None)
        if register is not None:
            register(_InputFanOut(self))
        return await listening

    def run_command(self, command: str, timeout: float) -> Deferred[CommandResult]:
        """Run a short shell command in the container beside the helper (``xauth``).

        Never fails: a command that cannot start or does not end within
        ``timeout`` seconds (it is then stopped) gives a result without status.
        """
        return Deferred.fromCoroutine(self._run_command(command, timeout))

    async def _run_command(self, command: str, timeout: float) -> CommandResult:
        session = self._open_session()
        collector = _Collector()
        try:
            await with_deadline(
                self._reactor, timeout, self._run_to_end(session, command, collector)
            )
        except DeadlineExceeded:
            return CommandResult(None, "did not end in time")
        except ContainerSSHError as e:
            return CommandResult(None, e.explanation)
        finally:
            await session.close()
        return CommandResult(collector.status, bytes(collector.output).decode("utf-8", "replace"))

    async def _run_to_end(self, session: Any, command: str, collector: _Collector) -> None:
        await session.start(ProgramRequest("exec", command), collector)
        session.close_stdin()
        await collector.ended

    # -- the helper's program output (ISessionIO)

    def stdout(self, data: bytes) -> None:
        try:
            self._decoder.feed(data)
        except ProtocolError as e:
            self._broken(f"the helper broke the protocol: {e}")

    def stderr(self, data: bytes) -> None:
        if len(self._stderr) < _MAX_REPORT:
            self._stderr += data[: _MAX_REPORT - len(self._stderr)]

    def output_closed(self) -> None:
        pass

    def exited(self, status: ExitStatus) -> None:
        report = self._stderr.decode("utf-8", "replace").strip()
        self._broken(report or f"the helper ended with {status.code or status.signal}")

    def register_producer(self, producer: Any) -> None:
        self._producer = producer
        if self._pausers:
            producer.pauseProducing()

    def unregister_producer(self) -> None:
        self._producer = None

    # -- packets

    def _packet(self, packet: Packet) -> None:
        kind, connection_id = packet.type, packet.connection_id
        listening = self._listening
        if listening is not None and not listening.called:
            if connection_id != 0 or kind not in (PacketType.SUCCESS, PacketType.ERROR):
                listening.errback(_failure(f"the helper answered the setup with type {kind}"))
            elif kind == PacketType.ERROR:
                reason = packet.payload.decode("utf-8", "replace").strip()
                listening.errback(_failure(reason or "the helper could not listen"))
            else:
                self.bound_port = self._bound_port(packet.payload)
                listening.callback(self.bound_port)
            return
        if kind == PacketType.NEW_CONNECTION:
            self._accepted(connection_id, packet.payload)
            return
        connection = self._connections.get(connection_id)
        if connection is not None:
            connection.packet(kind, packet.payload)

    def _bound_port(self, payload: bytes) -> int:
        """The port (or X11 display) the helper's answer names; else the one asked for."""
        key = "Display" if self.request.kind == ConnectionType.X11 else "BindPort"
        if payload:
            try:
                port = uint_field(decode_map(payload), key)
            except ProtocolError:
                port = 0
            if port:
                return port
        return self.bind_port

    def _accepted(self, connection_id: int, payload: bytes) -> None:
        try:
            fields = decode_map(payload)
            accepted = Accepted(
                text_field(fields, "OriginatorAddress"), uint_field(fields, "OriginatorPort")
            )
        except ProtocolError as e:
            self._log.event(
                messages.SSH_FORWARD_FAILED,
                "The forwarding helper announced a connection badly: {reason}",
                reason=str(e),
            )
            self._send(PacketType.ERROR, connection_id)
            return
        if connection_id in self._connections or self._ended:
            self._send(PacketType.ERROR, connection_id)
            return
        connection = ListenedConnection(self, connection_id, accepted)
        self._connections[connection_id] = connection
        self._on_connection(connection)

    # -- used by the connections

    def _send(self, kind: int, connection_id: int, payload: bytes = b"") -> None:
        if self._inner is not None and not self._ended:
            self._inner.write(encode_packet(kind, connection_id, payload))

    def _forget(self, connection_id: int) -> None:
        self._connections.pop(connection_id, None)
        self._resume_for(connection_id)
        self._input_producers.pop(connection_id, None)
        if self._stopping and not self._connections:
            self.close()

    def _pause_for(self, connection_id: int) -> None:
        if not self._pausers and self._producer is not None:
            self._producer.pauseProducing()
        self._pausers.add(connection_id)

    def _resume_for(self, connection_id: int) -> None:
        if connection_id not in self._pausers:
            return
        self._pausers.discard(connection_id)
        if not self._pausers and self._producer is not None:
            self._producer.resumeProducing()

    def _input_producer(self, connection_id: int, producer: Any) -> None:
        self._input_producers[connection_id] = producer
        if self._input_paused:
            producer.pauseProducing()

    def _pause_input(self, paused: bool) -> None:
        self._input_paused = paused
        for producer in list(self._input_producers.values()):
            if paused:
                producer.pauseProducing()
            else:
                producer.resumeProducing()

    # -- ending

    def stop(self) -> None:
        """Stop listening (``cancel-tcpip-forward``); open connections go on."""
        if self._stopping or self._ended:
            return
        self._stopping = True
        self._send(PacketType.NO_MORE_CONNECTIONS, 0)
        if not self._connections:
            self.close()

    def close(self) -> Deferred[None]:
        """End the helper and every connection it carries."""
        self._end()
        inner, self._inner = self._inner, None
        if inner is None:
            return succeed(None)
        result: Deferred[None] = end_helper(inner)
        return result

    def _broken(self, reason: str) -> None:
        listening = self._listening
        if listening is not None and not listening.called:
            listening.errback(_failure(reason))
            return
        if not self._ended:
            self._log.event(
                messages.SSH_FORWARD_FAILED,
                "The container stopped listening on {bindHost}:{port}: {reason}",
                bindHost=self.bind_host,
                port=self.bind_port,
                reason=reason,
            )
        self.close()

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        for connection in list(self._connections.values()):
            connection.ended()
        self._connections.clear()


class ListenedConnection:
    """One connection the container accepted on a listening port, as a session's program.

    The SSH layer starts it (``start``) once the client confirmed the
    channel, or :meth:`refuse`\\ s it when the client did not.
    """

    def __init__(self, listener: ForwardListener, connection_id: int, accepted: Accepted) -> None:
        self._listener = listener
        self._id = connection_id
        self.accepted = accepted
        self._io: ISessionIO | None = None
        self._pending: list[tuple[int, bytes]] = []
        self._output_closed = False
        self._done = False

    @property
    def listener_port(self) -> int:
        """The port the connection arrived at."""
        return self._listener.bound_port

    # IBackendSession

    def set_env(self, name: str, value: str) -> None:
        raise _failure("a forwarded connection has no environment")

    def set_pty(self, pty: Any) -> None:
        raise _failure("a forwarded connection has no terminal")

    def start(self, program: ProgramRequest, io: ISessionIO) -> Deferred[None]:
        """The client took the channel: the helper may pass the connection's bytes."""
        if self._done:
            raise _failure("the connection ended before the client took it")
        self._io = io
        io.register_producer(_OutputPauser(self._listener, self._id))
        self._listener._send(PacketType.SUCCESS, self._id)
        pending, self._pending = self._pending, []
        for kind, payload in pending:
            self.packet(kind, payload)
        return succeed(None)

    def refuse(self) -> None:
        """The client refused the channel: the helper closes the connection."""
        if not self._done:
            self._done = True
            self._listener._send(PacketType.ERROR, self._id)
            self._listener._forget(self._id)

    def write(self, data: bytes) -> None:
        if not self._done:
            self._listener._send(PacketType.DATA, self._id, data)

    def close_stdin(self) -> None:
        if not self._done:
            self._listener._send(PacketType.CLOSE_WRITE, self._id)

    def register_input_producer(self, producer: Any) -> None:
        self._listener._input_producer(self._id, producer)

    def resize(self, columns: int, rows: int, width: int = 0, height: int = 0) -> Deferred[None]:
        return succeed(None)

    def signal(self, name: str) -> Deferred[None]:
        raise _failure("a forwarded connection takes no signals")

    def close(self) -> Deferred[None]:
        """The channel is gone: the helper closes the connection."""
        if not self._done:
            self._done = True
            self._listener._send(PacketType.CLOSE_CONNECTION, self._id)
            self._listener._forget(self._id)
        return succeed(None)

    def shutdown(self, *, kill: bool) -> Deferred[None]:
        return self.close()

    # from the listener

    def packet(self, kind: int, payload: bytes) -> None:
        io = self._io
        if io is None:
            # Not started yet: the helper does not send before SUCCESS, but a
            # close may come; keep it (bounded: nothing else is expected).
            if kind in (PacketType.CLOSE_WRITE, PacketType.CLOSE_CONNECTION):
                self._pending.append((kind, payload))
            return
        if kind == PacketType.DATA:
            if not self._output_closed:
                io.stdout(payload)
        elif kind == PacketType.CLOSE_WRITE:
            self._close_output()
        elif kind == PacketType.CLOSE_CONNECTION:
            self._listener._send(PacketType.SUCCESS, self._id)
            self.ended()
            self._listener._forget(self._id)

    def ended(self) -> None:
        """The connection is gone on the container's side."""
        if self._io is None:
            self._done = True
            return
        self._close_output()
        if not self._done:
            self._done = True
            self._io.exited(_ENDED)

    def _close_output(self) -> None:
        if self._io is not None and not self._output_closed:
            self._output_closed = True
            self._io.output_closed()


@attrs.frozen
class CommandResult:
    """How :meth:`ForwardListener.run_command` went: the status (None if it did
    not end) and the first bytes of its output, or why it did not run."""

    status: ExitStatus | None
    output: str


class _Collector:
    """The ``ISessionIO`` of a short command: keeps the first output bytes and the status."""

    def __init__(self) -> None:
        self.output = bytearray()
        self.status: ExitStatus | None = None
        self.ended: Deferred[None] = Deferred()

    def stdout(self, data: bytes) -> None:
        if len(self.output) < _MAX_REPORT:
            self.output += data[: _MAX_REPORT - len(self.output)]

    stderr = stdout

    def output_closed(self) -> None:
        pass

    def exited(self, status: ExitStatus) -> None:
        self.status = status
        if not self.ended.called:
            self.ended.callback(None)

    def register_producer(self, producer: Any) -> None:
        pass

    def unregister_producer(self) -> None:
        pass


class _OutputPauser:
    """One connection's say in pausing the listener's shared stream."""

    def __init__(self, listener: ForwardListener, connection_id: int) -> None:
        self._listener = listener
        self._id = connection_id

    def pauseProducing(self) -> None:
        self._listener._pause_for(self._id)

    def resumeProducing(self) -> None:
        self._listener._resume_for(self._id)

    def stopProducing(self) -> None:
        self._listener._resume_for(self._id)


class _InputFanOut:
    """The helper's input producer: pausing it pauses every connection's client."""

    def __init__(self, listener: ForwardListener) -> None:
        self._listener = listener

    def pauseProducing(self) -> None:
        self._listener._pause_input(True)

    def resumeProducing(self) -> None:
        self._listener._pause_input(False)

    def stopProducing(self) -> None:
        self._listener._pause_input(True)

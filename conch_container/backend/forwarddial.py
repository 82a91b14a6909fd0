"""A forwarded connection dialled from the user's container, on any backend.

A ``direct-tcpip`` channel becomes one program in the connection's container
(:class:`ForwardDialSession`, an ``IBackendSession`` the SSH layer drives as
it drives a session's program). Which program is chosen once per container
(:class:`ForwardHelper`) and logged as ``SSH_FORWARD_HELPER``:

* the forwarding helper, spoken to in the packet protocol of
  :mod:`~conch_container.backend.forwardprotocol`: this project's own
  (``/usr/libexec/conch-container/forward-server``, which its guest image
  carries) or ContainerSSH's agent's ``forward-server``. It copies in large
  pieces, so a tunnel carries about what a session does;
* otherwise what a plain image offers, ``nc`` or ``socat``
  (:func:`~conch_container.ssh.forwarding.dial_command`), whose stdin and
  stdout are the connection's bytes.

One program per forwarded connection, so the backend's stream for it is
that connection's alone: pausing it (the client's window is full) or the
client (the program reads slowly) holds back this connection and no other.
"""

from __future__ import annotations

import enum
import shlex
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, succeed

from conch_container import messages
from conch_container.backend.forwardlisten import (
    ForwardListener,
    ListenedConnection,
    ListenRequest,
)
from conch_container.backend.forwardprotocol import (
    ConnectionType,
    Packet,
    PacketDecoder,
    PacketType,
    ProtocolError,
    encode_packet,
    end_helper,
    new_connection_payload,
    setup_payload,
)
from conch_container.deferreds import DeadlineExceeded, with_deadline
from conch_container.errors import ContainerSSHError
from conch_container.interfaces import ExitStatus, ISessionIO, ProgramRequest
from conch_container.log.logger import CodeLogger
from conch_container.ssh.forwarding import dial_command, socket_dial_command

#: Where this project's guest image keeps its forwarding helper.
HELPER_PATH = "/usr/libexec/conch-container/forward-server"
#: How long a dial may take: the helper's start, its setup and the connect.
DIAL_TIMEOUT = 30.0
#: Bytes of a failed helper's stderr kept for the log.
_MAX_REPORT = 512
#: The one connection a dialling helper carries.
_CONNECTION = 1

FORWARD_FAILED_MESSAGE = "The forwarded connection could not be made."


class HelperKind(enum.Enum):
    #: Not known yet: the first forward tries the helper.
    UNKNOWN = "unknown"
    HELPER = "forward-server"
    PLAIN = "nc or socat"


class ForwardHelper:
    """Which dialler a container uses, found by the first forward and then kept.

    :param agent_path: the guest agent's path in the image (ContainerSSH's
        agent has ``forward-server``), or None if there is no agent.
    """

    def __init__(self, reactor: Any, agent_path: str | None, log: CodeLogger) -> None:
        self.kind = HelperKind.UNKNOWN
        self._reactor = reactor
        self._log = log
        self.command = f"if [ -x {HELPER_PATH} ]; then exec {HELPER_PATH}; fi; " + (
            f"exec {shlex.quote(agent_path)} forward-server"
            if agent_path is not None
            else f"echo 'no {HELPER_PATH} in this image' >&2; exit 127"
        )

    def dial(
        self,
        open_session: Any,
        host: str,
        port: int,
        *,
        unix: bool = False,
        originator: tuple[str, int] = ("", 0),
    ) -> ForwardDialSession:
        """A forwarded connection to ``host:port`` (or the Unix socket at path
        ``host``), in sessions ``open_session`` makes."""
        return ForwardDialSession(
            reactor=self._reactor,
            open_session=open_session,
            helper=self,
            host=host,
            port=port,
            unix=unix,
            originator=originator,
            log=self._log,
        )

    def listen(
        self,
        open_session: Any,
        request: ListenRequest,
        on_connection: Callable[[ListenedConnection], Any],
    ) -> ForwardListener:
        """A port, socket or X11 display in the container; only the helper can listen.

        :raises ContainerSSHError: (``SSH_FORWARD_FAILED``) when this
            container is known to have no helper.
        """
        if self.kind is HelperKind.PLAIN:
            raise ContainerSSHError(
                messages.SSH_FORWARD_FAILED,
                "Remote port forwarding needs the forwarding helper in the container image.",
                "the container has no forwarding helper to listen with (nc and socat only dial)",
            )
        return ForwardListener(
            reactor=self._reactor,
            open_session=open_session,
            command=self.command,
            request=request,
            on_connection=on_connection,
            log=self._log,
        )

    def found(self, kind: HelperKind, reason: str = "") -> None:
        if self.kind is not HelperKind.UNKNOWN:
            return
        self.kind = kind
        self._log.event(
            messages.SSH_FORWARD_HELPER,
            "Forwarded connections in this container are dialled with {helper}",
            helper=kind.value,
            reason=reason or "the helper answered",
        )


class _NoHelper(Exception):
    """The helper is not in the container (it exited, or answered something else)."""


class ForwardDialSession:
    """One forwarded connection: a dialler in the container, driven as a program.

    :param open_session: makes a new backend session in the container (the
        connection's ``open_session`` for this channel).
    :param helper: the container's :class:`ForwardHelper`.
    :param host: what to dial, as the client named it (checked already).
    :param originator: the client's ``(host, port)`` for the connection.
    """

    def __init__(
        self,
        *,
        reactor: Any,
        open_session: Any,
        helper: ForwardHelper,
        host: str,
        port: int,
        originator: tuple[str, int],
        log: CodeLogger,
        unix: bool = False,
    ) -> None:
        self._reactor = reactor
        self._open_session = open_session
        self._helper = helper
        self._host = host
        self._port = port
        self._unix = unix
        self._originator = originator
        self._log = log
        self._inner: Any = None
        self._io: ISessionIO | None = None
        #: Set while the helper is spoken to; None for nc or socat.
        self._speaking: _HelperSpeaker | None = None
        self._closed = False

    @property
    def _target(self) -> str:
        return self._host if self._unix else f"{self._host}:{self._port}"

    # IBackendSession

    def set_env(self, name: str, value: str) -> None:
        raise ContainerSSHError(
            messages.SSH_FORWARD_FAILED,
            FORWARD_FAILED_MESSAGE,
            "a forwarded connection has no environment",
        )

    def set_pty(self, pty: Any) -> None:
        raise ContainerSSHError(
            messages.SSH_FORWARD_FAILED,
            FORWARD_FAILED_MESSAGE,
            "a forwarded connection has no terminal",
        )

    def start(self, program: ProgramRequest, io: ISessionIO) -> Deferred[None]:
        """Dial; the program asked for is ignored (a forward's program is its dialler)."""
        self._io = io
        return Deferred.fromCoroutine(self._start(io))

    async def _start(self, io: ISessionIO) -> None:
        try:
            await with_deadline(self._reactor, DIAL_TIMEOUT, self._dial(io))
        except DeadlineExceeded:
            await self._close_inner()
            raise ContainerSSHError(
                messages.SSH_FORWARD_FAILED,
                FORWARD_FAILED_MESSAGE,
                f"the dial of {self._target} did not finish in {DIAL_TIMEOUT:g} s",
            ) from None

    async def _dial(self, io: ISessionIO) -> None:
        if self._helper.kind is not HelperKind.PLAIN:
            try:
                await self._dial_with_helper(io)
                return
            except _NoHelper as e:
                self._helper.found(HelperKind.PLAIN, str(e))
        if self._closed:
            raise CancelledError()
        self._inner = self._open_session()
        command = (
            socket_dial_command(self._host) if self._unix else dial_command(self._host, self._port)
        )
        await self._inner.start(ProgramRequest("exec", command), io)

    async def _dial_with_helper(self, io: ISessionIO) -> None:
        self._inner = inner = self._open_session()
        speaker = self._speaking = _HelperSpeaker(inner, io, self._log)
        await inner.start(ProgramRequest("exec", self._helper.command), speaker)
        inner.write(
            encode_packet(PacketType.SETUP, 0, setup_payload(ConnectionType.PORT_DIAL))
            + encode_packet(
                PacketType.NEW_CONNECTION,
                _CONNECTION,
                new_connection_payload(
                    "unix" if self._unix else "tcp", self._host, self._port, *self._originator
                ),
            )
        )
        try:
            await speaker.connected
        except _NoHelper:
            self._speaking = None
            self._inner = None
            await inner.close()
            raise
        finally:
            if speaker.set_up:
                self._helper.found(HelperKind.HELPER)

    def write(self, data: bytes) -> None:
        if self._inner is None:
            return
        if self._speaking is not None:
            data = encode_packet(PacketType.DATA, _CONNECTION, data)
        self._inner.write(data)

    def close_stdin(self) -> None:
        if self._inner is None:
            return
        if self._speaking is not None:
            self._inner.write(encode_packet(PacketType.CLOSE_WRITE, _CONNECTION))
        else:
            self._inner.close_stdin()

    def register_input_producer(self, producer: Any) -> None:
        register = getattr(self._inner, "register_input_producer", None)
        if register is not None:
            register(producer)

    def resize(self, columns: int, rows: int, width: int = 0, height: int = 0) -> Deferred[None]:
        return succeed(None)

    def signal(self, name: str) -> Deferred[None]:
        raise ContainerSSHError(
            messages.SSH_FORWARD_FAILED,
            FORWARD_FAILED_MESSAGE,
            "a forwarded connection takes no signals",
        )

    def close(self) -> Deferred[None]:
        self._closed = True
        return Deferred.fromCoroutine(self._close_inner())

    def shutdown(self, *, kill: bool) -> Deferred[None]:
        return self.close()

    async def _close_inner(self) -> None:
        inner, self._inner = self._inner, None
        if inner is None:
            return
        if self._speaking is not None:
            await end_helper(inner)
        else:
            await inner.close()  # nc may keep reading after its stdin ends


class _HelperSpeaker:
    """The helper's side of a dial: decodes its packets for the channel's ``io``.

    It is the ``ISessionIO`` of the helper's program: DATA goes on to the
    channel as the connection's bytes, ``CLOSE_WRITE`` becomes EOF, and the
    helper's end (after the connection closed) ends the channel.
    """

    def __init__(self, inner: Any, io: ISessionIO, log: CodeLogger) -> None:
        self._inner = inner
        self._io = io
        self._log = log
        self._decoder = PacketDecoder(self._packet)
        self.set_up = False
        self._running = False
        self._output_closed = False
        self._stderr = bytearray()
        self._producer: Any = None
        self.connected: Deferred[None] = Deferred()

    # ISessionIO of the helper's program

    def stdout(self, data: bytes) -> None:
        try:
            self._decoder.feed(data)
        except ProtocolError as e:
            self._protocol_error(str(e))

    def stderr(self, data: bytes) -> None:
        if self._running:
            self._io.stderr(data)
        elif len(self._stderr) < _MAX_REPORT:
            self._stderr += data[: _MAX_REPORT - len(self._stderr)]

    def output_closed(self) -> None:
        self._eof()

    def exited(self, status: ExitStatus) -> None:
        if not self.connected.called:
            report = self._stderr.decode("utf-8", "replace").strip()
            why = report or f"the helper ended with {status.code or status.signal}"
            self._fail(_NoHelper(why) if not self.set_up else self._failure(why))
            return
        self._eof()
        self._io.exited(status)

    def register_producer(self, producer: Any) -> None:
        # Until the dial is answered the channel holds its output (its start
        # is not answered yet) and would pause the helper: the answer would
        # never come. The helper's replies before that are a few bytes.
        self._producer = producer
        if self._running:
            self._io.register_producer(producer)

    def unregister_producer(self) -> None:
        if self._producer is not None and self._running:
            self._io.unregister_producer()
        self._producer = None

    # packets

    def _packet(self, packet: Packet) -> None:
        kind, connection = packet.type, packet.connection_id
        if not self.set_up:
            if kind == PacketType.SUCCESS and connection == 0:
                self.set_up = True
            else:
                self._fail(_NoHelper(f"the helper answered the setup with packet type {kind}"))
            return
        if connection != _CONNECTION:
            return
        if kind == PacketType.DATA:
            if self._running and not self._output_closed:
                self._io.stdout(packet.payload)
        elif kind == PacketType.SUCCESS and not self._running:
            self._running = True
            if self._producer is not None:
                self._io.register_producer(self._producer)
            self.connected.callback(None)
        elif kind == PacketType.ERROR and not self._running:
            reason = packet.payload.decode("utf-8", "replace").strip() or "the dial failed"
            self._fail(self._failure(reason))
            self._inner.close_stdin()
        elif kind == PacketType.CLOSE_WRITE:
            self._eof()
        elif kind == PacketType.CLOSE_CONNECTION:
            self._eof()
            # The answer, then the helper's stdin ends and with it the helper.
            self._inner.write(encode_packet(PacketType.SUCCESS, _CONNECTION))
            self._inner.close_stdin()

    def _eof(self) -> None:
        if self._running and not self._output_closed:
            self._output_closed = True
            self._io.output_closed()

    def _protocol_error(self, reason: str) -> None:
        if not self.set_up:
            self._fail(_NoHelper(f"the helper's output is not the forwarding protocol: {reason}"))
            return
        self._log.event(
            messages.SSH_FORWARD_FAILED,
            "The forwarding helper broke the protocol: {reason}",
            reason=reason,
        )
        self._fail(self._failure(reason))
        self._inner.close()

    def _failure(self, reason: str) -> ContainerSSHError:
        return ContainerSSHError(messages.SSH_FORWARD_FAILED, FORWARD_FAILED_MESSAGE, reason)

    def _fail(self, error: Exception) -> None:
        if not self.connected.called:
            self.connected.errback(error)

"""Exec and attach over WebSocket: the ``channel.k8s.io`` protocol on a Docker stream.

Every WebSocket message starts with its channel: 0 stdin, 1 stdout, 2
stderr, 3 the final ``Status``, 4 a resize (``{"Width": W, "Height": H}``).
``v5.channel.k8s.io`` adds channel 255: ``255, 0`` closes stdin, which
``v4.channel.k8s.io`` cannot say (there stdin ends with the connection).

The program's side is the engine's stream (an exec, or the container's
attach), moved by the reactor: each side is registered as the producer of
the other's transport, so a slow reader pauses its writer instead of
filling a buffer.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from conch_container import messages
from conch_container.backend.docker.engine.errors import EngineError
from conch_container.backend.docker.engine.stream import FrameDemuxer
from conch_container.backend.docker.engine.upgrade import UpgradedStream
from conch_container.backend.kubernetes.wstimers import cancel_close_timer, unbatched
from conch_container.log import CodeLogger
from conch_container.testing.kubeapi.runtime import DockerPods
from conch_container.testing.kubeapi.status import exec_result, stream_error

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
STDIN, STDOUT, STDERR, STATUS, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255

#: The most stdin held while the program's stream is still being opened.
MAX_PENDING_STDIN = 1024 * 1024
#: The largest WebSocket message accepted from a client.
MAX_MESSAGE = 1024 * 1024


@attrs.frozen
class StreamTarget:
    """What one exec or attach request asks for; ``command`` is None for an attach."""

    pods: DockerPods
    container_id: str
    command: list[str] | None
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool
    log: CodeLogger


def factory(target: StreamTarget) -> WebSocketServerFactory:
    """A factory for one request's WebSocket (the request has chosen the stream)."""
    ws = WebSocketServerFactory()
    ws.protocol = lambda: ChannelProtocol(target)  # type: ignore[assignment]
    ws.setProtocolOptions(maxMessagePayloadSize=MAX_MESSAGE, maxFramePayloadSize=MAX_MESSAGE)
    unbatched(ws, target.pods.reactor)
    return ws


@implementer(IPushProducer)
class _PauseOnly:
    """Lets one side's transport pause and resume the other's reading, and no more.

    A transport stops its producer when its own connection ends; each side
    ends on its own terms here (the status is sent after the program's stream
    ended), so that stop is not passed on.
    """

    def __init__(self, transport: Any) -> None:
        self._transport = transport

    def pauseProducing(self) -> None:
        self._transport.pauseProducing()

    def resumeProducing(self) -> None:
        self._transport.resumeProducing()

    def stopProducing(self) -> None:
        pass


@implementer(IHalfCloseableProtocol)
class _ProgramSide(Protocol):
    """The engine's stream: output to the WebSocket, its end to :attr:`ended`."""

    transport: Any

    def __init__(self, web: ChannelProtocol, tty: bool) -> None:
        self.ended: Deferred[None] = Deferred()
        self._web = web
        out, err = web.output(STDOUT), web.output(STDERR)
        self._demux = None if tty else FrameDemuxer(out, err)
        self._raw = out

    def dataReceived(self, data: bytes) -> None:
        if self._demux is None:
            self._raw(data)
        else:
            self._demux.feed(data)

    def readConnectionLost(self) -> None:
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure | None = None) -> None:
        if not self.ended.called:
            self.ended.callback(None)


class ChannelProtocol(WebSocketServerProtocol):
    """One exec or attach: the client's WebSocket joined to the program's stream."""

    transport: Any

    def __init__(self, target: StreamTarget) -> None:
        super().__init__()
        self._target = target
        self._engine = target.pods.engine
        self._program: Any = None
        self._exec_id: str | None = None
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._stdin_closed = False
        self._pending_resize: tuple[int, int] | None = None
        self._open = False

    def onConnect(self, request: ConnectionRequest) -> str:
        for offered in (V5, V4):
            if offered in request.protocols:
                self._version = offered
                return offered
        raise ConnectionDeny(400, f"one of the subprotocols {V5}, {V4} is required")

    def onOpen(self) -> None:
        self._open = True
        Deferred.fromCoroutine(self._run()).addErrback(self._failed)

    def output(self, channel: int) -> Any:
        wanted = self._target.stdout if channel == STDOUT else self._target.stderr

        def send(data: bytes) -> None:
            if wanted and self._open and data:
                self.sendMessage(bytes([channel]) + bytes(data), isBinary=True)

        return send

    async def _run(self) -> None:
        target = self._target
        try:
            if target.command is not None:
                self._exec_id = await self._engine.exec_create(
                    target.container_id, target.command, [], target.tty
                )
                stream: UpgradedStream = await self._engine.exec_attach(self._exec_id, target.tty)
            else:
                stream = await self._engine.container_attach(target.container_id)
        except EngineError as e:
            self._finish(stream_error(str(e)), str(e))
            return
        if not self._open:
            stream.close()
            return
        program = _ProgramSide(self, target.tty)
        self._program = stream.attach(program)
        self._couple()
        for data in self._pending:
            self._program.write(data)
        self._pending = []
        if self._stdin_closed or (not target.stdin and target.command is not None):
            self._end_program_stdin()
        if self._pending_resize is not None:
            self._resize(*self._pending_resize)
        await program.ended
        try:
            if self._exec_id is not None:
                exit_code = int(
                    (await self._engine.exec_inspect(self._exec_id)).get("ExitCode") or 0
                )
            else:
                exit_code = int(
                    (await self._engine.container_state(target.container_id)).get("ExitCode") or 0
                )
        except EngineError as e:
            self._finish(stream_error(str(e)), str(e))
            return
        self._finish(exec_result(exit_code))

    def _couple(self) -> None:
        """Each side pauses the other when its own output backs up."""
        try:
            self.transport.unregisterProducer()  # the HTTP channel's, before the upgrade
            self.transport.registerProducer(_PauseOnly(self._program), True)
            self._program.registerProducer(_PauseOnly(self.transport), True)
        except (RuntimeError, AttributeError):
            pass  # a transport that cannot: output is then buffered as it comes

    def _finish(self, status: dict[str, Any], reason: str | None = None) -> None:
        if reason is not None:
            self._target.log.event(
                messages.KUBEAPI_ENGINE_FAILED,
                "An exec or attach stream failed: {reason}",
                reason=reason,
            )
        if self._open:
            self.sendMessage(bytes([STATUS]) + json.dumps(status).encode("utf-8"), isBinary=True)
            self.sendClose(1000)

    def _failed(self, failure: Failure) -> None:
        self._target.log.failure(
            messages.KUBEAPI_FAILED, "An exec or attach stream failed", failure
        )
        if self._open:
            self.sendClose(1011)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if not payload:
            return
        channel, data = payload[0], payload[1:]
        if channel == STDIN and self._target.stdin and not self._stdin_closed:
            self._stdin(data)
        elif channel == RESIZE and self._target.tty:
            self._resize_message(data)
        elif channel == CLOSE and self._version == V5 and data[:1] == bytes([STDIN]):
            self._close_stdin()

    def _stdin(self, data: bytes) -> None:
        if self._program is not None:
            self._program.write(data)
            return
        self._pending_size += len(data)
        if self._pending_size > MAX_PENDING_STDIN:
            self._finish(stream_error("too much input before the program started"))
            return
        self._pending.append(data)

    def _close_stdin(self) -> None:
        self._stdin_closed = True
        if self._program is not None:
            self._end_program_stdin()

    def _end_program_stdin(self) -> None:
        """Half-close the program's stream once what is buffered for it is written.

        A transport whose streaming producer is paused when its buffer drains
        resumes the producer instead of making a pending half-close, so the
        WebSocket stops being its producer (and reads again) first.
        """
        try:
            self._program.unregisterProducer()
            self.transport.resumeProducing()
        except (RuntimeError, AttributeError):
            pass
        self._program.loseWriteConnection()

    def _resize_message(self, data: bytes) -> None:
        try:
            size = json.loads(data)
            width, height = int(size["Width"]), int(size["Height"])
        except (ValueError, KeyError, TypeError):
            return  # the kubelet ignores an unreadable resize too
        if self._program is None:
            self._pending_resize = (width, height)
        else:
            self._resize(width, height)

    def _resize(self, width: int, height: int) -> None:
        if self._exec_id is not None:
            resized = self._engine.exec_resize(self._exec_id, height, width)
        else:
            resized = self._engine.container_resize(self._target.container_id, height, width)
        resized.addErrback(lambda f: f.trap(EngineError))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        cancel_close_timer(self)
        self._open = False
        if self._program is not None:
            if self._target.command is not None:
                self._program.abortConnection()
            else:
                self._program.loseConnection()  # detach; the container goes on

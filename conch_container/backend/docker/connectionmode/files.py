"""Authentication's ``files`` written into a running container by the guest agent.

In ``connection`` mode each file is written right after the container
started and before the connection is handed to the SSH layer, so it exists
before the first program runs (reference section 4.4): an exec of the agent's
``write-file PATH`` (mode 0600, as the container's user) is fed the content
on stdin. A failure is logged (``DOCKER_FILE_WRITE_FAILED``, as ContainerSSH
logs it) and the connection goes on without the file; with the agent
disabled, no file is written.

The exec's stream is driven by the reactor like a program's (an HTTP upgrade,
:mod:`~conch_container.backend.docker.engine.upgrade`); no thread waits on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from twisted.internet import task
from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol, IReactorTime, ITransport
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from conch_container import messages
from conch_container.backend.docker.agent import GuestAgent
from conch_container.backend.docker.engine.errors import EngineError
from conch_container.backend.docker.engine.stream import FrameDemuxer, StreamProtocolError
from conch_container.backend.docker.engine.upgrade import UpgradedStream
from conch_container.backend.docker.execops import EXIT_POLL_FIRST, EXIT_POLL_MAX
from conch_container.deferreds import (
    DeadlineExceeded,
    Once,
    await_resource,
    with_deadline,
)
from conch_container.log.logger import CodeLogger

#: How much of the agent's error output is quoted in the log.
_STDERR_QUOTED = 500
_CONNECTION_DONE = Failure(ConnectionDone())


@attrs.frozen
class ExecResult:
    """How a short exec ended."""

    code: int
    stdout: bytes
    stderr: bytes


class ExecFailed(Exception):
    """The exec could not be run or its stream could not be read."""


@implementer(IHalfCloseableProtocol)
class _Collector(Protocol):
    """Collects a non-TTY exec's output until the engine closes the stream."""

    transport: ITransport

    def __init__(self) -> None:
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.error: str | None = None
        self.closed: Once[None] = Once()
        self._demuxer = FrameDemuxer(self.stdout.extend, self.stderr.extend)

    def dataReceived(self, data: bytes) -> None:
        if self.error is not None:
            return
        try:
            self._demuxer.feed(data)
        except StreamProtocolError as e:
            self.error = str(e)
            self.transport.loseConnection()

    def readConnectionLost(self) -> None:
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        """Stdin is closed; the output keeps coming."""

    def connectionLost(self, reason: Failure = _CONNECTION_DONE) -> None:
        if self.error is None and self._demuxer.in_frame:
            self.error = "the output ended in the middle of a frame"
        if self.error is None and reason.check(ConnectionDone) is None:
            self.error = reason.getErrorMessage()
        self.closed.fire(None)


async def run_with_input(
    reactor: Any, engine: Any, container_id: str, cmd: Sequence[str], data: bytes
) -> ExecResult:
    """Run ``cmd`` in the container with ``data`` as its whole stdin.

    It waits for the program to end: bound it with a deadline. Cancelling
    drops the stream (which ends the exec's attachment).

    :raises ExecFailed: when the engine refuses the exec or its stream breaks.
    """
    try:
        exec_id = await engine.exec_create(container_id, cmd, [], False)
        # A stream that arrives after cancellation is closed.
        stream = await await_resource(engine.exec_attach(exec_id, False), UpgradedStream.close)
    except EngineError as e:
        raise ExecFailed(e.message) from None
    collector = _Collector()
    try:
        transport: Any = stream.attach(collector)
    except Exception as e:
        stream.close()
        raise ExecFailed(str(e)) from e
    transport.write(data)
    transport.loseWriteConnection()
    try:
        await collector.closed.wait()
    except CancelledError:
        transport.abortConnection()
        raise
    if collector.error is not None:
        raise ExecFailed(collector.error)
    code = await _exit_code(reactor, engine, exec_id)
    return ExecResult(code, bytes(collector.stdout), bytes(collector.stderr))


async def _exit_code(clock: IReactorTime, engine: Any, exec_id: str) -> int:
    """The exit code of an exec whose stream ended; polled while still running."""
    delay = EXIT_POLL_FIRST
    while True:
        try:
            info = await engine.exec_inspect(exec_id)
        except EngineError as e:
            raise ExecFailed(e.message) from None
        if not info.get("Running"):
            code = info.get("ExitCode")
            if not isinstance(code, int) or isinstance(code, bool):
                raise ExecFailed("the engine reported no exit code")
            return code
        await task.deferLater(clock, delay)
        delay = min(delay * 2, EXIT_POLL_MAX)


async def write_files(
    reactor: Any,
    engine: Any,
    container_id: str,
    agent: GuestAgent | None,
    files: Mapping[str, object],
    *,
    timeout: float,
    log: CodeLogger,
) -> int:
    """Write each of ``files`` (path to :class:`~conch_container.metadata.FileValue`).

    Each write is bounded by ``timeout`` seconds; failures are logged, never
    raised (cancellation excepted).

    :return: how many files were written.
    """
    written = 0
    for path, value in files.items():
        content = getattr(value, "value", value)
        if agent is None:
            log.event(
                messages.DOCKER_FILE_WRITE_FAILED,
                "The guest agent is disabled: not writing file {path}",
                path=path,
            )
            continue
        if not isinstance(content, bytes | bytearray):
            log.event(
                messages.DOCKER_FILE_WRITE_FAILED,
                "Not writing file {path}: its content is not bytes",
                path=path,
            )
            continue
        log.event(messages.DOCKER_FILE_WRITE, "Writing file {path}", path=path)
        reason = await _write_one(
            reactor, engine, container_id, agent, path, bytes(content), timeout
        )
        if reason is None:
            written += 1
            continue
        log.event(
            messages.DOCKER_FILE_WRITE_FAILED,
            "Failed to write file {path}: {reason}",
            path=path,
            reason=reason,
        )
    return written


async def _write_one(
    reactor: Any,
    engine: Any,
    container_id: str,
    agent: GuestAgent,
    path: str,
    content: bytes,
    timeout: float,
) -> str | None:
    """Why writing one file failed, or None."""
    try:
        result = await with_deadline(
            reactor,
            timeout,
            run_with_input(reactor, engine, container_id, agent.write_file(path), content),
        )
    except (ExecFailed, DeadlineExceeded) as e:
        return str(e)
    if result.code == 0:
        return None
    said = result.stderr[:_STDERR_QUOTED].decode("utf-8", "replace").strip()
    return f"the guest agent exited with {result.code}" + (f": {said}" if said else "")

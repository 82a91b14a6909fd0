"""An in-memory container backend for tests.

:class:`FakeBackend` implements the backend interfaces without containers:
every connection gets a pretend container, every session runs its program in
a tiny shell (:mod:`conch_container.testing.fakeshell`) on the clock the
backend was given. It is deterministic, passes the backend conformance suite,
and records what happened so tests can assert on it (containers created and
removed, environment, terminal sizes, signals). It can be told to fail
``connect()`` or ``start()`` to test error paths.

Its behaviour follows the Docker backend's contract: errors carry the Docker
message codes, a terminal turns ``\\n`` into ``\\r\\n`` and echoes input
(Ctrl-C interrupts the running command, Ctrl-D on an empty line is end of
input), and stderr is merged into stdout when there is a terminal. Unlike the
Docker backend, a signal ends the program with an ``exit-signal`` (Docker
reports exit codes only), which lets the SSH server's signal path be tested.
"""

from __future__ import annotations

import itertools
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from zope.interface import implementer

from conch_container import messages
from conch_container.errors import GENERIC_USER_MESSAGE, ContainerSSHError, RequestRejected
from conch_container.interfaces import (
    ConnectionContext,
    ExitStatus,
    IBackendConnection,
    IBackendSession,
    IContainerBackend,
    ProgramRequest,
    PtyRequest,
)
from conch_container.testing.fakeshell import ExitShell, Pipe, Shell

#: The environment every fake program starts with.
DEFAULT_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root"}


def _error(code: Any, explanation: str) -> ContainerSSHError:
    return ContainerSSHError(code, GENERIC_USER_MESSAGE, explanation)


@implementer(IContainerBackend)
class FakeBackend:
    """The fake backend.

    :param clock: the reactor or :class:`~twisted.internet.task.Clock` that
        programs run on (``sleep`` waits on it).
    :param subsystems: subsystem name to the command line that serves it,
        e.g. ``{"echo": "cat"}``; other subsystems are refused.
    :param env: the environment programs start with (before what
        authentication and ``env`` requests add).

    :ivar connect_error: when set, ``connect()`` fails with it.
    :ivar start_error: when set, every ``start()`` fails with it.
    :ivar start_delay: seconds (on the clock) ``start()`` takes, as a real
        backend needs time to create and attach the program.
    :ivar operation_delay: seconds (on the clock) each ``resize()`` and
        ``signal()`` takes, as a real backend's engine call does.
    :ivar trapped_signals: signal names a program survives (it handles
        them); they are recorded as delivered, and the program runs on.
    :ivar forbidden_env: variable names ``set_env`` refuses.
    :ivar hold_connects: when True, ``connect()`` waits until :meth:`release_connects`.
    :ivar created: container ids in creation order.
    :ivar removed: container ids in removal order.
    :ivar connections: every :class:`FakeConnection` made.
    :ivar errors: unexpected failures inside fake programs (should stay empty).
    """

    name = "fake"

    def __init__(
        self,
        clock: IReactorTime,
        subsystems: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.clock = clock
        self.subsystems = dict(subsystems or {})
        self.env = dict(DEFAULT_ENV if env is None else env)
        self.connect_error: ContainerSSHError | None = None
        self.start_error: ContainerSSHError | None = None
        self.start_delay = 0.0
        self.operation_delay = 0.0
        self.trapped_signals: set[str] = set()
        self.forbidden_env: set[str] = set()
        self.hold_connects = False
        self.created: list[str] = []
        self.removed: list[str] = []
        self.connections: list[FakeConnection] = []
        self.errors: list[Failure] = []
        self._held: list[Deferred[None]] = []
        self._ids = itertools.count(1)

    @property
    def live_containers(self) -> list[str]:
        """Containers created and not removed yet."""
        return [c for c in self.created if c not in self.removed]

    @property
    def sessions(self) -> list[FakeSession]:
        """Every session of every connection, in the order they were opened."""
        return [s for c in self.connections for s in c.sessions.values()]

    async def connect(self, context: ConnectionContext) -> FakeConnection:
        """Create the connection's pretend container."""
        if self.hold_connects:
            waiter: Deferred[None] = Deferred()
            self._held.append(waiter)
            await waiter
        if self.connect_error is not None:
            raise self.connect_error
        container_id = f"fake{next(self._ids):04d}"
        self.created.append(container_id)
        connection = FakeConnection(self, container_id, context)
        self.connections.append(connection)
        return connection

    def release_connects(self) -> None:
        """Let every held ``connect()`` continue."""
        held, self._held = self._held, []
        for waiter in held:
            waiter.callback(None)


@implementer(IBackendConnection)
class FakeConnection:
    """One connection's pretend container and its sessions."""

    def __init__(self, backend: FakeBackend, container_id: str, context: ConnectionContext) -> None:
        self.backend = backend
        self.container_id = container_id
        self.context = context
        self.sessions: dict[int, FakeSession] = {}
        #: ``(host, port, unix)`` of every forwarded connection opened.
        self.forwards: list[tuple[str, int, bool]] = []
        self.closed = False

    def open_forward(
        self, channel_id: int, host: str, port: int, *, unix: bool = False
    ) -> FakeSession:
        """A session for a forwarded connection's dialler (its program is the dial command)."""
        self.forwards.append((host, port, unix))
        return self.open_session(channel_id)

    def open_session(self, channel_id: int) -> FakeSession:
        """A session for a channel."""
        if self.closed:
            raise _error(messages.DOCKER_PROGRAM_NOT_RUNNING, "the connection is closed")
        env = dict(self.backend.env)
        metadata: Any = self.context.metadata
        env.update({k: v.value for k, v in getattr(metadata, "environment", {}).items()})
        session = FakeSession(self.backend, env, log=getattr(self.context, "log", None))
        self.sessions[channel_id] = session
        return session

    async def close(self) -> None:
        """End every session and remove the container. Idempotent."""
        if self.closed:
            return
        self.closed = True
        for session in list(self.sessions.values()):
            await session.close()
        self.backend.removed.append(self.container_id)


@implementer(IBackendSession, IPushProducer)
class FakeSession:
    """One program, run by the fake shell.

    :ivar env: the program's environment.
    :ivar pty: the terminal requested, if any (its size follows resizes).
    :ivar program: what was started.
    :ivar resizes: ``(columns, rows)`` of every resize.
    :ivar signals: every signal delivered.
    :ivar in_flight: how many resizes (``"resize"``) and signals
        (``"signal"``) are in progress now.
    :ivar max_in_flight: the most of each that were ever in progress at once.
    :ivar stdin_closed: whether the client closed stdin.
    :ivar input_producer: the producer of stdin the SSH side registered; the
        fake never pauses it by itself, a test pauses it to play a program
        that does not read.
    :ivar exit_status: how the program ended, once it did.
    :ivar closed: whether :meth:`close` was called.
    """

    def __init__(self, backend: FakeBackend, env: dict[str, str], log: Any = None) -> None:
        self._log = log
        self._backend = backend
        self.env = env
        self.pty: PtyRequest | None = None
        self.program: ProgramRequest | None = None
        self.resizes: list[tuple[int, int]] = []
        self.signals: list[str] = []
        self.in_flight = {"resize": 0, "signal": 0}
        self.max_in_flight = {"resize": 0, "signal": 0}
        self.stdin_closed = False
        self.input_producer: Any = None
        self.exit_status: ExitStatus | None = None
        self.closed = False
        self.stdin = Pipe()
        self._io: Any = None
        self._task: Deferred[None] | None = None
        self._shell: Shell | None = None
        self._finished = False
        self._killed_by: str | None = None
        self._paused = False
        self._resumed: Deferred[None] | None = None
        self._line = bytearray()

    @property
    def tty(self) -> bool:
        """Whether the program has a terminal."""
        return self.pty is not None

    @property
    def running(self) -> bool:
        """Started, not ended, not closed."""
        return self._task is not None and not self._finished and not self.closed

    # Before the start

    def set_env(self, name: str, value: str) -> None:
        """Add an environment variable."""
        if self.program is not None:
            raise _error(messages.DOCKER_PROGRAM_ALREADY_RUNNING, "env after program start")
        if name in self._backend.forbidden_env:
            raise _error(messages.SECURITY_ENV_REJECTED, f"setting {name} is not allowed")
        self.env[name] = value

    def set_pty(self, pty: PtyRequest) -> None:
        """Ask for a terminal."""
        if self.program is not None:
            raise _error(messages.DOCKER_PROGRAM_ALREADY_RUNNING, "pty-req after program start")
        self.pty = pty

    async def start(self, program: ProgramRequest, io: Any) -> None:
        """Run the program; it may produce output (and even end) before this returns."""
        if self.closed:
            raise _error(messages.DOCKER_PROGRAM_NOT_RUNNING, "the session is closed")
        if self.program is not None:
            raise _error(messages.DOCKER_PROGRAM_ALREADY_RUNNING, "a program was already started")
        # One program per session, even when this one fails to start.
        self.program = program
        if self._backend.start_error is not None:
            raise self._backend.start_error
        if self._backend.start_delay > 0:
            await deferLater(self._backend.clock, self._backend.start_delay)
            if self.closed:
                raise _error(messages.DOCKER_PROGRAM_NOT_RUNNING, "closed while starting")
        line = program.command
        if program.kind == "subsystem":
            served = self._backend.subsystems.get(program.command)
            if served is None:
                # Refused like the real backends refuse it: logged, then a failure reply.
                refusal = RequestRejected(
                    messages.DOCKER_SUBSYSTEM_NOT_SUPPORTED,
                    GENERIC_USER_MESSAGE,
                    f"subsystem {program.command} is not configured",
                    subsystem=program.command,
                )
                if self._log is not None:
                    refusal.log(self._log)
                raise refusal
            line = served
        self._io = io
        io.register_producer(self)
        self._shell = Shell(self, self._backend.clock)
        self._task = Deferred.fromCoroutine(self._main(program.kind, line))

    async def _main(self, kind: str, line: str) -> None:
        assert self._shell is not None
        try:
            if kind == "shell":
                status = await self._shell.interactive()
            else:
                status = await self._shell.run_line(line)
        except ExitShell as e:
            status = e.status
        except CancelledError:
            if self._killed_by is not None:
                self._end(ExitStatus(signal=self._killed_by))
            return
        except Exception:
            self._backend.errors.append(Failure())
            status = 255
        self._end(ExitStatus(code=status & 0xFF))

    def _end(self, status: ExitStatus) -> None:
        if self._finished or self.closed:
            return
        self._finished = True
        self.exit_status = status
        io, self._io = self._io, None
        io.output_closed()
        io.exited(status)

    # The Terminal the shell runs against

    async def out(self, data: bytes) -> None:
        """Program stdout."""
        await self._emit(data, stderr=False)

    async def err(self, data: bytes) -> None:
        """Program stderr (stdout when there is a terminal)."""
        await self._emit(data, stderr=True)

    async def _emit(self, data: bytes, stderr: bool) -> None:
        while self._paused:
            waiter: Deferred[None] = Deferred()
            self._resumed = waiter
            try:
                await waiter
            finally:
                if self._resumed is waiter:
                    self._resumed = None
        io = self._io
        if io is None:
            return
        if self.tty:
            io.stdout(data.replace(b"\n", b"\r\n"))
        elif stderr:
            io.stderr(data)
        else:
            io.stdout(data)

    def size(self) -> tuple[int, int] | None:
        """The terminal's columns and rows."""
        return (self.pty.columns, self.pty.rows) if self.pty is not None else None

    # IPushProducer: the SSH side pauses output while the client is full.

    def pauseProducing(self) -> None:
        """Stop producing output."""
        self._paused = True

    def resumeProducing(self) -> None:
        """Produce output again."""
        self._paused = False
        waiter, self._resumed = self._resumed, None
        if waiter is not None:
            waiter.callback(None)

    def stopProducing(self) -> None:
        """The consumer is gone."""
        self._stop()

    # While it runs

    def write(self, data: bytes) -> None:
        """Client stdin (through the terminal's line discipline when there is one)."""
        if not self.running:
            return
        if not self.tty:
            self.stdin.feed(data)
            return
        for byte in data:
            self._terminal_input(byte)

    def _terminal_input(self, byte: int) -> None:
        echo = self._io.stdout if self._io is not None else (lambda data: None)
        if byte in (0x0D, 0x0A):
            echo(b"\r\n")
            self._line += b"\n"
            self.stdin.feed(bytes(self._line))
            self._line.clear()
        elif byte == 0x03:
            echo(b"^C\r\n")
            self._line.clear()
            if self._shell is not None and not self._shell.interrupt():
                self.stdin.feed(b"\n")
        elif byte == 0x04:
            if self._line:
                self.stdin.feed(bytes(self._line))
                self._line.clear()
            else:
                self.stdin.close()
        elif byte in (0x08, 0x7F):
            if self._line:
                del self._line[-1]
                echo(b"\b \b")
        else:
            self._line.append(byte)
            echo(bytes((byte,)))

    def register_input_producer(self, producer: Any) -> None:
        """Keep the producer of stdin (stopped once the session closes)."""
        if self.closed:
            producer.stopProducing()
            return
        self.input_producer = producer

    def close_stdin(self) -> None:
        """The client sent EOF."""
        self.stdin_closed = True
        self.stdin.close()

    async def resize(self, columns: int, rows: int, width: int, height: int) -> None:
        """The terminal changed size."""
        if not self.running:
            raise _error(messages.DOCKER_PROGRAM_NOT_RUNNING, "resize without a running program")
        await self._operation("resize")
        self.resizes.append((columns, rows))
        if self.pty is not None:
            self.pty = PtyRequest(self.pty.term, columns, rows, width, height, self.pty.modes)

    async def signal(self, name: str) -> None:
        """Deliver a signal: the fake program ends with it, unless it traps it."""
        if not self.running:
            raise _error(messages.DOCKER_PROGRAM_NOT_RUNNING, "signal without a running program")
        await self._operation("signal")
        if not self.running:
            raise _error(messages.DOCKER_PROGRAM_NOT_RUNNING, "the program ended meanwhile")
        self.signals.append(name)
        if name in self._backend.trapped_signals:
            return
        self._killed_by = name
        assert self._task is not None
        self._task.cancel()

    async def _operation(self, kind: str) -> None:
        """Take ``operation_delay`` on the clock, counted as in progress meanwhile."""
        self.in_flight[kind] += 1
        self.max_in_flight[kind] = max(self.max_in_flight[kind], self.in_flight[kind])
        try:
            if self._backend.operation_delay > 0:
                await deferLater(self._backend.clock, self._backend.operation_delay)
        finally:
            self.in_flight[kind] -= 1

    async def close(self) -> None:
        """Stop the program if it runs; no output after this. Idempotent."""
        self._stop()

    def _stop(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._io = None
        self.stdin.close()
        producer, self.input_producer = self.input_producer, None
        if producer is not None:
            producer.stopProducing()
        if self._task is not None and not self._finished:
            self._finished = True
            self._task.cancel()

"""A session channel's program, as every container backend runs it.

Whatever runs the program (a Docker exec, a Docker container of its own, a
command in a Kubernetes pod), the channel's requests arrive in the same order
and mean the same: environment and terminal before the start, then stdin,
EOF, window changes and signals while the program runs, and one close.
:class:`ProgramSession` holds that state machine; a backend's subclass says
how the program is started, resized, signalled and released, and hands over
the program's stream once it has one.

The stream is seen through two small protocols: the :class:`ProgramTransport`
(stdin is written to it and half-closed; it is the output's producer; it can
be dropped) and the :class:`InputGate` (stdin's producer is registered with
it, and released before a half-close). Which codes the machine logs is the
backend's :class:`SessionCodes`.

Also here: :func:`program_command`, the argv of a request (an unconfigured
subsystem is refused), and :func:`logged_error`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import attrs
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IPushProducer

from conch_container.backend.program import UnknownSubsystem, program_argv
from conch_container.codes import Level, MessageCode
from conch_container.deferreds import DeadlineExceeded, Once, with_deadline
from conch_container.errors import ContainerSSHError, RequestRejected
from conch_container.interfaces import ISessionIO, ProgramRequest, PtyRequest
from conch_container.log.logger import CodeLogger

START_FAILED_MESSAGE = "Failed to start the program."


@attrs.frozen
class SessionCodes:
    """The message codes a :class:`ProgramSession` logs, one backend's set.

    :ivar already_running: a request only valid before the start came after it.
    :ivar not_running: a request needs a running program and there is none.
    :ivar input_failed: stdin could not be forwarded.
    :ivar close_input_failed: stdin could not be closed.
    :ivar resize: the terminal is being resized.
    :ivar resize_failed: the resize failed or did not finish in time.
    :ivar output_failed: the output stream failed (or could not be unregistered).
    :ivar subsystem_not_supported: the requested subsystem is not configured.
    """

    already_running: MessageCode
    not_running: MessageCode
    input_failed: MessageCode
    close_input_failed: MessageCode
    resize: MessageCode
    resize_failed: MessageCode
    output_failed: MessageCode
    subsystem_not_supported: MessageCode


@attrs.frozen
class SignalCodes:
    """The codes of a signal the guest agent cannot deliver, one backend's set.

    :ivar no_agent: the agent is disabled.
    :ivar unsupported: the agent cannot deliver a signal of that name.
    :ivar no_pid: the program's process id is not known.
    """

    no_agent: MessageCode
    unsupported: MessageCode
    no_pid: MessageCode


def logged_error(
    log: CodeLogger,
    code: MessageCode,
    user_message: str,
    explanation: str,
    *,
    level: Level | None = None,
    **details: Any,
) -> ContainerSSHError:
    """A :class:`ContainerSSHError`, logged, for the caller to raise."""
    error = ContainerSSHError(code, user_message, explanation, **details)
    if level is None:
        error.log(log)
    else:
        log.event(code, "{reason}", reason=explanation, level=level, **details)
    return error


def program_command(
    program: ProgramRequest,
    shell_command: Sequence[str],
    subsystems: Mapping[str, str],
    log: CodeLogger,
    code: MessageCode,
) -> list[str]:
    """The argv of ``program`` under a backend's ``shellCommand`` and ``subsystems``.

    :raises RequestRejected: (logged as ``code``, the backend's "subsystem not
        supported") for a subsystem that is not configured, so the client's
        request gets a plain failure reply, as OpenSSH answers a subsystem it
        does not serve; nothing is started.
    """
    try:
        return program_argv(program, shell_command=shell_command, subsystems=subsystems)
    except UnknownSubsystem as e:
        rejection = RequestRejected(
            code,
            "Subsystem not supported.",
            f"the requested subsystem {e.name!r} is not configured",
            subsystem=e.name,
        )
        rejection.log(log)
        raise rejection from None


class State(enum.Enum):
    """Where a session's program is in its life."""

    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    ENDED = "ended"
    CLOSED = "closed"


class ProgramTransport(Protocol):
    """The connection a program's stream runs over, as the session uses it.

    It is also registered with the channel as the output's
    :class:`~twisted.internet.interfaces.IPushProducer`, so a full SSH window
    stops reading the program's output.
    """

    def write(self, data: bytes) -> None:
        """Send stdin to the program."""

    def loseWriteConnection(self) -> None:
        """Close the program's stdin; its output keeps flowing."""

    def abortConnection(self) -> None:
        """Drop the stream at once."""

    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...

    def stopProducing(self) -> None: ...


class InputGate(Protocol):
    """Where stdin's producer is registered, so that a slow program paces the client."""

    def register_input(self, producer: IPushProducer) -> None:
        """Pause ``producer`` while more stdin waits to be written than the stream holds."""

    def release_input(self) -> None:
        """Unregister and stop stdin's producer, if any (before a half-close)."""


class ProgramSession:
    """The channel side of a session's program, common to every backend.

    A subclass provides :attr:`_log`, ``_start`` (which hands the stream over
    with :meth:`_adopt_stream`), ``_request_resize``, ``_signal``,
    ``_release``, and the stream's events it handles (``output_ended``, and
    with the guest agent ``pid_received`` and ``pid_failed``); the stream
    calls :meth:`stream_closed` once it is fully closed.

    :param reactor: provides the clock.
    :param codes: the backend's message codes.
    :param resize_timeout: seconds a terminal resize may take (``timeouts.window``).
    :param on_closed: called with the session once it is closed.
    """

    #: What ``codes.resize`` says (fields: ``width``, ``height``).
    _resize_format: ClassVar[str] = "Resizing terminal to {width}x{height}"
    #: The failures of the backend's calls (a resize is logged and refused on these).
    _call_errors: ClassVar[tuple[type[Exception], ...]] = ()

    def __init__(
        self,
        *,
        reactor: Any,
        codes: SessionCodes,
        resize_timeout: float,
        on_closed: Callable[[Any], object] | None,
    ) -> None:
        self._reactor = reactor
        self._codes = codes
        self._resize_timeout = resize_timeout
        self._on_closed = on_closed
        self._env: dict[str, str] = {}
        self._pty: PtyRequest | None = None
        self._state = State.NEW
        self._io: Any = None
        #: The stream's transport: write, half-close, produce output.
        self._transport: ProgramTransport | None = None
        #: Where the stream holds stdin's producer.
        self._input_gate: InputGate | None = None
        #: Stdin held back until the guest agent's PID has come through a
        #: terminal (None: nothing held): the terminal echoes what it is given,
        #: and an echo ahead of the PID would be read as the PID.
        self._held_input: list[bytes] | None = None
        self._input_producer: IPushProducer | None = None
        self._producer_registered = False
        self._stream_closed: Once[None] = Once()
        self._start_d: Deferred[None] | None = None
        self._exit_d: Deferred[None] | None = None
        #: The signals delivered to the program, to tell a death by signal from an exit code.
        self._delivered: set[str] = set()
        self._close_once: Once[None] | None = None

    @property
    def _log(self) -> CodeLogger:
        """The session's logger."""
        raise NotImplementedError

    # -- before start

    def set_env(self, name: str, value: str) -> None:
        self._refuse_if_started()
        self._env[name] = value

    def set_pty(self, pty: PtyRequest) -> None:
        self._refuse_if_started()
        self._pty = pty

    def _refuse_if_started(self) -> None:
        if self._state is not State.NEW:
            raise self._error(
                self._codes.already_running,
                "A program is already running on this channel.",
                "the client sent a request that is only valid before the program starts",
            )

    # -- start

    def start(self, program: ProgramRequest, io: ISessionIO) -> Deferred[None]:
        """Start ``program``; output may reach ``io`` before the result fires."""
        d = Deferred.fromCoroutine(self._start(program, io))
        if not d.called:
            self._start_d = d
        return d

    async def _start(self, program: ProgramRequest, io: ISessionIO) -> None:
        raise NotImplementedError

    def _adopt_stream(self, transport: ProgramTransport, gate: InputGate) -> None:
        """Take the program's stream; its transport becomes the output's producer."""
        self._transport = transport
        self._input_gate = gate
        self._io.register_producer(transport)
        self._producer_registered = True

    async def _resize_to_pty(self) -> None:
        """Give a program that just started the terminal size requested; never fails."""
        if self._pty is None:
            return
        try:
            await self._resize(self._pty.columns, self._pty.rows)
        except ContainerSSHError:
            pass  # logged; the program runs with the default size
        except CancelledError:
            pass  # closed meanwhile; the program did start

    # -- while running

    def write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or self._state is not State.RUNNING:
            return
        if self._held_input is not None:
            # At most the client's window: its producer is paused meanwhile.
            self._held_input.append(data)
            return
        try:
            transport.write(data)
        except Exception as e:
            self._log.event(
                self._codes.input_failed,
                "Failed to forward input: {reason}",
                reason=str(e),
            )

    def register_input_producer(self, producer: IPushProducer) -> None:
        """Pause the client's stdin while the stream holds more than it has sent on.

        The stream's transport pauses a streaming producer while more than its
        ``bufferSize`` waits to be written, that is while the program reads
        slower than the client sends, and resumes it once that was written.
        """
        gate = self._input_gate
        if gate is None or self._state is not State.RUNNING:
            producer.stopProducing()
            return
        gate.register_input(producer)
        self._input_producer = producer
        if self._held_input is not None:
            producer.pauseProducing()

    def _hold_input_until_pid(self) -> None:
        """Keep stdin from the program until :meth:`_release_held_input`."""
        self._held_input = []

    def _release_held_input(self, *, deliver: bool) -> None:
        """Pass on (or, without ``deliver``, drop) the held stdin and let more come."""
        held, self._held_input = self._held_input, None
        if held is None:
            return
        producer = self._input_producer
        if producer is not None:
            # Resumed before the writes: the stream's transport pauses it again
            # if they fill its buffer.
            producer.resumeProducing()
        if deliver:
            for data in held:
                self.write(data)

    def close_stdin(self) -> None:
        transport = self._transport
        gate = self._input_gate
        if transport is None or gate is None or self._state is not State.RUNNING:
            return
        if self._pty is not None:
            # A terminal has no end of input (a user types ^D), and an engine
            # may answer a half-closed TTY stream by dropping the output (Docker
            # does: an exec then never reports an exit code, a container's
            # program keeps running); so, like sshd with a pty, ignore it.
            return
        # Without a TTY the program's stdin is closed and its output keeps
        # flowing; the half-close waits for no producer (see
        # InputGate.release_input).
        try:
            gate.release_input()
            transport.loseWriteConnection()
        except Exception as e:
            raise self._error(
                self._codes.close_input_failed, "Failed to close the input.", str(e)
            ) from e

    def resize(self, columns: int, rows: int, width: int = 0, height: int = 0) -> Deferred[None]:
        return Deferred.fromCoroutine(self._resize_running(columns, rows))

    async def _resize_running(self, columns: int, rows: int) -> None:
        self._require_running()
        await self._resize(columns, rows)

    async def _resize(self, columns: int, rows: int) -> None:
        """Resize the terminal, waiting at most ``resize_timeout``.

        A failure of the backend's call (one of :attr:`_call_errors`) or a
        timeout is raised as ``codes.resize_failed``; at debug level only if
        :meth:`_resize_error_means_ended`.
        """
        self._log.event(self._codes.resize, self._resize_format, width=columns, height=rows)
        failures: tuple[type[Exception], ...] = (*self._call_errors, DeadlineExceeded)
        try:
            await with_deadline(
                self._reactor, self._resize_timeout, self._request_resize(columns, rows)
            )
        except failures as e:
            ended = not isinstance(e, DeadlineExceeded) and self._resize_error_means_ended(e)
            raise self._error(
                self._codes.resize_failed,
                "Failed to resize the terminal.",
                getattr(e, "message", str(e)),
                level=Level.DEBUG if ended else None,
                width=columns,
                height=rows,
            ) from None

    def _request_resize(self, columns: int, rows: int) -> Deferred[Any]:
        """The backend's call that resizes the running program's terminal."""
        raise NotImplementedError

    def _resize_error_means_ended(self, error: Exception) -> bool:
        """Whether a failed resize says the program already ended (not worth a warning)."""
        return False

    def signal(self, name: str) -> Deferred[None]:
        return Deferred.fromCoroutine(self._signal(name))

    async def _signal(self, name: str) -> None:
        raise NotImplementedError

    async def _pid_for_signal(
        self,
        name: str,
        *,
        agent: bool,
        supported: frozenset[str],
        handshake: Once[None],
        pid: Callable[[], int | None],
        timeout: float,
        codes: SignalCodes,
    ) -> int:
        """The process id signal ``name`` goes to through the guest agent, or a logged refusal.

        Right after the start the agent's PID handshake may still be on its
        way: it is waited for within ``timeout``.
        """
        self._require_running()
        if not agent:
            raise self._error(
                codes.no_agent,
                "Signals are not supported.",
                "signals need the guest agent, which is disabled",
                signal=name,
            )
        if name not in supported:
            raise self._error(
                codes.unsupported,
                "Unsupported signal.",
                "the signal is not one the guest agent can deliver",
                signal=name,
            )
        if pid() is None and not handshake.done:
            try:
                await with_deadline(self._reactor, timeout, handshake.wait())
            except DeadlineExceeded:
                pass
            self._require_running()
        known = pid()
        if known is None:
            raise self._error(
                codes.no_pid,
                "Signals are not supported.",
                "no process id is known for the program",
                signal=name,
            )
        return known

    def _require_running(self) -> None:
        if self._state is not State.RUNNING:
            raise self._error(
                self._codes.not_running,
                "No program is running.",
                "the request needs a running program",
            )

    # -- the stream's events

    def stream_closed(self) -> None:
        """The program's stream is fully closed (after its output ended)."""
        self._stream_closed.fire(None)

    def _output_over(self, error: str | None) -> bool:
        """The output ended (``error`` logged if not None); whether an exit status is wanted.

        Not once the channel is closed; otherwise the program has ended and
        the channel is told its output is complete.
        """
        self._unregister_producer()
        if self._state is State.CLOSED:
            return False
        if error is not None:
            self._log.event(
                self._codes.output_failed,
                "The output stream failed: {reason}",
                reason=error,
            )
        self._state = State.ENDED
        self._io.output_closed()
        return True

    def _unregister_producer(self) -> None:
        if self._producer_registered:
            self._producer_registered = False
            try:
                self._io.unregister_producer()
            except Exception as e:
                self._log.event(
                    self._codes.output_failed,
                    "Could not unregister the output stream: {reason}",
                    reason=str(e),
                    level=Level.DEBUG,
                )

    # -- close

    def close(self) -> Deferred[None]:
        """End the program if it still runs and release what it holds; idempotent."""
        return self.shutdown(kill=True)

    def shutdown(self, *, kill: bool) -> Deferred[None]:
        """Close; a running program is ended first only if ``kill``.

        Without ``kill`` the whole connection is going, and with it whatever
        the program runs in.
        """
        if self._close_once is None:
            once: Once[None] = Once()
            self._close_once = once
            Deferred.fromCoroutine(self._close(kill)).addBoth(once.fire)
        return self._close_once.wait()

    async def _close(self, kill: bool) -> None:
        try:
            await self._release(kill)
        finally:
            if self._on_closed is not None:
                self._on_closed(self)

    async def _release(self, kill: bool) -> None:
        raise NotImplementedError

    def _mark_closed(self) -> State:
        """Enter :attr:`State.CLOSED` (a start or exit report under way is cancelled).

        :return: the state the session was in.
        """
        previous, self._state = self._state, State.CLOSED
        for d in (self._start_d, self._exit_d):
            if d is not None and not d.called:
                d.cancel()
        return previous

    @property
    def _stream_open(self) -> bool:
        """Whether the session holds a stream that is not closed yet."""
        return self._transport is not None and not self._stream_closed.done

    async def _drop_stream(self) -> None:
        """Stop the output, drop the stream (see :attr:`_stream_open`), wait until it closed."""
        transport = self._transport
        assert transport is not None
        self._unregister_producer()
        transport.abortConnection()
        await self._stream_closed.wait()

    # -- errors

    def _error(
        self,
        code: MessageCode,
        user_message: str,
        explanation: str,
        *,
        level: Level | None = None,
        **details: Any,
    ) -> ContainerSSHError:
        """A logged error for the caller to raise."""
        return logged_error(self._log, code, user_message, explanation, level=level, **details)

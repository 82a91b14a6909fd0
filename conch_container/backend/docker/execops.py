"""Operations on a running program besides its stream: exit code and signals.

They run on the engine through the backend's pool; none touches the
session's state, so they can be tested with any object that has the
:class:`~conch_container.backend.docker.engine.api.Engine` methods they call.
:func:`poll_exit_code` also reads a session container's exit code
(:func:`~conch_container.backend.docker.sessionmode.ops.fetch_container_exit_code`).

How a program ended: the engine reports only an exit code, and a process
killed by signal N reports ``128 + N``, which a program can also return by
itself. :func:`exit_status` reports the signal only when the gateway itself
delivered that signal to the program (through the guest agent); any other
``128 + N`` stays an exit code, as with ContainerSSH.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

from twisted.internet import task
from twisted.internet.interfaces import IReactorTime

from conch_container import messages
from conch_container.backend.docker.engine.errors import EngineError
from conch_container.deferreds import DeadlineExceeded, with_deadline
from conch_container.errors import ContainerSSHError
from conch_container.interfaces import ExitStatus
from conch_container.log.logger import CodeLogger

#: The signal names the guest agent (and ContainerSSH) accept.
SIGNALS = frozenset("ABRT ALRM FPE HUP ILL INT KILL PIPE QUIT SEGV TERM USR1 USR2".split())
#: Linux's numbers for those names (the generic numbering of x86, ARM and most
#: other architectures; the container's kernel is Linux whatever the gateway runs on).
SIGNAL_NUMBERS: Mapping[str, int] = {
    "HUP": 1,
    "INT": 2,
    "QUIT": 3,
    "ILL": 4,
    "ABRT": 6,
    "FPE": 8,
    "KILL": 9,
    "USR1": 10,
    "SEGV": 11,
    "USR2": 12,
    "PIPE": 13,
    "ALRM": 14,
    "TERM": 15,
}
#: The exit status reported when the real one cannot be known (killed, agent missing...).
UNKNOWN_EXIT_CODE = 137
#: The largest exit code an SSH ``exit-status`` (a uint32) carries.
MAX_EXIT_CODE = 2**32 - 1
#: How long ``exec inspect`` is polled for the exit code after the output ended.
EXIT_CODE_TIMEOUT = 60.0
#: The first poll delay; it doubles up to the maximum. The engine usually
#: reports the exit at once, so short programs end without a second's wait.
EXIT_POLL_FIRST = 0.01
EXIT_POLL_MAX = 1.0


async def fetch_exit_code(clock: IReactorTime, engine: Any, exec_id: str, log: CodeLogger) -> int:
    """The exit code of a finished exec, or :data:`UNKNOWN_EXIT_CODE` (never raises).

    ``exec inspect`` is polled while the engine still reports the exec as
    running, for at most :data:`EXIT_CODE_TIMEOUT` seconds.
    """
    return await poll_exit_code(clock, lambda: engine.exec_inspect(exec_id), log)


async def poll_exit_code(
    clock: IReactorTime, inspect: Callable[[], Awaitable[Mapping[str, Any]]], log: CodeLogger
) -> int:
    """The exit code in the state ``inspect`` reports, or :data:`UNKNOWN_EXIT_CODE` (never raises).

    :param inspect: fetches the state: an exec's ``exec inspect``, or a
        container's ``State``; ``Running``, ``Restarting`` and ``ExitCode``
        are read from it.

    The state is polled (:data:`EXIT_POLL_FIRST` doubling to
    :data:`EXIT_POLL_MAX`) while the engine still reports the program as
    running or restarting, for at most :data:`EXIT_CODE_TIMEOUT` seconds.
    """
    deadline = clock.seconds() + EXIT_CODE_TIMEOUT
    delay = EXIT_POLL_FIRST
    while True:
        try:
            state = await inspect()
        except EngineError as e:
            log.event(
                messages.DOCKER_EXIT_CODE_FAILED,
                "Failed to fetch the exit code: {reason}",
                reason=e.message,
            )
            return UNKNOWN_EXIT_CODE
        restarting = bool(state.get("Restarting"))
        if restarting or state.get("Running"):
            if clock.seconds() + delay > deadline:
                if restarting:
                    log.event(
                        messages.DOCKER_EXIT_CODE_CONTAINER_RESTARTING,
                        "The container keeps restarting; its exit code is unknown",
                    )
                else:
                    log.event(
                        messages.DOCKER_EXIT_CODE_STILL_RUNNING,
                        "The program still runs after its output ended",
                    )
                return UNKNOWN_EXIT_CODE
            await task.deferLater(clock, delay)
            delay = min(delay * 2, EXIT_POLL_MAX)
            continue
        return _ended_exit_code(state, log)


def _ended_exit_code(state: Mapping[str, Any], log: CodeLogger) -> int:
    """The ``ExitCode`` of a state that reports the program ended, if an SSH client can get it.

    An SSH ``exit-status`` is a uint32 (RFC 4254, section 6.10). A negative
    code is refused as ContainerSSH refuses it. So is one beyond
    :data:`MAX_EXIT_CODE`: Go's conversion to uint32 would keep its low 32
    bits, and could tell the client that a program which failed succeeded.
    Either becomes :data:`UNKNOWN_EXIT_CODE`.
    """
    code = state.get("ExitCode")
    if not isinstance(code, int) or isinstance(code, bool):
        log.event(messages.DOCKER_EXIT_CODE_FAILED, "The engine reported no exit code")
        return UNKNOWN_EXIT_CODE
    if code < 0:
        log.event(
            messages.DOCKER_EXIT_CODE_NEGATIVE,
            "The engine reported exit code {exitCode}",
            exitCode=code,
        )
        return UNKNOWN_EXIT_CODE
    if code > MAX_EXIT_CODE:
        log.event(
            messages.DOCKER_EXIT_CODE_FAILED,
            "The engine reported exit code {exitCode}, more than the {maxExitCode} an SSH "
            "exit-status can carry; sending {unknownExitCode} instead",
            exitCode=code,
            maxExitCode=MAX_EXIT_CODE,
            unknownExitCode=UNKNOWN_EXIT_CODE,
        )
        return UNKNOWN_EXIT_CODE
    log.event(messages.DOCKER_EXIT_CODE, "The program exited with {exitCode}", exitCode=code)
    return code


#: What the agent's ``signal`` exit codes mean (reference section 7).
_SIGNAL_FAILURES = {
    1: "the guest agent refused the arguments",
    2: "the program's process no longer exists",
    3: "the guest agent could not send the signal",
    126: "the guest agent cannot be executed",
    127: "the guest agent is missing",
}


def exit_status(code: int, delivered: Collection[str]) -> ExitStatus:
    """How the program ended, for the SSH client.

    :param code: the exit code the engine reported.
    :param delivered: the signals the gateway delivered to the program.
    :return: the signal, if ``code`` is ``128 + N`` for a delivered signal N;
        otherwise the exit code.
    """
    for name in delivered:
        number = SIGNAL_NUMBERS.get(name)
        if number is not None and code == 128 + number:
            return ExitStatus(signal=name)
    return ExitStatus(code=code)


async def deliver_signal(
    clock: IReactorTime,
    engine: Any,
    *,
    container_id: str,
    cmd: Sequence[str],
    name: str,
    timeout: float,
    log: CodeLogger,
) -> None:
    """Run the guest agent's ``signal`` command line ``cmd`` (which sends ``name``).

    The agent runs as a detached exec whose exit code is polled with ``exec
    inspect`` (:func:`_run_detached`): every engine call is short, whatever
    the program at the agent's path does, and none is made after ``timeout``.

    :raises ContainerSSHError: (logged) ``DOCKER_EXEC_SIGNAL_FAILED`` when the
        engine call fails, times out, or the agent exits non-zero.
    """
    log.event(messages.DOCKER_EXEC_SIGNAL, "Sending signal {signal}", signal=name)
    explanation: str | None = None
    code: int | None = None
    try:
        code = await with_deadline(clock, timeout, _run_detached(clock, engine, container_id, cmd))
    except EngineError as e:
        explanation = e.message
    except DeadlineExceeded as e:
        explanation = str(e)
    if explanation is None and code != 0:
        why = _SIGNAL_FAILURES.get(code or 0, "the guest agent could not deliver the signal")
        explanation = f"{why} (exit code {code})"
    if explanation is not None:
        error = ContainerSSHError(
            messages.DOCKER_EXEC_SIGNAL_FAILED,
            "Failed to deliver the signal.",
            explanation,
            signal=name,
        )
        error.log(log)
        raise error
    log.event(messages.DOCKER_EXEC_SIGNAL_SUCCESSFUL, "Signal {signal} delivered", signal=name)


async def start_signal(
    clock: IReactorTime,
    engine: Any,
    *,
    container_id: str,
    cmd: Sequence[str],
    name: str,
    timeout: float,
    log: CodeLogger,
) -> None:
    """Start the guest agent's ``signal`` command line ``cmd`` without waiting for it to end.

    For a channel that is closing: nobody will hear whether the signal
    arrived, so the one engine call that starts the agent is all it costs.
    Waiting for the agent's exit code as :func:`deliver_signal` does would
    let a user who replaced the agent with a program that never ends keep
    the gateway polling for every channel they close.

    :raises ContainerSSHError: (logged) ``DOCKER_EXEC_SIGNAL_FAILED`` when the
        engine refuses the exec or does not start it within ``timeout``.
    """
    log.event(
        messages.DOCKER_EXEC_SIGNAL,
        "Sending signal {signal} without waiting for its delivery",
        signal=name,
    )
    try:
        await with_deadline(clock, timeout, engine.exec_detached(container_id, cmd))
    except (EngineError, DeadlineExceeded) as e:
        error = ContainerSSHError(
            messages.DOCKER_EXEC_SIGNAL_FAILED,
            "Failed to deliver the signal.",
            getattr(e, "message", str(e)),
            signal=name,
        )
        error.log(log)
        raise error from None


#: Delays between the ``exec inspect`` calls that wait for a signal delivery
#: to end: the agent usually ends at once; one that does not costs at most
#: one short engine call per :data:`SIGNAL_POLL_MAX` until the deadline.
SIGNAL_POLL_FIRST = 0.01
SIGNAL_POLL_MAX = 0.5


async def _run_detached(
    clock: IReactorTime, engine: Any, container_id: str, cmd: Sequence[str]
) -> int:
    """Start ``cmd`` as a detached exec and wait (in the reactor) for its exit code.

    Reading the agent's output in a pool thread would let the container keep
    that thread: the HTTP client's read timeout starts again with every byte,
    so an agent that writes a byte every few seconds would never time out.
    Detached, the agent's output goes nowhere and each engine call returns at
    once; the wait between them happens on the reactor's clock, where the
    caller's deadline can end it.
    """
    exec_id = await engine.exec_detached(container_id, cmd)
    delay = SIGNAL_POLL_FIRST
    while True:
        state = await engine.exec_inspect(exec_id)
        code = state.get("ExitCode")
        ended = not state.get("Running") and isinstance(code, int) and not isinstance(code, bool)
        if ended:
            return int(code)
        await task.deferLater(clock, delay)
        delay = min(delay * 2, SIGNAL_POLL_MAX)

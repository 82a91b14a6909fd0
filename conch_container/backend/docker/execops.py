"""Operations on a running exec besides its stream: exit code and signals.

Both run on the engine through the backend's pool; neither touches the
session's state, so they can be tested with any object that has the
:class:`~conch_container.backend.docker.engine.Engine` methods they call.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import task
from twisted.internet.interfaces import IReactorTime

from conch_container import messages
from conch_container.backend.docker.deferutil import DeadlineExceeded, with_deadline
from conch_container.backend.docker.engine import EngineError
from conch_container.errors import ContainerSSHError
from conch_container.log.logger import CodeLogger

#: The signal names the guest agent (and ContainerSSH) accept.
SIGNALS = frozenset("ABRT ALRM FPE HUP ILL INT KILL PIPE QUIT SEGV TERM USR1 USR2".split())
#: The exit status reported when the real one cannot be known (killed, agent missing...).
UNKNOWN_EXIT_CODE = 137
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
    deadline = clock.seconds() + EXIT_CODE_TIMEOUT
    delay = EXIT_POLL_FIRST
    while True:
        try:
            info = await engine.exec_inspect(exec_id)
        except EngineError as e:
            log.event(
                messages.DOCKER_EXIT_CODE_FAILED,
                "Failed to fetch the exit code: {reason}",
                reason=e.message,
            )
            return UNKNOWN_EXIT_CODE
        if info.get("Running"):
            if clock.seconds() + delay > deadline:
                log.event(
                    messages.DOCKER_EXIT_CODE_STILL_RUNNING,
                    "The program still runs after its output ended",
                )
                return UNKNOWN_EXIT_CODE
            await task.deferLater(clock, delay)
            delay = min(delay * 2, EXIT_POLL_MAX)
            continue
        code = info.get("ExitCode")
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
        log.event(messages.DOCKER_EXIT_CODE, "The program exited with {exitCode}", exitCode=code)
        return code


async def deliver_signal(
    clock: IReactorTime,
    engine: Any,
    *,
    container_id: str,
    agent_path: str,
    pid: int,
    name: str,
    timeout: float,
    log: CodeLogger,
) -> None:
    """Have the guest agent send signal ``name`` to process ``pid``.

    :raises ContainerSSHError: (logged) ``DOCKER_EXEC_SIGNAL_FAILED`` when the
        engine call fails, times out, or the agent exits non-zero.
    """
    log.event(messages.DOCKER_EXEC_SIGNAL, "Sending signal {signal}", signal=name)
    cmd = [agent_path, "signal", "--pid", str(pid), "--signal", name]
    explanation: str | None = None
    code: int | None = None
    try:
        code = await with_deadline(clock, timeout, engine.exec_run(container_id, cmd))
    except EngineError as e:
        explanation = e.message
    except DeadlineExceeded as e:
        explanation = str(e)
    if explanation is None and code != 0:
        explanation = f"the guest agent could not deliver the signal (exit code {code})"
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

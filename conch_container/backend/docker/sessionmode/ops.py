"""The parts of Docker ``session`` mode that do not hold a session's state.

- :func:`session_create_request`: a channel's container request, derived from
  the connection's (labels, authentication environment, host settings);
- :func:`fetch_container_exit_code`: how the program ended, from the
  container's state;
- :func:`place_files`: authentication's ``files``, put into the created
  container before it starts;
- :func:`remove_container`: forced removal, retried until a deadline (a
  connection's container in ``connection`` mode is removed with it too).

They take the :class:`~conch_container.backend.docker.engine.api.Engine` as an
argument, so they can be tested with fakes.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping

import attrs
from twisted.internet import task
from twisted.internet.interfaces import IReactorTime

from conch_container import messages
from conch_container.backend.docker.containerconfig import CreateRequest, merge_env
from conch_container.backend.docker.engine.api import Engine
from conch_container.backend.docker.engine.errors import EngineError
from conch_container.backend.docker.execops import poll_exit_code
from conch_container.backend.docker.sessionmode.archive import (
    file_owner,
    files_archive,
    resolve_files,
)
from conch_container.codes import Level
from conch_container.deferreds import DeadlineExceeded, with_deadline
from conch_container.interfaces import PtyRequest
from conch_container.log.logger import CodeLogger

#: Restart policy names that mean "never restart".


# ---------------------------------------------------------------------------
# The container request


def session_create_request(
    base: CreateRequest,
    argv: Iterable[str],
    env: Iterable[tuple[str, str]],
    pty: PtyRequest | None,
) -> CreateRequest:
    """The request for one channel's container.

    :param base: the connection's request (configured container, labels,
        authentication environment); it is not modified.
    :param argv: the program, which becomes ``Cmd`` (an image ``ENTRYPOINT``
        is kept, as in connection mode).
    :param env: the channel's variables, appended to the connection's ``Env``
        (``TERM`` from the pty last).

    The program's streams are attached (``OpenStdin`` with ``StdinOnce``, so
    the client's EOF closes its stdin); ``Tty`` follows the pty. In the host
    settings ``AutoRemove`` is turned off, since the exit code is read from
    the stopped container before the gateway removes it, and ``Init`` is on
    unless configured: a PID 1 without handlers ignores ``TERM``, ``INT`` and
    ``HUP``, so without an init process signals would not reach most
    programs.
    """
    body = copy.deepcopy(base.body)
    extra = list(env)
    if pty is not None:
        extra.append(("TERM", pty.term))
    body["Cmd"] = list(argv)
    body["Env"] = merge_env(body.get("Env", []), extra)
    body["Tty"] = pty is not None
    body["OpenStdin"] = True
    body["StdinOnce"] = True
    body["AttachStdin"] = True
    body["AttachStdout"] = True
    body["AttachStderr"] = True
    host = body.setdefault("HostConfig", {})
    host["AutoRemove"] = False
    host.setdefault("Init", True)
    if pty is not None:
        # Honoured by engines from API 1.42 on; older ones start with 0x0 until
        # the resize that follows the start.
        host["ConsoleSize"] = [pty.rows, pty.columns]
    return attrs.evolve(base, body=body)


# ---------------------------------------------------------------------------
# Exit


async def fetch_container_exit_code(
    clock: IReactorTime, engine: Engine, container_id: str, log: CodeLogger
) -> int:
    """The exit code of a container whose program ended, or ``UNKNOWN_EXIT_CODE`` (never raises).

    The state is polled (10 ms doubling to 1 s) while the engine still reports
    the container as running or restarting, for at most 60 seconds
    (:func:`~conch_container.backend.docker.execops.poll_exit_code`).
    """
    return await poll_exit_code(clock, lambda: engine.container_state(container_id), log)


# ---------------------------------------------------------------------------
# Files


async def place_files(
    clock: IReactorTime,
    engine: Engine,
    container_id: str,
    request: CreateRequest,
    files: Mapping[str, object],
    log: CodeLogger,
) -> bool:
    """Put authentication's ``files`` into a created container, mode 0600; never raises.

    The owner follows the container's ``User`` (see
    :func:`~conch_container.backend.docker.sessionmode.archive.file_owner`); a relative
    path is relative to its ``WorkingDir``. A failure is logged
    (``DOCKER_FILE_WRITE_FAILED``) and the program starts anyway, as
    ContainerSSH does when a file write fails.

    :return: whether every file was placed.
    """
    if not files:
        return True
    body = request.body
    placeable, refused = resolve_files(files, body.get("WorkingDir"))
    for path in refused:
        log.event(
            messages.DOCKER_FILE_WRITE_FAILED,
            "Not writing file {path}: not a file path",
            path=path,
        )
    if not placeable:
        return False
    owner = file_owner(body.get("User"))
    log.event(
        messages.DOCKER_FILE_WRITE,
        "Writing {count} file(s) into container {containerId}",
        count=len(placeable),
        containerId=container_id,
    )
    archive = files_archive(placeable, owner, clock.seconds())
    try:
        await engine.put_archive(container_id, "/", archive)
    except EngineError as e:
        log.event(
            messages.DOCKER_FILE_WRITE_FAILED,
            "Failed to write files into container {containerId}: {reason}",
            reason=e.message,
            containerId=container_id,
        )
        return False
    return not refused


# ---------------------------------------------------------------------------
# Removal


async def remove_container(
    clock: IReactorTime,
    engine: Engine,
    container_id: str,
    *,
    deadline: float,
    retry_interval: float,
    log: CodeLogger,
) -> bool:
    """Force-remove a container, retrying every ``retry_interval`` until ``deadline``; never raises.

    :return: whether the container is gone (removed now, or already).
    """
    while True:
        log.event(messages.DOCKER_CONTAINER_REMOVE, "Removing container {containerId}")
        reason: str
        try:
            existed = await with_deadline(
                clock,
                max(deadline - clock.seconds(), 0.0),
                engine.remove_container(container_id),
            )
        except EngineError as e:
            reason = e.message
        except DeadlineExceeded:
            reason = "timed out"
        else:
            log.event(
                messages.DOCKER_CONTAINER_REMOVE_SUCCESSFUL,
                "Removed container {containerId}"
                if existed
                else "Container {containerId} was already gone",
            )
            return True
        if deadline - clock.seconds() <= retry_interval:
            log.event(
                messages.DOCKER_CONTAINER_REMOVE_FAILED,
                "Giving up removing container {containerId}: {reason}",
                reason=reason,
            )
            return False
        log.event(
            messages.DOCKER_CONTAINER_REMOVE_FAILED,
            "Failed to remove container {containerId}: {reason}; retrying in {retryIn} s",
            reason=reason,
            retryIn=retry_interval,
            level=Level.DEBUG,
        )
        await task.deferLater(clock, retry_interval)

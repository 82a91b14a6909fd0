"""Blocking engine calls on a whole container besides create, start and remove.

Session mode needs most of them: there the program is the container's main
process, so its terminal is the container's, signals go through the kill API
and its exit code is the container's; authentication's files are put into it
as an archive (the guest agent, too, when connection mode installs it).

Like those of :mod:`conch_container.backend.docker.engine.api`, the ``thd_*``
functions here are docker-py calls for the backend's pool that raise only
:class:`~conch_container.backend.docker.engine.errors.EngineError`;
:class:`~conch_container.backend.docker.engine.api.Engine` is their
reactor-side face (``container_resize``, ``container_kill``,
``container_stop``, ``container_state``, ``put_archive``). The container's
streams are an HTTP upgrade made from the reactor
(:meth:`~conch_container.backend.docker.engine.api.Engine.container_attach`),
as for an exec.
"""

from __future__ import annotations

from typing import Any

import docker

from conch_container.backend.docker.engine.errors import EngineError, engine_errors


@engine_errors
def thd_container_resize(
    client: docker.APIClient, container_id: str, rows: int, columns: int
) -> None:
    client.resize(container_id, height=rows, width=columns)


@engine_errors
def thd_container_kill(client: docker.APIClient, container_id: str, signal: str) -> None:
    """Send ``signal`` (a name such as ``TERM``) to the container's main process."""
    client.kill(container_id, signal=signal)


@engine_errors
def thd_container_stop(client: docker.APIClient, container_id: str, grace: int) -> bool:
    """Stop the container (its stop signal, ``KILL`` after ``grace`` seconds).

    :return: ``False`` if the container no longer exists.
    """
    try:
        client.stop(container_id, timeout=grace)
    except docker.errors.NotFound:
        return False
    return True


@engine_errors
def thd_container_state(client: docker.APIClient, container_id: str) -> dict[str, Any]:
    """The ``State`` part of ``container inspect`` (``Running``, ``ExitCode``, ...)."""
    return dict(client.inspect_container(container_id).get("State") or {})


@engine_errors
def thd_put_archive(client: docker.APIClient, container_id: str, path: str, data: bytes) -> None:
    """Extract a tar archive into the container's filesystem at ``path`` (started or not)."""
    if not client.put_archive(container_id, path, data):
        raise EngineError("the engine did not accept the archive")

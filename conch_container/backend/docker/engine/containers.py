"""Engine calls on a whole container, which ``session`` mode needs besides create/start/remove.

In session mode the program is the container's main process, so its stream
is the container's *attach* stream, its terminal is the container's, signals
go through the kill API and its exit code is the container's.

Like :mod:`conch_container.backend.docker.engine.api`, the ``thd_*`` functions are
blocking docker-py calls for the backend's pool that raise only
:class:`~conch_container.backend.docker.engine.api.EngineError`;
:class:`ContainerOps` is their reactor-side face on an
:class:`~conch_container.backend.docker.engine.api.Engine`.

The attach is an HTTP upgrade made from the reactor
(:meth:`~conch_container.backend.docker.engine.api.Engine.container_attach`), as
for an exec.
"""

from __future__ import annotations

from typing import Any

import docker
from twisted.internet.defer import Deferred

from conch_container.backend.docker.engine.api import Engine, engine_errors
from conch_container.backend.docker.engine.errors import EngineError
from conch_container.backend.docker.engine.upgrade import UpgradedStream


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


class ContainerOps:
    """The container-level calls of this module on one engine.

    :param engine: the engine (its client and the backend's pool are used).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def attach(self, container_id: str) -> Deferred[UpgradedStream]:
        return self.engine.container_attach(container_id)

    def resize(self, container_id: str, rows: int, columns: int) -> Deferred[None]:
        return self.engine.run(thd_container_resize, container_id, rows, columns)

    def kill(self, container_id: str, signal: str) -> Deferred[None]:
        return self.engine.run(thd_container_kill, container_id, signal)

    def stop(self, container_id: str, grace: int) -> Deferred[bool]:
        return self.engine.run(thd_container_stop, container_id, grace)

    def state(self, container_id: str) -> Deferred[dict[str, Any]]:
        return self.engine.run(thd_container_state, container_id)

    def put_archive(self, container_id: str, path: str, data: bytes) -> Deferred[None]:
        return self.engine.run(thd_put_archive, container_id, path, data)

"""Engine calls on a whole container, which ``session`` mode needs besides create/start/remove.

In session mode the program is the container's main process, so its stream
is the container's *attach* stream, its terminal is the container's, signals
go through the kill API and its exit code is the container's.

Like :mod:`conch_container.backend.docker.engine`, the ``thd_*`` functions are
blocking docker-py calls for the backend's pool that raise only
:class:`~conch_container.backend.docker.engine.EngineError`;
:class:`ContainerOps` is their reactor-side face on an
:class:`~conch_container.backend.docker.engine.Engine`.

:func:`thd_upgrade` is the hijack itself: an HTTP upgrade whose connection is
handed back as a descriptor, with the stream bytes the HTTP parser already
buffered. The attach uses it; it is independent of the endpoint.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from typing import Any

import docker
from twisted.internet.defer import Deferred

from conch_container.backend.docker.engine import (
    Engine,
    EngineError,
    HijackedStream,
    _engine_errors,
    _response_message,
)

#: How much of the stream :func:`thd_upgrade` takes from the HTTP parser's
#: buffer at most (the rest stays in the socket for the reactor).
_LEFTOVER_READ = 65536


@_engine_errors
def thd_upgrade(
    client: docker.APIClient,
    path: str,
    *,
    params: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> HijackedStream:
    """``POST path`` as an HTTP upgrade; the upgraded connection as a descriptor.

    docker-py's ``socket=True`` calls lose the bytes the HTTP parser buffered
    together with the response headers; here the parser's buffer is drained
    into :attr:`HijackedStream.leftover`.
    """
    headers = {"Connection": "Upgrade", "Upgrade": "tcp"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    response = client.post(
        f"{client.base_url}/v{client.api_version}{path}",
        params=dict(params or {}),
        data=body,
        headers=headers,
        stream=True,
    )
    try:
        if response.status_code not in (101, 200):
            raise EngineError(_response_message(response), response.status_code)
        # The buffered reader http.client parsed the status line and headers from.
        reader = response.raw._fp.fp
        sock = reader.raw._sock
        if isinstance(sock, ssl.SSLSocket):
            raise EngineError("streams over a TLS connection to the engine are not supported")
        sock.setblocking(False)
        try:
            leftover = reader.read1(_LEFTOVER_READ) or b""
        except BlockingIOError:
            leftover = b""
        return HijackedStream(os.dup(sock.fileno()), sock.family, leftover)
    finally:
        # Closes only this process's original descriptor; the duplicate keeps
        # the connection open for the reactor.
        response.close()


def thd_container_attach(client: docker.APIClient, container_id: str) -> HijackedStream:
    """Attach to all three streams of a container (before it starts, so nothing is missed).

    No ``logs``: a container attached before its start has none to replay.
    """
    return thd_upgrade(
        client,
        f"/containers/{container_id}/attach",
        params={"stream": "1", "stdin": "1", "stdout": "1", "stderr": "1"},
    )


@_engine_errors
def thd_container_resize(
    client: docker.APIClient, container_id: str, rows: int, columns: int
) -> None:
    client.resize(container_id, height=rows, width=columns)


@_engine_errors
def thd_container_kill(client: docker.APIClient, container_id: str, signal: str) -> None:
    """Send ``signal`` (a name such as ``TERM``) to the container's main process."""
    client.kill(container_id, signal=signal)


@_engine_errors
def thd_container_stop(client: docker.APIClient, container_id: str, grace: int) -> bool:
    """Stop the container (its stop signal, ``KILL`` after ``grace`` seconds).

    :return: ``False`` if the container no longer exists.
    """
    try:
        client.stop(container_id, timeout=grace)
    except docker.errors.NotFound:
        return False
    return True


@_engine_errors
def thd_container_state(client: docker.APIClient, container_id: str) -> dict[str, Any]:
    """The ``State`` part of ``container inspect`` (``Running``, ``ExitCode``, ...)."""
    return dict(client.inspect_container(container_id).get("State") or {})


@_engine_errors
def thd_put_archive(client: docker.APIClient, container_id: str, path: str, data: bytes) -> None:
    """Extract a tar archive into the container's filesystem at ``path`` (started or not)."""
    if not client.put_archive(container_id, path, data):
        raise EngineError("the engine did not accept the archive")


class ContainerOps:
    """The container-level calls of :mod:`containerops` on one engine.

    :param engine: the engine (its client and the backend's pool are used).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _run(self, f: Any, *args: Any) -> Deferred[Any]:
        return self.engine._run(f, *args)

    def attach(self, container_id: str) -> Deferred[HijackedStream]:
        return self._run(thd_container_attach, container_id)

    def resize(self, container_id: str, rows: int, columns: int) -> Deferred[None]:
        return self._run(thd_container_resize, container_id, rows, columns)

    def kill(self, container_id: str, signal: str) -> Deferred[None]:
        return self._run(thd_container_kill, container_id, signal)

    def stop(self, container_id: str, grace: int) -> Deferred[bool]:
        return self._run(thd_container_stop, container_id, grace)

    def state(self, container_id: str) -> Deferred[dict[str, Any]]:
        return self._run(thd_container_state, container_id)

    def put_archive(self, container_id: str, path: str, data: bytes) -> Deferred[None]:
        return self._run(thd_put_archive, container_id, path, data)

"""Calls into one Docker engine, run on the backend's own bounded thread pool.

The ``thd_*`` functions are blocking docker-py calls; they run in pool threads,
never touch Twisted objects, and raise only :class:`EngineError` (those on a
whole container besides create, start and remove are in :mod:`.containers`).
:class:`Engine` is the reactor-side face of them all: every method returns a
Deferred from ``deferToThreadPool``.

Container I/O never holds a thread: a program's stream (``POST
/exec/{id}/start``, a container's ``attach`` in session mode) is an HTTP
upgrade made from the reactor by :mod:`.upgrade`, over the same endpoint
(UNIX socket, TCP or TLS) and API version as the docker-py client.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import attrs
import docker
import docker.errors
from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from conch_container.backend.docker.containerconfig import LABEL_CREATE, CreateRequest
from conch_container.backend.docker.engine.client import EngineSettings
from conch_container.backend.docker.engine.containers import (
    thd_container_kill,
    thd_container_resize,
    thd_container_state,
    thd_container_stop,
    thd_put_archive,
)
from conch_container.backend.docker.engine.errors import EngineError, engine_errors
from conch_container.backend.docker.engine.upgrade import EngineStreams, UpgradedStream

T = TypeVar("T")


@engine_errors
def thd_image_present(client: docker.APIClient, image: str) -> bool:
    """Whether the engine has ``image`` locally."""
    try:
        client.inspect_image(image)
    except docker.errors.NotFound:
        return False
    return True


@engine_errors
def thd_pull(
    client: docker.APIClient, image: str, auth: dict[str, str], platform: str | None
) -> None:
    """Pull ``image`` with ``auth`` (an empty object pulls anonymously).

    The engine answers with an HTTP error only when the pull fails before its
    first progress message; later failures (a layer download, a digest
    mismatch) arrive as an ``error`` object inside a stream that began with
    HTTP 200, and are raised here with ``status`` None.

    ``auth`` is always passed, even empty: with ``auth_config=None`` docker-py
    would send the gateway host's own ``~/.docker/config.json`` credentials.
    """
    stream = client.pull(image, stream=True, decode=True, auth_config=auth, platform=platform)
    try:
        for event in stream:
            if not isinstance(event, dict):
                continue
            if "error" in event or "errorDetail" in event:
                detail = event.get("errorDetail")
                if not isinstance(detail, dict):
                    detail = {}
                message = event.get("error") or detail.get("message") or "the pull failed"
                code = detail.get("code")
                status = code if isinstance(code, int) and code >= 400 else None
                raise EngineError(str(message), status)
    except ValueError as e:  # a malformed progress message
        raise EngineError(f"unreadable pull progress from the engine: {e}") from e


@engine_errors
def thd_create_container(client: docker.APIClient, request: CreateRequest) -> str:
    """Create the container; returns its id."""
    result = client.create_container_from_config(
        request.body, name=request.name, platform=request.platform
    )
    return str(result["Id"])


@engine_errors
def thd_start_container(client: docker.APIClient, container_id: str) -> None:
    client.start(container_id)


@engine_errors
def thd_remove_container(client: docker.APIClient, container_id: str) -> bool:
    """Force-remove a container and its anonymous volumes; False if it was already gone."""
    try:
        client.remove_container(container_id, force=True, v=True)
    except docker.errors.NotFound:
        return False
    return True


@engine_errors
def thd_list_labelled(client: docker.APIClient, label: str, value: str) -> list[str]:
    """Ids of all containers (running or not) carrying ``label=value``."""
    found = client.containers(all=True, filters={"label": f"{label}={value}"})
    return [str(c["Id"]) for c in found]


@engine_errors
def thd_exec_create(
    client: docker.APIClient,
    container_id: str,
    cmd: Sequence[str],
    env: Sequence[str],
    tty: bool,
) -> str:
    """Create an exec with all three streams attached; returns its id."""
    result = client.exec_create(
        container_id,
        list(cmd),
        stdin=True,
        stdout=True,
        stderr=True,
        tty=tty,
        environment=list(env),
    )
    return str(result["Id"])


@engine_errors
def thd_exec_resize(client: docker.APIClient, exec_id: str, rows: int, columns: int) -> None:
    client.exec_resize(exec_id, height=rows, width=columns)


@engine_errors
def thd_exec_inspect(client: docker.APIClient, exec_id: str) -> dict[str, Any]:
    return dict(client.exec_inspect(exec_id))


@engine_errors
def thd_exec_detached(client: docker.APIClient, container_id: str, cmd: Sequence[str]) -> str:
    """Create and start an exec that nobody attaches to (a signal delivery); returns its id.

    None of its streams is attached, so nothing of its output is ever read:
    a program in the container (which the user may have replaced) cannot
    hold this thread by writing slowly or by never ending. Its exit code is
    read later with ``exec inspect``.
    """
    exec_id = client.exec_create(container_id, list(cmd), stdout=False, stderr=False)["Id"]
    client.exec_start(exec_id, detach=True)
    return str(exec_id)


@engine_errors
def thd_path_stat(client: docker.APIClient, container_id: str, path: str) -> dict[str, Any] | None:
    """The engine's description of ``path`` in a (started or created) container, or None.

    The answer of ``HEAD /containers/{id}/archive``: ``name``, ``size``,
    ``mode`` (Go's ``os.FileMode`` bits) and ``linkTarget``. Nothing is read
    from the file itself.
    """
    url = f"{client.base_url}/v{client.api_version}/containers/{container_id}/archive"
    response = client.head(url, params={"path": path})
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise EngineError(f"HTTP {response.status_code}", response.status_code)
    header = response.headers.get("X-Docker-Container-Path-Stat")
    if not header:
        raise EngineError("the engine described no file")
    try:
        stat = json.loads(base64.b64decode(header))
    except ValueError as e:
        raise EngineError(f"unreadable file description from the engine: {e}") from e
    if not isinstance(stat, dict):
        raise EngineError("unreadable file description from the engine")
    return stat


def thd_close(client: docker.APIClient, tls_dir: str | None) -> None:
    """Close the client's connection pool and remove its TLS files."""
    try:
        client.close()
    finally:
        if tls_dir is not None:
            shutil.rmtree(tls_dir, ignore_errors=True)


#: Seconds between the questions for a container whose create call failed unanswered.
LATE_CREATE_POLL = 1.0


class Engine:
    """One Docker engine endpoint, used from the reactor.

    :param reactor: the reactor results are delivered on.
    :param pool: the backend's thread pool; every call runs there.
    :param client: the docker-py client for this endpoint.
    """

    def __init__(
        self,
        reactor: Any,
        pool: ThreadPool,
        client: docker.APIClient,
        settings: EngineSettings,
        tls_dir: str | None = None,
    ) -> None:
        self._reactor = reactor
        self._pool = pool
        self._client = client
        self.settings = settings
        self.tls_dir = tls_dir
        self._streams = EngineStreams(reactor, settings)

    def run(self, f: Callable[..., T], *args: Any) -> Deferred[T]:
        """Call ``f(client, *args)`` on the pool; ``f`` is a ``thd_*`` function."""
        return deferToThreadPool(self._reactor, self._pool, f, self._client, *args)

    def image_present(self, image: str) -> Deferred[bool]:
        return self.run(thd_image_present, image)

    def pull(self, image: str, auth: dict[str, str], platform: str | None) -> Deferred[None]:
        return self.run(thd_pull, image, auth, platform)

    def create_container(self, request: CreateRequest) -> Deferred[str]:
        """Create the container; its id.

        A create call that fails without an answer from the engine (the HTTP
        timeout, a dropped connection) may still have reached it: the engine
        then creates the container anyway, after the gateway has given up on
        it, and nobody would remove it. Each call therefore labels its
        container with a token of its own, and after such a failure the
        engine is asked for that label (for up to the HTTP timeout, since the
        engine may still be working on the call): a container that turns up is
        the result after all, and its owner removes it as any other.
        Don't cancel the returned Deferred: wait on it with a deadline of your
        own (see :func:`conch_container.deferreds.shield`) and record whatever it gives.
        """
        return Deferred.fromCoroutine(self._create_container(request))

    async def _create_container(self, request: CreateRequest) -> str:
        token = secrets.token_hex(16)
        labels = {**(request.body.get("Labels") or {}), LABEL_CREATE: token}
        labelled = attrs.evolve(request, body={**request.body, "Labels": labels})
        try:
            return await self.run(thd_create_container, labelled)
        except EngineError as e:
            if e.status is not None or e.unsent:
                raise  # the engine answered, or never heard: nothing was created
            late = await self._find_late_container(token)
            if late is None:
                raise
            return late

    async def _find_late_container(self, token: str) -> str | None:
        """The container labelled with ``token``, if it appears within the HTTP timeout."""
        clock: Any = self._reactor
        give_up = clock.seconds() + self.settings.timeout
        while True:
            try:
                found = await self.list_labelled(LABEL_CREATE, token)
            except EngineError:
                found = []  # the engine is still struggling: ask again
            if found:
                return found[0]
            if clock.seconds() >= give_up:
                return None
            await task.deferLater(clock, LATE_CREATE_POLL)

    def start_container(self, container_id: str) -> Deferred[None]:
        return self.run(thd_start_container, container_id)

    def remove_container(self, container_id: str) -> Deferred[bool]:
        return self.run(thd_remove_container, container_id)

    def list_labelled(self, label: str, value: str) -> Deferred[list[str]]:
        return self.run(thd_list_labelled, label, value)

    def exec_create(
        self, container_id: str, cmd: Sequence[str], env: Sequence[str], tty: bool
    ) -> Deferred[str]:
        return self.run(thd_exec_create, container_id, cmd, env, tty)

    def exec_attach(self, exec_id: str, tty: bool) -> Deferred[UpgradedStream]:
        """Start an exec and take its stream (see :mod:`.upgrade`)."""
        return self._stream(f"/exec/{exec_id}/start", body={"Detach": False, "Tty": tty})

    def container_attach(self, container_id: str) -> Deferred[UpgradedStream]:
        """Attach to all three streams of a container (before its start, so nothing is missed).

        No ``logs``: a container attached before its start has none to replay.
        """
        return self._stream(
            f"/containers/{container_id}/attach",
            params={"stream": "1", "stdin": "1", "stdout": "1", "stderr": "1"},
        )

    def _stream(
        self, path: str, *, params: dict[str, str] | None = None, body: object = None
    ) -> Deferred[UpgradedStream]:
        version = self._client.api_version
        return self._streams.open(f"/v{version}{path}", params=params, body=body)

    def container_resize(self, container_id: str, rows: int, columns: int) -> Deferred[None]:
        """Resize the terminal of a container's main process (session mode)."""
        return self.run(thd_container_resize, container_id, rows, columns)

    def container_kill(self, container_id: str, signal: str) -> Deferred[None]:
        """Send ``signal`` (a name such as ``TERM``) to the container's main process."""
        return self.run(thd_container_kill, container_id, signal)

    def container_stop(self, container_id: str, grace: int) -> Deferred[bool]:
        """Stop the container (``KILL`` after ``grace`` seconds); False if it was gone."""
        return self.run(thd_container_stop, container_id, grace)

    def container_state(self, container_id: str) -> Deferred[dict[str, Any]]:
        """The ``State`` part of ``container inspect``."""
        return self.run(thd_container_state, container_id)

    def put_archive(self, container_id: str, path: str, data: bytes) -> Deferred[None]:
        """Extract a tar archive into the container at ``path`` (started or not)."""
        return self.run(thd_put_archive, container_id, path, data)

    def exec_resize(self, exec_id: str, rows: int, columns: int) -> Deferred[None]:
        return self.run(thd_exec_resize, exec_id, rows, columns)

    def exec_inspect(self, exec_id: str) -> Deferred[dict[str, Any]]:
        return self.run(thd_exec_inspect, exec_id)

    def exec_detached(self, container_id: str, cmd: Sequence[str]) -> Deferred[str]:
        return self.run(thd_exec_detached, container_id, cmd)

    def path_stat(self, container_id: str, path: str) -> Deferred[dict[str, Any] | None]:
        return self.run(thd_path_stat, container_id, path)

    def close(self) -> Deferred[None]:
        """Release the client (and its TLS files)."""
        return deferToThreadPool(self._reactor, self._pool, thd_close, self._client, self.tls_dir)

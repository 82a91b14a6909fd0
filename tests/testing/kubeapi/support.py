"""Running the test Kubernetes API server for tests, and reaching it.

The server runs as its own process (``python -m
conch_container.testing.kubeapi``), as a developer or CI runs it; the
blocking official client and ``kubectl`` then talk to it from the test
process as they would to a cluster. One server per TLS mode is shared by the
whole test process (started on first use, stopped at exit, which removes its
containers), so the suite pays its start-up once.

Tests of the backend run a server in their own process instead, one per test
(:func:`serve_in_process`), and the backend's client to look at it
(:func:`started_client`).
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from conch_container.backend.kubernetes.client import KubernetesClient
from conch_container.testing.kubeapi import KubeAPIServer
from tests.docker_support import GUEST_IMAGE, docker_client

TOKEN = "test-token-" + uuid.uuid4().hex
#: Seconds a server gets to answer, a pod to change state, a stream to end.
DEADLINE = 30.0

T = TypeVar("T")


@attrs.define
class ServerProcess:
    """One running server: its URL, its CA file with TLS, its log."""

    process: subprocess.Popen[bytes]
    url: str
    ca_file: str | None
    log_path: str

    def stop(self) -> int:
        """SIGTERM, then wait for the exit (the server removes its containers first)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(DEADLINE)

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()


def start_server(tls: bool = False) -> ServerProcess:
    """A new server process on a free loopback port (the engine must be there)."""
    docker_client()  # skip, or fail under CONCH_CONTAINER_REQUIRE_DOCKER, without an engine
    directory = tempfile.mkdtemp(prefix="kubeapi-")
    log_path = os.path.join(directory, "server.log")
    command = [sys.executable, "-m", "conch_container.testing.kubeapi"]
    command += ["--listen", "127.0.0.1:0", "--token", TOKEN, "--log-level", "debug"]
    ca_file = None
    if tls:
        command += ["--tls-dir", os.path.join(directory, "tls")]
        ca_file = os.path.join(directory, "tls", "ca.crt")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=directory)
    server = ServerProcess(process, "", ca_file, log_path)
    try:
        server.url = wait_for(lambda: _url(server), "the server's URL")
    except AssertionError:
        server.stop()
        raise AssertionError(f"the server did not start: {server.log()}") from None
    return server


async def serve_in_process(
    test: TestCase, token: str, tls_dir: str | None = None
) -> tuple[KubeAPIServer, str]:
    """A server in this process for ``test``, stopped (its pods removed) at the end; its URL.

    Call it before anything that uses the server registers its own clean-up,
    so that the server stops last.
    """
    server = KubeAPIServer(reactor, token, tls_dir=tls_dir)
    url = await server.start()
    test.addCleanup(lambda: Deferred.fromCoroutine(server.stop()))
    return server, url


def started_client(test: TestCase) -> KubernetesClient:
    """The backend's own client, started, stopped at the end of ``test``."""
    client = KubernetesClient(reactor)
    client.start()
    test.addCleanup(lambda: Deferred.fromCoroutine(client.stop()))
    return client


def _url(server: ServerProcess) -> str | None:
    if server.process.poll() is not None:
        raise AssertionError(f"the server exited: {server.log()}")
    found = re.search(r"^(https?://\S+)$", server.log(), re.MULTILINE)
    return found.group(1) if found else None


_shared: dict[bool, ServerProcess] = {}


def shared_server(tls: bool = False) -> ServerProcess:
    """The test process's server for ``tls``, started on first use."""
    if tls not in _shared:
        _shared[tls] = start_server(tls)
        atexit.register(_shared[tls].stop)
    return _shared[tls]


def wait_for(check: Callable[[], T | None], what: str, deadline: float = DEADLINE) -> T:
    """Poll ``check`` until it gives something other than None or False."""
    give_up = time.monotonic() + deadline
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() > give_up:
            raise AssertionError(f"no {what} within {deadline} s")
        time.sleep(0.05)


def core_api(server: ServerProcess, token: str = TOKEN) -> Any:
    """The official client's ``CoreV1Api`` for ``server``."""
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = server.url
    configuration.api_key = {"authorization": f"Bearer {token}"}
    if server.ca_file:
        configuration.ssl_ca_cert = server.ca_file
    return client.CoreV1Api(client.ApiClient(configuration))


def pod_manifest(
    name: str | None = None,
    command: list[str] | None = None,
    labels: dict[str, str] | None = None,
    image: str = GUEST_IMAGE,
    **container: Any,
) -> dict[str, Any]:
    """A pod of one container ``main`` (``generateName: test-`` without ``name``)."""
    metadata: dict[str, Any] = {"labels": labels or {}}
    if name:
        metadata["name"] = name
    else:
        metadata["generateName"] = "test-"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "command": command or ["sleep", "3600"],
                    **container,
                }
            ],
        },
    }


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def pod_containers(pod_name: str) -> list[dict[str, Any]]:
    """The Docker containers of ``pod_name`` (any server's), running or not."""
    return list(
        docker_client().containers(
            all=True, filters={"label": f"io.kubernetes.pod.name={pod_name}"}
        )
    )

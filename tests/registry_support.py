"""A real Docker registry with password authentication, for pull tests.

:func:`registry` starts Debian's ``docker-registry`` (distribution 2.8) the
first time a test asks for it: one registry per test process, on a free
loopback port, with one user whose bcrypt htpasswd line is written here (no
``htpasswd`` tool needed), storing its blobs in a temporary directory. It is
stopped, and its directory removed, when the process exits.

The engine reaches it as ``localhost:PORT``: dockerd treats loopback
registries as insecure by default, so plain HTTP works without any daemon
setting. Like :mod:`tests.docker_support`, a missing registry program skips
the test on a developer's machine and fails it when
``CONCH_CONTAINER_REQUIRE_DOCKER`` is set.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import attrs
import bcrypt
from twisted.trial.unittest import SkipTest

from tests.docker_support import DockerUnavailable

REGISTRY_PROGRAM = os.environ.get("CONCH_CONTAINER_REGISTRY", "docker-registry")
USERNAME = "puller"
#: How long the registry may take to answer its first request.
START_TIMEOUT = 20.0

_lock = threading.Lock()
_registry: Registry | None = None


@attrs.frozen
class Registry:
    """A running registry.

    :ivar host: ``localhost:PORT``, the registry part of its image names.
    :ivar password: ``USERNAME``'s password (random per process).
    """

    host: str
    password: str = attrs.field(repr=False)
    process: subprocess.Popen[bytes] = attrs.field(repr=False)
    directory: str = attrs.field(repr=False)

    @property
    def username(self) -> str:
        return USERNAME

    @property
    def url(self) -> str:
        return f"http://{self.host.replace('localhost', '127.0.0.1', 1)}"

    def auth_config(self, password: str | None = None) -> dict[str, str]:
        """Engine ``AuthConfig`` for this registry (another password to test refusals)."""
        return {
            "username": USERNAME,
            "password": self.password if password is None else password,
            "serveraddress": self.host,
        }

    def log_text(self) -> str:
        """What the registry has logged so far (to explain a failure)."""
        try:
            with open(os.path.join(self.directory, "registry.log"), encoding="utf-8") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def registry() -> Registry:
    """The process's registry, started on first use (blocking: call it from a thread)."""
    global _registry
    with _lock:
        if _registry is None or _registry.process.poll() is not None:
            _registry = _start()
            atexit.register(_registry.stop)
        return _registry


def _unavailable(reason: str) -> Exception:
    if os.environ.get("CONCH_CONTAINER_REQUIRE_DOCKER"):
        return DockerUnavailable(reason)
    return SkipTest(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start() -> Registry:
    program = shutil.which(REGISTRY_PROGRAM)
    if program is None:
        raise _unavailable(f"{REGISTRY_PROGRAM} is not installed")
    directory = tempfile.mkdtemp(prefix="conch-container-registry-")
    password = secrets.token_urlsafe(18)
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=6)).decode()
    htpasswd = os.path.join(directory, "htpasswd")
    with open(htpasswd, "w", encoding="utf-8") as f:
        f.write(f"{USERNAME}:{hashed}\n")
    last_error = ""
    # Another process may take the free port before the registry binds it: try a few.
    for _attempt in range(3):
        port = _free_port()
        config = os.path.join(directory, "config.yml")
        with open(config, "w", encoding="utf-8") as f:
            f.write(
                _CONFIG.format(root=os.path.join(directory, "data"), port=port, htpasswd=htpasswd)
            )
        log = open(os.path.join(directory, "registry.log"), "wb")
        try:
            process = subprocess.Popen(
                [program, "serve", config],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        started = Registry(f"localhost:{port}", password, process, directory)
        if _wait_ready(started):
            return started
        last_error = started.log_text()[-2000:]
        started.process.kill()
        started.process.wait()
    shutil.rmtree(directory, ignore_errors=True)
    raise _unavailable(f"the registry did not start: {last_error}")


def _wait_ready(started: Registry) -> bool:
    """Poll ``/v2/`` until it answers (401: authentication is on)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if started.process.poll() is not None:
            return False
        try:
            urllib.request.urlopen(f"{started.url}/v2/", timeout=2).close()
        except urllib.error.HTTPError as e:
            if e.code == 401:
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


_CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  secret: conch-container-tests
auth:
  htpasswd:
    realm: conch-container-tests
    path: {htpasswd}
"""


def push(client: Any, source: str, repository: str, tag: str, auth: dict[str, str]) -> str:
    """Tag ``source`` as ``repository:tag`` and push it (blocking); returns the name.

    The local tag stays; errors reported inside the push stream are raised.
    """
    client.tag(source, repository, tag)
    for event in client.push(repository, tag=tag, stream=True, decode=True, auth_config=auth):
        if isinstance(event, dict) and ("error" in event or "errorDetail" in event):
            raise AssertionError(f"push of {repository}:{tag} failed: {event}")
    return f"{repository}:{tag}"


def remove_local(client: Any, name: str) -> None:
    """Remove the engine's tag ``name`` (the layers stay while other tags use them)."""
    import docker.errors

    try:
        client.remove_image(name)
    except docker.errors.NotFound:
        pass

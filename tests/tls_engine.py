"""A second, real Docker engine that listens on loopback TCP with TLS.

Started lazily, once per test process, with certificates made here (a CA, a
server certificate for 127.0.0.1 and ``localhost``, a client certificate),
its own data, exec and socket directories, and the same storage and network
flags as the main engine; the guest image is copied into it from the main
engine. It is stopped, and its directory removed, when the process exits.
Tests reach it with the PEM text in :attr:`TLSEngine.connection` (the
``docker.connection`` keys) and check it through :attr:`TLSEngine.socket_url`.

A missing ``dockerd`` skips the tests on a developer's machine and fails them
where ``CONCH_CONTAINER_REQUIRE_DOCKER`` is set, as :mod:`tests.docker_support`.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest

from conch_container.deferreds import Once
from tests.docker_support import DOCKER_HOST, GUEST_IMAGE, DockerUnavailable
from tests.webhook.pki import Issued, issue, make_ca

#: Seconds for the engine to answer on its socket after it was started.
READY_WITHIN = 60.0


@attrs.frozen
class TLSEngine:
    """A running TLS engine."""

    #: ``tcp://127.0.0.1:PORT``
    host: str
    #: ``docker.connection`` for the gateway: host, cert, key, cacert (PEM text).
    connection: dict[str, str]
    #: Its local socket, for the tests' own checks (leftover containers).
    socket_url: str
    #: The CA that signed its certificate.
    ca: Issued


_once: Once[TLSEngine] | None = None


def tls_engine() -> Deferred[TLSEngine]:
    """The process's TLS engine, started on first use (in a thread)."""
    global _once
    if _once is None:
        _once = Once()
        deferToThread(_start_or_report).addBoth(_once.fire)
    return _once.wait()


def _start_or_report() -> TLSEngine:
    try:
        return _start()
    except Exception as e:
        reason = f"cannot start a Docker engine with TLS: {e}"
        if os.environ.get("CONCH_CONTAINER_REQUIRE_DOCKER"):
            raise DockerUnavailable(reason) from e
        raise SkipTest(reason) from e


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _write(path: str, text: str) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def _start() -> TLSEngine:
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise RuntimeError("dockerd is not installed")
    # Short: the engine's sockets live below it (UNIX socket paths are limited).
    root = tempfile.mkdtemp(prefix="tlsd-", dir="/tmp")
    ca = make_ca("conch-container test engine CA")
    server = issue(ca, "localhost", dns=("localhost",), ips=("127.0.0.1",))
    client = issue(ca, "conch-container tests", client=True)
    port = _free_port()
    socket_path = os.path.join(root, "docker.sock")
    args = [
        dockerd,
        f"--config-file={_write(os.path.join(root, 'daemon.json'), '{}')}",
        f"--data-root={os.path.join(root, 'data')}",
        f"--exec-root={os.path.join(root, 'exec')}",
        f"--pidfile={os.path.join(root, 'docker.pid')}",
        f"--host=unix://{socket_path}",
        f"--host=tcp://127.0.0.1:{port}",
        "--tlsverify",
        f"--tlscacert={_write(os.path.join(root, 'ca.pem'), ca.cert_pem)}",
        f"--tlscert={_write(os.path.join(root, 'server.pem'), server.cert_pem)}",
        f"--tlskey={_write(os.path.join(root, 'server-key.pem'), server.key_pem)}",
        "--storage-driver=vfs",
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
    ]
    log = open(os.path.join(root, "dockerd.log"), "wb")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    atexit.register(_stop, process, root)
    socket_url = f"unix://{socket_path}"
    _wait_ready(process, socket_url, root)
    _copy_guest_image(socket_url)
    return TLSEngine(
        host=f"tcp://127.0.0.1:{port}",
        connection={
            "host": f"tcp://127.0.0.1:{port}",
            "cacert": ca.cert_pem,
            "cert": client.cert_pem,
            "key": client.key_pem,
        },
        socket_url=socket_url,
        ca=ca,
    )


def _wait_ready(process: subprocess.Popen[bytes], socket_url: str, root: str) -> None:
    import docker

    give_up = time.monotonic() + READY_WITHIN
    while time.monotonic() < give_up:
        if process.poll() is not None:
            break
        try:
            docker.APIClient(base_url=socket_url, version="auto", timeout=5).ping()
            return
        except Exception:
            time.sleep(0.25)
    with open(os.path.join(root, "dockerd.log"), "rb") as f:
        tail = f.read()[-2000:].decode("utf-8", "replace")
    raise RuntimeError(f"the TLS engine did not become ready: {tail}")


def _copy_guest_image(socket_url: str) -> None:
    save = subprocess.Popen(
        ["docker", "-H", DOCKER_HOST, "save", GUEST_IMAGE], stdout=subprocess.PIPE
    )
    try:
        subprocess.run(
            ["docker", "-H", socket_url, "load", "--quiet"],
            stdin=save.stdout,
            check=True,
            capture_output=True,
            timeout=120,
        )
    finally:
        if save.stdout is not None:
            save.stdout.close()
        save.wait(60)
    if save.returncode != 0:
        raise RuntimeError(f"docker save {GUEST_IMAGE} failed ({save.returncode})")


def _stop(process: subprocess.Popen[bytes], root: str) -> None:
    """Stop the engine (it stops its containerd) and remove its directory."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    # A killed engine may leave its containerd behind, in the same session.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    subprocess.run(["umount", "-R", root], capture_output=True, check=False)
    shutil.rmtree(root, ignore_errors=True)

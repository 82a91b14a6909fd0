"""Child processes of the integration tests: ``twistd`` gateways, clients, ports.

The gateway runs as ``twistd containerssh`` in a separate process where a test
needs it to stop or die; these are the pieces such tests share.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import yaml
from twisted.internet import error
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater

from conch_container.auth.static import hash_password
from tests.docker_support import GUEST_IMAGE
from tests.integration.gateway import IDLE_COMMAND, public_line, reactor
from tests.ssh.harness import new_ed25519_pem

#: ``twistd`` from the running interpreter (the script may not be on PATH).
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def twistd_args(config: str) -> list[str]:
    """The arguments of ``twistd containerssh -c config`` in the foreground, no pid file."""
    return [*TWISTD, "--nodaemon", "--pidfile=", "containerssh", "-c", config]


def ssh_key_args(
    ssh: str, key_file: str, known_hosts: str, port: int, destination: str
) -> list[str]:
    """The OpenSSH client's arguments to log in to 127.0.0.1:``port`` with ``key_file`` only.

    No configuration file, no questions (``BatchMode``), host keys recorded
    in ``known_hosts``; the command to run follows.
    """
    return [
        ssh, "-F", "/dev/null", "-o", "StrictHostKeyChecking=no",
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", "LogLevel=ERROR", "-i", key_file, "-p", str(port), destination,
    ]  # fmt: skip


def clean_env() -> dict[str, str]:
    """The environment without PYTHONPATH, so only the installed package is importable."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def accepting(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1 at ``port``."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def log_records(output: bytes) -> list[dict[str, Any]]:
    """The ljson log lines in a process's output, parsed (other lines skipped)."""
    found = []
    for line in output.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "code" in record:
            found.append(record)
    return found


class Output(ProcessProtocol):
    """Collects a child's output (stdout and stderr together) and tells when it ended."""

    def __init__(self) -> None:
        self.output = b""
        self.ended: Deferred[tuple[int | None, int | None]] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        self.ended.callback((reason.value.exitCode, reason.value.signal))


def signal_quietly(process: Any, signum: int) -> None:
    """Send ``signum`` to ``process`` unless it has already exited."""
    try:
        process.signalProcess(signum)
    except error.ProcessExitedAlready:
        pass


async def until(condition: Callable[[], Any], seconds: float, what: str) -> None:
    """Poll ``condition`` (it may return a Deferred) every 0.1 s for at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        result = condition()
        if isinstance(result, Deferred):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:g} s: {what}")
        await deferLater(reactor, 0.1, lambda: None)


async def until_accepting(port: int, seconds: float) -> None:
    """Wait until something listens on 127.0.0.1 at ``port``."""
    await until(lambda: accepting(port), seconds, f"a listener on port {port}")


def write_static_gateway(
    directory: Any,
    user: str,
    port: int,
    *,
    docker_timeouts: dict[str, str] | None = None,
    **sections: Any,
) -> tuple[str, str]:
    """Files for a ``twistd`` gateway with one static user, who logs in with a new key.

    The gateway listens on 127.0.0.1:``port`` and runs the guest image
    without pulling it; ``docker_timeouts`` becomes ``docker.timeouts`` and
    ``sections`` are added to its configuration.

    :param directory: a :class:`~twisted.python.filepath.FilePath` to write to.
    :return: the paths of the configuration file and of the user's private key.
    """
    client_pem = new_ed25519_pem()
    key_file = directory.child("id")
    key_file.setContent(client_pem.encode())
    os.chmod(key_file.path, 0o600)
    users = directory.child("users.yaml")
    entry = {
        "passwordHash": hash_password("unused-password", rounds=4),
        "authorizedKeys": [public_line(client_pem)],
    }
    users.setContent(yaml.safe_dump({"users": {user: entry}}).encode())
    config: dict[str, Any] = {
        "ssh": {"listen": f"127.0.0.1:{port}", "hostkeys": [new_ed25519_pem()]},
        "auth": {"publicKey": {"method": "static", "static": {"usersFile": users.path}}},
        "log": {"level": "info"},
        "docker": {
            "execution": {
                "container": {"image": GUEST_IMAGE},
                "imagePullPolicy": "Never",
                "disableAgent": True,
                "idleCommand": IDLE_COMMAND,
            },
            **({"timeouts": docker_timeouts} if docker_timeouts else {}),
        },
        **sections,
    }
    config_file = directory.child("config.yaml")
    config_file.setContent(yaml.safe_dump(config).encode())
    return config_file.path, key_file.path

"""``twistd containerssh`` as an operator runs it: a separate process.

The plugin is found from the installed package (not the checkout), a broken
configuration stops it before it starts with ``CORE_CONFIG_ERROR`` and no
traceback, and ``SIGTERM`` with users logged in ends every session and
removes every container within the shutdown deadline.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from typing import Any

import yaml
from twisted.internet import error
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from conch_container.auth.static import hash_password
from conch_container.backend.docker.containerconfig import LABEL_USERNAME
from tests.docker_support import GUEST_IMAGE, docker_client
from tests.integration.gateway import IDLE_COMMAND, SSH, public_line, reactor
from tests.ssh.harness import new_ed25519_pem

TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
RUN = ("--nodaemon", "--pidfile=", "containerssh", "-c")


def clean_env() -> dict[str, str]:
    """The environment without PYTHONPATH, so only the installed package is importable."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Collector(ProcessProtocol):
    def __init__(self) -> None:
        self.output = b""
        self.ended: Deferred[tuple[int | None, int | None]] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        self.ended.callback((reason.value.exitCode, reason.value.signal))


class TwistdPluginTests(TestCase):
    """The plugin and the start-up checks, in a separate ``twistd`` process."""

    timeout = 60

    def setUp(self) -> None:
        self.dir = FilePath(self.mktemp())
        self.dir.makedirs()

    async def twistd(self, *args: str) -> tuple[bytes, int]:
        out, err, code = await getProcessOutputAndValue(
            TWISTD[0], [*TWISTD[1:], *args], env=clean_env(), path=self.dir.path
        )
        return out + err, code

    async def test_plugin_listed(self) -> None:
        """``twistd --help`` run outside the checkout lists the containerssh plugin."""
        output, code = await self.twistd("--help")
        self.assertEqual(code, 0, output)
        self.assertIn(b"containerssh", output)

    async def test_config_error_before_start(self) -> None:
        """A misspelt key stops twistd with CORE_CONFIG_ERROR, the key path, no traceback."""
        config = self.dir.child("config.yaml")
        config.setContent(b"docker:\n  execution:\n    contianer: {image: busybox}\n")
        output, code = await self.twistd(
            "--nodaemon", "--pidfile=", "containerssh", "-c", config.path
        )
        self.assertNotEqual(code, 0)
        self.assertIn(b"CORE_CONFIG_ERROR", output)
        self.assertIn(b"docker.execution.contianer: unknown key", output)
        self.assertNotIn(b"Traceback", output)

    async def test_port_in_use(self) -> None:
        """An address already in use ends the process with SSH_START_FAILED and status 1."""
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        self.addCleanup(blocker.close)
        port = blocker.getsockname()[1]
        config = self.dir.child("config.yaml")
        users = self.dir.child("users.yaml")
        users.setContent(b"users: {}\n")
        config.setContent(
            yaml.safe_dump(
                {
                    "ssh": {"listen": f"127.0.0.1:{port}", "hostkeys": [new_ed25519_pem()]},
                    "auth": {"password": {"method": "static", "static": {"usersFile": users.path}}},
                    "docker": {"execution": {"container": {"image": GUEST_IMAGE}}},
                }
            ).encode()
        )
        output, code = await self.twistd(
            "--nodaemon", "--pidfile=", "containerssh", "-c", config.path
        )
        self.assertEqual(code, 1, output)
        self.assertIn(b"SSH_START_FAILED", output)
        self.assertNotIn(b"Traceback", output)


class GracefulStopTests(TestCase):
    """SIGTERM with users logged in: sessions end, containers go, the process exits 0."""

    timeout = 120

    async def test_sigterm_with_open_sessions(self) -> None:
        """Three users in long-running sessions; SIGTERM; all disconnected, no container left."""
        if SSH is None:
            self.fail("the OpenSSH client (ssh) is required")
        docker = docker_client()
        directory = FilePath(self.mktemp())
        directory.makedirs()
        client_pem = new_ed25519_pem()
        key_file = directory.child("id")
        key_file.setContent(client_pem.encode())
        os.chmod(key_file.path, 0o600)
        user = "stopper" + str(os.getpid())
        directory.child("users.yaml").setContent(
            yaml.safe_dump(
                {
                    "users": {
                        user: {
                            "passwordHash": hash_password("unused-password", rounds=4),
                            "authorizedKeys": [public_line(client_pem)],
                        }
                    }
                }
            ).encode()
        )
        port = free_port()
        config = directory.child("config.yaml")
        config.setContent(
            yaml.safe_dump(
                {
                    "ssh": {"listen": f"127.0.0.1:{port}", "hostkeys": [new_ed25519_pem()]},
                    "auth": {
                        "publicKey": {
                            "method": "static",
                            "static": {"usersFile": directory.child("users.yaml").path},
                        }
                    },
                    "log": {"level": "info"},
                    "docker": {
                        "execution": {
                            "container": {"image": GUEST_IMAGE},
                            "imagePullPolicy": "Never",
                            "disableAgent": True,
                            "idleCommand": IDLE_COMMAND,
                        }
                    },
                }
            ).encode()
        )
        gateway = Collector()
        process = reactor.spawnProcess(
            gateway,
            TWISTD[0],
            [*TWISTD, "--nodaemon", "--pidfile=", "containerssh", "-c", config.path],
            env=clean_env(),
            path=directory.path,
        )
        self.addCleanup(self._kill, process)
        await self._wait_for_port(port)

        clients = []
        for _ in range(3):
            client = Collector()
            reactor.spawnProcess(
                client,
                SSH,
                [
                    SSH, "-F", "/dev/null", "-o", "StrictHostKeyChecking=no",
                    "-o", f"UserKnownHostsFile={directory.child('known').path}",
                    "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-i", key_file.path,
                    "-p", str(port), f"{user}@127.0.0.1", "echo started; sleep 300",
                ],
                env=clean_env(),
            )  # fmt: skip
            clients.append(client)
        await self._until(lambda: all(b"started" in c.output for c in clients), 60)
        running = await deferToThread(
            docker.containers, filters={"label": f"{LABEL_USERNAME}={user}"}
        )
        self.assertEqual(len(running), 3)

        started = time.monotonic()
        process.signalProcess(signal.SIGTERM)
        code, by_signal = await gateway.ended
        self.assertLess(time.monotonic() - started, 25, gateway.output)
        # twistd ends a clean stop by re-raising the signal it got, as init
        # systems expect (systemd counts death by SIGTERM as a clean exit).
        self.assertIn((code, by_signal), [(0, None), (None, signal.SIGTERM)], gateway.output)
        for client in clients:
            await client.ended
            self.assertIn(b"The server is shutting down.", client.output)
        left = await deferToThread(
            docker.containers, all=True, filters={"label": f"{LABEL_USERNAME}={user}"}
        )
        self.assertEqual(left, [], gateway.output)

    async def _wait_for_port(self, port: int) -> None:
        def accepting() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        await self._until(accepting, 30)

    async def _until(self, condition: Any, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                self.fail("condition not reached in time")
            await deferLater(reactor, 0.1, lambda: None)

    def _kill(self, process: Any) -> None:
        try:
            process.signalProcess(signal.SIGKILL)
        except error.ProcessExitedAlready:
            pass

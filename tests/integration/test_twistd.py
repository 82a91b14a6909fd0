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
import time

import yaml
from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from conch_container.backend.docker.containerconfig import LABEL_USERNAME
from tests.docker_support import GUEST_IMAGE, docker_client
from tests.integration.gateway import SSH, reactor
from tests.integration.processes import (
    TWISTD,
    Output,
    clean_env,
    free_port,
    signal_quietly,
    twistd_args,
    until,
    until_accepting,
    write_static_gateway,
)
from tests.ssh.harness import new_ed25519_pem

RUN = ("--nodaemon", "--pidfile=", "containerssh", "-c")


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
        user = "stopper" + str(os.getpid())
        port = free_port()
        config_path, key_path = write_static_gateway(directory, user, port)
        config, key_file = FilePath(config_path), FilePath(key_path)
        gateway = Output()
        process = reactor.spawnProcess(
            gateway,
            TWISTD[0],
            twistd_args(config.path),
            env=clean_env(),
            path=directory.path,
        )
        self.addCleanup(signal_quietly, process, signal.SIGKILL)
        await until_accepting(port, 30)

        clients = []
        for _ in range(3):
            client = Output()
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
        await until(lambda: all(b"started" in c.output for c in clients), 60, "sessions started")
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


class LogFileTests(TestCase):
    """``log.destination: file`` under twistd: ljson lines, reopened on SIGHUP."""

    timeout = 60

    async def test_sighup_reopens_log_file(self) -> None:
        """After the file is moved away (logrotate), SIGHUP makes the gateway write a new one."""
        directory = FilePath(self.mktemp())
        directory.makedirs()
        users = directory.child("users.yaml")
        users.setContent(b"users: {}\n")
        log_file = directory.child("gateway.log")
        port = free_port()
        config = directory.child("config.yaml")
        config.setContent(
            yaml.safe_dump(
                {
                    "ssh": {"listen": f"127.0.0.1:{port}", "hostkeys": [new_ed25519_pem()]},
                    "auth": {"password": {"method": "static", "static": {"usersFile": users.path}}},
                    "log": {"level": "info", "destination": "file", "file": log_file.path},
                    "docker": {"execution": {"container": {"image": GUEST_IMAGE}}},
                }
            ).encode()
        )
        gateway = Output()
        process = reactor.spawnProcess(
            gateway, TWISTD[0], twistd_args(config.path), env=clean_env(), path=directory.path
        )
        # Cleanups run last first: kill the gateway, then wait for it to end.
        self.addCleanup(lambda: gateway.ended)
        self.addCleanup(signal_quietly, process, signal.SIGKILL)
        await until_accepting(port, 30)
        await until(lambda: b"SSH_AVAILABLE" in log_file.getContent(), 10, "SSH_AVAILABLE logged")

        rotated = directory.child("gateway.log.1")
        log_file.moveTo(rotated)
        process.signalProcess(signal.SIGHUP)
        await until(log_file.exists, 10, "a new log file after SIGHUP")
        # A connection that closes at once is logged (SSH_CONNECTED at info).
        socket.create_connection(("127.0.0.1", port)).close()
        await until(lambda: b"SSH_CONNECTED" in log_file.getContent(), 10, "a line in the new file")
        self.assertIn(b'"code":"SSH_AVAILABLE"', rotated.getContent())
        self.assertNotIn(b"SSH_AVAILABLE", log_file.getContent())

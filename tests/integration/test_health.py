"""The health endpoint of a real ``twistd containerssh`` process, and the probe command.

With ``health.enable`` the gateway answers ``ok`` over real HTTP once every
service runs and ``conch-container health-check`` exits 0; once the gateway
has stopped the command exits non-zero. With it off nothing listens on
``health.listen`` (unlike ContainerSSH) and the command fails at once.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from typing import Any

from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from tests.docker_support import docker_client
from tests.httpserver.support import get
from tests.integration.gateway import reactor
from tests.integration.processes import (
    TWISTD,
    Output,
    accepting,
    clean_env,
    free_port,
    signal_quietly,
    twistd_args,
    until_accepting,
    write_static_gateway,
)

#: The installed command, run from the running interpreter (the script may not be on PATH).
HEALTH_CHECK = [sys.executable, "-m", "conch_container.cli", "health-check", "-c"]


class HealthEndpointTests(TestCase):
    timeout = 90

    def setUp(self) -> None:
        docker_client()  # the gateway's Docker backend needs the engine
        self.dir = FilePath(self.mktemp())
        self.dir.makedirs()
        self.ssh_port = free_port()
        self.health_port = free_port()

    def start(self, enable: bool) -> tuple[str, Any, Output]:
        health = {
            "enable": enable,
            "listen": f"127.0.0.1:{self.health_port}",
            "client": {"url": f"http://127.0.0.1:{self.health_port}/", "timeout": "5s"},
        }
        user = f"health{os.getpid()}"
        config, _ = write_static_gateway(self.dir, user, self.ssh_port, health=health)
        gateway = Output()
        process = reactor.spawnProcess(
            gateway, TWISTD[0], twistd_args(config), env=clean_env(), path=self.dir.path
        )
        self.addCleanup(signal_quietly, process, signal.SIGKILL)
        return config, process, gateway

    async def until_listening(self, port: int, gateway: Output) -> None:
        try:
            await until_accepting(port, 30)
        except AssertionError as e:
            raise AssertionError(f"{e}; gateway output:\n{gateway.output.decode()}") from None

    async def expect_health_check(self, config: str, status: int, says: bytes) -> None:
        """Run the command; it exits with ``status``, saying ``says``, without a traceback."""
        out, err, code = await getProcessOutputAndValue(
            HEALTH_CHECK[0], [*HEALTH_CHECK[1:], config], env=clean_env(), path=self.dir.path
        )
        self.assertEqual(code, status, out + err)
        self.assertIn(says, out + err)
        self.assertNotIn(b"Traceback", out + err)

    async def test_enabled(self) -> None:
        """ok over HTTP, the command passes while the gateway runs and fails once it stopped."""
        config, process, gateway = self.start(enable=True)
        await self.until_listening(self.health_port, gateway)
        url = f"http://127.0.0.1:{self.health_port}/any/path"
        self.assertEqual(await get(url), (200, b"ok"))
        self.assertEqual(await get(url, accept="application/json"), (200, b'"ok"'))
        self.assertIn(b"HEALTH_AVAILABLE", gateway.output)

        await self.expect_health_check(config, 0, b"CORE_HEALTH_CHECK_SUCCESSFUL")

        process.signalProcess(signal.SIGTERM)
        await gateway.ended
        await self.expect_health_check(config, 1, b"CORE_HEALTH_CHECK_FAILED")

    async def test_port_in_use(self) -> None:
        """A health port that is taken stops the gateway with HTTP_LISTEN_FAILED and status 1."""
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", self.health_port))
        blocker.listen()
        self.addCleanup(blocker.close)
        _, _, gateway = self.start(enable=True)
        code, _ = await gateway.ended
        output = gateway.output
        self.assertEqual(code, 1, output)
        self.assertIn(b"HTTP_LISTEN_FAILED", output)
        self.assertIn(b"SERVICE_CRASHED", output)
        self.assertNotIn(b"Traceback", output)

    async def test_disabled(self) -> None:
        """Nothing listens on health.listen, and the command says health is off."""
        config, process, gateway = self.start(enable=False)
        await self.until_listening(self.ssh_port, gateway)
        self.assertFalse(accepting(self.health_port))
        self.assertNotIn(b"HEALTH_AVAILABLE", gateway.output)
        await self.expect_health_check(config, 1, b"health.enable is false")
        process.signalProcess(signal.SIGTERM)
        await gateway.ended

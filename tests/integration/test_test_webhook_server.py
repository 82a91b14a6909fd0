"""The demo's webhook setup end to end: the test webhook server and ``twistd containerssh``.

Both run as processes, as an operator runs them: ``conch-container
test-webhook-server`` with the demo's users file, and the gateway with the
demo's ``webhook-config.yaml`` (free ports, this test's host key, the test's
guest image) pointing authentication, authorization and ``configserver.url``
at it. The real OpenSSH client then logs in: ``demo`` gets its environment
and file from the authentication answer, ``ops`` its own container settings
from the configuration server, ``visitor`` is refused by the authorization
webhook, a wrong password is refused. No container is left behind.
"""

from __future__ import annotations

import importlib.resources
import os
import shutil
import signal
import sys
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from conch_container import messages
from conch_container.backend.docker.containerconfig import LABEL_INSTANCE
from tests.docker_support import GUEST_IMAGE, docker_client
from tests.integration.gateway import SSH, reactor
from tests.integration.processes import (
    Output,
    accepting,
    clean_env,
    free_port,
    log_records,
    signal_quietly,
    twistd_args,
    until,
)
from tests.metrics.scrape import scrape
from tests.ssh.harness import new_ed25519_pem

DEMO = importlib.resources.files("conch_container") / "demo"
#: The demo users' passwords (written next to their hashes in the users file).
PASSWORDS = {"demo": "demo", "ops": "ops", "visitor": "demo"}
#: The sensitive value in the users file, which no log line may carry.
SECRET = b"not-a-real-token"
#: Seconds a logged-out user's container may take to go (containerStop is 10 s by default).
REMOVAL = 30


def _records(output: Output, code: messages.MessageCode) -> list[dict[str, Any]]:
    return [r for r in log_records(output.output) if r.get("code") == code.code]


class DemoWebhookSetupTests(TestCase):
    timeout = 180

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        if SSH is None or shutil.which("sshpass") is None:
            self.fail("the OpenSSH client (ssh) and sshpass are required")
        self.docker = docker_client()
        self.dir = FilePath(self.mktemp())
        self.dir.makedirs()
        return Deferred.fromCoroutine(self._start())

    def spawn(self, argv: list[str]) -> tuple[Any, Output]:
        output = Output()
        process = reactor.spawnProcess(output, argv[0], argv, env=clean_env(), path=self.dir.path)
        self.addCleanup(signal_quietly, process, signal.SIGKILL)
        return process, output

    async def _start(self) -> None:
        # The webhook server first: the gateway's configuration needs its address.
        self.server_process, self.server = self.spawn([
            sys.executable, "-m", "conch_container.cli", "test-webhook-server",
            "--users", str(DEMO / "webhook-users.yaml"), "--listen", "127.0.0.1:0",
            "--log-format", "ljson", "--log-level", "debug",
        ])  # fmt: skip
        available = messages.CONFIG_SERVER_AVAILABLE
        await until(
            lambda: _records(self.server, available) or self.server.ended.called,
            30,
            "the test webhook server listens",
        )
        [listening] = _records(self.server, available) or [None]
        self.assertIsNotNone(listening, self.server.output.decode(errors="replace"))
        url = f"http://{listening['details']['listen']}"

        self.ssh_port = free_port()
        config = yaml.safe_load((DEMO / "webhook-config.yaml").read_text())
        config["ssh"].update(listen=f"127.0.0.1:{self.ssh_port}", hostkeys=[new_ed25519_pem()])
        for method in ("password", "publicKey", "authz"):
            config["auth"][method]["webhook"]["url"] = url
        config["configserver"]["url"] = f"{url}/config"
        config["log"] = {"level": "info", "format": "ljson"}
        config["docker"]["execution"]["container"]["image"] = GUEST_IMAGE
        self.metrics_port, health_port = free_port(), free_port()
        config["metrics"]["listen"] = f"127.0.0.1:{self.metrics_port}"
        config["health"]["listen"] = f"127.0.0.1:{health_port}"
        config["health"]["client"]["url"] = f"http://127.0.0.1:{health_port}/"
        config_file = self.dir.child("config.yaml")
        config_file.setContent(yaml.safe_dump(config).encode())

        self.gateway_process, self.gateway = self.spawn(twistd_args(config_file.path))
        # Cleanups run last-in first-out: the gateway stops before the server.
        self.addCleanup(self.stop, self.server_process, self.server)
        self.addCleanup(self.stop_gateway)
        await until(
            lambda: accepting(self.ssh_port) or self.gateway.ended.called, 60, "the gateway listens"
        )
        self.assertTrue(accepting(self.ssh_port), self.gateway.output.decode(errors="replace"))
        [started] = _records(self.gateway, messages.CORE_INSTANCE_ID)
        self.instance_id = started["details"]["instanceId"]

    async def stop(
        self, process: Any, output: Output, *ends: tuple[int | None, int | None]
    ) -> None:
        """SIGTERM; the process must end cleanly: exit 0, or one of ``ends``."""
        signal_quietly(process, signal.SIGTERM)
        ended = await output.ended
        self.assertIn(ended, [(0, None), *ends], output.output.decode(errors="replace"))

    async def stop_gateway(self) -> None:
        """Every container is gone once sessions ended, and still none after the gateway stops."""
        try:
            await until(
                lambda: self.containers().addCallback(lambda left: not left),
                REMOVAL,
                "the containers of ended sessions are removed",
            )
        finally:
            # twistd ends by the signal it stopped for, once everything stopped.
            await self.stop(self.gateway_process, self.gateway, (None, signal.SIGTERM))
            left = await self.containers()
            for container in left:
                await deferToThread(self.docker.remove_container, container["Id"], force=True)
            self.assertEqual(left, [], "containers left behind")
        self.assertNotIn(SECRET, self.gateway.output)
        self.assertNotIn(SECRET, self.server.output)

    def containers(self) -> Deferred[list[dict[str, Any]]]:
        """The gateway's containers, in any state."""
        return deferToThread(
            self.docker.containers,
            all=True,
            filters={"label": f"{LABEL_INSTANCE}={self.instance_id}"},
        )

    def ssh_argv(self, user: str, command: str, password: str | None = None) -> list[str]:
        """``sshpass`` and its arguments: the OpenSSH client logging in with a password."""
        sshpass = shutil.which("sshpass")
        assert sshpass is not None
        return [sshpass, "-p", password or PASSWORDS[user], SSH or "ssh",
            "-F", "/dev/null",
            "-o", f"UserKnownHostsFile={self.dir.child('known_hosts').path}",
            "-o", "StrictHostKeyChecking=no",
            "-o", "PreferredAuthentications=password",
            "-o", "PubkeyAuthentication=no",
            "-o", "NumberOfPasswordPrompts=1",
            "-o", "ConnectTimeout=30",
            "-o", "LogLevel=ERROR",
            "-p", str(self.ssh_port),
            f"{user}@127.0.0.1", command,
        ]  # fmt: skip

    async def ssh(
        self, user: str, command: str, password: str | None = None
    ) -> tuple[bytes, bytes, int]:
        """Run ``command`` as ``user``; (stdout, stderr, exit status)."""
        executable, *argv = self.ssh_argv(user, command, password)
        out, err, code = await getProcessOutputAndValue(executable, argv, env=dict(os.environ))
        return out, err, code

    async def answered(self, endpoint: str, user: str) -> list[dict[str, Any]]:
        """The webhook server's answers on ``endpoint`` to ``user`` (waiting for its log line)."""

        def found() -> list[dict[str, Any]]:
            return [
                r["details"]
                for r in _records(self.server, messages.TEST_WEBHOOK_ANSWERED)
                if r["details"].get("endpoint") == endpoint and r["details"].get("user") == user
            ]

        await until(found, 10, f"the webhook server answers {endpoint} for {user}")
        return found()

    async def test_demo_gets_environment_and_file(self) -> None:
        """demo's shell has the variable and the file from the authentication answer."""
        out, err, code = await self.ssh("demo", 'echo "$GREETING"; cat ~/WELCOME.txt; hostname')
        expected = (
            b"Hello from the test webhook server\n"
            b"This file came from the authentication webhook.\n"
            b"demo\n"
        )
        self.assertEqual((out, code), (expected, 0), err)
        [answer] = await self.answered("password", "demo")
        self.assertTrue(answer["success"])
        await self.answered("authz", "demo")
        await self.answered("config", "demo")

    async def test_ops_gets_its_configuration(self) -> None:
        """ops's container has the hostname and variable its configuration server answer sets."""
        out, err, code = await self.ssh("ops", 'hostname; echo "$EDITOR $TEAM"')
        self.assertEqual((out, code), (b"ops\nvi ops\n", 0), err)
        await self.answered("config", "ops")
        # The demo's metrics endpoint counted the configuration server's answer.
        code, _, body = await scrape(f"http://127.0.0.1:{self.metrics_port}/metrics")
        self.assertEqual(code, 200)
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body)
            for sample in family.samples
        }
        requests = ("containerssh_config_server_requests_total", (("retry", "0"),))
        self.assertGreaterEqual(samples.get(requests, 0), 1)

    async def test_visitor_refused_by_authorization(self) -> None:
        """visitor's password is right, but the authorization webhook refuses: no container."""
        out, err, code = await self.ssh("visitor", "echo should-not-run")
        self.assertEqual((out, code), (b"", 255), err)
        self.assertIn(b"Permission denied", err)
        [answer] = await self.answered("password", "visitor")
        self.assertTrue(answer["success"])
        [answer] = await self.answered("authz", "visitor")
        self.assertFalse(answer["success"])
        await until(
            lambda: _records(self.gateway, messages.AUTHZ_FAILED),
            10,
            "the gateway logs AUTHZ_FAILED",
        )
        self.assertEqual(_records(self.gateway, messages.DOCKER_CONTAINER_CREATE), [])

    async def test_wrong_password_refused(self) -> None:
        """A wrong password is refused by the webhook server: no container."""
        out, err, code = await self.ssh("demo", "echo should-not-run", password="not-demo")
        self.assertEqual((out, code), (b"", 255), err)
        self.assertIn(b"Permission denied", err)
        [answer] = await self.answered("password", "demo")
        self.assertFalse(answer["success"])
        self.assertEqual(_records(self.gateway, messages.DOCKER_CONTAINER_CREATE), [])

    async def test_container_removed_when_the_client_goes(self) -> None:
        """A session's container is there while it runs and goes once the client is killed."""
        argv = self.ssh_argv("demo", "echo started; sleep 300")
        client = Output()
        process = reactor.spawnProcess(client, argv[0], argv, env=dict(os.environ))
        self.addCleanup(signal_quietly, process, signal.SIGKILL)
        await until(lambda: b"started" in client.output or client.ended.called, 60, "the session")
        self.assertEqual(len(await self.containers()), 1, client.output)
        process.signalProcess(signal.SIGKILL)
        await client.ended
        # The cleanup waits for the container to go, then stops the gateway.

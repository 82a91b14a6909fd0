"""Two gateways on one Docker engine, as two gateway containers would run.

Each ``twistd containerssh`` runs in a network namespace of its own (the one
thing a container adds that matters here: neither sees the other's listening
socket), with the same host name, the same configuration file and the same
listen address ``127.0.0.1:2222``; the OpenSSH client enters a gateway's
namespace to log in. The gateways share the configuration's directory (a
bind-mounted configuration directory), or each keeps its state in its own
directory (each container's own file system).

A user logged in through the first gateway keeps their container and their
session while the second starts and runs its start-up clean-up; and a
gateway killed with ``SIGKILL`` and started again still removes what its
dead run left behind, without touching its live neighbour's containers.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
from typing import Any

import docker.errors
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SkipTest, TestCase

from conch_container.backend.docker.containerconfig import LABEL_USERNAME
from tests.docker_support import docker_client
from tests.integration.gateway import SSH, reactor
from tests.integration.processes import (
    Output,
    signal_quietly,
    twistd_args,
    until,
    write_static_gateway,
)
from tests.integration.test_no_leftovers import CHECKOUT, Gateway, instance_containers

#: The listen address of every gateway, each in its own network namespace.
PORT = 2222
UNSHARE = shutil.which("unshare")
NSENTER = shutil.which("nsenter")
IP = shutil.which("ip") or "/usr/sbin/ip"
#: A session that answers each line it reads, so a test can tell it is still alive.
ECHO_SESSION = 'echo started; while read line; do echo "echo:$line"; done'


def require_network_namespaces() -> None:
    """Skip (fail where Docker is required) when no network namespace can be made."""
    reason = None
    if UNSHARE is None or NSENTER is None:
        reason = "unshare and nsenter (util-linux) are required"
    else:
        probe = subprocess.run(
            [UNSHARE, "--net", IP, "link", "set", "lo", "up"], capture_output=True, check=False
        )
        if probe.returncode != 0:
            reason = f"cannot make a network namespace: {probe.stderr.decode(errors='replace')}"
    if reason is None:
        return
    if os.environ.get("CONCH_CONTAINER_REQUIRE_DOCKER"):
        raise AssertionError(reason)
    raise SkipTest(reason)


class IsolatedGateway(Gateway):
    """``twistd containerssh`` in a network namespace of its own, as in its own container."""

    def __init__(self, config: FilePath[str], *options: str) -> None:
        super().__init__(config, PORT)
        self.options = options

    def start(self) -> None:
        assert UNSHARE is not None
        self.out = Output()
        self.runs.append(self.out)
        command = [*twistd_args(self.config.path), *self.options]
        self.process = reactor.spawnProcess(
            self.out,
            UNSHARE,
            [UNSHARE, "--net", "--", "sh", "-c", f'{IP} link set lo up && exec "$@"', "sh",
             *command],
            env={**os.environ, "PYTHONPATH": CHECKOUT},
            path=self.config.parent().path,
        )  # fmt: skip

    def accepting(self) -> bool:
        # The listener is out of this namespace's reach: its log says when it listens.
        return "SSH_AVAILABLE" in self.codes()

    def codes(self) -> list[str]:
        return [r["code"] for r in self.records()]

    def in_namespace(self, *argv: str) -> list[str]:
        """``argv`` run in this gateway's network namespace."""
        assert NSENTER is not None
        return [NSENTER, f"--net=/proc/{self.process.pid}/ns/net", "--", *argv]

    async def stop(self) -> None:
        """SIGTERM, and wait for the process to end."""
        if self.process is not None and not self.out.ended.called:
            signal_quietly(self.process, signal.SIGTERM)
            await self.out.ended


class Session:
    """An OpenSSH client in a session that echoes what it is sent."""

    def __init__(self, process: Any, output: Output) -> None:
        self.process = process
        self.output = output

    async def answers(self, text: str) -> None:
        """Send a line; fails unless the session echoes it back (and so is alive)."""
        self.process.write(f"{text}\n".encode())
        expected = f"echo:{text}".encode()

        def answered() -> bool:
            if self.output.ended.called:
                raise AssertionError(f"the session ended: {self.output.output!r}")
            return expected in self.output.output

        await until(answered, 30, f"the session answered {text!r}")


class TwoGatewaysOneEngineTests(TestCase):
    """Two gateways, same host name, configuration file and listen address, one engine."""

    timeout = 240

    def setUp(self) -> None:
        if SSH is None:
            self.fail("the OpenSSH client (ssh) is required")
        require_network_namespaces()
        self.docker = docker_client()
        self.dir = FilePath(self.mktemp())
        self.dir.makedirs()
        # A user name of this test's own finds its containers on a shared engine.
        self.user = f"tenant{secrets.token_hex(4)}"
        config, key = write_static_gateway(
            self.dir, self.user, PORT, docker_timeouts={"containerStop": "10s"}
        )
        self.config = FilePath(config)
        self.key_file = FilePath(key)
        self.addCleanup(self.remove_leftovers)

    def gateway(self, *options: str) -> IsolatedGateway:
        gateway = IsolatedGateway(self.config, *options)
        self.addCleanup(_killed, gateway)
        return gateway

    async def remove_leftovers(self) -> None:
        """Whatever a failed test left is removed (and was reported by the test)."""
        for container in await self.user_containers():
            try:
                await deferToThread(self.docker.remove_container, container["Id"], force=True)
            except docker.errors.APIError:
                pass  # gone meanwhile, or its gateway is removing it right now

    async def start(self, gateway: IsolatedGateway) -> None:
        gateway.start()

        def listening() -> bool:
            if gateway.out.ended.called:
                raise AssertionError(gateway.out.output.decode(errors="replace"))
            return gateway.accepting()

        await until(listening, 60, "the gateway listens")

    async def log_in(self, gateway: IsolatedGateway) -> Session:
        """A user's session through ``gateway``, once its container runs."""
        assert SSH is not None
        output = Output()
        argv = gateway.in_namespace(
            SSH, "-F", "/dev/null", "-o", "StrictHostKeyChecking=no",
            "-o", f"UserKnownHostsFile={self.dir.child('known').path}",
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
            "-i", self.key_file.path, "-p", str(PORT), f"{self.user}@127.0.0.1", ECHO_SESSION,
        )  # fmt: skip
        process = reactor.spawnProcess(output, argv[0], argv, env=dict(os.environ))
        self.addCleanup(lambda: output.ended)
        self.addCleanup(signal_quietly, process, signal.SIGKILL)
        await until(lambda: b"started" in output.output, 60, "the session started")
        return Session(process, output)

    def user_containers(self) -> Deferred[list[dict[str, Any]]]:
        """This test's user's containers, running or not."""
        return deferToThread(
            self.docker.containers, all=True, filters={"label": f"{LABEL_USERNAME}={self.user}"}
        )

    async def assert_second_start_spares_first(
        self, first: IsolatedGateway, second: IsolatedGateway
    ) -> None:
        await self.start(first)
        session = await self.log_in(first)
        [container] = await self.user_containers()

        await self.start(second)
        # The second gateway's start-up clean-up has run (it listens): the
        # first one's user still has a live session in the same container.
        await session.answers("after the second start")
        self.assertEqual([c["Id"] for c in await self.user_containers()], [container["Id"]])
        self.assertNotEqual(second.instance_id, first.instance_id)
        self.assertEqual(container["Labels"]["conch_container_instance"], first.instance_id)
        self.assertNotIn("DOCKER_CONTAINER_REMOVE", second.codes())

        # Both serve users at the same address, each in its own namespace.
        other = await self.log_in(second)
        await other.answers("second")
        await session.answers("first")
        await second.stop()
        await first.stop()
        self.assertEqual(await self.user_containers(), [])

    async def test_shared_state_directory(self) -> None:
        """Sharing the configuration's directory, the second takes the next slot's id."""
        first, second = self.gateway(), self.gateway()
        await self.assert_second_start_spares_first(first, second)
        self.assertTrue(self.dir.child("config.yaml.instance-0").exists())
        self.assertTrue(self.dir.child("config.yaml.instance-1").exists())

    async def test_separate_state_directories(self) -> None:
        """Each with a state directory of its own, each makes an id of its own."""
        first = self.gateway("--state-dir", self.dir.child("first").path)
        second = self.gateway("--state-dir", self.dir.child("second").path)
        await self.assert_second_start_spares_first(first, second)

    async def test_killed_gateway_restarted_beside_live_one(self) -> None:
        """SIGKILL, then a restart: the dead run's container goes, the live neighbour's stays."""
        first, second = self.gateway(), self.gateway()
        await self.start(first)
        await self.start(second)
        survivor = await self.log_in(second)
        await self.log_in(first)
        dead_id = first.instance_id
        [orphan] = await instance_containers(self.docker, dead_id)

        first.kill()
        await first.out.ended
        await self.start(first)

        self.assertEqual(first.instance_id, dead_id)
        [reconcile] = [r for r in first.records() if r["code"] == "DOCKER_CONTAINER_RECONCILE"]
        self.assertEqual(reconcile["details"]["containerIds"], orphan["Id"])
        self.assertEqual(await instance_containers(self.docker, dead_id), [])
        await survivor.answers("after the restart beside it")
        self.assertEqual(len(await instance_containers(self.docker, second.instance_id)), 1)
        await first.stop()
        await second.stop()


async def _killed(gateway: IsolatedGateway) -> None:
    """Kill the gateway's current run, if any, and wait until it has ended."""
    if gateway.process is not None and not gateway.out.ended.called:
        gateway.kill()
        await gateway.out.ended

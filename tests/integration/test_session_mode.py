"""Docker ``session`` mode end to end: the real gateway, the real OpenSSH client.

Every session channel gets a container of its own running the program;
after every test (and the gateway's stop) no container of the gateway is
left, and several tests check that each container is gone as soon as its
program ended, while the SSH connection is still open.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.utils import getProcessOutputAndValue

from conch_container.testing.webhook import WebhookUser
from tests.integration.gateway import (
    SSH,
    ControlMasterMixin,
    GatewayTestCase,
    public_line,
    reactor,
)


class SessionModeGatewayTestCase(GatewayTestCase):
    """The test gateway with ``docker.execution.mode: session``."""

    def config_data(self) -> dict[str, Any]:
        data = super().config_data()
        execution = dict(data["docker"]["execution"])
        execution["mode"] = "session"
        data["docker"] = {**data["docker"], "execution": execution}
        return data

    async def until_no_containers(self, timeout: float = 30.0) -> None:
        waited = 0.0
        while await self.own_container_ids():
            if waited > timeout:
                self.fail("the session containers were not removed")
            await task.deferLater(reactor, 0.1)
            waited += 0.1


class ConformanceTests(SessionModeGatewayTestCase):
    """ContainerSSH's conformance cases, each program in its own container."""

    async def test_single_program(self) -> None:
        """``echo "Hello world!"`` prints it and exits 0 (conformance case 1)."""
        out, err, code = await self.ssh('echo "Hello world!"')
        self.assertEqual((out, code), (b"Hello world!\n", 0), err)
        await self.until_no_containers()
        codes = self.logged_codes()
        self.assertIn("DOCKER_CONTAINER_ATTACH", codes)
        self.assertIn("DOCKER_CONTAINER_REMOVE_SUCCESSFUL", codes)
        self.assertNotIn("DOCKER_EXEC", codes)

    async def test_environment_variable(self) -> None:
        """A variable sent with ``SetEnv`` reaches the program (conformance case 2)."""
        out, err, code = await self.ssh('echo "$FOO"', "-o", 'SetEnv=FOO="Hello world!"')
        self.assertEqual((out, code), (b"Hello world!\n", 0), err)

    async def test_exit_code(self) -> None:
        """The program's exit code is the client's exit status (conformance case 4)."""
        _out, err, code = await self.ssh("exit 42")
        self.assertEqual(code, 42, err)

    async def test_stdin_until_eof(self) -> None:
        """Client stdin reaches the program; EOF ends it; output still arrives."""
        blob = self.dir.child("blob")
        blob.setContent(b"x" * 1_000_000)
        argv = " ".join(self.ssh_args())
        out, err, code = await getProcessOutputAndValue(
            "/bin/sh", ["-c", f"ssh {argv} 'wc -c' < {blob.path}"], env=dict(os.environ)
        )
        self.assertEqual((out.strip(), code), (b"1000000", 0), err)


class AuthenticationResultTests(SessionModeGatewayTestCase):
    """What the webhook returns reaches the session containers."""

    async def test_environment_and_files(self) -> None:
        """The webhook's environment is set and its files are in place (mode 0600)."""
        self.webhook.users["alice"] = WebhookUser(
            authorized_keys=[public_line(self.client_pem)],
            environment={"FROM_AUTH": "auth-value"},
            files={"/home/alice/.secret": b"s3cret"},
        )
        out, err, code = await self.ssh(
            'echo "$FROM_AUTH"; stat -c %a /home/alice/.secret; cat /home/alice/.secret'
        )
        self.assertEqual((out, code), (b"auth-value\n600\ns3cret", 0), err)


class MultiplexedConnectionTests(ControlMasterMixin, SessionModeGatewayTestCase):
    """Several sessions on one connection (OpenSSH connection sharing)."""

    async def test_sessions_get_own_containers(self) -> None:
        """Each session on one connection runs in its own container, removed after it."""
        await self.start_master()
        hostnames = []
        for _ in range(3):
            out, err, code = await self.ssh("hostname", "-S", self.control)
            self.assertEqual(code, 0, err)
            hostnames.append(out)
        self.assertEqual(len(set(hostnames)), 3)
        # One login for all of them, and no container left while it is still open.
        self.assertEqual(len(self.webhook.bodies("pubkey")), 1)
        await self.until_no_containers()

    async def test_concurrent_sessions(self) -> None:
        """Sessions running at the same time each have a container; all go afterwards."""
        await self.start_master()
        results = await gatherResults(
            [
                Deferred.fromCoroutine(self.ssh("sleep 1; hostname; exit 7", "-S", self.control))
                for _ in range(3)
            ]
        )
        self.assertEqual([code for _, _, code in results], [7, 7, 7])
        self.assertEqual(len({out for out, _, _ in results}), 3)
        await self.until_no_containers()

    async def test_master_exit_removes_running_session(self) -> None:
        """Closing the shared connection removes the container of a program still running."""
        await self.start_master()
        assert SSH is not None
        argv = [*self.ssh_args("-S", self.control), "sleep 60"]
        running = getProcessOutputAndValue(SSH, argv, env=dict(os.environ))
        waited = 0.0
        while not await self.own_container_ids():
            self.assertLess(waited, 30.0, "the session's container never appeared")
            await task.deferLater(reactor, 0.1)
            waited += 0.1
        await self.stop_master()
        _out, _err, code = await running
        self.assertNotEqual(code, 0)
        await self.until_no_containers()

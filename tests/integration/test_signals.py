"""Signals, exit signals and authentication's files end to end, with the guest agent.

The whole gateway (``twistd containerssh`` assembly, real webhook, real
containers) with the configuration's defaults for the agent: ``disableAgent``
false and ContainerSSH's default idle command
``/usr/bin/containerssh-agent wait-signal --signal INT --signal TERM``. The
client is Conch's over TCP, since it can send ``signal`` requests (OpenSSH's
client cannot be told to).

Two images: the guest image, which has no agent (the gateway copies its own
to ``/usr/bin/containerssh-agent`` before the container starts), and the
guest image with an agent at that path. ContainerSSH's Go agent is not
available to these tests (they run offline), so that image carries the project's script as a
stand-in for the same command line; the gateway must use it as it is.
"""

from __future__ import annotations

from typing import Any

from twisted.conch.ssh import common, keys
from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.threads import deferToThread

from conch_container.testing.webhook import WebhookUser
from tests.backend.test_docker_agent_integration import thd_standin_image
from tests.docker_support import GUEST_IMAGE
from tests.integration.gateway import GatewayTestCase, public_line, reactor
from tests.ssh.harness import Client, ClientChannel, pty_request

#: ContainerSSH's conformance case 5.
WAIT_FOR_USR1 = b'/usr/bin/containerssh-agent wait-signal --signal USR1 --message "USR1 received"'


class BuiltinAgentSignalTests(GatewayTestCase):
    """The guest image without an agent: the gateway's own agent is copied in."""

    image = GUEST_IMAGE
    #: What ``DOCKER_GUEST_AGENT_SELECTED`` should say.
    expected_agent = "installed"

    def config_data(self) -> dict[str, Any]:
        data = super().config_data()
        data["docker"] = {
            "execution": {
                "container": {"image": self.image},
                "imagePullPolicy": "Never",
                "shellCommand": ["/bin/bash"],
                "exposeAuthMetadataAsEnv": True,
            },
        }
        return data

    async def channel(self) -> ClientChannel:
        client = Client("alice", [], [keys.Key.fromString(self.client_pem)])
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        await connectProtocol(endpoint, client.transport)
        conn = await client.authenticated.addTimeout(30, reactor)
        self.addCleanup(client.transport.loseConnection)
        channel = ClientChannel(conn=conn)
        conn.openChannel(channel)
        await channel.opened
        return channel

    def selected_agents(self) -> list[str]:
        return [
            str(r.details.get("agent"))
            for r in self.log_records
            if r.code == "DOCKER_GUEST_AGENT_SELECTED"
        ]

    async def test_conformance_case_5(self) -> None:
        """exec wait-signal, wait 1 s, signal USR1: stdout has "USR1 received", exit 0."""
        channel = await self.channel()
        await channel.request(b"exec", common.NS(WAIT_FOR_USR1))
        await task.deferLater(reactor, 1.0)
        channel.request(b"signal", common.NS(b"USR1"), want_reply=False)
        await channel.closed_d.addTimeout(30, reactor)
        self.assertIn(b"USR1 received", channel.stdout)
        self.assertEqual((channel.exit_status, channel.exit_signal), (0, None))
        self.assertEqual(self.selected_agents(), [self.expected_agent])

    async def test_killed_program_exit_signal(self) -> None:
        """A program the client kills is reported with exit-signal KILL, not exit status 137."""
        channel = await self.channel()
        await channel.request(b"exec", common.NS(b"/bin/sh -c 'echo ready; exec sleep 60'"))
        await _until(lambda: b"ready" in channel.stdout)
        channel.request(b"signal", common.NS(b"KILL"), want_reply=False)
        await channel.closed_d.addTimeout(30, reactor)
        self.assertEqual((channel.exit_status, channel.exit_signal), (None, ("KILL", False, "")))
        self.assertIn("SSH_EXIT_SIGNAL", self.logged_codes())

    async def test_terminated_shell_with_terminal(self) -> None:
        """With a terminal, a shell ended by TERM is reported with exit-signal TERM."""
        channel = await self.channel()
        await channel.request(b"pty-req", pty_request("xterm", 80, 25))
        await channel.request(b"shell")
        # An interactive bash ignores TERM: it is replaced by a program (same
        # process) that does not. The quotes keep the typed echo from matching.
        channel.write(b"exec /bin/sh -c 'echo st\"\"arted; exec sleep 60'\n")
        await _until(lambda: b"started" in channel.stdout)
        channel.request(b"signal", common.NS(b"TERM"), want_reply=False)
        await channel.closed_d.addTimeout(30, reactor)
        self.assertEqual((channel.exit_status, channel.exit_signal), (None, ("TERM", False, "")))

    async def test_files_environment_metadata(self) -> None:
        """Authentication's files (mode 0600), environment and metadata are there at once."""
        self.webhook.users["alice"] = WebhookUser(
            authorized_keys=[public_line(self.client_pem)],
            environment={"FROM_AUTH": "env"},
            metadata={"META": "meta"},
            files={"/root/token": b"secret\x00bytes"},
        )
        channel = await self.channel()
        command = b"/bin/sh -c 'echo \"$FROM_AUTH $META\"; stat -c %a /root/token; cat /root/token'"
        await channel.request(b"exec", common.NS(command))
        await channel.closed_d.addTimeout(30, reactor)
        self.assertEqual(channel.stdout, b"env meta\n600\nsecret\x00bytes")
        self.assertEqual(channel.exit_status, 0)


class ImageAgentSignalTests(BuiltinAgentSignalTests):
    """An image with an agent at ``/usr/bin/containerssh-agent`` (a stand-in, see above)."""

    expected_agent = "image"

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return Deferred.fromCoroutine(self._set_up())

    async def _set_up(self) -> None:
        self.image = await deferToThread(thd_standin_image, _client())
        await super().setUp()


def _client() -> Any:
    from tests.docker_support import docker_client

    return docker_client()


async def _until(predicate: Any, timeout: float = 30.0) -> None:
    waited = 0.0
    while not predicate():
        if waited > timeout:
            raise AssertionError("condition not met in time")
        await task.deferLater(reactor, 0.02)
        waited += 0.02

"""An image that carries a guest agent at ``agentPath`` gets it used, as ContainerSSH would.

ContainerSSH's default idle command runs its agent (``agentPath wait-signal
...``): a pod started with it is ready only if the image has the agent, so
programs, signals and files then go through that agent instead of the
project's shell agent. ContainerSSH's Go binary is not available to these
tests, so the stand-in image of the Docker agent tests carries the project's
script at ``/usr/bin/containerssh-agent`` (same command line); the whole
conformance suite runs against it with the configuration's default idle
command.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.threads import deferToThread
from twisted.logger import globalLogPublisher

from conch_container import messages
from conch_container.config.docker import IDLE_COMMAND
from conch_container.interfaces import ConnectionContext
from conch_container.testing.conformance import BackendConformanceMixin
from tests.backend.helpers import make_context
from tests.backend.kubernetes.test_conformance import KubeAPITestCase, kubernetes_app_config
from tests.backend.test_docker_agent_integration import thd_standin_image
from tests.docker_support import docker_client


def agent_choices(events: list[dict[str, Any]]) -> list[str]:
    return [
        e["agent"] for e in events if e.get("code") == messages.KUBERNETES_GUEST_AGENT_SELECTED.code
    ]


class ImageAgentConformanceTests(KubeAPITestCase, BackendConformanceMixin):
    """The conformance suite with the image's agent, started by the default idle command."""

    async def setUp(self) -> None:
        await super().setUp()
        self.image = await deferToThread(thd_standin_image, docker_client())
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def config(self) -> Any:
        # The configuration's (ContainerSSH's) default idle command runs the image's agent.
        return kubernetes_app_config(
            self.url,
            spec={"containers": [{"name": "shell", "image": self.image}]},
            idleCommand=list(IDLE_COMMAND),
        )

    def make_context(self) -> ConnectionContext:
        return make_context(self.config(), self.log)

    async def test_the_image_agent_is_chosen(self) -> None:
        """KUBERNETES_GUEST_AGENT_SELECTED names the image's agent."""
        backend = self.make_backend()
        connection = await backend.connect(self.make_context())
        self.addCleanup(connection.close)
        code = messages.KUBERNETES_GUEST_AGENT_SELECTED.code
        chosen = [e["agent"] for e in self.events if e.get("code") == code]
        self.assertEqual(chosen, ["image"])

"""The pod a session channel gets in session mode: its program, terminal, stdin, environment."""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import EventLoggingObserver
from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.docker.agent import INLINE_NAME, SHELL, AgentKind, GuestAgent
from conch_container.backend.kubernetes.podmanifest import LABEL_INSTANCE
from conch_container.backend.kubernetes.sessionmode.manifest import (
    console_command,
    session_pod_manifest,
)
from conch_container.log.logger import CodeLogger
from conch_container.metadata import MetadataValue
from tests.backend.kubernetes.test_podmanifest import CONNECTION_ID, connection, pod_config


def session_pod(**pod: Any) -> Any:
    return pod_config(mode="session", **pod)


class ConsoleCommandTests(SynchronousTestCase):
    def test_agent_holds_the_program(self) -> None:
        """With the agent the program waits for the release (--wait); no PID is asked for."""
        agent = GuestAgent(AgentKind.INLINE, "/usr/bin/containerssh-agent")
        command = console_command(agent, ["/bin/sh", "-c", "true"])
        self.assertEqual(command[:2], [SHELL, "-c"])
        self.assertEqual(
            command[3:], [INLINE_NAME, "console", "--wait", "--", "/bin/sh", "-c", "true"]
        )

    def test_without_agent_the_program_as_it_is(self) -> None:
        """disableAgent: the program is the container's command, unchanged."""
        self.assertEqual(console_command(None, ["/bin/bash"]), ["/bin/bash"])


class SessionPodManifestTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.events = EventLoggingObserver()
        self.log = CodeLogger("tests", observer=self.events)

    def build(self, pod: Any, *, tty: bool = False, env: dict[str, str] | None = None) -> Any:
        metadata = connection(
            environment={"CONNECTION_VAR": MetadataValue("from-auth")},
        )
        return session_pod_manifest(
            pod,
            metadata,
            command=["/bin/prog", "arg"],
            env=env or {},
            tty=tty,
            instance_id="gateway-1",
            log=self.log,
        )

    def test_console_runs_the_program(self) -> None:
        """The console container's command is the program; configured args are dropped."""
        pod = session_pod(
            spec={
                "containers": [
                    {"name": "side", "image": "busybox"},
                    {"name": "shell", "image": "guest", "args": ["x"]},
                ]
            },
            consoleContainerNumber=1,
        )
        manifest = self.build(pod)
        console = manifest["spec"]["containers"][1]
        self.assertEqual(console["command"], ["/bin/prog", "arg"])
        self.assertNotIn("args", console)
        self.assertNotIn("command", manifest["spec"]["containers"][0])

    def test_stdin_and_terminal(self) -> None:
        """stdin and stdinOnce always; tty as the channel asked."""
        for tty in (False, True):
            console = self.build(session_pod(), tty=tty)["spec"]["containers"][0]
            self.assertEqual(
                (console["tty"], console["stdin"], console["stdinOnce"]), (tty, True, True)
            )

    def test_restart_policy_never(self) -> None:
        """An empty restart policy becomes Never."""
        for spec in ({}, {"restartPolicy": ""}, {"restartPolicy": "Never"}):
            pod = session_pod(spec={"containers": [{"name": "c", "image": "i"}], **spec})
            self.assertEqual(self.build(pod)["spec"]["restartPolicy"], "Never")

    def test_environment(self) -> None:
        """The connection's environment and then the channel's are in the console container."""
        manifest = self.build(session_pod(), env={"TERM": "xterm", "FOO": "bar"})
        env = manifest["spec"]["containers"][0]["env"]
        self.assertEqual(
            env,
            [
                {"name": "CONNECTION_VAR", "value": "from-auth"},
                {"name": "TERM", "value": "xterm"},
                {"name": "FOO", "value": "bar"},
            ],
        )

    def test_names_are_generated(self) -> None:
        """A connection has many session pods: a name becomes a generateName prefix."""
        meta = self.build(session_pod())["metadata"]
        self.assertNotIn("name", meta)
        self.assertEqual(meta["generateName"], "containerssh-")  # the configured default
        meta = self.build(session_pod(metadata={"generateName": ""}))["metadata"]
        self.assertEqual(
            (meta.get("name"), meta["generateName"]), (None, f"containerssh-{CONNECTION_ID}-")
        )
        meta = self.build(session_pod(metadata={"name": "fixed"}))["metadata"]
        self.assertEqual((meta.get("name"), meta["generateName"]), (None, "fixed-"))
        meta = self.build(session_pod(metadata={"generateName": "given-"}))["metadata"]
        self.assertEqual(meta["generateName"], "given-")

    def test_labels_as_connection_mode(self) -> None:
        """The connection's labels and the instance label, for the clean-up."""
        labels = self.build(session_pod())["metadata"]["labels"]
        self.assertEqual(labels[LABEL_INSTANCE], "gateway-1")
        self.assertEqual(labels["containerssh_connection_id"], CONNECTION_ID)

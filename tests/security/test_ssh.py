"""The security filter behind the whole SSH server, in memory: what a client sees."""

from __future__ import annotations

from typing import Any

import attrs
from twisted.conch.ssh import common, connection
from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.config import parse_config
from conch_container.security import SecurityBackend
from tests.ssh.harness import (
    ClientChannel,
    Harness,
    env_request,
    exec_request,
    make_config,
    pty_request,
    request_result,
)


def secured_harness(security: dict[str, Any]) -> Harness:
    """The in-memory server with the filter in front of its fake backend, as ``tap`` builds it."""
    config = attrs.evolve(make_config(), security=parse_config({"security": security}).security)
    harness = Harness(config=config)
    # The factory reads its backend when a user logs in; nobody has yet.
    harness.factory.backend = SecurityBackend(harness.backend)
    return harness


class SecuredTestCase(SynchronousTestCase):
    security: dict[str, Any] = {}

    def setUp(self) -> None:
        self.harness = secured_harness(self.security)
        self.client = self.harness.login()

    def open(self) -> ClientChannel:
        return self.harness.open_session(self.client)

    def request(self, channel: ClientChannel, name: bytes, data: bytes = b"") -> str:
        d = channel.request(name, data)
        self.harness.flush()
        return request_result(d)

    def failed_reasons(self) -> list[str]:
        return [e["reason"] for e in self.harness.events_with("SSH_CHANNEL_REQUEST_FAILED")]


class RefusedRequestTests(SecuredTestCase):
    security = {
        "env": {"deny": ["LD_PRELOAD"]},
        "command": {"mode": "filter", "allow": ["echo allowed"]},
        "shell": {"mode": "disable"},
        "subsystem": {"mode": "filter", "allow": ["echo"]},
        "tty": {"mode": "disable"},
        "signal": {"mode": "disable"},
    }

    def test_refused_exec_answers_failure(self) -> None:
        """A refused exec gets a failure reply; nothing starts; no stderr, no exit status."""
        channel = self.open()
        self.assertEqual(self.request(channel, b"exec", exec_request("id")), "failed")
        self.assertIsNone(self.harness.backend.sessions[-1].program)
        self.assertEqual((channel.stdout, channel.stderr, channel.exit_status), (b"", b"", None))
        self.assertIn("SECURITY_EXEC_REJECTED", self.harness.codes())
        self.assertNotIn("UNKNOWN_ERROR", self.harness.codes())
        self.assertNotIn("SSH_EXIT", self.harness.codes())
        reason = "Command execution is rejected because the command does not match the allow list."
        self.assertEqual(self.failed_reasons(), [reason])
        # The connection carries on.
        other = self.open()
        self.assertEqual(self.request(other, b"exec", exec_request("echo allowed")), "ok")
        self.assertEqual(other.stdout, b"allowed\n")
        self.assertEqual(other.exit_status, 0)

    def test_refused_shell_and_subsystem(self) -> None:
        """A refused shell or subsystem gets a failure reply; an allowed subsystem runs."""
        self.assertEqual(self.request(self.open(), b"shell"), "failed")
        self.assertEqual(self.request(self.open(), b"subsystem", common.NS(b"sftp")), "failed")
        codes = self.harness.codes()
        self.assertIn("SECURITY_SHELL_REJECTED", codes)
        self.assertIn("SECURITY_SUBSYSTEM_REJECTED", codes)
        channel = self.open()
        self.assertEqual(self.request(channel, b"subsystem", common.NS(b"echo")), "ok")
        channel.write(b"ping\n")
        channel.conn.sendEOF(channel)  # type: ignore[union-attr]
        self.harness.flush()
        self.assertEqual(channel.stdout, b"ping\n")

    def test_refused_env(self) -> None:
        """A denied variable gets a failure reply; others are set; the value is not logged."""
        channel = self.open()
        self.assertEqual(self.request(channel, b"env", env_request("LD_PRELOAD", "x.so")), "failed")
        self.assertEqual(self.request(channel, b"env", env_request("OK", "1")), "ok")
        self.assertEqual(self.request(channel, b"exec", exec_request("echo allowed")), "ok")
        env = self.harness.backend.sessions[-1].env
        self.assertNotIn("LD_PRELOAD", env)
        self.assertEqual(env["OK"], "1")
        [event] = self.harness.events_with("SECURITY_ENV_REJECTED")
        self.assertEqual(event["name"], "LD_PRELOAD")
        self.assertNotIn("x.so", repr(self.harness.events))

    def test_refused_pty_runs_without_terminal(self) -> None:
        """A refused pty-req gets a failure reply; the program then runs without a terminal."""
        channel = self.open()
        self.assertEqual(self.request(channel, b"pty-req", pty_request()), "failed")
        self.assertEqual(self.request(channel, b"exec", exec_request("echo allowed")), "ok")
        self.assertEqual(channel.stdout, b"allowed\n")
        self.assertFalse(self.harness.backend.sessions[-1].tty)
        self.assertIn("SECURITY_TTY_REJECTED", self.harness.codes())

    def test_refused_signal(self) -> None:
        """A refused signal gets a failure reply and the program keeps running."""
        harness = secured_harness({"signal": {"mode": "disable"}})
        client = harness.login()
        channel = harness.open_session(client)
        d = channel.request(b"exec", exec_request("sleep 100"))
        harness.flush()
        self.assertEqual(request_result(d), "ok")
        d = channel.request(b"signal", common.NS(b"TERM"))
        harness.flush()
        self.assertEqual(request_result(d), "failed")
        self.assertTrue(harness.backend.sessions[-1].running)
        self.assertIn("SECURITY_SIGNAL_REJECTED", harness.codes())


class ForceCommandTests(SecuredTestCase):
    security = {"forceCommand": 'echo "forced:$SSH_ORIGINAL_COMMAND"'}

    def test_exec_runs_the_forced_command(self) -> None:
        """The client's command arrives in SSH_ORIGINAL_COMMAND of the forced command."""
        channel = self.open()
        self.assertEqual(self.request(channel, b"exec", exec_request("ls -l")), "ok")
        self.assertEqual(channel.stdout, b"forced:ls -l\n")
        self.assertEqual(channel.exit_status, 0)

    def test_setenv_failure_is_a_start_failure(self) -> None:
        """A backend refusing SSH_ORIGINAL_COMMAND: the user reads why, exit status 1."""
        self.harness.backend.forbidden_env = {"SSH_ORIGINAL_COMMAND"}
        channel = self.open()
        self.assertEqual(self.request(channel, b"exec", exec_request("ls")), "ok")
        self.assertEqual(channel.stderr, b"Could not execute program.\n")
        self.assertEqual(channel.exit_status, 1)
        self.assertIn("SECURITY_EXEC_FAILED_SETENV", self.harness.codes())


class MaxSessionsTests(SecuredTestCase):
    security = {"maxSessions": 3}

    def open_refused(self) -> ClientChannel:
        channel = self.open()
        self.assertIsNotNone(channel.open_failure)
        self.failureResultOf(channel.opened)
        # Conch logs every channel open it refuses as a failure.
        return channel

    def test_concurrent_limit(self) -> None:
        """3 channels open; the 4th is refused for resource shortage; one closes; one opens."""
        channels = [self.open() for _ in range(3)]
        for channel in channels:
            self.successResultOf(channel.opened)
        refused = self.open_refused()
        self.assertEqual(
            refused.open_failure.args, (b"Too many sessions.", connection.OPEN_RESOURCE_SHORTAGE)
        )
        self.assertEqual(len(self.harness.backend.sessions), 3)
        codes = self.harness.codes()
        self.assertIn("SECURITY_MAX_SESSIONS", codes)
        [rejected] = self.harness.events_with("SSH_NEW_CHANNEL_REJECTED")
        self.assertEqual(rejected["channelType"], "session")
        # The open channels still work.
        self.assertEqual(self.request(channels[0], b"exec", exec_request("echo hi")), "ok")
        self.assertEqual(channels[0].stdout, b"hi\n")
        self.harness.flush()
        self.successResultOf(channels[0].closed_d)
        again = self.open()
        self.successResultOf(again.opened)
        self.open_refused()

    def test_backend_session_has_the_channel_id(self) -> None:
        """The backend session opened at channel open carries the channel's id."""
        self.open()
        self.open()
        server_channels = self.client.server.service.channels
        fake_connection = self.harness.backend.connections[-1]
        self.assertEqual(sorted(fake_connection.sessions), sorted(server_channels))


class BackendOpenFailureTests(SynchronousTestCase):
    def test_backend_refusing_a_session_refuses_the_channel(self) -> None:
        """A backend that cannot open a session refuses the channel, with its user message."""
        harness = Harness()
        client = harness.login()
        harness.backend.connections[-1].closed = True
        channel = harness.open_session(client)
        self.assertEqual(
            channel.open_failure.args,
            (b"Failed to initialize SSH session.", connection.OPEN_CONNECT_FAILED),
        )
        self.failureResultOf(channel.opened)
        codes = harness.codes()
        self.assertIn(messages.DOCKER_PROGRAM_NOT_RUNNING.code, codes)
        self.assertIn("SSH_NEW_CHANNEL_REJECTED", codes)
        self.assertNotIn("SSH_NEW_CHANNEL", codes)

"""A translated ``kuberun.pod.disableCommand`` refuses programs as ContainerSSH 0.4 did."""

from __future__ import annotations

from typing import Any, cast

import attrs
from twisted.internet.task import Clock
from twisted.logger import ILogObserver
from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.codes import Level
from conch_container.config import AppConfig, merge_config, parse_config
from conch_container.deferreds import as_deferred
from conch_container.errors import RequestRejected
from conch_container.interfaces import ConnectionContext, ProgramRequest
from conch_container.log.logger import CodeLogger
from conch_container.metadata import ConnectionMetadata
from conch_container.security import SecurityBackend, SecurityConnection
from conch_container.security.policy import SecurityPolicy
from conch_container.testing.backend import FakeBackend
from conch_container.testing.sessionio import RecordingSessionIO
from tests.ssh.harness import Harness, exec_request, make_config, request_result

DISABLED = {"backend": "kuberun", "kuberun": {"pod": {"disableCommand": True}}}


class PolicyTests(SynchronousTestCase):
    """The policy decides; the code says why."""

    def test_exec_refused_as_kuberun(self) -> None:
        """An exec is refused under KUBERUN_EXEC_DISABLED, with the command."""
        policy = SecurityPolicy.from_config(parse_config(DISABLED).security)
        rejection = policy.check_program(ProgramRequest("exec", "id"))
        assert rejection is not None
        self.assertEqual(rejection.code, messages.KUBERUN_EXEC_DISABLED)
        self.assertEqual(rejection.details, {"command": "id"})

    def test_shell_and_subsystem_allowed(self) -> None:
        """disableCommand refused exec requests only; shells and subsystems still run."""
        policy = SecurityPolicy.from_config(parse_config(DISABLED).security)
        self.assertIsNone(policy.check_program(ProgramRequest("shell")))
        self.assertIsNone(policy.check_program(ProgramRequest("subsystem", "sftp")))

    def test_plain_disable_keeps_security_code(self) -> None:
        """command.mode: disable written in the file is still SECURITY_EXEC_REJECTED."""
        config = parse_config({"security": {"command": {"mode": "disable"}}})
        rejection = SecurityPolicy.from_config(config.security).check_program(
            ProgramRequest("exec", "id")
        )
        assert rejection is not None
        self.assertEqual(rejection.code, messages.SECURITY_EXEC_REJECTED)

    def test_per_user_override_wins(self) -> None:
        """A configuration server that re-enables commands for a user lifts the refusal."""
        config = merge_config(parse_config(DISABLED), {"security": {"command": {"mode": "enable"}}})
        policy = SecurityPolicy.from_config(config.security)
        self.assertIsNone(policy.check_program(ProgramRequest("exec", "id")))


class FilterTests(SynchronousTestCase):
    """The refusal is logged when the program is refused, and nothing starts."""

    def connect(self, config: AppConfig) -> tuple[SecurityConnection, FakeBackend, list[Any]]:
        events: list[dict[str, Any]] = []
        metadata = ConnectionMetadata(
            connection_id="0123456789abcdef0123456789abcdef",
            remote_address="127.0.0.1:2222",
            username="user",
            authenticated_username="user",
        )
        log = CodeLogger("tests", observer=cast(ILogObserver, events.append))
        self.clock = Clock()
        backend = FakeBackend(self.clock)
        connected = as_deferred(
            SecurityBackend(backend).connect(ConnectionContext(metadata, config, log))
        )
        return cast(SecurityConnection, self.successResultOf(connected)), backend, events

    def test_refusal_logged(self) -> None:
        """KUBERUN_EXEC_DISABLED is logged once, at warning, and the backend runs nothing."""
        connection, backend, events = self.connect(parse_config(DISABLED))
        session = connection.open_session(1)
        with self.assertRaises(RequestRejected) as caught:
            session.start(ProgramRequest("exec", "id"), RecordingSessionIO())
        self.assertEqual(caught.exception.user_message, "Command execution is disabled.")
        self.assertIsNone(backend.sessions[-1].program)
        [event] = [e for e in events if e.get("code") == "KUBERUN_EXEC_DISABLED"]
        self.assertEqual(event["command"], "id")
        self.assertEqual(event["log_level"], Level.WARNING.twisted_level)
        self.assertNotIn("SECURITY_EXEC_REJECTED", [e.get("code") for e in events])

    def test_shell_runs(self) -> None:
        """A shell still reaches the backend on the same connection, and nothing is logged."""
        connection, backend, events = self.connect(parse_config(DISABLED))
        session = connection.open_session(1)
        started = as_deferred(session.start(ProgramRequest("shell"), RecordingSessionIO()))
        self.clock.advance(0)
        self.successResultOf(started)
        self.assertEqual(backend.sessions[-1].program, ProgramRequest("shell"))
        self.assertEqual([e for e in events if e.get("code")], [])


class SSHTests(SynchronousTestCase):
    """Through the whole SSH server, in memory: what the client sees."""

    def test_exec_fails_shell_runs(self) -> None:
        """The exec request fails with KUBERUN_EXEC_DISABLED; the next channel's shell works."""
        config = attrs.evolve(make_config(), security=parse_config(DISABLED).security)
        harness = Harness(config=config)
        harness.factory.backend = SecurityBackend(harness.backend)
        client = harness.login()
        channel = harness.open_session(client)
        refused = channel.request(b"exec", exec_request("id"))
        harness.flush()
        self.assertEqual(request_result(refused), "failed")
        self.assertIsNone(harness.backend.sessions[-1].program)
        self.assertEqual((channel.stdout, channel.stderr, channel.exit_status), (b"", b"", None))
        self.assertIn("KUBERUN_EXEC_DISABLED", harness.codes())
        self.assertNotIn("SECURITY_EXEC_REJECTED", harness.codes())
        shell = harness.open_session(client)
        started = shell.request(b"shell")
        harness.flush()
        self.assertEqual(request_result(started), "ok")

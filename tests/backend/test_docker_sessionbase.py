"""Tests for conch_container.backend.docker.sessionbase: a request's argv."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.backend.docker.sessionbase import program_command
from conch_container.errors import RequestRejected
from conch_container.interfaces import ProgramRequest
from conch_container.log.logger import CodeLogger

EXECUTION = SimpleNamespace(
    shell_command=("/bin/bash",), subsystems={"sftp": "/usr/lib/openssh/sftp-server"}
)


class ProgramCommandTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.log = CodeLogger("tests", observer=self.events.append)

    def test_configured_subsystem(self) -> None:
        """A configured subsystem runs its binary; nothing is logged."""
        argv = program_command(ProgramRequest("subsystem", "sftp"), EXECUTION, self.log)
        self.assertEqual(argv, ["/usr/lib/openssh/sftp-server"])
        self.assertEqual(self.events, [])

    def test_unknown_subsystem_rejected(self) -> None:
        """An unconfigured subsystem is a RequestRejected, logged with its name first."""
        with self.assertRaises(RequestRejected) as caught:
            program_command(ProgramRequest("subsystem", "nope"), EXECUTION, self.log)
        self.assertEqual(caught.exception.code, messages.DOCKER_SUBSYSTEM_NOT_SUPPORTED)
        self.assertEqual(caught.exception.user_message, "Subsystem not supported.")
        [event] = self.events
        self.assertEqual(event["code"], "DOCKER_SUBSYSTEM_NOT_SUPPORTED")
        self.assertEqual(event["subsystem"], "nope")
        self.assertIn("'nope'", event["reason"])

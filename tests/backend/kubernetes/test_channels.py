"""The channel protocol without the WebSocket: exit statuses, URLs, pod status reading."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.kubernetes import podstatus
from conch_container.backend.kubernetes.channels import ExitStatus, exec_path, parse_status
from tests.backend.kubernetes.channelserver import exit_status


class ParseStatusTests(SynchronousTestCase):
    def parse(self, document: object) -> ExitStatus:
        return parse_status(json.dumps(document).encode())

    def test_success_and_exit_codes(self) -> None:
        """Success is 0; NonZeroExitCode's ExitCode cause is the code."""
        self.assertEqual(self.parse(exit_status(0)), ExitStatus(0))
        self.assertEqual(self.parse(exit_status(255)), ExitStatus(255))

    def test_failures_without_code(self) -> None:
        """Another failure, an unreadable cause, or garbage: no exit code, and a reason."""
        other = self.parse(
            {"status": "Failure", "message": "pod not running", "reason": "BadRequest"}
        )
        self.assertEqual(other, ExitStatus(None, "pod not running"))
        bad_cause = exit_status(1)
        bad_cause["details"]["causes"][0]["message"] = "one"
        self.assertIsNone(self.parse(bad_cause).exit_code)
        self.assertEqual(parse_status(b"\xffnot json"), ExitStatus(None, "\ufffdnot json"))
        self.assertEqual(self.parse([1]).exit_code, None)


class ExecPathTests(SynchronousTestCase):
    def test_exec_and_attach(self) -> None:
        """One command parameter per argument; attach has none; names are quoted."""
        url = urlsplit(exec_path("n s", "p", "c", ["sh", "-c", "a&b"], tty=True))
        self.assertEqual(url.path, "/api/v1/namespaces/n%20s/pods/p/exec")
        query = parse_qs(url.query)
        self.assertEqual(query["command"], ["sh", "-c", "a&b"])
        self.assertEqual(
            (query["tty"], query["stderr"], query["stdin"]), (["true"], ["false"], ["true"])
        )
        attach = urlsplit(exec_path("ns", "p", "c", None, tty=False))
        self.assertTrue(attach.path.endswith("/attach"))
        self.assertNotIn("command", parse_qs(attach.query))


class PodStatusTests(SynchronousTestCase):
    def test_ready(self) -> None:
        """Running and Ready, or ended, counts as ready; Running without Ready does not."""
        ready = {
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        }
        self.assertTrue(podstatus.is_ready(ready))
        self.assertTrue(podstatus.is_ready({"status": {"phase": "Succeeded"}}))
        self.assertFalse(podstatus.is_ready({"status": {"phase": "Running", "conditions": []}}))
        self.assertFalse(podstatus.is_ready({}))

    def test_image_pull_and_exit_code(self) -> None:
        """Init containers' pull errors count; an exit code needs a terminated state and an int."""
        pod = {
            "status": {
                "initContainerStatuses": [
                    {"name": "init", "state": {"waiting": {"reason": "ErrImagePull"}}}
                ]
            }
        }
        self.assertEqual(podstatus.image_pull_problem(pod), "container init: ErrImagePull")
        self.assertIsNone(podstatus.image_pull_problem({"status": {"phase": "Pending"}}))
        ended = {
            "status": {
                "containerStatuses": [
                    {"name": "shell", "state": {"terminated": {"exitCode": 0}}},
                    {"name": "odd", "state": {"terminated": {"exitCode": True}}},
                ]
            }
        }
        self.assertEqual(podstatus.container_exit_code(ended, "shell"), 0)
        self.assertIsNone(podstatus.container_exit_code(ended, "odd"))
        self.assertIsNone(podstatus.container_exit_code(ended, "absent"))

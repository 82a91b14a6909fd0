"""The server as a process: it answers, and SIGTERM removes its containers."""

from __future__ import annotations

import json
import signal
import urllib.request

from twisted.trial.unittest import SynchronousTestCase

from tests.testing.kubeapi.support import (
    DEADLINE,
    core_api,
    pod_containers,
    pod_manifest,
    start_server,
    unique,
    wait_for,
)


class CommandTests(SynchronousTestCase):
    def test_version_and_sigterm(self) -> None:
        """/version answers without a token; SIGTERM stops the server with status 0
        after it removed the Docker containers of its pods."""
        server = start_server()
        self.addCleanup(server.stop)
        with urllib.request.urlopen(server.url + "/version", timeout=DEADLINE) as answer:
            version = json.load(answer)
        self.assertEqual((version["major"], version["minor"]), ("1", "32"))
        api = core_api(server)
        name = unique("left")
        api.create_namespaced_pod("default", pod_manifest(name=name))
        wait_for(
            lambda: api.read_namespaced_pod(name, "default").status.phase == "Running", "Running"
        )
        self.assertEqual(len(pod_containers(name)), 1)
        server.process.send_signal(signal.SIGTERM)
        self.assertEqual(server.process.wait(DEADLINE), 0)
        self.assertEqual(pod_containers(name), [])
        self.assertIn("KUBEAPI_STOPPED", server.log())

"""kubectl 1.32 end to end against the test API server over TLS.

kubectl sends a bearer token only over TLS, so this server runs with
``--tls-dir`` and kubectl verifies it with the CA written there. Discovery,
OpenAPI-based validation, tables, wait (a watch), exec over WebSocket and
delete (another watch) all take their real paths.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import yaml
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.testing.kubeapi.support import (
    DEADLINE,
    TOKEN,
    pod_containers,
    pod_manifest,
    shared_server,
    unique,
)

KUBECTL = shutil.which("kubectl")


class KubectlTests(SynchronousTestCase):
    def setUp(self) -> None:
        if KUBECTL is None:
            raise SkipTest("kubectl is not installed")
        self.server = shared_server(tls=True)
        self.home = self.mktemp()
        os.makedirs(self.home)

    def kubectl(
        self, *args: str, stdin: bytes = b"", check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        assert KUBECTL is not None and self.server.ca_file is not None
        command = [KUBECTL, "--server", self.server.url, "--token", TOKEN]
        command += ["--certificate-authority", self.server.ca_file, *args]
        # A private home: no cached discovery from another server on the same port.
        env = {**os.environ, "HOME": self.home, "KUBECONFIG": os.path.join(self.home, "none")}
        result = subprocess.run(
            command, input=stdin, capture_output=True, timeout=DEADLINE, env=env
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {args} exited {result.returncode}: {result.stderr!r}")
        return result

    def test_pod_lifecycle(self) -> None:
        """create -f, get -l -o json, wait Ready, exec (-i, stdout/stderr, exit code), delete."""
        name, label = unique("kubectl"), unique("l")
        path = os.path.join(self.home, "pod.yaml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(pod_manifest(name=name, labels={"app": label}), f)
        self.addCleanup(
            self.kubectl, "delete", "pod", name, "--now", "--ignore-not-found", check=False
        )
        self.assertEqual(
            self.kubectl("create", "-f", path).stdout, f"pod/{name} created\n".encode()
        )
        self.kubectl("wait", "--for=condition=Ready", f"pod/{name}", f"--timeout={int(DEADLINE)}s")
        listed: dict[str, Any] = json.loads(
            self.kubectl("get", "pods", "-l", f"app={label}", "-o", "json").stdout
        )
        self.assertEqual([p["metadata"]["name"] for p in listed["items"]], [name])
        self.assertEqual(listed["items"][0]["status"]["phase"], "Running")
        table = self.kubectl("get", "pod", name).stdout.decode()
        self.assertRegex(table, rf"{name}\s+1/1\s+Running")

        echoed = self.kubectl(
            "exec", "-i", name, "--", "sh", "-c", "cat; echo done", stdin=b"hello\n"
        )
        self.assertEqual(echoed.stdout, b"hello\ndone\n")
        apart = self.kubectl(
            "exec", name, "--", "sh", "-c", "echo out; echo err >&2; exit 3", check=False
        )
        self.assertEqual(apart.returncode, 3)
        self.assertEqual(apart.stdout, b"out\n")
        self.assertTrue(apart.stderr.startswith(b"err\n"), apart.stderr)

        self.assertEqual(
            self.kubectl("delete", "pod", name).stdout, f'pod "{name}" deleted\n'.encode()
        )
        self.assertEqual(pod_containers(name), [])
        missing = self.kubectl("get", "pod", name, check=False)
        self.assertEqual(missing.returncode, 1)
        self.assertIn(f'pods "{name}" not found'.encode(), missing.stderr)

    def test_wrong_token(self) -> None:
        """A wrong token is refused: kubectl reports that it must log in."""
        assert KUBECTL is not None and self.server.ca_file is not None
        result = subprocess.run(
            [
                KUBECTL,
                "--server",
                self.server.url,
                "--token",
                "wrong",
                "--certificate-authority",
                self.server.ca_file,
                "get",
                "pods",
            ],
            capture_output=True,
            timeout=DEADLINE,
            env={**os.environ, "HOME": self.home, "KUBECONFIG": os.path.join(self.home, "none")},
        )
        self.assertEqual(result.returncode, 1)
        self.assertIn(b"You must be logged in to the server", result.stderr)

    def test_attach_then_delete_completed(self) -> None:
        """attach -i feeds a container running cat; when stdin ends the pod completes, and
        deleting the completed pod returns once it is gone."""
        name = unique("attach")
        path = os.path.join(self.home, "pod.yaml")
        manifest = pod_manifest(name=name, command=["cat"], stdin=True, stdinOnce=True)
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(manifest, f)
        self.addCleanup(
            self.kubectl, "delete", "pod", name, "--now", "--ignore-not-found", check=False
        )
        self.kubectl("create", "-f", path)
        self.kubectl("wait", "--for=condition=Ready", f"pod/{name}", f"--timeout={int(DEADLINE)}s")
        self.assertEqual(self.kubectl("attach", "-i", name, stdin=b"ping\n").stdout, b"ping\n")
        self.kubectl("wait", "--for=jsonpath={.status.phase}=Succeeded", f"pod/{name}")
        self.assertRegex(
            self.kubectl("get", "pod", name).stdout.decode(), rf"{name}\s+0/1\s+Completed"
        )
        self.kubectl("delete", "pod", name)
        self.assertEqual(pod_containers(name), [])

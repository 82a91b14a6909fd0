"""Exec and attach through the official client's WebSocket streams.

``kubernetes.stream.stream`` with ``_preload_content=False`` is what the
backend uses: stdin written, stdout and stderr read apart, the exit code
from the status channel, a resize on channel 4, stdin closed with v5's
``255, 0``.
"""

from __future__ import annotations

import json
from typing import Any

from tests.testing.kubeapi.support import DEADLINE, pod_manifest, wait_for
from tests.testing.kubeapi.test_python_client import NS, PodTestCase


class StreamTests(PodTestCase):
    def running(self, **container: Any) -> str:
        created = self.create(pod_manifest(**container))
        self.phase(created.metadata.name, "Running")
        return str(created.metadata.name)

    def exec(self, name: str, command: list[str], tty: bool = False) -> Any:
        from kubernetes.stream import stream

        return stream(
            self.api.connect_get_namespaced_pod_exec,
            name,
            NS,
            command=command,
            stdin=True,
            stdout=True,
            stderr=True,
            tty=tty,
            _preload_content=False,
        )

    def test_exec_streams_and_exit_code(self) -> None:
        """stdin reaches the program, stdout and stderr come apart, the exit code is reported."""
        name = self.running()
        ws = self.exec(name, ["sh", "-c", "wc -c; echo oops >&2; exit 3"])
        self.assertEqual(ws.subprotocol, "v5.channel.k8s.io")
        ws.write_stdin(b"x" * 100_000)
        ws.close_channel(0)
        ws.run_forever(timeout=DEADLINE)
        self.assertEqual(ws.read_stdout().strip(), "100000")
        self.assertEqual(ws.read_stderr(), "oops\n")
        self.assertEqual(ws.returncode, 3)

    def test_exec_success(self) -> None:
        """A program that exits 0 reports Success (return code 0)."""
        name = self.running()
        ws = self.exec(name, ["echo", "hello"])
        ws.run_forever(timeout=DEADLINE)
        self.assertEqual((ws.read_stdout(), ws.returncode), ("hello\n", 0))

    def test_exec_resize(self) -> None:
        """A resize on channel 4 changes the terminal size the program sees."""
        name = self.running()
        ws = self.exec(
            name,
            ["sh", "-c", 'until [ "$(stty size)" = "40 100" ]; do sleep 0.05; done; echo resized'],
            tty=True,
        )
        ws.write_channel(4, json.dumps({"Width": 100, "Height": 40}))
        ws.run_forever(timeout=DEADLINE)
        self.assertIn("resized", ws.read_stdout())
        self.assertEqual(ws.returncode, 0)

    def test_attach_to_cat(self) -> None:
        """Attached to a container running cat, stdin comes back; closing it ends the pod."""
        from kubernetes.stream import stream

        name = self.running(command=["cat"], stdin=True, stdinOnce=True)
        ws = stream(
            self.api.connect_get_namespaced_pod_attach,
            name,
            NS,
            stdin=True,
            stdout=True,
            stderr=True,
            tty=False,
            _preload_content=False,
        )
        ws.write_stdin(b"ping\n")
        out = wait_for(lambda: ws.update(timeout=1) or ws.peek_stdout() or None, "cat's echo")
        self.assertEqual(out, "ping\n")
        ws.close_channel(0)
        ws.run_forever(timeout=DEADLINE)
        self.assertEqual(ws.returncode, 0)
        pod = self.phase(name, "Succeeded", "Failed")
        self.assertEqual(pod.status.phase, "Succeeded")

    def test_exec_unknown_pod(self) -> None:
        """Exec into a pod that does not exist fails before any stream opens."""
        from kubernetes.client.exceptions import ApiException

        with self.assertRaises(ApiException) as caught:
            self.exec("no-such-pod", ["true"])
        self.assertIn("404", str(caught.exception))

"""``backend: kubernetes`` end to end: the real gateway and OpenSSH client, the test API server.

The test API server (:mod:`conch_container.testing.kubeapi`) runs each pod
as a container of the local Docker engine.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue

from conch_container.backend.kubernetes.client import KubernetesClient
from conch_container.backend.kubernetes.pods import PodAPI
from conch_container.config import parse_config
from conch_container.testing.kubeapi import KubeAPIServer
from tests.docker_support import GUEST_IMAGE
from tests.integration.gateway import GatewayTestCase, reactor

TOKEN = "gateway-token"
#: Seconds the gateway has to delete a pod (``timeouts.podStop``).
POD_STOP = 30
T = TypeVar("T")


class KubernetesGatewayCase(GatewayTestCase):
    """A test API server, and a gateway with ``backend: kubernetes`` (connection mode) on it."""

    async def setUp(self) -> None:  # type: ignore[override]
        self.server = KubeAPIServer(reactor, TOKEN, tls_dir=None)
        self.url = await self.server.start()
        # Added first, so the server stops after the gateway.
        self.addCleanup(lambda: Deferred.fromCoroutine(self.server.stop()))
        await super().setUp()

    def config_data(self) -> dict[str, Any]:
        data = super().config_data()
        del data["docker"]
        data["backend"] = "kubernetes"
        data["kubernetes"] = self.kubernetes_section()
        return data

    def kubernetes_section(self) -> dict[str, Any]:
        return {
            "connection": {"host": self.url, "bearerToken": TOKEN},
            "pod": {
                "metadata": {"namespace": "default", "generateName": "e2e-"},
                "spec": {"containers": [{"name": "shell", "image": GUEST_IMAGE}]},
                "idleCommand": ["/bin/sh", "-c", "sleep 3600"],
                "shellCommand": ["/bin/bash"],
            },
            "timeouts": {"podStart": "30s", "podStop": f"{POD_STOP}s"},
        }

    async def with_pods(self, call: Callable[[PodAPI], Awaitable[T]]) -> T:
        """``call`` with the pods of the gateway's API server, through a client of its own."""
        client = KubernetesClient(reactor)
        client.start()
        try:
            config = parse_config(
                {"backend": "kubernetes", "kubernetes": self.kubernetes_section()}
            ).kubernetes
            cluster = await client.cluster_for(config)
            return await call(cluster.pods)
        finally:
            await client.stop()

    async def own_pods(self) -> list[dict[str, Any]]:
        """The pods labelled with the gateway's instance id that are not being deleted."""
        selector = f"conch_container_instance={self.instance_id}"
        pods = await self.with_pods(lambda pods: pods.list_pods("default", selector))
        return [p for p in pods if "deletionTimestamp" not in p["metadata"]]

    async def own_pods_once_deleted(self) -> list[str]:
        """The names of the gateway's pods still there after it had ``podStop`` to delete them.

        ssh returns when the connection closes; the gateway deletes the pod
        after that, so the test waits for it (up to the configured podStop).
        """
        deadline = reactor.seconds() + POD_STOP
        while (pods := await self.own_pods()) and reactor.seconds() < deadline:
            await deferLater(reactor, 0.2)
        return [p["metadata"]["name"] for p in pods]

    async def sftp_round_trip(self, content: bytes) -> bytes:
        """Put a file with ``content`` through the OpenSSH sftp client and get it back."""
        sftp = shutil.which("sftp")
        if sftp is None:
            self.fail("the OpenSSH sftp client is required")
        local = self.dir.child("up.txt")
        local.setContent(content)
        back = self.dir.child("back.txt")
        batch = self.dir.child("batch")
        batch.setContent(f"put {local.path} /tmp/up.txt\nget /tmp/up.txt {back.path}\n".encode())
        *options, destination = self.ssh_args()
        port = options.index("-p")
        options[port : port + 2] = ["-o", f"Port={self.port}"]
        _, err, code = await getProcessOutputAndValue(
            sftp, [*options, "-b", batch.path, destination], env=dict(os.environ)
        )
        self.assertEqual(code, 0, err)
        return back.getContent()


class KubernetesGatewayTests(KubernetesGatewayCase):
    """The Kubernetes backend in connection mode, through the OpenSSH client."""

    async def test_login_runs_in_a_pod_removed_at_disconnect(self) -> None:
        """ssh runs a command in the user's pod, with its exit code; the pod goes at disconnect."""
        out, err, code = await self.ssh(
            "echo $((6*7)) $(cat /proc/1/cmdline | tr '\\0' ' '); exit 3"
        )
        self.assertEqual(code, 3, err)
        self.assertEqual(out, b"42 sleep 3600\n")  # the idle command is PID 1
        self.assertEqual(await self.own_pods_once_deleted(), [])
        codes = self.logged_codes()
        for expected in (
            "KUBERNETES_POD_CREATE",
            "KUBERNETES_POD_WAIT",
            "KUBERNETES_EXEC",
            "KUBERNETES_POD_REMOVE",
            "KUBERNETES_POD_REMOVE_SUCCESSFUL",
        ):
            self.assertIn(expected, codes)

    async def test_sftp_subsystem(self) -> None:
        """The sftp subsystem runs the image's sftp-server in the pod: a file goes up and back."""
        self.assertEqual(await self.sftp_round_trip(b"through the pod\n"), b"through the pod\n")

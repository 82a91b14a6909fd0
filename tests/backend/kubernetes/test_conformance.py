"""The Kubernetes backend (connection mode) passes the backend conformance suite.

Against the test API server, whose pods are containers of the local Docker
engine (the guest image, which has a shell and no agent of its own: the
backend passes its agent inline).

With ``CONCH_CONTAINER_TEST_KUBECONFIG`` naming a kubeconfig file, the same
tests run against that cluster instead (see "Running the test suite against
a real cluster" in ``docs/kubernetes.md``): ``CONCH_CONTAINER_TEST_KUBE_CONTEXT``
picks the context (the file's current one by default),
``CONCH_CONTAINER_TEST_NAMESPACE`` the namespace (``default``) and
``CONCH_CONTAINER_TEST_IMAGE`` an image the cluster can pull with what the
guest image has (a shell, coreutils).
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from conch_container.backend.kubernetes.backend import KubernetesBackend
from conch_container.config import parse_config
from conch_container.config.app import AppConfig
from conch_container.interfaces import ConnectionContext, ExitStatus, ProgramRequest
from conch_container.log.logger import CodeLogger
from conch_container.testing.conformance import BackendConformanceMixin, CollectingIO
from conch_container.testing.kubeapi import KubeAPIServer
from tests.backend.helpers import make_context, new_instance_id
from tests.docker_support import GUEST_IMAGE, docker_client

TOKEN = "conformance-token"
#: A kubeconfig file: run against its cluster instead of the test API server.
REAL_KUBECONFIG = os.environ.get("CONCH_CONTAINER_TEST_KUBECONFIG", "")
REAL_CONTEXT = os.environ.get("CONCH_CONTAINER_TEST_KUBE_CONTEXT", "")
NAMESPACE = os.environ.get("CONCH_CONTAINER_TEST_NAMESPACE", "") or "default"
IMAGE = os.environ.get("CONCH_CONTAINER_TEST_IMAGE", "") or GUEST_IMAGE


def kubernetes_app_config(url: str | None, **pod: Any) -> AppConfig:
    """A configuration with ``backend: kubernetes`` in connection mode against ``url``.

    ``url`` None is the cluster ``CONCH_CONTAINER_TEST_KUBECONFIG`` names,
    which may pull images and schedule pods slower than the test API server.
    """
    if url is None:
        connection: dict[str, Any] = {"kubeconfig": REAL_KUBECONFIG, "context": REAL_CONTEXT}
        namespace, image, pod_start = NAMESPACE, IMAGE, "180s"
    else:
        connection = {"host": url, "bearerToken": TOKEN}
        namespace, image, pod_start = "default", GUEST_IMAGE, "30s"
    return parse_config(
        {
            "backend": "kubernetes",
            "kubernetes": {
                "connection": connection,
                "pod": {
                    "metadata": {"namespace": namespace, "generateName": "conformance-"},
                    "spec": {"containers": [{"name": "shell", "image": image}]},
                    "idleCommand": ["/bin/sh", "-c", "sleep 3600"],
                    "shellCommand": ["/bin/sh"],
                    **pod,
                },
                "timeouts": {"podStart": pod_start, "podStop": "30s", "commandStart": "20s"},
            },
        }
    )


class KubeAPITestCase(TestCase):
    """A test API server per test, and a Kubernetes backend talking to it.

    With ``CONCH_CONTAINER_TEST_KUBECONFIG`` set, the cluster it names
    instead: ``url`` is then None (see :func:`kubernetes_app_config`).
    """

    timeout = 300 if REAL_KUBECONFIG else 120

    async def setUp(self) -> None:
        self.url: str | None = None
        if not REAL_KUBECONFIG:
            docker_client()  # skips without a Docker engine
            self.server = KubeAPIServer(reactor, TOKEN, tls_dir=None)
            self.url = await self.server.start()
            self.addCleanup(lambda: Deferred.fromCoroutine(self.server.stop()))
        self.instance_id = new_instance_id()
        self.log = CodeLogger("tests.backend.kubernetes.conformance")

    def make_backend(self) -> KubernetesBackend:
        backend = KubernetesBackend(reactor, self.log, instance_id=self.instance_id)
        backend.start()
        self.addCleanup(backend.stop)
        return backend

    def make_context(self) -> ConnectionContext:
        return make_context(kubernetes_app_config(self.url), self.log)

    async def leftovers(self, backend: Any, context: Any) -> list[str]:
        cluster = await backend._client.cluster_for(context.config.kubernetes)
        pods = await cluster.pods.list_pods(
            context.config.kubernetes.pod.metadata["namespace"],
            f"conch_container_instance={self.instance_id}",
        )
        # Deletion is asynchronous, as in Kubernetes: a deleted pod may still be listed.
        return [p["metadata"]["name"] for p in pods if "deletionTimestamp" not in p["metadata"]]


class KubernetesConformanceTests(KubeAPITestCase, BackendConformanceMixin):
    """The conformance cases against :class:`KubernetesBackend` through the test API server."""


class KubernetesConnectionTests(KubeAPITestCase):
    """What the Kubernetes backend does beyond the conformance cases."""

    async def test_files_written_before_programs(self) -> None:
        """Authentication's files are in the pod, mode 0600, when the first program runs."""
        backend = self.make_backend()
        context = make_context(
            kubernetes_app_config(self.url), self.log, files={"/tmp/greeting": b"hello\n"}
        )
        connection = await backend.connect(context)
        self.addCleanup(connection.close)
        session = connection.open_session(0)
        io = CollectingIO()
        await session.start(
            ProgramRequest("exec", "cat /tmp/greeting; stat -c %a /tmp/greeting"), io
        )
        status = await io.wait_exit()
        self.assertEqual(status, ExitStatus(code=0))
        self.assertEqual(bytes(io.stdout_data), b"hello\n600\n")

    async def test_pod_deleted_at_close(self) -> None:
        """Closing the connection deletes its pod."""
        backend = self.make_backend()
        context = self.make_context()
        connection = await backend.connect(context)
        self.assertEqual(len(await self.leftovers(backend, context)), 1)
        await connection.close()
        self.assertEqual(await self.leftovers(backend, context), [])

    async def test_signal_through_the_agent(self) -> None:
        """A signal reaches the program through the guest agent; it is reported as its end."""
        backend = self.make_backend()
        connection = await backend.connect(self.make_context())
        self.addCleanup(connection.close)
        session = connection.open_session(0)
        io = CollectingIO()
        await session.start(ProgramRequest("exec", "echo ready; exec sleep 60"), io)
        await io.wait_for(b"ready\n")
        await session.signal("TERM")
        self.assertEqual(await io.wait_exit(), ExitStatus(signal="TERM"))

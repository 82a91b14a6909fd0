"""A connection's pod made, waited for and removed, against the test API server.

The test API server (:mod:`conch_container.testing.kubeapi`) runs pods as
containers of the local Docker engine, so readiness, image pull failures and
deletion are real.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.testing import EventLoggingObserver
from twisted.trial.unittest import TestCase

from conch_container.backend.kubernetes.client import ClusterClient
from conch_container.backend.kubernetes.errors import KubernetesError
from conch_container.backend.kubernetes.podlifecycle import (
    IMAGE_PULL_USER_MESSAGE,
    PodRef,
    launch_pod,
    remove_leftovers,
    remove_pod,
)
from conch_container.backend.kubernetes.podmanifest import pod_manifest
from conch_container.config import parse_config
from conch_container.log.logger import CodeLogger
from conch_container.metadata import ConnectionMetadata
from tests.docker_support import GUEST_IMAGE, docker_client
from tests.testing.kubeapi.support import serve_in_process, started_client

TOKEN = "pod-lifecycle-token"
IDLE = ["/bin/sh", "-c", "sleep 3600"]


def kubernetes_config(url: str, image: str = GUEST_IMAGE) -> Any:
    return parse_config(
        {
            "backend": "kubernetes",
            "kubernetes": {
                "connection": {"host": url, "bearerToken": TOKEN},
                "pod": {
                    "metadata": {"namespace": "default", "generateName": "lifecycle-"},
                    "spec": {"containers": [{"name": "shell", "image": image}]},
                    "idleCommand": IDLE,
                },
                "timeouts": {"podStart": "30s", "podStop": "30s"},
            },
        }
    ).kubernetes


class PodLifecycleTests(TestCase):
    async def setUp(self) -> None:
        docker_client()  # skips without a Docker engine
        self.server, self.url = await serve_in_process(self, TOKEN)
        self.client = started_client(self)
        self.events = EventLoggingObserver()
        self.log = CodeLogger("tests", observer=self.events)

    async def launch(self, image: str = GUEST_IMAGE, instance_id: str = "gw-a") -> PodRef:
        config = kubernetes_config(self.url, image)
        self.cluster: ClusterClient = await self.client.cluster_for(config)
        metadata = ConnectionMetadata(
            connection_id="0123456789abcdef0123456789abcdef",
            remote_address="127.0.0.1:2222",
            username="alice",
        )
        manifest = pod_manifest(config.pod, metadata, instance_id=instance_id, log=self.log)
        return await launch_pod(
            reactor, self.cluster.pods, manifest, timeout=30, stop_timeout=30, log=self.log
        )

    async def assert_deleted(self, pod: PodRef) -> None:
        """The pod is gone or being deleted (deletion is asynchronous, as in Kubernetes)."""
        stored = await self.cluster.pods.get_pod(pod.namespace, pod.name)
        if stored is not None:
            self.assertIn("deletionTimestamp", stored["metadata"])

    def codes(self) -> list[str]:
        return [e["code"] for e in self.events]

    async def test_ready_labelled_then_removed(self) -> None:
        """The pod runs with its labels; removing it makes it gone."""
        pod = await self.launch()
        stored = await self.cluster.pods.get_pod(pod.namespace, pod.name)
        assert stored is not None
        self.assertEqual(stored["metadata"]["labels"]["containerssh_username"], "alice")
        self.assertEqual(stored["metadata"]["labels"]["conch_container_instance"], "gw-a")
        self.assertEqual(stored["metadata"]["annotations"]["containerssh_ip"], "127.0.0.1")
        self.assertEqual(stored["status"]["phase"], "Running")
        self.assertTrue(await remove_pod(reactor, self.cluster.pods, pod, timeout=30, log=self.log))
        await self.assert_deleted(pod)
        self.assertEqual(
            [c for c in self.codes() if c.startswith("KUBERNETES_POD_")],
            [
                "KUBERNETES_POD_CREATE",
                "KUBERNETES_POD_WAIT",
                "KUBERNETES_POD_REMOVE",
                "KUBERNETES_POD_REMOVE_SUCCESSFUL",
            ],
        )

    async def test_image_pull_failure(self) -> None:
        """An image that cannot be pulled fails at once with its own message; the pod is removed."""
        with self.assertRaises(KubernetesError) as raised:
            await self.launch(image="127.0.0.1:9/no/such-image:never")
        self.assertEqual(raised.exception.code.code, "KUBERNETES_IMAGE_PULL_FAILED")
        self.assertEqual(raised.exception.user_message, IMAGE_PULL_USER_MESSAGE)
        self.assertEqual(
            await self.cluster.pods.list_pods("default", "conch_container_instance"), []
        )

    async def test_leftovers_only_own(self) -> None:
        """Reconciling deletes this instance's pods and leaves another replica's."""
        own = await self.launch(instance_id="gw-a")
        other = await self.launch(instance_id="gw-b")
        removed = await remove_leftovers(
            reactor, self.cluster.pods, ["default"], "gw-a", timeout=30, log=self.log
        )
        self.assertEqual(removed, 1)
        await self.assert_deleted(own)
        kept = await self.cluster.pods.get_pod(other.namespace, other.name)
        assert kept is not None
        self.assertNotIn("deletionTimestamp", kept["metadata"])
        await remove_pod(reactor, self.cluster.pods, other, timeout=30, log=self.log)

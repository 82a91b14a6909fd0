"""The Kubernetes backend (connection mode) passes the backend conformance suite.

Against the test API server, whose pods are containers of the local Docker
engine (the guest image, which has a shell and no agent of its own: the
backend passes its agent inline).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from conch_container.backend.kubernetes.backend import KubernetesBackend
from conch_container.config import parse_config
from conch_container.config.app import AppConfig
from conch_container.interfaces import ConnectionContext
from conch_container.log.logger import CodeLogger
from conch_container.testing.conformance import BackendConformanceMixin
from conch_container.testing.kubeapi import KubeAPIServer
from tests.backend.helpers import make_context, new_instance_id
from tests.docker_support import GUEST_IMAGE, docker_client

TOKEN = "conformance-token"


def kubernetes_app_config(url: str, **pod: Any) -> AppConfig:
    """A configuration with ``backend: kubernetes`` in connection mode against ``url``."""
    return parse_config(
        {
            "backend": "kubernetes",
            "kubernetes": {
                "connection": {"host": url, "bearerToken": TOKEN},
                "pod": {
                    "metadata": {"namespace": "default", "generateName": "conformance-"},
                    "spec": {"containers": [{"name": "shell", "image": GUEST_IMAGE}]},
                    "idleCommand": ["/bin/sh", "-c", "sleep 3600"],
                    "shellCommand": ["/bin/sh"],
                    **pod,
                },
                "timeouts": {"podStart": "30s", "podStop": "30s", "commandStart": "20s"},
            },
        }
    )


class KubernetesConformanceTests(BackendConformanceMixin, TestCase):
    """The conformance cases against :class:`KubernetesBackend` through the test API server."""

    timeout = 120

    async def setUp(self) -> None:
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
            "default", f"conch_container_instance={self.instance_id}"
        )
        # Deletion is asynchronous, as in Kubernetes: a deleted pod may still be listed.
        return [p["metadata"]["name"] for p in pods if "deletionTimestamp" not in p["metadata"]]

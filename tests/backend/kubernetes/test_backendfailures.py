"""The Kubernetes backend when its API server or its connection settings fail it.

The API server is a loopback fake (:mod:`tests.backend.kubernetes.fakeapi`)
that answers the next requests with the error statuses a test gives it: a
pod the server will not delete, pods it will not list. Each failure is
logged under its code and the backend carries on.
"""

from __future__ import annotations

import os
from typing import Any

import attrs
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.testing import EventLoggingObserver
from twisted.trial.unittest import TestCase

from conch_container import messages
from conch_container.backend.kubernetes.backend import KubernetesBackend
from conch_container.config.app import AppConfig
from conch_container.errors import ContainerSSHError
from conch_container.log.logger import CodeLogger
from conch_container.metrics import GatewayMetrics
from tests.backend.helpers import make_context, new_instance_id
from tests.backend.kubernetes.fakeapi import FakeAPIServer
from tests.backend.kubernetes.test_conformance import kubernetes_app_config
from tests.backend.kubernetes.test_pods import running
from tests.metrics.support import sample


class BackendFailureTests(TestCase):
    def setUp(self) -> None:
        self.api = FakeAPIServer()
        self.url = self.api.listen()
        self.addCleanup(self.api.stop)
        self.observer = EventLoggingObserver()
        self.log = CodeLogger("tests.backend.kubernetes.failures", observer=self.observer)
        self.config = kubernetes_app_config(self.url)

    def backend(self, *, startup: bool = False) -> KubernetesBackend:
        backend = KubernetesBackend(
            reactor,
            self.log,
            instance_id=new_instance_id(),
            startup_config=self.config.kubernetes if startup else None,
        )
        self.addCleanup(lambda: Deferred.fromCoroutine(_stopped(backend)))
        return backend

    def logged(self, code: str) -> list[dict[str, Any]]:
        return [e for e in self.observer if e.get("code") == code]

    async def test_pod_creation_refused(self) -> None:
        """A pod the API server will not create: KUBERNETES_POD_CREATE_FAILED, the login fails."""
        backend = self.backend()
        backend.start()
        self.api.pods.fail_next = [403]
        with self.assertRaises(ContainerSSHError) as caught:
            await backend.connect(make_context(self.config, self.log))
        self.assertEqual(caught.exception.code, messages.KUBERNETES_POD_CREATE_FAILED)
        [failed] = self.logged("KUBERNETES_POD_CREATE_FAILED")
        self.assertIn("try again", failed["reason"])
        self.assertEqual(self.logged("KUBERNETES_POD_WAIT"), [])
        self.assertEqual(self.api.pods.pods, {})

    async def test_pod_removal_refused(self) -> None:
        """A pod the API server will not delete: KUBERNETES_POD_REMOVE_FAILED, counted."""
        backend = self.backend()
        metrics = GatewayMetrics()
        backend.record_with(metrics.backend("kubernetes"))
        backend.start()
        # The fake names pods generateName + a counter: the first is ready at once.
        self.api.pods.scripts["conformance-00001"] = [running(True)]
        connection = await backend.connect(make_context(self.config, self.log))
        self.assertEqual(connection.pod.name, "conformance-00001")
        self.api.pods.fail_next = [403]
        await connection.close()
        [failed] = self.logged("KUBERNETES_POD_REMOVE_FAILED")
        self.assertEqual(failed["pod"], "conformance-00001")
        self.assertIn("try again", failed["reason"])
        self.assertEqual(self.logged("KUBERNETES_POD_REMOVE_SUCCESSFUL"), [])
        removal_failures = "conch_container_backend_removal_failures_total"
        self.assertEqual(sample(metrics, removal_failures, backend="kubernetes"), 1)
        self.assertEqual(self.api.pods.requests[-1][0], "DELETE")

    async def test_pod_list_refused_at_start(self) -> None:
        """Pods the API server will not list at start: KUBERNETES_POD_LIST_FAILED, none removed."""
        backend = self.backend(startup=True)
        self.api.pods.fail_next = [403]
        removed = await backend.start()
        self.assertEqual(removed, 0)
        [failed] = self.logged("KUBERNETES_POD_LIST_FAILED")
        self.assertEqual(failed["namespace"], "default")
        self.assertEqual(self.logged("KUBERNETES_POD_REMOVE"), [])
        self.assertEqual([r[0] for r in self.api.pods.requests], ["GET"])

    async def test_connection_settings_unusable(self) -> None:
        """A token file that cannot be read: KUBERNETES_CONFIG_ERROR at connect, no pod made."""
        missing = os.path.abspath(self.mktemp())
        config = _with_connection(self.config, bearer_token_file=missing, bearer_token="")
        backend = self.backend()
        backend.start()
        with self.assertRaises(ContainerSSHError) as caught:
            await backend.connect(make_context(config, self.log))
        self.assertEqual(caught.exception.code, messages.KUBERNETES_CONFIG_ERROR)
        [error] = self.logged("KUBERNETES_CONFIG_ERROR")
        self.assertIn("kubernetes.connection.bearerTokenFile", error["reason"])
        self.assertEqual(self.api.pods.requests, [])


async def _stopped(backend: KubernetesBackend) -> None:
    await backend.stop()


def _with_connection(config: AppConfig, **connection: Any) -> AppConfig:
    """``config`` with these fields of its ``kubernetes.connection`` changed."""
    kubernetes = config.kubernetes
    changed = attrs.evolve(kubernetes.connection, **connection)
    return attrs.evolve(config, kubernetes=attrs.evolve(kubernetes, connection=changed))

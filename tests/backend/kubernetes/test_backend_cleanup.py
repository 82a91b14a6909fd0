"""The Kubernetes backend's own clean-up: at start-up, at stop, and its last resort.

- The start-up clean-up gives way to :meth:`KubernetesBackend.stop`: a slow
  API server never holds up a shutdown (a fake client that never answers).
- Pods made where the per-connection configuration put them (another
  namespace, another API server, as a configuration webhook may choose) are
  found by :meth:`~KubernetesBackend.remove_all` and by a restarted backend
  of the same instance (two test API servers).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase, TestCase

from conch_container.backend.kubernetes.backend import KubernetesBackend
from conch_container.log.logger import CodeLogger
from conch_container.testing.kubeapi import KubeAPIServer
from tests.backend.helpers import make_context, new_instance_id
from tests.backend.kubernetes.test_conformance import TOKEN, kubernetes_app_config
from tests.docker_support import GUEST_IMAGE, docker_client


class UnansweredClient:
    """A client whose API server never answers: every ``cluster_for`` waits for ever."""

    def __init__(self) -> None:
        self.waiting: list[Deferred[Any]] = []
        self.stopped = False

    def start(self) -> None:
        pass

    def cluster_for(self, config: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.waiting.append(d)
        return d

    def stop(self) -> Deferred[None]:
        self.stopped = True
        return succeed(None)


def unanswered_backend(client: UnansweredClient) -> KubernetesBackend:
    return KubernetesBackend(
        reactor,
        CodeLogger("tests"),
        instance_id="gw-a",
        startup_config=kubernetes_app_config("http://127.0.0.1:9").kubernetes,
        client=client,  # type: ignore[arg-type]
    )


class StartupCleanupCancelledTests(SynchronousTestCase):
    def test_stop_cancels_the_startup_cleanup(self) -> None:
        """stop() while the start-up clean-up waits: it is cancelled, start fires with 0."""
        client = UnansweredClient()
        backend = unanswered_backend(client)
        started = backend.start()
        self.assertNoResult(started)
        [waiting] = client.waiting
        stopped = backend.stop()
        self.successResultOf(stopped)
        self.assertEqual(self.successResultOf(started), 0)
        self.assertTrue(waiting.called)  # the call was cancelled, not left pending
        self.assertTrue(client.stopped)

    def test_start_without_reconcile_answers_at_once(self) -> None:
        """reconcile=False looks at nothing."""
        client = UnansweredClient()
        backend = unanswered_backend(client)
        self.assertEqual(self.successResultOf(backend.start(reconcile=False)), 0)
        self.assertEqual(client.waiting, [])
        self.successResultOf(backend.stop())


def config_in(url: str, namespace: str) -> Any:
    return kubernetes_app_config(url, metadata={"namespace": namespace, "generateName": "places-"})


class PerConnectionPlacesTests(TestCase):
    """Pods in the namespaces and API servers chosen per connection are cleaned up too."""

    timeout = 180

    async def setUp(self) -> None:
        docker_client()  # skips without a Docker engine
        self.servers = []
        for _ in range(2):
            server = KubeAPIServer(reactor, TOKEN, tls_dir=None)
            self.servers.append((server, await server.start()))
            self.addCleanup(lambda s=server: Deferred.fromCoroutine(s.stop()))
        self.instance_id = new_instance_id()
        self.log = CodeLogger("tests.backend.kubernetes.cleanup")
        [(_, self.home), (_, self.other)] = self.servers

    def make_backend(self) -> KubernetesBackend:
        backend = KubernetesBackend(
            reactor,
            self.log,
            instance_id=self.instance_id,
            startup_config=config_in(self.home, "default").kubernetes,
        )
        self.addCleanup(backend.stop)
        return backend

    async def own_pods(self, backend: KubernetesBackend, config: Any) -> list[str]:
        cluster = await backend._client.cluster_for(config.kubernetes)
        namespace = config.kubernetes.pod.metadata["namespace"]
        pods = await cluster.pods.list_pods(
            namespace, f"conch_container_instance={self.instance_id}"
        )
        # Deletion is asynchronous, as in Kubernetes: a deleted pod may still be listed.
        return [p["metadata"]["name"] for p in pods if "deletionTimestamp" not in p["metadata"]]

    async def connect_elsewhere(self, backend: KubernetesBackend) -> list[Any]:
        """One connection in another namespace, one on the other API server."""
        configs = [config_in(self.home, "elsewhere"), config_in(self.other, "far")]
        for config in configs:
            await backend.connect(make_context(config, self.log))
            self.assertEqual(len(await self.own_pods(backend, config)), 1)
        return configs

    async def test_remove_all_reaches_every_place(self) -> None:
        """The last resort deletes the pods of open connections wherever they were made."""
        backend = self.make_backend()
        self.assertEqual(await backend.start(), 0)
        configs = await self.connect_elsewhere(backend)
        self.assertEqual(await backend.remove_all(), 2)
        for config in configs:
            self.assertEqual(await self.own_pods(backend, config), [])

    async def test_stop_deletes_pods_in_every_place(self) -> None:
        """stop() deletes the pods of open connections wherever they were made."""
        backend = self.make_backend()
        await backend.start()
        configs = await self.connect_elsewhere(backend)
        await backend.stop()
        checker = self.make_backend()
        await checker.start(reconcile=False)
        for config in configs:
            self.assertEqual(await self.own_pods(checker, config), [])

    async def test_stop_deletes_a_pod_no_connection_holds(self) -> None:
        """A pod with this instance's label that no connection holds (a create whose
        answer came after the login gave up) is deleted by stop() too."""
        backend = self.make_backend()
        await backend.start()
        config = config_in(self.home, "strays")
        connection = await backend.connect(make_context(config, self.log))
        cluster = await backend._client.cluster_for(config.kubernetes)
        stray = {
            "metadata": {
                "generateName": "stray-",
                "labels": {"conch_container_instance": self.instance_id},
            },
            "spec": {"containers": [{"name": "shell", "image": GUEST_IMAGE}]},
        }
        await cluster.pods.create_pod("strays", stray)
        await connection.close()
        self.assertEqual(len(await self.own_pods(backend, config)), 1)
        await backend.stop()
        checker = self.make_backend()
        await checker.start(reconcile=False)
        self.assertEqual(await self.own_pods(checker, config), [])

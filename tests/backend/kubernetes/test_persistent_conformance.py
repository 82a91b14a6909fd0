"""The Kubernetes backend in persistent mode: the conformance suite, and the pod that stays.

Against the test API server (pods are containers of the local Docker
engine). The suite runs twice: in a pod the gateway creates
(``createMissingPods``), and in a pod made beforehand, as an operator or a
configuration server's tooling would. A closed connection leaves nothing
behind when none of its programs still runs in the pod; the pod itself
stays, whatever the backend does.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, gatherResults
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from conch_container import messages
from conch_container.backend.kubernetes.backend import KubernetesBackend, KubernetesConnection
from conch_container.backend.kubernetes.client import KubernetesClient
from conch_container.backend.kubernetes.errors import KubernetesError
from conch_container.backend.kubernetes.persistent import POD_NOT_FOUND_USER_MESSAGE
from conch_container.config.app import AppConfig
from conch_container.interfaces import ConnectionContext, ExitStatus, ProgramRequest
from conch_container.testing.conformance import BackendConformanceMixin, CollectingIO
from tests.backend.helpers import make_context
from tests.backend.kubernetes.test_conformance import KubeAPITestCase, kubernetes_app_config
from tests.docker_support import GUEST_IMAGE, docker_client
from tests.testing.kubeapi.support import pod_containers, unique

#: Seconds a killed program gets to disappear from the pod's process list.
KILL_DEADLINE = 15.0


def running_programs(pod_name: str) -> list[str]:
    """The processes of the pod's console container besides its idle command (blocking).

    The listing's own shell and its children are left out, and so are
    zombies (already dead, waiting for the idle process to reap them).
    """
    client = docker_client()
    [container] = [
        c
        for c in pod_containers(pod_name)
        if c["Labels"]["io.kubernetes.container.name"] == "shell"
    ]
    exec_id = client.exec_create(
        container["Id"], ["/bin/sh", "-c", "echo $$; ps -o pid,ppid,stat,args"]
    )
    lines = client.exec_start(exec_id).decode().splitlines()
    own = lines[0].strip()
    found = []
    for line in lines[2:]:
        pid, ppid, stat, *args = line.split()
        if pid in ("1", own) or ppid == own or stat.startswith("Z"):
            continue
        found.append(" ".join(args))
    return found


class PersistentTestCase(KubeAPITestCase):
    """A test API server, and a persistent pod name of the test's own."""

    create_missing = True

    async def setUp(self) -> None:
        await super().setUp()
        self.pod_name = unique("persistent")
        self.client = KubernetesClient(reactor)
        self.client.start()
        self.addCleanup(lambda: Deferred.fromCoroutine(self.client.stop()))
        # Added after the server's clean-up, so it runs before the server stops.
        self.addCleanup(lambda: Deferred.fromCoroutine(self.delete_pod()))

    def app_config(self, **pod: Any) -> AppConfig:
        return kubernetes_app_config(
            self.url,
            mode="persistent",
            metadata={"namespace": "default", "name": self.pod_name},
            createMissingPods=self.create_missing,
            **pod,
        )

    def make_context(self) -> ConnectionContext:
        return make_context(self.app_config(), self.log)

    async def pods(self) -> Any:
        cluster = await self.client.cluster_for(self.app_config().kubernetes)
        return cluster.pods

    async def pod(self) -> dict[str, Any] | None:
        """The persistent pod, or None if it is gone or being deleted."""
        found = await (await self.pods()).get_pod("default", self.pod_name)
        if found is None or "deletionTimestamp" in found["metadata"]:
            return None
        return found

    async def delete_pod(self) -> None:
        await (await self.pods()).delete_pod("default", self.pod_name, 0)

    async def leftovers(self, backend: Any, context: Any) -> list[str]:
        """The connection's programs still running in the pod (the kill is asynchronous)."""
        programs: list[str] = []
        for _ in range(int(KILL_DEADLINE / 0.5)):
            programs = await deferToThread(running_programs, self.pod_name)
            if not programs:
                break
            await deferLater(reactor, 0.5)
        if await self.pod() is None:
            programs.append(f"(pod {self.pod_name} was deleted)")
        return programs


class PremadePodCase(PersistentTestCase):
    """The pod exists before the first connection (the gateway may not create it)."""

    create_missing = False

    async def setUp(self) -> None:
        await super().setUp()
        manifest = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": self.pod_name},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {"name": "shell", "image": GUEST_IMAGE, "command": ["sleep", "3600"]}
                ],
            },
        }
        # Not waited for: the first connection finds it starting and waits itself.
        await (await self.pods()).create_pod("default", manifest)


class PersistentCreatedConformanceTests(PersistentTestCase, BackendConformanceMixin):
    """The conformance cases in a persistent pod the backend creates."""


class PersistentPremadeConformanceTests(PremadePodCase, BackendConformanceMixin):
    """The conformance cases in a persistent pod made before the gateway connects."""


class PersistentPodTests(PersistentTestCase):
    """The pod is shared by the connections, and outlives them and the backend."""

    async def connect(self, backend: KubernetesBackend, **context: Any) -> KubernetesConnection:
        connection = await backend.connect(make_context(self.app_config(), self.log, **context))
        self.addCleanup(connection.close)
        return connection

    async def start_cat(self, connection: KubernetesConnection) -> tuple[Any, CollectingIO]:
        session = connection.open_session(0)
        io = CollectingIO()
        await session.start(ProgramRequest("exec", "cat"), io)
        return session, io

    async def programs_settled(self, count: int) -> list[str]:
        """The programs in the pod, once there are ``count`` (or the deadline passed)."""
        programs: list[str] = []
        for _ in range(int(KILL_DEADLINE / 0.5)):
            programs = await deferToThread(running_programs, self.pod_name)
            if len(programs) == count:
                break
            await deferLater(reactor, 0.5)
        return programs

    async def test_pod_outlives_connections_and_backend(self) -> None:
        """Neither closing, nor remove_all, nor stop, nor the start-up clean-up deletes the pod."""
        backend = self.make_backend()
        connection = await self.connect(backend)
        await connection.close()
        self.assertIsNotNone(await self.pod())
        self.assertEqual(await backend.remove_all(), 0)
        await backend.stop()
        self.assertIsNotNone(await self.pod())
        config = self.app_config().kubernetes
        again = KubernetesBackend(
            reactor, self.log, instance_id=self.instance_id, startup_config=config
        )
        self.addCleanup(again.stop)
        self.assertEqual(await again.start(), 0)
        self.assertIsNotNone(await self.pod())
        self.assertNotIn("conch_container_instance", (await self.pod() or {})["metadata"]["labels"])

    async def test_other_connections_untouched(self) -> None:
        """Closing one connection ends its programs; another connection's program goes on."""
        backend = self.make_backend()
        first, second = await self.connect(backend), await self.connect(backend)
        self.assertEqual(first.pod, second.pod)
        await self.start_cat(first)
        session, second_io = await self.start_cat(second)
        self.assertEqual(await self.programs_settled(2), ["cat", "cat"])
        await first.close()
        self.assertEqual(await self.programs_settled(1), ["cat"])
        session.write(b"still here\n")
        await second_io.wait_for(b"still here\n")
        session.close_stdin()
        self.assertEqual(await second_io.wait_exit(), ExitStatus(code=0))
        await session.close()
        self.assertEqual(await self.leftovers(backend, None), [])

    async def test_files_seen_by_the_next_connection(self) -> None:
        """A file authentication wrote for one connection is there for the next one."""
        backend = self.make_backend()
        writer = await self.connect(backend, files={"/tmp/shared": b"from the first\n"})
        await writer.close()
        reader = await self.connect(backend)
        session = reader.open_session(0)
        io = CollectingIO()
        await session.start(ProgramRequest("exec", "cat /tmp/shared"), io)
        self.assertEqual(await io.wait_exit(), ExitStatus(code=0))
        self.assertEqual(bytes(io.stdout_data), b"from the first\n")

    async def test_racing_connections_share_the_created_pod(self) -> None:
        """Two connections creating the missing pod at once both get the one pod."""
        backend = self.make_backend()
        connections = await gatherResults(
            [Deferred.fromCoroutine(self.connect(backend)) for _ in range(2)]
        )
        self.assertEqual({c.pod.name for c in connections}, {self.pod_name})
        listed = await (await self.pods()).list_pods("default", "")
        self.assertEqual([p["metadata"]["name"] for p in listed].count(self.pod_name), 1)


class MissingPodTests(PersistentTestCase):
    create_missing = False

    async def test_missing_pod_refused(self) -> None:
        """Without createMissingPods a connection to a missing pod is refused; nothing is made."""
        backend = self.make_backend()
        results = await DeferredList([backend.connect(self.make_context())], consumeErrors=True)
        [(ok, failure)] = results
        self.assertFalse(ok)
        error = failure.value
        self.assertIsInstance(error, KubernetesError)
        self.assertEqual(error.code, messages.KUBERNETES_POD_NOT_FOUND)
        self.assertEqual(error.user_message, POD_NOT_FOUND_USER_MESSAGE)
        self.assertIsNone(await self.pod())

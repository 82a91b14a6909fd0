"""PodAPI: the official client on the backend's own pool, against a fake API server on loopback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase, TestCase

from conch_container import messages
from conch_container.backend.kubernetes.connection import (
    Cluster,
    ClusterSettings,
    thd_api_client,
)
from conch_container.backend.kubernetes.credentials import Credentials
from conch_container.backend.kubernetes.errors import ImagePullFailed, KubernetesError
from conch_container.backend.kubernetes.pods import CallFailed, PodAPI
from conch_container.backend.kubernetes.ratelimit import TokenBucket
from tests.backend.kubernetes.fakeapi import FakeAPIServer

POD = {
    "metadata": {"generateName": "containerssh-", "labels": {"owner": "gw1"}},
    "spec": {"containers": [{"name": "shell", "image": "guest"}]},
}


def running(ready: bool) -> dict[str, Any]:
    return {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }


def waiting(reason: str) -> dict[str, Any]:
    return {
        "phase": "Pending",
        "containerStatuses": [
            {"name": "shell", "state": {"waiting": {"reason": reason, "message": "no such image"}}}
        ],
    }


def terminated(code: int) -> dict[str, Any]:
    return {
        "phase": "Failed",
        "containerStatuses": [{"name": "shell", "state": {"terminated": {"exitCode": code}}}],
    }


class PodAPITests(TestCase):
    def setUp(self) -> None:
        self.server = FakeAPIServer()
        url = self.server.listen()
        self.addCleanup(self.server.stop)
        self.pool = ThreadPool(0, 2, name="kubernetes-test")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        settings = ClusterSettings(base_url=url, credentials=Credentials(token="tok"), timeout=5)
        cluster = thd_api_client(settings, None, 2)
        self.addCleanup(cluster.thd_close)
        self.api = PodAPI(
            reactor, self.pool, cluster, TokenBucket(reactor, 1000, 1000), poll_interval=0.01
        )

    async def assert_fails(self, code: Any, work: Any) -> KubernetesError:
        try:
            await work
        except KubernetesError as e:
            self.assertEqual(e.code, code)
            return e
        self.fail("no KubernetesError")

    async def test_create_get_list_delete(self) -> None:
        """A pod is created (bearer token sent), read, found by label, deleted with a grace."""
        created = await self.api.create_pod("ns", POD)
        name = created["metadata"]["name"]
        self.assertTrue(name.startswith("containerssh-"))
        method, path, _, headers, body = self.server.pods.requests[0]
        self.assertEqual((method, path), ("POST", "/api/v1/namespaces/ns/pods"))
        self.assertEqual(headers["authorization"], "Bearer tok")
        self.assertEqual(body["spec"], POD["spec"])
        read = await self.api.get_pod("ns", name)
        assert read is not None
        self.assertEqual(read["metadata"]["name"], name)
        self.assertEqual(
            [p["metadata"]["name"] for p in await self.api.list_pods("ns", "owner=gw1")], [name]
        )
        self.assertEqual(await self.api.list_pods("ns", "owner=other"), [])
        self.assertEqual(self.server.pods.requests[-1][2]["labelSelector"], ["owner=other"])
        self.assertTrue(await self.api.delete_pod("ns", name, grace_seconds=7))
        self.assertEqual(self.server.pods.requests[-1][4]["gracePeriodSeconds"], 7)
        self.assertFalse(await self.api.delete_pod("ns", name))
        self.assertIsNone(await self.api.get_pod("ns", name))

    async def test_create_conflict(self) -> None:
        """An error answer is KUBERNETES_POD_CREATE_FAILED with status, reason and message."""
        pod = {**POD, "metadata": {"name": "fixed"}}
        await self.api.create_pod("ns", pod)
        error = await self.assert_fails(
            messages.KUBERNETES_POD_CREATE_FAILED, self.api.create_pod("ns", pod)
        )
        self.assertEqual((error.status, error.reason), (409, "AlreadyExists"))
        self.assertIn('pods "fixed" already exists', error.explanation)

    async def test_garbage_answer(self) -> None:
        """An answer that is not JSON is an error of the call's code."""
        self.server.pods.garbage = True
        await self.assert_fails(
            messages.KUBERNETES_POD_LIST_FAILED, self.api.list_pods("ns", "a=b")
        )

    async def test_server_gone(self) -> None:
        """No server: the call fails with its code, not with the client's exception."""
        await self.server.stop()
        error = await self.assert_fails(
            messages.KUBERNETES_POD_REMOVE_FAILED, self.api.delete_pod("ns", "x")
        )
        self.assertIsNone(error.status)

    async def test_wait_until_ready(self) -> None:
        """Waiting polls until Running with Ready true."""
        name = (await self.api.create_pod("ns", POD))["metadata"]["name"]
        self.server.pods.scripts[name] = [{"phase": "Pending"}, running(False), running(True)]
        pod = await self.api.wait_until_ready("ns", name, timeout=30)
        self.assertEqual(pod["status"], running(True))

    async def test_wait_survives_server_errors(self) -> None:
        """Server errors and throttling during a wait are repeated; a refusal ends it at once."""
        name = (await self.api.create_pod("ns", POD))["metadata"]["name"]
        self.server.pods.scripts[name] = [running(True)]
        self.server.pods.fail_next = [500, 503, 429]
        pod = await self.api.wait_until_ready("ns", name, timeout=30)
        self.assertEqual(pod["status"], running(True))
        self.server.pods.fail_next = [403]
        error = await self.assert_fails(
            messages.KUBERNETES_POD_WAIT_FAILED, self.api.wait_until_ready("ns", name, timeout=30)
        )
        self.assertEqual(error.status, 403)

    async def test_image_pull_fails_at_once(self) -> None:
        """ImagePullBackOff ends the wait with its own error and code, long before the timeout."""
        name = (await self.api.create_pod("ns", POD))["metadata"]["name"]
        self.server.pods.scripts[name] = [{"phase": "Pending"}, waiting("ImagePullBackOff")]
        with self.assertRaises(ImagePullFailed) as caught:
            await self.api.wait_until_ready("ns", name, timeout=3600)
        self.assertEqual(caught.exception.code, messages.KUBERNETES_IMAGE_PULL_FAILED)
        self.assertIn("ImagePullBackOff", caught.exception.explanation)

    async def test_wait_deadline(self) -> None:
        """A pod never ready fails the wait with KUBERNETES_POD_WAIT_FAILED at its deadline."""
        name = (await self.api.create_pod("ns", POD))["metadata"]["name"]
        error = await self.assert_fails(
            messages.KUBERNETES_POD_WAIT_FAILED, self.api.wait_until_ready("ns", name, timeout=0.2)
        )
        self.assertIn("gave up waiting for it to be ready after 0.2 s", error.explanation)

    async def test_exit_code(self) -> None:
        """The console container's terminated exit code; a pod that is gone is not_found."""
        name = (await self.api.create_pod("ns", POD))["metadata"]["name"]
        self.server.pods.scripts[name] = [running(True), terminated(3)]
        self.assertEqual(await self.api.wait_until_terminated("ns", name, "shell", 30), 3)
        await self.api.delete_pod("ns", name)
        error = await self.assert_fails(
            messages.KUBERNETES_EXIT_CODE_FAILED,
            self.api.wait_until_terminated("ns", name, "shell", 30),
        )
        self.assertTrue(error.not_found)


class HeldPool:
    """A pool whose work never finishes: the answer that never comes."""

    def __init__(self) -> None:
        self.held: list[Callable[..., Any]] = []
        self.held_calls: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []

    def callInThreadWithCallback(
        self, on_result: Any, f: Callable[..., Any], *a: Any, **k: Any
    ) -> None:
        self.held.append(f)
        self.held_calls.append((f, a, k))


class DeadlineTests(SynchronousTestCase):
    def test_call_deadline(self) -> None:
        """A call with no answer fails with its code once the HTTP timeout passes on the clock."""
        clock = Clock()
        settings = ClusterSettings(
            base_url="http://127.0.0.1:1", credentials=Credentials(), timeout=15
        )
        cluster = Cluster(settings, None)  # type: ignore[arg-type]
        api = PodAPI(clock, HeldPool(), cluster, TokenBucket(clock, 5, 10))  # type: ignore[arg-type]
        d = Deferred.fromCoroutine(api.get_pod("ns", "p"))
        clock.advance(14)
        self.assertNoResult(d)
        clock.advance(1)
        error = self.failureResultOf(d, KubernetesError).value
        self.assertEqual(error.code, messages.KUBERNETES_POD_WAIT_FAILED)
        self.assertIn("no answer within 15 s", error.explanation)

    def test_rate_limit_wait_has_its_own_deadline(self) -> None:
        """A call waits for its rate-limit turn within four HTTP timeouts, not one (as
        client-go's limiter waits within the request's context); then fails unsent."""
        clock = Clock()
        settings = ClusterSettings(
            base_url="http://127.0.0.1:1", credentials=Credentials(), timeout=1
        )
        pool = HeldPool()
        limiter = TokenBucket(clock, 0.1, 1)
        api = PodAPI(clock, pool, Cluster(settings, None), limiter)  # type: ignore[arg-type]
        first = Deferred.fromCoroutine(api.get_pod("ns", "a"))
        second = Deferred.fromCoroutine(api.get_pod("ns", "b"))
        self.assertEqual(len(pool.held), 1)
        self.assertEqual(limiter.waiting, 1)
        clock.advance(1)
        self.assertIn("no answer within 1 s", self.failureResultOf(first).value.explanation)
        self.assertNoResult(second)
        clock.advance(3)
        error = self.failureResultOf(second, KubernetesError).value
        self.assertIn("no turn within 4 s under the rate limit", error.explanation)
        self.assertEqual(len(pool.held), 1)
        self.assertEqual(limiter.waiting, 0)

    def test_call_given_up_while_queued_is_never_sent(self) -> None:
        """A request still waiting for a pool thread when its deadline passes is dropped
        when a thread takes it: a pod created after the caller gave up would be nobody's."""
        clock = Clock()
        settings = ClusterSettings(
            base_url="http://127.0.0.1:1", credentials=Credentials(), timeout=1
        )
        pool = HeldPool()
        api = PodAPI(
            clock,
            pool,
            Cluster(settings, None),
            TokenBucket(clock, 100, 100),  # type: ignore[arg-type]
        )
        created = Deferred.fromCoroutine(api.create_pod("ns", {"metadata": {}}))
        clock.advance(1)
        self.failureResultOf(created, KubernetesError)
        [(work, args, kwargs)] = pool.held_calls
        with self.assertRaises(CallFailed):
            work(*args, **kwargs)

"""Persistent mode's pod lookup and creation, on a fake clock against an in-memory pod store.

The store answers as the API server does where it matters here: 404 for a
missing pod (``None`` from ``get_pod``), 409 ``AlreadyExists`` for a second
create of the same name. Behaviour against a real API server is in
``test_persistent_conformance`` and the OpenSSH integration test.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, cast

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.backend.kubernetes.errors import KubernetesError
from conch_container.backend.kubernetes.persistent import (
    LOOKUP_INTERVAL,
    LOOKUP_TRIES,
    POD_ENDED_USER_MESSAGE,
    POD_NOT_FOUND_USER_MESSAGE,
    persistent_pod,
)
from conch_container.backend.kubernetes.podlifecycle import PodRef
from conch_container.backend.kubernetes.pods import PodAPI
from conch_container.config import parse_config
from conch_container.config.kubernetes import KubernetesConfig
from conch_container.log.logger import CodeLogger
from conch_container.metadata import ConnectionMetadata

NAMESPACE = "users"
NAME = "alice-pod"
READY = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}


def persistent_config(**pod: Any) -> KubernetesConfig:
    return parse_config(
        {
            "backend": "kubernetes",
            "kubernetes": {
                "pod": {
                    "mode": "persistent",
                    "metadata": {
                        "namespace": NAMESPACE,
                        "name": NAME,
                        "labels": {"team": "a", "conch_container_instance": "configured"},
                    },
                    "spec": {"containers": [{"name": "shell", "image": "guest"}]},
                    "idleCommand": ["/bin/sh", "-c", "sleep 3600"],
                    **pod,
                },
            },
        }
    ).kubernetes


METADATA = ConnectionMetadata(
    connection_id="0123456789abcdef0123456789abcdef",
    remote_address="127.0.0.1:2222",
    username="alice",
)


def unavailable() -> KubernetesError:
    return KubernetesError(messages.KUBERNETES_POD_WAIT_FAILED, "reading pod: HTTP 503", status=503)


class FakePods:
    """The pod calls :func:`persistent_pod` makes, on a dict; every call is recorded."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        #: Seconds a read takes on the clock (0: answered at once).
        self.read_delay = 0.0
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[str] = []
        #: Raised by the next reads, one each, before the store answers.
        self.read_errors: list[KubernetesError] = []
        #: Run when a create arrives, before the store is looked at (another connection).
        self.before_create: Callable[[], None] = lambda: None
        self.created: list[dict[str, Any]] = []

    def add(self, status: dict[str, Any], **metadata: Any) -> None:
        self.pods[NAMESPACE, NAME] = {"metadata": {"name": NAME, **metadata}, "status": status}

    async def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append("get")
        # The answer is the store as the request found it, however late it comes.
        error = self.read_errors.pop(0) if self.read_errors else None
        found = copy.deepcopy(self.pods.get((namespace, name)))
        if self.read_delay:
            await task.deferLater(self.clock, self.read_delay)
        if error is not None:
            raise error
        return found

    async def create_pod(self, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("create")
        self.before_create()
        name = manifest["metadata"]["name"]
        if (namespace, name) in self.pods:
            raise KubernetesError(
                messages.KUBERNETES_POD_CREATE_FAILED,
                f'creating the pod: HTTP 409 AlreadyExists: pods "{name}" already exists',
                status=409,
                reason="AlreadyExists",
            )
        self.created.append(copy.deepcopy(manifest))
        self.pods[namespace, name] = {**copy.deepcopy(manifest), "status": {"phase": "Pending"}}
        return copy.deepcopy(self.pods[namespace, name])

    async def wait_until_ready(self, namespace: str, name: str, timeout: float) -> dict[str, Any]:
        self.calls.append("wait")
        pod = self.pods[namespace, name]
        pod["status"] = dict(READY)
        return copy.deepcopy(pod)


class PersistentPodTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.pods = FakePods(self.clock)
        self.events = EventLoggingObserver()
        self.log = CodeLogger("tests", observer=self.events)

    def find(self, config: KubernetesConfig | None = None) -> Deferred[PodRef]:
        return Deferred.fromCoroutine(
            persistent_pod(
                self.clock,
                cast(PodAPI, self.pods),
                config or persistent_config(),
                METADATA,
                log=self.log,
            )
        )

    def codes(self) -> list[str]:
        return [e["code"] for e in self.events]

    def test_ready_pod_used_as_is(self) -> None:
        """A pod that exists and is ready is used after one read: no create, no wait."""
        self.pods.add(READY)
        self.assertEqual(self.successResultOf(self.find()), PodRef(NAMESPACE, NAME))
        self.assertEqual(self.pods.calls, ["get"])

    def test_pod_not_ready_is_waited_for(self) -> None:
        """A pod that exists but is not ready yet is waited for (within podStart)."""
        self.pods.add({"phase": "Pending"})
        self.assertEqual(self.successResultOf(self.find()), PodRef(NAMESPACE, NAME))
        self.assertEqual(self.pods.calls, ["get", "wait"])

    def test_missing_pod_refused(self) -> None:
        """Without createMissingPods a missing pod refuses the connection with its own code.

        The API server's 404 is final: one read, and nothing is created.
        """
        error = self.failureResultOf(self.find(), KubernetesError).value
        self.assertEqual(error.code, messages.KUBERNETES_POD_NOT_FOUND)
        self.assertEqual(error.user_message, POD_NOT_FOUND_USER_MESSAGE)
        self.assertIn(NAME, error.explanation)
        self.assertEqual(self.pods.calls, ["get"])
        self.assertEqual(self.codes(), ["KUBERNETES_POD_LOOKUP", "KUBERNETES_POD_NOT_FOUND"])

    def test_lookup_retried_on_the_clock(self) -> None:
        """A read that fails is tried again LOOKUP_INTERVAL seconds later, on the reactor clock."""
        self.pods.add(READY)
        self.pods.read_errors = [unavailable(), unavailable()]
        d = self.find()
        self.assertNoResult(d)
        self.assertEqual(self.pods.calls, ["get"])
        self.clock.advance(LOOKUP_INTERVAL - 0.1)
        self.assertEqual(self.pods.calls, ["get"])
        self.clock.advance(0.1)
        self.assertEqual(self.pods.calls, ["get", "get"])
        self.assertNoResult(d)
        self.clock.advance(LOOKUP_INTERVAL)
        self.assertEqual(self.successResultOf(d), PodRef(NAMESPACE, NAME))
        self.assertEqual(self.pods.calls, ["get"] * LOOKUP_TRIES)
        self.assertEqual(self.codes().count("KUBERNETES_POD_LOOKUP_FAILED"), 2)

    def test_lookup_gives_up_after_three_tries(self) -> None:
        """Three failed reads refuse the connection with KUBERNETES_POD_LOOKUP_FAILED."""
        self.pods.read_errors = [unavailable() for _ in range(LOOKUP_TRIES + 1)]
        d = self.find()
        self.clock.pump([LOOKUP_INTERVAL] * LOOKUP_TRIES)
        error = self.failureResultOf(d, KubernetesError).value
        self.assertEqual(error.code, messages.KUBERNETES_POD_LOOKUP_FAILED)
        self.assertEqual(error.status, 503)
        self.assertEqual(self.pods.calls, ["get"] * LOOKUP_TRIES)
        self.assertNotIn("create", self.pods.calls)

    def test_missing_pod_created(self) -> None:
        """With createMissingPods the pod is made as in connection mode, under the configured name.

        It runs the idle command and carries the connection's labels, but
        never the instance label (not even a configured one): no clean-up can
        select it.
        """
        config = persistent_config(createMissingPods=True)
        self.assertEqual(self.successResultOf(self.find(config)), PodRef(NAMESPACE, NAME))
        self.assertEqual(self.pods.calls, ["get", "create", "wait"])
        [manifest] = self.pods.created
        self.assertEqual(manifest["metadata"]["name"], NAME)
        self.assertEqual(manifest["metadata"]["namespace"], NAMESPACE)
        labels = manifest["metadata"]["labels"]
        self.assertNotIn("conch_container_instance", labels)
        self.assertEqual(labels["team"], "a")
        self.assertEqual(labels["containerssh_connection_id"], METADATA.connection_id)
        console = manifest["spec"]["containers"][0]
        self.assertEqual(console["command"], ["/bin/sh", "-c", "sleep 3600"])

    def test_create_race_joins_the_other_pod(self) -> None:
        """Losing the race to create (409 AlreadyExists) reads the winner's pod and waits for it."""
        self.pods.before_create = lambda: self.pods.add({"phase": "Pending"})
        config = persistent_config(createMissingPods=True)
        self.assertEqual(self.successResultOf(self.find(config)), PodRef(NAMESPACE, NAME))
        self.assertEqual(self.pods.calls, ["get", "create", "get", "wait"])
        self.assertEqual(self.pods.created, [])
        self.assertIn("KUBERNETES_POD_CREATE_RACE", self.codes())
        self.assertNotIn("KUBERNETES_POD_CREATE_FAILED", self.codes())

    def test_two_connections_racing_share_the_pod(self) -> None:
        """Two connections that both find the pod missing both end up in the one pod created."""
        config = persistent_config(createMissingPods=True)
        self.pods.read_delay = 1.0
        first, second = self.find(config), self.find(config)
        self.clock.pump([1.0, 1.0])
        self.assertEqual(self.successResultOf(first), PodRef(NAMESPACE, NAME))
        self.assertEqual(self.successResultOf(second), PodRef(NAMESPACE, NAME))
        self.assertEqual(len(self.pods.created), 1)
        self.assertEqual(self.pods.calls.count("create"), 2)
        self.assertEqual(self.codes().count("KUBERNETES_POD_CREATE_RACE"), 1)

    def test_other_create_failure_refused(self) -> None:
        """A create refused for another reason than AlreadyExists refuses the connection."""

        def forbid() -> None:
            raise KubernetesError(
                messages.KUBERNETES_POD_CREATE_FAILED, "creating the pod: HTTP 403", status=403
            )

        self.pods.before_create = forbid
        error = self.failureResultOf(
            self.find(persistent_config(createMissingPods=True)), KubernetesError
        ).value
        self.assertEqual(error.code, messages.KUBERNETES_POD_CREATE_FAILED)
        self.assertEqual(self.pods.calls, ["get", "create"])

    def test_ended_pod_refused(self) -> None:
        """A pod that has ended (Succeeded or Failed) cannot take execs: refused, not replaced."""
        for ended in ("Succeeded", "Failed"):
            self.pods.add({"phase": ended})
            error = self.failureResultOf(
                self.find(persistent_config(createMissingPods=True)), KubernetesError
            ).value
            self.assertEqual(error.code, messages.KUBERNETES_POD_WAIT_FAILED)
            self.assertEqual(error.user_message, POD_ENDED_USER_MESSAGE)
            self.assertNotIn("create", self.pods.calls)

    def test_pod_being_deleted_refused(self) -> None:
        """A pod that is being deleted is refused at once: no exec would outlive it."""
        self.pods.add(READY, deletionTimestamp="2026-01-01T00:00:00Z")
        error = self.failureResultOf(
            self.find(persistent_config(createMissingPods=True)), KubernetesError
        ).value
        self.assertEqual(error.code, messages.KUBERNETES_POD_WAIT_FAILED)
        self.assertIn("being deleted", error.explanation)
        self.assertEqual(self.pods.calls, ["get"])

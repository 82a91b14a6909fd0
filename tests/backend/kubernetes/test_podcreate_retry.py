"""Creating a pod is tried again every 10 s within podStart, for failures worth it only.

A fake :class:`~conch_container.backend.kubernetes.pods.PodAPI` answers
each create from a script, and a :class:`~twisted.internet.task.Clock`
stands for the reactor, so the intervals are exact and nothing sleeps.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.backend.kubernetes.errors import KubernetesError
from conch_container.backend.kubernetes.podlifecycle import (
    CREATE_RETRY_INTERVAL,
    PodRef,
    launch_pod,
)
from conch_container.log.logger import CodeLogger

MANIFEST = {
    "metadata": {
        "namespace": "users",
        "generateName": "retry-",
        "labels": {"conch_container_instance": "gw-a", "containerssh_connection_id": "c1"},
    }
}
POD_START = 60.0


def failure(status: int | None) -> KubernetesError:
    return KubernetesError(
        messages.KUBERNETES_POD_CREATE_FAILED, f"creating the pod: {status}", status=status
    )


class ScriptedPods:
    """Answers each create with the next scripted error, then with a pod."""

    def __init__(self, clock: Clock, errors: list[KubernetesError | None]) -> None:
        self._clock = clock
        self._errors = errors
        #: The clock's time at each create call.
        self.creates: list[float] = []
        #: A create that never answers (for the deadline case), when True.
        self.hang = False
        #: Whether a create that fails without an answer still makes its pod.
        self.made_unanswered = False
        #: The pods the server holds, and the selectors they were listed with.
        self.stored: list[str] = []
        self.selectors: list[str] = []

    def create_pod(self, namespace: str, pod: Any) -> Deferred[dict[str, Any]]:
        self.creates.append(self._clock.seconds())
        if self.hang:
            return Deferred()
        error = self._errors.pop(0) if self._errors else None
        if error is not None and error.status is None and self.made_unanswered:
            self.stored.append(f"retry-{len(self.creates)}")
        if error is not None:
            d: Deferred[dict[str, Any]] = Deferred()
            d.errback(error)
            return d
        return succeed({"metadata": {"namespace": namespace, "name": "retry-1"}})

    def wait_until_ready(self, namespace: str, name: str, timeout: float) -> Deferred[None]:
        return succeed(None)

    def list_pods(self, namespace: str, selector: str) -> Deferred[list[dict[str, Any]]]:
        self.selectors.append(selector)
        return succeed([{"metadata": {"name": name}} for name in self.stored])

    def delete_pod(self, namespace: str, name: str, grace: int = 0) -> Deferred[bool]:
        self.stored.remove(name)
        return succeed(True)


class CreateRetryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.events = EventLoggingObserver()
        self.log = CodeLogger("tests", observer=self.events)

    def launch(self, pods: ScriptedPods) -> Deferred[PodRef]:
        return Deferred.fromCoroutine(
            launch_pod(
                self.clock,
                pods,  # type: ignore[arg-type]
                MANIFEST,
                timeout=POD_START,
                stop_timeout=10,
                log=self.log,
            )
        )

    def codes(self) -> list[str]:
        return [e["code"] for e in self.events]

    def test_retried_every_interval_until_created(self) -> None:
        """No answer, a server error and 429 are tried again, 10 s apart; then the pod is made."""
        pods = ScriptedPods(self.clock, [failure(None), failure(503), failure(429)])
        d = self.launch(pods)
        self.assertEqual(pods.creates, [0.0])
        self.clock.advance(CREATE_RETRY_INTERVAL - 0.5)
        self.assertEqual(pods.creates, [0.0])
        self.assertNoResult(d)
        self.clock.advance(0.5)
        self.assertEqual(pods.creates, [0.0, CREATE_RETRY_INTERVAL])
        self.clock.advance(CREATE_RETRY_INTERVAL)
        self.clock.advance(CREATE_RETRY_INTERVAL)
        self.assertEqual(pods.creates, [0.0, 10.0, 20.0, 30.0])
        self.assertEqual(self.successResultOf(d), PodRef("users", "retry-1"))
        self.assertEqual(self.codes().count("KUBERNETES_POD_CREATE_FAILED"), 3)
        self.assertEqual(self.codes().count("KUBERNETES_POD_CREATE"), 4)

    def test_pod_of_unanswered_create_removed(self) -> None:
        """A create whose answer never came but whose pod was made: that pod goes first."""
        pods = ScriptedPods(self.clock, [failure(None)])
        pods.made_unanswered = True
        d = self.launch(pods)
        self.assertEqual(pods.stored, [])
        self.assertEqual(
            pods.selectors, ["conch_container_instance=gw-a,containerssh_connection_id=c1"]
        )
        self.clock.advance(CREATE_RETRY_INTERVAL)
        self.assertEqual(self.successResultOf(d), PodRef("users", "retry-1"))
        self.assertIn("KUBERNETES_POD_REMOVE_SUCCESSFUL", self.codes())

    def test_answered_refusal_looks_for_no_pod(self) -> None:
        """A refusal the server answered made nothing: nothing is listed."""
        pods = ScriptedPods(self.clock, [failure(503)])
        d = self.launch(pods)
        self.clock.advance(CREATE_RETRY_INTERVAL)
        self.successResultOf(d)
        self.assertEqual(pods.selectors, [])

    def test_refusals_fail_at_once(self) -> None:
        """403, 409 and 422 refuse the pod itself: no second attempt."""
        for status in (403, 409, 422):
            pods = ScriptedPods(self.clock, [failure(status)])
            d = self.launch(pods)
            error = self.failureResultOf(d, KubernetesError).value
            self.assertEqual(error.status, status)
            self.clock.advance(POD_START)
            self.assertEqual(len(pods.creates), 1, status)

    def test_refused_certificate_fails_at_once(self) -> None:
        """No answer because the server's certificate failed verification: no second attempt."""
        refused = KubernetesError(
            messages.KUBERNETES_POD_CREATE_FAILED,
            "creating the pod: certificate verify failed",
            certificate_refused=True,
        )
        pods = ScriptedPods(self.clock, [refused])
        d = self.launch(pods)
        self.assertIs(self.failureResultOf(d, KubernetesError).value, refused)
        self.clock.advance(POD_START)
        self.assertEqual(pods.creates, [0.0])

    def test_gives_up_within_pod_start(self) -> None:
        """Failing for ever: attempts stop when podStart leaves no room for another."""
        pods = ScriptedPods(self.clock, [failure(500)] * 100)
        d = self.launch(pods)
        self.clock.pump([CREATE_RETRY_INTERVAL] * 10)
        error = self.failureResultOf(d, KubernetesError).value
        self.assertEqual(error.status, 500)
        self.assertEqual(pods.creates, [0.0, 10.0, 20.0, 30.0, 40.0, 50.0])

    def test_create_without_answer_bounded_by_pod_start(self) -> None:
        """A create that never answers is given up at podStart, not retried beyond it."""
        pods = ScriptedPods(self.clock, [])
        pods.hang = True
        d = self.launch(pods)
        self.clock.advance(POD_START)
        error = self.failureResultOf(d, KubernetesError).value
        self.assertEqual(error.code, messages.KUBERNETES_POD_CREATE_FAILED)
        self.assertEqual(pods.creates, [0.0])

    def test_cancelled_while_waiting_to_retry(self) -> None:
        """Cancelling the launch between attempts stops the retries."""
        pods = ScriptedPods(self.clock, [failure(503)] * 10)
        d = self.launch(pods)
        d.cancel()
        self.failureResultOf(d)
        self.clock.advance(POD_START)
        self.assertEqual(pods.creates, [0.0])

"""How a session pod's exit code is found when the output ends (fakes, no cluster)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.trial.unittest import TestCase

from conch_container import messages
from conch_container.backend.kubernetes.errors import KubernetesError
from conch_container.backend.kubernetes.podlifecycle import PodRef
from conch_container.backend.kubernetes.sessionmode.session import KubernetesPodSession
from conch_container.backend.programsession import State
from conch_container.config import parse_config
from conch_container.deferreds import Once
from conch_container.interfaces import ExitStatus
from conch_container.log.logger import CODE_KEY, CodeLogger
from conch_container.testing.conformance import CollectingIO
from tests.backend.kubernetes.test_podmanifest import connection

POD = PodRef("default", "session-pod")


class FakePods:
    """The pod calls a finished session makes: the exit code's wait, the delete."""

    def __init__(self, terminated: Any) -> None:
        self._terminated = terminated
        self.deleted: list[str] = []

    def wait_until_terminated(
        self, namespace: str, name: str, container: str, timeout: float
    ) -> Any:
        return self._terminated

    def delete_pod(self, namespace: str, name: str, grace: int) -> Any:
        self.deleted.append(name)
        return succeed(True)


class FakeCluster:
    def __init__(self, pods: FakePods) -> None:
        self.pods = pods


class ExitCodeTests(TestCase):
    def ended(self, terminated: Any) -> tuple[CollectingIO, FakePods, list[Any]]:
        """A running session whose output ends; the exit it reports and the pod calls."""
        events = EventLoggingObserver()
        pods = FakePods(terminated)
        config = parse_config(
            {"backend": "kubernetes", "kubernetes": {"pod": {"mode": "session"}}}
        ).kubernetes
        session = KubernetesPodSession(
            reactor=Clock(),
            cluster=FakeCluster(pods),  # type: ignore[arg-type]
            config=config,
            metadata=connection(),
            files={},
            agent=None,
            instance_id="gateway-1",
            log=CodeLogger("tests", observer=events),
            channel_id=0,
        )
        launched: Once[PodRef | None] = Once()
        launched.fire(POD)
        session.pod, session._launched = POD, launched
        io = CollectingIO()
        session._io, session._state = io, State.RUNNING
        session.output_ended(None)
        return io, pods, [e[CODE_KEY] for e in events if CODE_KEY in e]

    async def test_terminated_exit_code(self) -> None:
        """The console container's terminated exit code is the session's; the pod goes."""
        io, pods, _ = self.ended(succeed(42))
        self.assertEqual(await io.wait_exit(), ExitStatus(code=42))
        self.assertEqual(pods.deleted, [POD.name])

    async def test_pod_gone(self) -> None:
        """A pod gone before its exit code was read: 137, as ContainerSSH says."""
        gone = KubernetesError(messages.KUBERNETES_EXIT_CODE_FAILED, "gone", status=404)
        io, _, codes = self.ended(fail(gone))
        self.assertEqual(await io.wait_exit(), ExitStatus(code=137))
        self.assertNotIn(messages.KUBERNETES_EXIT_CODE_FAILED.code, codes)

    async def test_unknown(self) -> None:
        """An exit code that cannot be read is logged and reported as 137."""
        refused = KubernetesError(messages.KUBERNETES_EXIT_CODE_FAILED, "refused", status=403)
        io, pods, codes = self.ended(fail(refused))
        self.assertEqual(await io.wait_exit(), ExitStatus(code=137))
        self.assertIn(messages.KUBERNETES_EXIT_CODE_FAILED.code, codes)
        self.assertEqual(pods.deleted, [POD.name])

"""The Kubernetes backend in ``session`` mode: the conformance suite and what session mode adds.

Against the test API server, whose pods are containers of the local Docker
engine (the guest image has a shell and no agent of its own: the program is
held by the project's agent, passed inline).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater

from conch_container import messages
from conch_container.backend.kubernetes.sessionmode.session import KubernetesPodSession
from conch_container.errors import ContainerSSHError
from conch_container.interfaces import ConnectionContext, ExitStatus, ProgramRequest
from conch_container.testing.conformance import BackendConformanceMixin, CollectingIO
from tests.backend.helpers import make_context
from tests.backend.kubernetes.test_conformance import KubeAPITestCase, kubernetes_app_config


def session_context(test: KubeAPITestCase, **pod: Any) -> ConnectionContext:
    return make_context(kubernetes_app_config(test.url, mode="session", **pod), test.log)


class KubernetesSessionModeConformanceTests(KubeAPITestCase, BackendConformanceMixin):
    """The conformance cases against one pod per session channel."""

    def make_context(self) -> ConnectionContext:
        return session_context(self)


class KubernetesSessionModeTests(KubeAPITestCase):
    """What session mode does beyond the conformance cases."""

    def make_context(self) -> ConnectionContext:
        return session_context(self)

    async def test_no_pod_at_connect(self) -> None:
        """Connecting creates no pod; a session's program does, which is deleted after it ends."""
        backend = self.make_backend()
        context = self.make_context()
        connection = await backend.connect(context)
        self.addCleanup(connection.close)
        self.assertEqual(await self.leftovers(backend, context), [])
        session = connection.open_session(0)
        io = CollectingIO()
        await session.start(ProgramRequest("exec", "echo running; cat"), io)
        await io.wait_for(b"running\n")
        self.assertEqual(len(await self.leftovers(backend, context)), 1)
        session.close_stdin()
        self.assertEqual(await io.wait_exit(), ExitStatus(code=0))
        await session.close()
        self.assertEqual(await self.leftovers(backend, context), [])

    async def test_each_session_its_own_pod(self) -> None:
        """Two sessions of one connection run in two pods; closing the connection deletes both."""
        backend = self.make_backend()
        context = self.make_context()
        connection = await backend.connect(context)
        ios = []
        for channel in (0, 1):
            session = connection.open_session(channel)
            io = CollectingIO()
            await session.start(ProgramRequest("exec", "hostname; exec cat"), io)
            ios.append(io)
        for io in ios:
            await io.wait_for(b"\n")
        self.assertNotEqual(bytes(ios[0].stdout_data), bytes(ios[1].stdout_data))
        self.assertEqual(len(await self.leftovers(backend, context)), 2)
        await connection.close()
        self.assertEqual(await self.leftovers(backend, context), [])

    async def test_files_written_before_the_program(self) -> None:
        """Authentication's files are in the session's pod, mode 0600, when the program runs."""
        backend = self.make_backend()
        context = make_context(
            kubernetes_app_config(self.url, mode="session"),
            self.log,
            files={"/tmp/greeting": b"hello\n"},
        )
        connection = await backend.connect(context)
        self.addCleanup(connection.close)
        await connection.write_files(context.metadata.files)
        session = connection.open_session(0)
        io = CollectingIO()
        await session.start(
            ProgramRequest("exec", "cat /tmp/greeting; stat -c %a /tmp/greeting"), io
        )
        self.assertEqual(await io.wait_exit(), ExitStatus(code=0))
        self.assertEqual(bytes(io.stdout_data), b"hello\n600\n")

    async def test_first_output_not_lost(self) -> None:
        """Output written the moment the program starts reaches the channel."""
        io, status = await self.run_program("printf first; printf ' second'")
        self.assertEqual((bytes(io.stdout_data), status), (b"first second", ExitStatus(code=0)))

    async def test_stderr_kept_apart(self) -> None:
        """Without a terminal stderr is its own stream."""
        io, status = await self.run_program("echo out; echo err >&2; exit 3")
        self.assertEqual(bytes(io.stdout_data), b"out\n")
        self.assertEqual(bytes(io.stderr_data), b"err\n")
        self.assertEqual(status, ExitStatus(code=3))

    async def test_signal_through_the_agent(self) -> None:
        """A signal reaches the program (PID 1, so one with a handler) through the agent."""
        backend = self.make_backend()
        connection = await backend.connect(self.make_context())
        self.addCleanup(connection.close)
        session = connection.open_session(0)
        io = CollectingIO()
        await session.start(
            ProgramRequest(
                "exec", "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 1; done"
            ),
            io,
        )
        await io.wait_for(b"ready\n")
        await session.signal("TERM")
        await io.wait_for(b"got-term\n")
        self.assertEqual(await io.wait_exit(), ExitStatus(code=7))

    async def test_image_pull_failure(self) -> None:
        """An image that cannot be pulled fails the start at once, and leaves no pod."""
        backend = self.make_backend()
        context = session_context(
            self,
            spec={"containers": [{"name": "shell", "image": "127.0.0.1:9/no/such:image"}]},
        )
        connection = await backend.connect(context)
        self.addCleanup(connection.close)
        session = connection.open_session(0)
        assert isinstance(session, KubernetesPodSession)
        with self.assertRaises(ContainerSSHError) as raised:
            await session.start(ProgramRequest("exec", "true"), CollectingIO())
        self.assertEqual(raised.exception.code, messages.KUBERNETES_IMAGE_PULL_FAILED)
        await session.close()
        self.assertEqual(await self.leftovers(backend, context), [])

    async def test_pod_gone_means_137(self) -> None:
        """A session pod deleted under a running program ends the session with 137."""
        backend = self.make_backend()
        context = self.make_context()
        connection = await backend.connect(context)
        self.addCleanup(connection.close)
        session = connection.open_session(0)
        assert isinstance(session, KubernetesPodSession)
        io = CollectingIO()
        await session.start(ProgramRequest("exec", "echo ready; exec sleep 600"), io)
        await io.wait_for(b"ready\n")
        assert session.pod is not None
        cluster = await backend._client.cluster_for(context.config.kubernetes)
        await cluster.pods.delete_pod(session.pod.namespace, session.pod.name, 0)
        self.assertEqual(await io.wait_exit(), ExitStatus(code=137))

    async def test_remove_all_finds_session_pods(self) -> None:
        """The backend's clean-up finds session pods by the instance label."""
        backend = self.make_backend()
        context = self.make_context()
        connection = await backend.connect(context)
        self.addCleanup(connection.close)
        session = connection.open_session(0)
        io = CollectingIO()
        await session.start(ProgramRequest("exec", "echo ready; exec cat"), io)
        await io.wait_for(b"ready\n")
        self.assertEqual(await backend.remove_all(), 1)
        self.assertEqual(await self.leftovers(backend, context), [])

    async def test_close_while_starting(self) -> None:
        """A channel closed while its pod is being made: the start fails, the pod is deleted."""
        backend = self.make_backend()
        context = self.make_context()
        connection = await backend.connect(context)
        self.addCleanup(connection.close)
        session = connection.open_session(0)
        starting = session.start(ProgramRequest("exec", "echo never"), CollectingIO())
        await deferLater(reactor, 0.2)  # the create call is on its way
        await session.close()
        with self.assertRaises(ContainerSSHError):
            await starting
        self.assertEqual(await self.leftovers(backend, context), [])

    async def run_program(self, command: str) -> tuple[CollectingIO, ExitStatus]:
        backend = self.make_backend()
        connection = await backend.connect(self.make_context())
        self.addCleanup(connection.close)
        session = connection.open_session(0)
        io = CollectingIO()
        await session.start(ProgramRequest("exec", command), io)
        status = await io.wait_exit()
        await session.close()
        return io, status

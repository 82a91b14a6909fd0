"""A connection's programs (execs into its pod): what each request logs, right or refused.

:class:`ExecSessionTests` runs programs in real pods of the test API server
(containers of the local Docker engine) through the guest agent passed
inline, or without it (``disableAgent``). :class:`StreamFailureTests` puts
the exec's stream on a loopback server speaking the channel protocol, for
what a real API server does only when something goes wrong: a connection
dropped without an exit status, a guest agent slow to report its PID, a
WebSocket closed while its connection lingers.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.trial.unittest import TestCase

from conch_container import messages
from conch_container.backend.docker.agent import AgentKind, GuestAgent
from conch_container.backend.docker.execops import UNKNOWN_EXIT_CODE
from conch_container.backend.kubernetes.backend import KubernetesConnection
from conch_container.backend.kubernetes.channels import STDOUT
from conch_container.backend.kubernetes.client import KubernetesClient
from conch_container.backend.kubernetes.execsession import KubernetesExecSession
from conch_container.backend.kubernetes.podlifecycle import PodRef
from conch_container.codes import MessageCode
from conch_container.config.kubernetes import KubernetesConfig, KubernetesConnectionConfig
from conch_container.errors import ContainerSSHError
from conch_container.interfaces import ExitStatus, ProgramRequest, PtyRequest
from conch_container.log.logger import CodeLogger
from conch_container.testing.conformance import CollectingIO
from tests.backend.helpers import make_context
from tests.backend.kubernetes.channelserver import ChannelServer
from tests.backend.kubernetes.test_conformance import KubeAPITestCase, kubernetes_app_config


class LoggedEvents:
    """A logger whose events a test reads back by code."""

    def __init__(self) -> None:
        self.observer = EventLoggingObserver()
        self.log = CodeLogger("tests.backend.kubernetes.execsession", observer=self.observer)

    def codes(self, prefix: str = "KUBERNETES_") -> list[str]:
        """The codes logged so far that start with ``prefix``, in order."""
        return [e["code"] for e in self.observer if e.get("code", "").startswith(prefix)]

    def logged(self, code: MessageCode) -> list[dict[str, Any]]:
        return [e for e in self.observer if e.get("code") == code.code]


class ExecSessionTests(KubeAPITestCase):
    """Programs in a real pod of the test API server."""

    async def setUp(self) -> None:
        await super().setUp()
        self.events = LoggedEvents()
        self.log = self.events.log

    async def connect(self, **pod: Any) -> KubernetesConnection:
        backend = self.make_backend()
        connection = await backend.connect(
            make_context(kubernetes_app_config(self.url, **pod), self.log)
        )
        self.addCleanup(connection.close)
        return connection

    async def assert_refused(self, code: MessageCode, request: Deferred[Any] | Any) -> None:
        """``request`` (a Deferred, or a call's result) fails with ``code``, which is logged."""
        with self.assertRaises(ContainerSSHError) as caught:
            await request
        self.assertEqual(caught.exception.code, code)
        self.assertTrue(self.events.logged(code), f"{code.code} was not logged")

    async def test_program_and_signals_through_the_agent(self) -> None:
        """KUBERNETES_EXEC and KUBERNETES_PID_RECEIVED at the start; then each signal's codes.

        A signal the agent cannot deliver is KUBERNETES_EXEC_SIGNAL_FAILED; one
        delivered is KUBERNETES_EXEC_SIGNAL then KUBERNETES_EXEC_SIGNAL_SUCCESSFUL;
        one after the program exited is KUBERNETES_SIGNAL_FAILED_EXITED.
        """
        connection = await self.connect()
        session = connection.open_session(0)
        io = CollectingIO()
        await session.start(ProgramRequest("exec", "echo ready; exec sleep 60"), io)
        await io.wait_for(b"ready\n")
        started = ("KUBERNETES_EXEC", "KUBERNETES_PID_RECEIVED")
        self.assertEqual([c for c in self.events.codes() if c in started], list(started))
        await self.assert_refused(
            messages.KUBERNETES_EXEC_SIGNAL_FAILED, session.signal("NO-SUCH-SIGNAL")
        )
        await session.signal("TERM")
        self.assertEqual(
            self.events.codes()[-2:],
            ["KUBERNETES_EXEC_SIGNAL", "KUBERNETES_EXEC_SIGNAL_SUCCESSFUL"],
        )
        self.assertEqual(await io.wait_exit(), ExitStatus(signal="TERM"))
        await self.assert_refused(messages.KUBERNETES_SIGNAL_FAILED_EXITED, session.signal("TERM"))
        self.assertEqual(self.events.codes()[-1], "KUBERNETES_SIGNAL_FAILED_EXITED")

    async def test_requests_in_the_wrong_state(self) -> None:
        """Each request refused for the state the program is in logs its code.

        Before a start: a signal is KUBERNETES_PROGRAM_NOT_RUNNING; an unknown
        subsystem is KUBERNETES_SUBSYSTEM_NOT_SUPPORTED. While running: an
        environment variable is KUBERNETES_PROGRAM_ALREADY_RUNNING, a window
        change is KUBERNETES_EXEC_RESIZE. Once the connection is closing, a
        new session is KUBERNETES_POD_SHUTTING_DOWN.
        """
        connection = await self.connect()
        session = connection.open_session(0)
        await self.assert_refused(messages.KUBERNETES_PROGRAM_NOT_RUNNING, session.signal("TERM"))
        with self.assertRaises(ContainerSSHError) as caught:
            await session.start(ProgramRequest("subsystem", "no-such-subsystem"), CollectingIO())
        self.assertEqual(caught.exception.code, messages.KUBERNETES_SUBSYSTEM_NOT_SUPPORTED)
        self.assertEqual(self.events.codes()[-1], "KUBERNETES_SUBSYSTEM_NOT_SUPPORTED")

        session = connection.open_session(1)
        session.set_pty(PtyRequest("xterm", 80, 24))
        io = CollectingIO()
        await session.start(ProgramRequest("exec", "echo ready; read line"), io)
        await io.wait_for(b"ready")
        with self.assertRaises(ContainerSSHError) as refused:
            session.set_env("LANG", "C")
        self.assertEqual(refused.exception.code, messages.KUBERNETES_PROGRAM_ALREADY_RUNNING)
        self.assertEqual(self.events.codes()[-1], "KUBERNETES_PROGRAM_ALREADY_RUNNING")
        await session.resize(100, 40)
        [_, resized] = self.events.logged(messages.KUBERNETES_EXEC_RESIZE)
        self.assertEqual((resized["width"], resized["height"]), (100, 40))
        session.write(b"done\r")
        self.assertEqual(await io.wait_exit(), ExitStatus(code=0))

        await connection.close()
        with self.assertRaises(ContainerSSHError) as closing:
            connection.open_session(2)
        self.assertEqual(closing.exception.code, messages.KUBERNETES_POD_SHUTTING_DOWN)
        self.assertEqual(self.events.codes()[-1], "KUBERNETES_POD_SHUTTING_DOWN")

    async def test_agent_disabled(self) -> None:
        """``disableAgent``: KUBERNETES_GUEST_AGENT_DISABLED (a warning) at connect.

        Programs still run, directly; a signal is refused with
        KUBERNETES_EXEC_SIGNAL_FAILED_NO_AGENT.
        """
        connection = await self.connect(disableAgent=True)
        [warning] = self.events.logged(messages.KUBERNETES_GUEST_AGENT_DISABLED)
        self.assertEqual(warning["cs_level"].label, "warning")
        session = connection.open_session(0)
        io = CollectingIO()
        await session.start(ProgramRequest("exec", "echo ready; exec sleep 60"), io)
        await io.wait_for(b"ready\n")
        self.assertNotIn("KUBERNETES_PID_RECEIVED", self.events.codes())
        await self.assert_refused(
            messages.KUBERNETES_EXEC_SIGNAL_FAILED_NO_AGENT, session.signal("TERM")
        )
        await session.close()


class StreamFailureTests(TestCase):
    """An exec whose stream is served by a loopback channel-protocol server."""

    async def setUp(self) -> None:
        self.server = ChannelServer()
        url = self.server.listen()
        self.addCleanup(self.server.stop)
        self.client = KubernetesClient(reactor, max_threads=2, environ={})
        self.client.start()
        self.addCleanup(lambda: Deferred.fromCoroutine(self.client.stop()))
        self.config = KubernetesConfig(connection=KubernetesConnectionConfig(host=url))
        self.cluster = await self.client.cluster_for(self.config)
        self.events = LoggedEvents()
        self.clock = Clock()

    def session(self, *, agent: bool) -> KubernetesExecSession:
        """A session in pod ``ns/pod-1``; its own deadlines run on :attr:`clock`."""
        session = KubernetesExecSession(
            reactor=self.clock,
            cluster=self.cluster,
            pod=PodRef("ns", "pod-1"),
            container="shell",
            config=self.config,
            agent=GuestAgent(AgentKind.INLINE, "") if agent else None,
            log=self.events.log,
            channel_id=0,
        )
        self.addCleanup(session.close)
        return session

    async def test_dropped_without_exit_status(self) -> None:
        """A stream dropped without a status: KUBERNETES_EXIT_CODE_FAILED, the unknown exit code."""
        session = self.session(agent=False)
        io = CollectingIO()
        await session.start(ProgramRequest("exec", "true"), io)
        await self.server.opened()
        self.server.send(STDOUT, b"partial")
        await io.wait_for(b"partial")
        self.server.drop()
        self.assertEqual(await io.wait_exit(), ExitStatus(code=UNKNOWN_EXIT_CODE))
        self.assertEqual(
            self.events.codes(),
            ["KUBERNETES_EXEC", "KUBERNETES_EXEC_FAILED", "KUBERNETES_EXIT_CODE_FAILED"],
        )

    async def test_signal_before_the_pid(self) -> None:
        """No PID from the agent within ``timeouts.signal``: KUBERNETES_SIGNAL_FAILED_NO_PID."""
        session = self.session(agent=True)
        await session.start(ProgramRequest("exec", "sleep 60"), CollectingIO())
        await self.server.opened()
        signalled = session.signal("TERM")
        self.assertNoResult(signalled)
        self.clock.advance(self.config.timeouts.signal)
        with self.assertRaises(ContainerSSHError) as caught:
            await signalled
        self.assertEqual(caught.exception.code, messages.KUBERNETES_SIGNAL_FAILED_NO_PID)
        self.assertEqual(self.events.codes()[-1], "KUBERNETES_SIGNAL_FAILED_NO_PID")
        self.assertNotIn("KUBERNETES_EXEC_SIGNAL", self.events.codes())

    async def test_resize_while_the_stream_closes(self) -> None:
        """A window change once the server closed the WebSocket: KUBERNETES_EXEC_RESIZE_FAILED.

        The server's close came, its connection not yet gone: the program has
        not ended for the session, but the stream takes no more messages.
        """
        session = self.session(agent=False)
        io = CollectingIO()
        await session.start(ProgramRequest("exec", "true"), io)
        await self.server.opened()
        self.server.linger = True
        answered = self.server.close_answered()
        self.server.finish()
        await answered
        with self.assertRaises(ContainerSSHError) as caught:
            await session.resize(100, 40)
        self.assertEqual(caught.exception.code, messages.KUBERNETES_EXEC_RESIZE_FAILED)
        [failed] = self.events.logged(messages.KUBERNETES_EXEC_RESIZE_FAILED)
        self.assertEqual(failed["cs_level"].label, "warning")
        self.assertEqual(
            self.events.codes()[-2:], ["KUBERNETES_EXEC_RESIZE", "KUBERNETES_EXEC_RESIZE_FAILED"]
        )
        # The client drops the lingering connection itself, after its own timeout.
        await io.wait_exit()

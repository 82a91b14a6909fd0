"""Docker backend message codes that no other test produces, each in the situation it names.

Against the real engine. Where the engine cannot be made to fail on demand
(a resize, an attach, a removal, its stream's socket), the one engine call or
transport call is made to fail and everything else is real.
``tests/test_docker_codes_coverage.py`` maps every ``DOCKER_*`` code to the
test that produces it.
"""

from __future__ import annotations

import socket
from typing import Any, cast

from twisted.internet.defer import Deferred, fail
from twisted.internet.protocol import Factory
from twisted.internet.threads import deferToThread

from conch_container import messages
from conch_container.backend.docker import DockerBackend
from conch_container.backend.docker.containerconfig import LABEL_INSTANCE
from conch_container.backend.docker.engine.api import Engine
from conch_container.backend.docker.engine.client import EngineSettings
from conch_container.backend.docker.engine.errors import EngineError
from conch_container.backend.docker.engine.upgrade import UpgradedStream, UpgradeProtocol
from conch_container.errors import ContainerSSHError
from conch_container.interfaces import ProgramRequest, PtyRequest
from conch_container.testing.sessionio import RecordingSessionIO
from tests.backend.helpers import (
    GUEST_IMAGE,
    IDLE_COMMAND,
    DockerBackendTestCase,
    force_remove,
    labelled_containers,
    make_config,
    reactor,
)

UNREACHABLE = {"host": "unix:///nonexistent/docker.sock"}


class FaultyEngine:
    """The real engine, except for the methods named in ``faults``.

    A fault is an :class:`EngineError` the method fails with, or a function
    called in its place.
    """

    def __init__(self, engine: Engine, faults: dict[str, Any]) -> None:
        self._engine = engine
        self._faults = faults

    def __getattr__(self, name: str) -> Any:
        fault = self._faults.get(name)
        if isinstance(fault, EngineError):
            return lambda *args, **kwargs: fail(fault)
        if fault is not None:
            return fault
        return getattr(self._engine, name)

    def exec_attach(self, exec_id: str, tty: bool) -> Deferred[Any]:
        """The stream (or the fault), with its transport replaced by ``stream_transport``."""
        attach = self.__getattr__("exec_attach")
        d: Deferred[Any] = attach(exec_id, tty)
        wrap = self._faults.get("stream_transport")
        if wrap is not None:
            d.addCallback(wrap)
        return d


class FaultyTransport:
    """A stream's real transport, except that the methods in ``failing`` raise ``error``."""

    def __init__(self, transport: Any, failing: set[str], error: Exception) -> None:
        self._transport = transport
        self._failing = failing
        self._error = error

    def __getattr__(self, name: str) -> Any:
        if name in self._failing:

            def failed(*args: Any, **kwargs: Any) -> Any:
                raise self._error

            return failed
        return getattr(self._transport, name)


class FaultInjectingBackend(DockerBackend):
    """A Docker backend whose engines fail the calls listed in :attr:`faults`."""

    faults: dict[str, Any]

    def engine_for(self, settings: EngineSettings) -> Deferred[Any]:
        d: Deferred[Any] = super().engine_for(settings)
        return d.addCallback(lambda engine: FaultyEngine(engine, self.faults))


class DockerCodesTests(DockerBackendTestCase):
    log_namespace = "tests.backend.docker.codes"
    backend_type = FaultInjectingBackend

    def new_backend(self, clock: Any = None, **faults: Any) -> FaultInjectingBackend:
        backend = cast(FaultInjectingBackend, super().new_backend(clock))
        backend.faults = faults
        return backend

    # -- the connection's container

    async def test_lifecycle(self) -> None:
        """A connection logs its container's create, start and removal, in that order."""
        connection = await self.connect()
        await connection.close()
        expected = [
            "DOCKER_IMAGE_PULL_NEEDED_CHECKING",
            "DOCKER_CONTAINER_CREATE",
            "DOCKER_CONTAINER_START",
            "DOCKER_CONTAINER_REMOVE",
            "DOCKER_CONTAINER_REMOVE_SUCCESSFUL",
        ]
        codes = self.codes()
        self.assertEqual([c for c in codes if c in expected], expected)

    async def test_guest_agent_disabled(self) -> None:
        """``disableAgent: true`` is warned about with DOCKER_GUEST_AGENT_DISABLED."""
        await self.connect(disableAgent=True)
        [event] = [e for e in self.events if e.get("code") == "DOCKER_GUEST_AGENT_DISABLED"]
        self.assertEqual(event["cs_level"].label, "warning")

    async def test_closed_connection_refuses_sessions(self) -> None:
        """A session asked of a closed connection: DOCKER_CONTAINER_SHUTTING_DOWN."""
        connection = await self.connect()
        await connection.close()
        with self.assertRaises(ContainerSSHError) as caught:
            connection.open_session(7)
        self.assertEqual(caught.exception.code, messages.DOCKER_CONTAINER_SHUTTING_DOWN)
        self.assertIn("DOCKER_CONTAINER_SHUTTING_DOWN", self.codes())

    async def test_engine_unreachable(self) -> None:
        """No engine at the configured address: DOCKER_CONNECTION_FAILED when the time is up."""
        error = await self.connect_fails(connection=UNREACHABLE, timeouts={"containerStart": "1s"})
        self.assertEqual(error.code, messages.DOCKER_CONNECTION_FAILED)
        self.assertIn("DOCKER_CONNECTION_FAILED", self.codes())
        self.assertNotIn("DOCKER_CONTAINER_CREATE", self.codes())

    async def test_image_listing_failed(self) -> None:
        """The engine refuses to look the image up (400): DOCKER_IMAGE_LISTING_FAILED."""
        error = await self.connect_fails(
            container={"image": "Not A Valid/Reference"},
            imagePullPolicy="IfNotPresent",
            timeouts={"containerStart": "1s"},
        )
        self.assertEqual(error.code, messages.DOCKER_IMAGE_LISTING_FAILED)
        self.assertIn("DOCKER_IMAGE_LISTING_FAILED", self.codes())

    async def test_remove_failed(self) -> None:
        """A removal the engine keeps refusing is given up: DOCKER_CONTAINER_REMOVE_FAILED."""
        backend = self.new_backend(remove_container=EngineError("device or resource busy", 500))
        backend.start()
        connection = await self.connect(backend=backend, timeouts={"containerStop": "1s"})
        container_id = connection.container_id
        self.addCleanup(force_remove, self.client, [container_id])
        await connection.close()
        failed = [e for e in self.events if e.get("code") == "DOCKER_CONTAINER_REMOVE_FAILED"]
        self.assertTrue(failed)
        self.assertEqual(failed[-1]["containerId"], container_id)
        self.assertEqual(failed[-1]["cs_level"].label, "warning")
        self.assertNotIn("DOCKER_CONTAINER_REMOVE_SUCCESSFUL", self.codes())

    # -- programs

    async def test_exec_create_failed(self) -> None:
        """The container vanished behind the gateway's back: DOCKER_EXEC_CREATE_FAILED."""
        connection = await self.connect()
        await force_remove(self.client, [connection.container_id])
        session = connection.open_session(0)
        with self.assertRaises(ContainerSSHError) as caught:
            await session.start(ProgramRequest("exec", "true"), RecordingSessionIO())
        self.assertEqual(caught.exception.code, messages.DOCKER_EXEC_CREATE_FAILED)
        self.assertIn("DOCKER_EXEC_CREATE_FAILED", self.codes())

    async def test_exec_attach_failed(self) -> None:
        """Starting the created exec fails: DOCKER_EXEC_ATTACH_FAILED."""
        backend = self.new_backend(exec_attach=EngineError("hijack failed", 500))
        backend.start()
        connection = await self.connect(backend=backend)
        session = connection.open_session(0)
        with self.assertRaises(ContainerSSHError) as caught:
            await session.start(ProgramRequest("exec", "true"), RecordingSessionIO())
        self.assertEqual(caught.exception.code, messages.DOCKER_EXEC_ATTACH_FAILED)
        self.assertIn("DOCKER_EXEC_CREATE", self.codes())
        self.assertIn("DOCKER_EXEC_ATTACH_FAILED", self.codes())

    async def test_resize_failed(self) -> None:
        """The engine refuses a terminal resize: DOCKER_EXEC_RESIZE_FAILED; the program runs on."""
        backend = self.new_backend(exec_resize=EngineError("cannot resize", 500))
        backend.start()
        connection = await self.connect(backend=backend)
        session = connection.open_session(0)
        self.addCleanup(session.close)
        session.set_pty(PtyRequest("xterm", columns=80, rows=25))
        io = RecordingSessionIO()
        await session.start(ProgramRequest("shell"), io)
        with self.assertRaises(ContainerSSHError) as caught:
            await session.resize(100, 30, 0, 0)
        self.assertEqual(caught.exception.code, messages.DOCKER_EXEC_RESIZE_FAILED)
        self.assertIn("DOCKER_EXEC_RESIZE_FAILED", self.codes())
        session.write(b"echo still here\n")
        await io.when_stdout_contains(b"still here")

    async def test_stream_cut_mid_frame(self) -> None:
        """The engine's stream ends inside a frame: DOCKER_STREAM_OUTPUT_FAILED.

        The exec is created by the engine; its stream is one whose far end
        sends half a frame and hangs up, as a dying engine would.
        """

        def cut_stream(exec_id: str, tty: bool) -> Deferred[UpgradedStream]:
            ours, theirs = socket.socketpair()
            theirs.sendall(
                b"HTTP/1.1 101 UPGRADED\r\n\r\n"
                b"\x01\x00\x00\x00\x00\x00\x00\x10half"  # 16 announced, 4 sent
            )
            theirs.close()
            answered: Deferred[UpgradedStream] = Deferred()
            factory = Factory.forProtocol(lambda: UpgradeProtocol(b"", answered))
            reactor().adoptStreamConnection(ours.fileno(), ours.family, factory)
            ours.close()
            return answered

        backend = self.new_backend(exec_attach=cut_stream)
        backend.start()
        connection = await self.connect(backend=backend)
        session = connection.open_session(0)
        self.addCleanup(session.close)
        io = RecordingSessionIO()
        await session.start(ProgramRequest("exec", "true"), io)
        await io.when_exited()
        self.assertEqual(io.stdout_data, b"half")
        [event] = [e for e in self.events if e.get("code") == "DOCKER_STREAM_OUTPUT_FAILED"]
        self.assertIn("middle of a frame", event["reason"])

    async def start_cat(self, failing: str) -> tuple[Any, RecordingSessionIO]:
        """``cat`` running in a session whose stream transport fails ``failing`` calls."""
        error = ConnectionResetError("the engine's connection was reset")

        def faulty(stream: UpgradedStream) -> UpgradedStream:
            stream.transport = FaultyTransport(stream.transport, {failing}, error)
            return stream

        backend = self.new_backend(stream_transport=faulty)
        backend.start()
        connection = await self.connect(backend=backend)
        session = connection.open_session(0)
        self.addCleanup(session.close)
        io = RecordingSessionIO()
        await session.start(ProgramRequest("exec", "cat"), io)
        return session, io

    async def test_stream_input_failed(self) -> None:
        """Client input cannot be written to the engine's stream: DOCKER_STREAM_INPUT_FAILED."""
        session, _io = await self.start_cat("write")
        session.write(b"typed by the user\n")
        [event] = [e for e in self.events if e.get("code") == "DOCKER_STREAM_INPUT_FAILED"]
        self.assertIn("reset", event["reason"])

    async def test_close_input_failed(self) -> None:
        """The input cannot be closed on the engine's stream: DOCKER_CLOSE_INPUT_FAILED."""
        session, _io = await self.start_cat("loseWriteConnection")
        with self.assertRaises(ContainerSSHError) as caught:
            session.close_stdin()
        self.assertEqual(caught.exception.code, messages.DOCKER_CLOSE_INPUT_FAILED)
        self.assertIn("DOCKER_CLOSE_INPUT_FAILED", self.codes())

    # -- start-up reconciliation

    async def leave_containers(self) -> list[str]:
        """Two containers of this instance as a killed run leaves them: one running, one not."""

        def thd_create() -> list[str]:
            ids = []
            for start in (True, False):
                container = self.client.create_container(
                    GUEST_IMAGE, IDLE_COMMAND, labels={LABEL_INSTANCE: self.instance_id}
                )
                if start:
                    self.client.start(container["Id"])
                ids.append(str(container["Id"]))
            return ids

        ids: list[str] = await deferToThread(thd_create)
        self.addCleanup(force_remove, self.client, ids)
        return ids

    async def test_reconcile_at_start(self) -> None:
        """Start-up removes what a previous run left (any state): DOCKER_CONTAINER_RECONCILE."""
        left = await self.leave_containers()
        backend = self.new_backend()
        await backend.start(make_config().docker)
        self.assertEqual(await labelled_containers(self.client, self.instance_id), [])
        [event] = [e for e in self.events if e.get("code") == "DOCKER_CONTAINER_RECONCILE"]
        self.assertEqual(event["count"], 2)
        self.assertEqual(sorted(event["containerIds"].split(", ")), sorted(left))

    async def test_reconcile_skipped(self) -> None:
        """Told a live copy may own them, start-up leaves the containers and says why."""
        await self.leave_containers()
        backend = self.new_backend()
        await backend.start(make_config().docker, reconcile=False)
        self.assertEqual(len(await labelled_containers(self.client, self.instance_id)), 2)
        [event] = [e for e in self.events if e.get("code") == "DOCKER_CONTAINER_RECONCILE"]
        self.assertEqual(event["cs_level"].label, "warning")
        # The containers stay for the test's clean-up, not the instance check.
        await force_remove(self.client, [c["Id"] for c in await self.leftovers()])

    async def test_reconcile_engine_down(self) -> None:
        """With the engine down at start-up: DOCKER_CONNECTION_FAILED, and the start goes on."""
        backend = self.new_backend()
        await backend.start(make_config(connection=UNREACHABLE).docker)
        self.assertIn("DOCKER_CONNECTION_FAILED", self.codes())
        self.assertNotIn("DOCKER_CONTAINER_RECONCILE", self.codes())

    async def test_remove_all_default_engine(self) -> None:
        """The last-resort sweep covers the start-up engine even before any connection."""
        await self.leave_containers()
        backend = self.new_backend()
        await backend.start(make_config().docker, reconcile=False)
        self.assertEqual(await backend.remove_all(), 2)
        self.assertEqual(await labelled_containers(self.client, self.instance_id), [])

    def leftovers(self) -> Deferred[list[dict[str, Any]]]:
        return labelled_containers(self.client, self.instance_id)

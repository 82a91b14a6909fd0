"""DockerContainerSession step by step, against a scripted engine on a fake reactor.

Every engine call returns a Deferred the test fires, so each failure path
(and each interleaving with a close or a deadline) can be reached exactly,
and the test can check that whatever was created is removed.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionAborted
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import ILogObserver
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from conch_container import messages
from conch_container.backend.docker.containerconfig import CreateRequest
from conch_container.backend.docker.engine.errors import EngineError
from conch_container.backend.docker.engine.upgrade import UpgradedStream
from conch_container.backend.docker.sessionmode.session import (
    DockerContainerSession,
    SessionTemplate,
)
from conch_container.codes import Level
from conch_container.errors import ContainerSSHError
from conch_container.interfaces import ExitStatus, IBackendSession, ProgramRequest, PtyRequest
from conch_container.log.logger import CodeLogger
from conch_container.metadata import FileValue
from conch_container.testing.sessionio import RecordingSessionIO
from tests.backend.helpers import make_config

CONFIG = make_config(mode="session", timeouts={"containerStart": "30s", "containerStop": "20s"})


class EngineTransport(StringTransport):
    """The adopted engine connection: half-close and abort as the reactor's do."""

    protocol: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.write_closed = False
        self.aborted = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True

    def abortConnection(self) -> None:
        self.aborted = True
        if self.protocol is not None:
            self.protocol.connectionLost(Failure(ConnectionAborted()))


class FakeStream(UpgradedStream):
    """An upgraded engine stream on an :class:`EngineTransport`; records who takes it.

    :param taken: gets ``(None, protocol, transport)`` when a protocol takes the stream.
    """

    def __init__(self, taken: list[tuple[None, Any, EngineTransport]]) -> None:
        self.engine_transport = EngineTransport()
        super().__init__(self.engine_transport, b"")
        self._taken = taken

    def attach(self, protocol: Any) -> Any:
        transport = super().attach(protocol)
        self.engine_transport.protocol = protocol
        self._taken.append((None, protocol, self.engine_transport))
        return transport

    @property
    def released(self) -> bool:
        """Whether the stream was dropped without being taken."""
        return self.engine_transport.aborted


class AdoptingReactor(MemoryReactorClock):
    """A clock that also lists the engine streams the session took (:class:`FakeStream`)."""

    def __init__(self) -> None:
        super().__init__()
        self.adopted: list[tuple[None, Any, EngineTransport]] = []


class Scripted:
    """Records calls; each returns a Deferred the test fires with :meth:`answer`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], Deferred[Any]]] = []

    def _call(self, name: str, *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.calls.append((name, args, d))
        return d

    def names(self) -> list[str]:
        return [name for name, _, _ in self.calls]

    def args(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args, _ in self.calls if n == name]

    def answer(self, name: str, result: Any = None) -> None:
        """Fire the oldest unanswered call of ``name`` (an exception fails it)."""
        for n, _, d in self.calls:
            if n == name and not d.called:
                if isinstance(result, Exception):
                    d.errback(result)
                else:
                    d.callback(result)
                return
        raise AssertionError(f"no pending {name} call in {self.names()}")


class FakeEngine(Scripted):
    """The engine calls of a session container's life, each recorded under a short name."""

    def create_container(self, request: CreateRequest) -> Deferred[str]:
        return self._call("create", request)

    def start_container(self, container_id: str) -> Deferred[None]:
        return self._call("start", container_id)

    def remove_container(self, container_id: str) -> Deferred[bool]:
        return self._call("remove", container_id)

    def container_attach(self, container_id: str) -> Deferred[UpgradedStream]:
        return self._call("attach", container_id)

    def container_resize(self, container_id: str, rows: int, columns: int) -> Deferred[None]:
        return self._call("resize", container_id, rows, columns)

    def container_kill(self, container_id: str, signal: str) -> Deferred[None]:
        return self._call("kill", container_id, signal)

    def container_stop(self, container_id: str, grace: int) -> Deferred[bool]:
        return self._call("stop", container_id, grace)

    def container_state(self, container_id: str) -> Deferred[dict[str, Any]]:
        return self._call("state", container_id)

    def put_archive(self, container_id: str, path: str, data: bytes) -> Deferred[None]:
        return self._call("put_archive", container_id, path, data)


def frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


class ContainerSessionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = AdoptingReactor()
        self.engine = FakeEngine()
        self.events: list[dict[str, Any]] = []
        self.io = RecordingSessionIO()

    def session(self, files: dict[str, object] | None = None) -> DockerContainerSession:
        request = CreateRequest(
            body={"Image": "guest", "Env": ["AUTH=1"]}, name=None, platform=None, image="guest"
        )
        return DockerContainerSession(
            reactor=self.reactor,
            engine=self.engine,  # type: ignore[arg-type]
            template=SessionTemplate(request, files or {}),
            docker_config=CONFIG.docker,
            log=CodeLogger("tests.sessionmode", observer=cast(ILogObserver, self.events.append)),
            channel_id=3,
            retry_interval=10.0,
        )

    def codes(self) -> list[str]:
        return [e["code"] for e in self.events]

    def stream(self) -> FakeStream:
        """An upgraded stream that records whether it was taken or released."""
        return FakeStream(self.reactor.adopted)

    def begin(
        self, session: DockerContainerSession, command: str = "cat", pty: PtyRequest | None = None
    ) -> Deferred[None]:
        if pty is not None:
            session.set_pty(pty)
        return session.start(ProgramRequest("exec", command), self.io)

    def launch(self, session: DockerContainerSession, **kwargs: Any) -> tuple[Any, EngineTransport]:
        """Start a program whose every start step succeeds; returns its protocol and transport."""
        started = self.begin(session, **kwargs)
        self.engine.answer("create", "cid")
        self.engine.answer("attach", self.stream())
        self.engine.answer("start")
        if kwargs.get("pty") is not None:
            self.engine.answer("resize")
        self.successResultOf(started)
        [(_, protocol, transport)] = self.reactor.adopted
        return protocol, transport

    # -- the whole life of a program

    def test_interface(self) -> None:
        """The session provides IBackendSession."""
        verifyObject(IBackendSession, self.session())

    def test_program_lifecycle(self) -> None:
        """Create, attach, start in that order; output; exit code from the state; removal."""
        session = self.session()
        started = self.begin(session)
        [(_, (request,), _)] = self.engine.calls
        self.assertEqual(request.body["Cmd"], ["/bin/sh", "-c", "cat"])
        self.assertEqual(request.body["Env"], ["AUTH=1"])
        self.engine.answer("create", "cid")
        self.assertEqual(self.engine.args("attach"), [("cid",)])
        stream = self.stream()
        self.engine.answer("attach", stream)
        self.assertEqual(self.engine.args("start"), [("cid",)])
        self.assertNoResult(started)
        self.assertEqual(self.reactor.adopted, [])  # read only once the program runs
        self.engine.answer("start")
        self.successResultOf(started)
        self.assertFalse(stream.released)  # taken by the program's protocol
        [(_, protocol, transport)] = self.reactor.adopted
        self.assertIs(self.io.producer, transport)

        session.write(b"input")
        self.assertEqual(transport.value(), b"input")
        protocol.dataReceived(frame(1, b"out") + frame(2, b"err"))
        self.assertEqual((self.io.stdout_data, self.io.stderr_data), (b"out", b"err"))
        protocol.readConnectionLost()
        self.assertTrue(self.io.closed)
        self.assertIsNone(self.io.status)
        self.engine.answer("state", {"Running": False, "ExitCode": 4})
        self.assertEqual(self.io.status, ExitStatus(code=4))
        # The container is removed right away, not only when the channel closes.
        self.assertEqual(self.engine.args("remove"), [("cid",)])
        closed = session.close()
        self.assertNoResult(closed)
        self.engine.answer("remove", True)
        self.successResultOf(closed)
        self.assertNotIn("stop", self.engine.names())
        codes = self.codes()
        for code in (
            "DOCKER_CONTAINER_CREATE",
            "DOCKER_CONTAINER_ATTACH",
            "DOCKER_CONTAINER_START",
        ):
            self.assertIn(code, codes)
        self.assertLess(
            codes.index("DOCKER_CONTAINER_ATTACH"), codes.index("DOCKER_CONTAINER_START")
        )
        self.assertEqual(
            codes[-2:], ["DOCKER_CONTAINER_REMOVE", "DOCKER_CONTAINER_REMOVE_SUCCESSFUL"]
        )

    def test_files_before_attach(self) -> None:
        """Files are put into the created container before the attach and the start."""
        session = self.session(files={"/etc/motd": FileValue(b"hi")})
        self.begin(session)
        self.engine.answer("create", "cid")
        [(container_id, path, _)] = self.engine.args("put_archive")
        self.assertEqual(
            (container_id, path, self.engine.names()), ("cid", "/", ["create", "put_archive"])
        )
        self.engine.answer("put_archive", EngineError("no space left"))
        # A failed write is a warning: the program starts anyway.
        self.assertEqual(self.engine.names(), ["create", "put_archive", "attach"])
        self.assertIn("DOCKER_FILE_WRITE_FAILED", self.codes())

    def test_tty(self) -> None:
        """With a pty the container is resized after the start; stdin EOF is ignored."""
        session = self.session()
        _, transport = self.launch(session, pty=PtyRequest("xterm", 100, 40))
        request = self.engine.args("create")[0][0]
        self.assertTrue(request.body["Tty"])
        self.assertIn("TERM=xterm", request.body["Env"])
        self.assertEqual(self.engine.args("resize"), [("cid", 40, 100)])
        session.close_stdin()
        self.assertFalse(transport.write_closed)
        session.resize(120, 50)
        self.assertEqual(self.engine.args("resize")[-1], ("cid", 50, 120))

    def test_resize_failure_does_not_fail_start(self) -> None:
        """The first resize failing is logged; the program runs."""
        session = self.session()
        started = self.begin(session, pty=PtyRequest("xterm", 80, 25))
        self.engine.answer("create", "cid")
        self.engine.answer("attach", self.stream())
        self.engine.answer("start")
        self.engine.answer("resize", EngineError("no such container"))
        self.successResultOf(started)
        [event] = [e for e in self.events if e["code"] == "DOCKER_EXEC_RESIZE_FAILED"]
        self.assertEqual(event["cs_level"], Level.WARNING)

    def test_resize_after_instant_exit(self) -> None:
        """A program that ended before the first resize (HTTP 409) is not worth a warning."""
        session = self.session()
        started = self.begin(session, pty=PtyRequest("xterm", 80, 25))
        self.engine.answer("create", "cid")
        self.engine.answer("attach", self.stream())
        self.engine.answer("start")
        self.engine.answer("resize", EngineError("container is not running", 409))
        self.successResultOf(started)
        [event] = [e for e in self.events if e["code"] == "DOCKER_EXEC_RESIZE_FAILED"]
        self.assertEqual(event["cs_level"], Level.DEBUG)

    def test_stdin_eof(self) -> None:
        """Without a pty, EOF half-closes the attach stream."""
        session = self.session()
        _, transport = self.launch(session)
        session.close_stdin()
        self.assertTrue(transport.write_closed)

    # -- signals

    def test_signal_then_exit(self) -> None:
        """A signal goes through the kill API; 128+N after delivering N is reported as N."""
        session = self.session()
        protocol, _ = self.launch(session)
        signalled = session.signal("TERM")
        self.assertEqual(self.engine.args("kill"), [("cid", "TERM")])
        self.engine.answer("kill")
        self.successResultOf(signalled)
        protocol.readConnectionLost()
        self.engine.answer("state", {"Running": False, "ExitCode": 143})
        self.assertEqual(self.io.status, ExitStatus(signal="TERM"))
        self.assertIn("DOCKER_CONTAINER_SIGNAL", self.codes())

    def test_signal_failure(self) -> None:
        """A failed kill is DOCKER_CONTAINER_SIGNAL_FAILED; a later 143 stays a code."""
        session = self.session()
        protocol, _ = self.launch(session)
        signalled = session.signal("TERM")
        self.engine.answer("kill", EngineError("container is not running", 409))
        error = self.failureResultOf(signalled, ContainerSSHError).value
        self.assertEqual(error.code, messages.DOCKER_CONTAINER_SIGNAL_FAILED)
        protocol.readConnectionLost()
        self.engine.answer("state", {"Running": False, "ExitCode": 143})
        self.assertEqual(self.io.status, ExitStatus(code=143))

    # -- failures remove what was created

    def test_create_fails(self) -> None:
        """A failed create fails the start; there is nothing to remove."""
        session = self.session()
        started = self.begin(session)
        self.engine.answer("create", EngineError("no such image", 404))
        error = self.failureResultOf(started, ContainerSSHError).value
        self.assertEqual(error.code, messages.DOCKER_CONTAINER_CREATE_FAILED)
        self.successResultOf(session.close())
        self.assertEqual(self.engine.names(), ["create"])

    def test_attach_fails(self) -> None:
        """Created but not attached: the start fails and the container is removed."""
        session = self.session()
        started = self.begin(session)
        self.engine.answer("create", "cid")
        self.engine.answer("attach", EngineError("attach refused"))
        error = self.failureResultOf(started, ContainerSSHError).value
        self.assertEqual(error.code, messages.DOCKER_CONTAINER_ATTACH_FAILED)
        self.assertEqual(self.engine.args("remove"), [("cid",)])
        self.assertNotIn("start", self.engine.names())
        closed = session.close()
        self.engine.answer("remove", True)
        self.successResultOf(closed)

    def test_start_fails(self) -> None:
        """Created and attached but not started: the stream is released, the container removed."""
        session = self.session()
        started = self.begin(session)
        self.engine.answer("create", "cid")
        stream = self.stream()
        self.engine.answer("attach", stream)
        self.engine.answer("start", EngineError("exec format error"))
        error = self.failureResultOf(started, ContainerSSHError).value
        self.assertEqual(error.code, messages.DOCKER_CONTAINER_START_FAILED)
        self.assertTrue(stream.released)
        self.assertEqual(self.reactor.adopted, [])
        self.assertEqual(self.engine.args("remove"), [("cid",)])

    def test_deadline_during_create(self) -> None:
        """A create that returns after containerStart expired has its container removed."""
        session = self.session()
        started = self.begin(session)
        self.reactor.advance(30)
        error = self.failureResultOf(started, ContainerSSHError).value
        self.assertEqual(error.code, messages.DOCKER_CONTAINER_CREATE_FAILED)
        self.assertIn("containerStart", error.explanation)
        closed = session.close()
        self.assertNoResult(closed)  # waits (within containerStop) for the create
        self.engine.answer("create", "late")
        self.assertEqual(self.engine.args("remove"), [("late",)])
        self.engine.answer("remove", True)
        self.successResultOf(closed)

    def test_create_later_than_close(self) -> None:
        """A create returning after close gave up waiting is still removed when it returns."""
        session = self.session()
        started = self.begin(session)
        closed = session.close()
        self.failureResultOf(started, ContainerSSHError)
        self.reactor.advance(20)
        self.successResultOf(closed)
        self.engine.answer("create", "very-late")
        self.assertEqual(self.engine.args("remove"), [("very-late",)])

    def test_deadline_during_attach(self) -> None:
        """An attach answering after the deadline has its stream released; the container goes."""
        session = self.session()
        started = self.begin(session)
        self.engine.answer("create", "cid")
        self.reactor.advance(30)
        error = self.failureResultOf(started, ContainerSSHError).value
        self.assertEqual(error.code, messages.DOCKER_CONTAINER_ATTACH_FAILED)
        self.assertEqual(self.engine.args("remove"), [("cid",)])
        stream = self.stream()
        self.engine.answer("attach", stream)
        self.assertTrue(stream.released)
        self.assertEqual(self.reactor.adopted, [])

    def test_close_while_starting(self) -> None:
        """Closing the channel during the start fails the start and removes the container."""
        session = self.session()
        started = self.begin(session)
        self.engine.answer("create", "cid")
        self.engine.answer("attach", self.stream())
        closed = session.close()
        error = self.failureResultOf(started, ContainerSSHError).value
        self.assertEqual(error.code, messages.DOCKER_CONTAINER_START_FAILED)
        self.assertEqual(self.engine.args("remove"), [("cid",)])
        self.assertNotIn("stop", self.engine.names())
        self.engine.answer("remove", True)
        self.successResultOf(closed)

    # -- close

    def test_close_running_program(self) -> None:
        """Closing the channel drops the stream, stops the container with a grace, removes it."""
        session = self.session()
        _, transport = self.launch(session)
        closed = session.close()
        self.assertTrue(transport.aborted)
        self.assertIsNone(self.io.producer)
        self.assertEqual(self.engine.args("stop"), [("cid", 2)])
        self.assertNotIn("remove", self.engine.names())
        self.engine.answer("stop", True)
        self.engine.answer("remove", True)
        self.successResultOf(closed)
        self.successResultOf(session.close())
        self.assertIsNone(self.io.status)
        self.assertFalse(self.io.closed)
        for code in ("DOCKER_CONTAINER_SHUTTING_DOWN", "DOCKER_CONTAINER_STOP"):
            self.assertIn(code, self.codes())

    def test_stop_fails(self) -> None:
        """A failed stop is logged; the container is removed by force anyway."""
        session = self.session()
        self.launch(session)
        closed = session.close()
        self.engine.answer("stop", EngineError("timeout"))
        self.assertIn("DOCKER_CONTAINER_STOP_FAILED", self.codes())
        self.engine.answer("remove", True)
        self.successResultOf(closed)

    def test_connection_shutdown(self) -> None:
        """When the whole connection goes, the container is force-removed without a stop."""
        session = self.session()
        self.launch(session)
        closed = session.shutdown(kill=False)
        self.assertNotIn("stop", self.engine.names())
        self.engine.answer("remove", True)
        self.successResultOf(closed)

    def test_close_while_fetching_exit_code(self) -> None:
        """A close after the output ended does not stop; the channel hears nothing more."""
        session = self.session()
        protocol, _ = self.launch(session)
        protocol.readConnectionLost()
        closed = session.close()
        self.assertNotIn("stop", self.engine.names())
        self.engine.answer("remove", True)
        self.successResultOf(closed)
        self.assertIsNone(self.io.status)

    def test_close_unused(self) -> None:
        """A session that never started closes at once, touching nothing."""
        session = self.session()
        self.successResultOf(session.close())
        self.assertEqual(self.engine.calls, [])

    def test_refusals(self) -> None:
        """Requests out of order are refused with their codes."""
        session = self.session()
        for call in (lambda: session.resize(80, 25), lambda: session.signal("TERM")):
            error = self.failureResultOf(call(), ContainerSSHError).value
            self.assertEqual(error.code, messages.DOCKER_PROGRAM_NOT_RUNNING)
        self.launch(session)
        self.assertRaises(ContainerSSHError, session.set_env, "A", "b")
        self.assertRaises(ContainerSSHError, session.set_pty, PtyRequest("xterm", 80, 25))
        error = self.failureResultOf(session.signal("WINCH"), ContainerSSHError).value
        self.assertEqual(error.code, messages.DOCKER_CONTAINER_SIGNAL_FAILED)

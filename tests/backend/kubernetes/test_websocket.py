"""Exec and attach streams against a loopback WebSocket server speaking the channel protocol."""

from __future__ import annotations

import json

from twisted.internet import reactor, task
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from conch_container import messages
from conch_container.backend.kubernetes.channels import (
    CLOSE,
    MAX_STATUS,
    RESIZE,
    STDERR,
    STDIN,
    STDOUT,
    V4,
    V5,
    exec_path,
)
from conch_container.backend.kubernetes.connection import ClusterSettings
from conch_container.backend.kubernetes.credentials import Credentials
from conch_container.backend.kubernetes.errors import KubernetesError
from conch_container.backend.kubernetes.streamopen import open_channel_stream
from conch_container.backend.kubernetes.websocket import MAX_EARLY_STDERR, ChannelStream
from conch_container.backend.kubernetes.wstimers import cancel_close_timer
from conch_container.backend.programsession import InputGate, ProgramTransport
from tests.backend.kubernetes.channelserver import ChannelServer, exit_status


class Recorder:
    """The sinks and events of one stream."""

    def __init__(self) -> None:
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.pids: list[int] = []
        self.pid_failures: list[str] = []
        self.ended: list[str | None] = []
        self.closed = 0
        self._closed: Deferred[None] = Deferred()
        self._stdout_waiters: list[tuple[int, Deferred[None]]] = []

    def on_stdout(self, data: bytes) -> None:
        self.stdout += data
        waiters, self._stdout_waiters = self._stdout_waiters, []
        for count, d in waiters:
            if len(self.stdout) >= count:
                d.callback(None)
            else:
                self._stdout_waiters.append((count, d))

    def on_stderr(self, data: bytes) -> None:
        self.stderr += data

    def stdout_reaches(self, count: int) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        if len(self.stdout) >= count:
            d.callback(None)
        else:
            self._stdout_waiters.append((count, d))
        return d

    def pid_received(self, pid: int) -> None:
        self.pids.append(pid)

    def pid_failed(self, reason: str) -> None:
        self.pid_failures.append(reason)

    def output_ended(self, error: str | None) -> None:
        self.ended.append(error)

    def stream_closed(self) -> None:
        self.closed += 1
        self._closed.callback(None)

    def closed_d(self) -> Deferred[None]:
        return self._closed


@implementer(IPushProducer)
class CountingProducer:
    def __init__(self) -> None:
        self.paused = 0
        self.stopped = False
        self._paused_d: Deferred[None] = Deferred()

    def pauseProducing(self) -> None:
        self.paused += 1
        if not self._paused_d.called:
            self._paused_d.callback(None)

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        self.stopped = True

    def was_paused(self) -> Deferred[None]:
        return self._paused_d


class ChannelStreamTests(TestCase):
    def start_server(self, supported: tuple[str, ...] = (V5, V4)) -> ChannelServer:
        server = ChannelServer(supported)
        self.base_url = server.listen()
        self.addCleanup(server.stop)
        return server

    def start_open(
        self,
        *,
        tty: bool = False,
        expect_pid: bool = False,
        command: list[str] | None = None,
        timeout: float | None = None,
    ) -> tuple[Deferred[ChannelStream], Recorder]:
        recorder = Recorder()
        settings = ClusterSettings(
            base_url=self.base_url, credentials=Credentials(token="s3cret"), timeout=10
        )
        path = exec_path("ns", "pod-1", "shell", command or ["sh", "-c", "echo hi"], tty=tty)
        opening = Deferred.fromCoroutine(
            open_channel_stream(
                reactor,
                settings,
                path,
                stdout=recorder.on_stdout,
                stderr=recorder.on_stderr,
                events=recorder,
                tty=tty,
                expect_pid=expect_pid,
                timeout=timeout,
            )
        )
        return opening, recorder

    async def open(
        self, *, tty: bool = False, expect_pid: bool = False, command: list[str] | None = None
    ) -> tuple[ChannelStream, Recorder]:
        opening, recorder = self.start_open(tty=tty, expect_pid=expect_pid, command=command)
        stream = await opening
        self.addCleanup(stream.abortConnection)
        return stream, recorder

    async def test_v5_negotiated_with_credentials_and_query(self) -> None:
        """The client offers v5 then v4, sends the bearer token, and a v5 server's choice wins."""
        server = self.start_server((V5, V4))
        stream, _ = await self.open(command=["ls", "-l"])
        self.assertEqual(stream.subprotocol, V5)
        self.assertTrue(stream.can_close_stdin)
        request = server.request
        self.assertEqual(request.protocols, [V5, V4])
        self.assertEqual(request.headers["authorization"], "Bearer s3cret")
        self.assertEqual(request.path, "/api/v1/namespaces/ns/pods/pod-1/exec")
        self.assertEqual(request.params["command"], ["ls", "-l"])
        self.assertEqual(request.params["container"], ["shell"])
        self.assertEqual(request.params["stderr"], ["true"])
        self.assertEqual(request.params["tty"], ["false"])

    async def write_close_write(
        self, supported: tuple[str, ...]
    ) -> tuple[ChannelStream, list[bytes]]:
        """Write stdin, close it, write more, resize; what the server got up to the resize."""
        server = self.start_server(supported)
        stream, _ = await self.open()
        stream.write(b"before")
        stream.loseWriteConnection()
        stream.write(b"after")
        stream.resize(80, 24)
        received = await server.messages(3 if supported[0] == V5 else 2)
        return stream, received

    async def test_v4_fallback_cannot_close_stdin(self) -> None:
        """With a v4-only server the stream uses v4; closing stdin sends nothing and stops stdin."""
        stream, received = await self.write_close_write((V4,))
        self.assertEqual(stream.subprotocol, V4)
        self.assertFalse(stream.can_close_stdin)
        self.assertEqual(received[0], bytes((STDIN,)) + b"before")
        self.assertEqual(received[1][0], RESIZE)

    async def assert_open_fails(self, expected: str) -> None:
        with self.assertRaises(KubernetesError) as caught:
            await self.open()
        self.assertEqual(caught.exception.code, messages.KUBERNETES_EXEC_FAILED)
        self.assertIn(expected, caught.exception.explanation)

    async def test_no_channel_protocol(self) -> None:
        """A server that agrees to no channel protocol is refused with KUBERNETES_EXEC_FAILED."""
        self.start_server(("v1.channel.k8s.io",))
        await self.assert_open_fails("no channel protocol")

    async def test_upgrade_refused(self) -> None:
        """An HTTP error instead of the upgrade fails the open at once (not at the deadline).

        autobahn's own report of it stays at debug level: the caller logs the
        error under its code.
        """
        self.start_server().refuse_status = 403
        with capturedLogs() as events:
            await self.assert_open_fails("403")
        autobahn = [e for e in events if e.get("log_namespace") == "autobahn"]
        self.assertNotEqual(autobahn, [])
        self.assertEqual({e["log_level"] for e in autobahn}, {LogLevel.debug})

    def silent_server(self) -> list[Protocol]:
        """A server that accepts connections and never answers; its connections."""
        connections: list[Protocol] = []

        class Silent(Protocol):
            def connectionMade(self) -> None:
                self.lost: Deferred[None] = Deferred()
                connections.append(self)

            def connectionLost(self, reason: object = None) -> None:
                self.lost.callback(None)

        port = reactor.listenTCP(0, Factory.forProtocol(Silent), interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        self.base_url = f"http://127.0.0.1:{port.getHost().port}"
        return connections

    async def test_handshake_deadline(self) -> None:
        """An upgrade never answered fails the open at its deadline; nothing stays open."""
        connections = self.silent_server()
        opening, _ = self.start_open(timeout=0.1)
        with self.assertRaises(KubernetesError) as caught:
            await opening
        self.assertEqual(caught.exception.code, messages.KUBERNETES_EXEC_FAILED)
        self.assertIn("no answer within 0.1 s", caught.exception.explanation)
        self.assertEqual(len(connections), 1)
        await connections[0].lost  # type: ignore[attr-defined]

    async def test_cancelled_open(self) -> None:
        """Cancelling an open that waits for the handshake drops the connection, reports nothing."""
        connections = self.silent_server()
        opening, recorder = self.start_open()
        while not connections:
            await task.deferLater(reactor, 0)
        opening.cancel()
        self.failureResultOf(opening, CancelledError)
        await connections[0].lost  # type: ignore[attr-defined]
        self.assertEqual((recorder.ended, recorder.closed), ([], 0))

    async def test_demultiplexes_and_reads_success(self) -> None:
        """stdout and stderr reach their sinks; Success is exit code 0; a clean end has no error."""
        server = self.start_server()
        stream, recorder = await self.open()
        await server.opened()
        for channel in (STDOUT, STDERR, 3):
            server.send(channel, b"")  # the server opens each channel with an empty message
        server.send(STDOUT, b"out1 ")
        server.send(RESIZE, b"{}")  # no meaning from the server: ignored
        server.send(STDERR, b"err")
        server.send(STDOUT, b"out2")
        server.send_status(exit_status(0))
        server.finish()
        await recorder.closed_d()
        self.assertEqual(bytes(recorder.stdout), b"out1 out2")
        self.assertEqual(bytes(recorder.stderr), b"err")
        self.assertEqual(recorder.ended, [None])
        self.assertEqual(recorder.closed, 1)
        assert stream.exit_status is not None
        self.assertEqual(stream.exit_status.exit_code, 0)

    async def test_non_zero_exit_code(self) -> None:
        """NonZeroExitCode's ExitCode cause is the exit code."""
        server = self.start_server()
        stream, recorder = await self.open()
        await server.opened()
        server.send_status(exit_status(42))
        server.finish()
        await recorder.closed_d()
        assert stream.exit_status is not None
        self.assertEqual(stream.exit_status.exit_code, 42)
        self.assertEqual(recorder.ended, [None])

    async def test_failure_status_without_exit_code(self) -> None:
        """A Failure without an exit code (nothing ran) ends the output with its message."""
        server = self.start_server()
        stream, recorder = await self.open()
        await server.opened()
        server.send_status(
            {"status": "Failure", "message": 'exec: "nope": not found', "reason": "InternalError"}
        )
        server.finish()
        await recorder.closed_d()
        assert stream.exit_status is not None
        self.assertIsNone(stream.exit_status.exit_code)
        self.assertEqual(recorder.ended, ['exec: "nope": not found'])

    async def test_is_a_program_stream(self) -> None:
        """The stream is what a program session needs: its transport, input gate and producer."""
        self.start_server()
        stream, _ = await self.open()
        transport: ProgramTransport = stream
        gate: InputGate = stream
        self.assertIs(transport, gate)
        self.assertTrue(verifyObject(IPushProducer, stream))

    async def test_closed_stream(self) -> None:
        """After the end, stdin is dropped quietly and a resize fails with its code."""
        server = self.start_server()
        stream, recorder = await self.open()
        await server.opened()
        server.finish()
        await recorder.closed_d()
        stream.write(b"late")
        stream.loseWriteConnection()
        with self.assertRaises(KubernetesError) as caught:
            stream.resize(80, 24)
        self.assertEqual(caught.exception.code, messages.KUBERNETES_EXEC_RESIZE_FAILED)
        self.assertEqual(server.received, [])

    async def test_status_bounded(self) -> None:
        """An error channel that never ends is cut off at its bound and the stream dropped."""
        server = self.start_server()
        stream, recorder = await self.open()
        await server.opened()
        server.send(3, b"x" * (MAX_STATUS + 1))
        await recorder.closed_d()
        self.assertEqual(recorder.ended, ["the status is too large"])
        self.assertIsNone(stream.exit_status)

    async def test_abrupt_close(self) -> None:
        """A dropped connection without a status ends the output with an error, no exit status."""
        server = self.start_server()
        stream, recorder = await self.open()
        await server.opened()
        server.send(STDOUT, b"partial")
        await recorder.stdout_reaches(7)
        server.drop()
        await recorder.closed_d()
        self.assertIsNone(stream.exit_status)
        self.assertEqual(len(recorder.ended), 1)
        self.assertIsNotNone(recorder.ended[0])

    async def test_stdin_and_half_close_v5(self) -> None:
        """Stdin goes on channel 0; closing it sends 255,0 under v5; later stdin is dropped."""
        stream, received = await self.write_close_write((V5, V4))
        self.assertTrue(stream.can_close_stdin)
        self.assertEqual(received[0], bytes((STDIN,)) + b"before")
        self.assertEqual(received[1], bytes((CLOSE, STDIN)))
        self.assertEqual(received[2][0], RESIZE)

    async def test_resize(self) -> None:
        """A resize is channel 4 with JSON Width and Height."""
        server = self.start_server()
        stream, _ = await self.open(tty=True)
        self.assertEqual(server.request.params["stderr"], ["false"])
        self.assertEqual(server.request.params["tty"], ["true"])
        stream.resize(132, 43)
        received = await server.messages(1)
        self.assertEqual(received[0][0], RESIZE)
        self.assertEqual(json.loads(received[0][1:]), {"Width": 132, "Height": 43})

    async def test_pid_first(self) -> None:
        """With the agent the first four stdout bytes are its PID; what follows is output."""
        server = self.start_server()
        _, recorder = await self.open(expect_pid=True)
        await server.opened()
        server.send(STDOUT, (1234).to_bytes(4, "little") + b"after")
        await recorder.stdout_reaches(5)
        self.assertEqual(recorder.pids, [1234])
        self.assertEqual(bytes(recorder.stdout), b"after")

    async def test_stderr_before_pid(self) -> None:
        """stderr that overtakes the PID (the two are copied apart) is held, then delivered."""
        server = self.start_server()
        _, recorder = await self.open(expect_pid=True)
        await server.opened()
        server.send(STDERR, b"sh: nothing: not found\n")
        server.send(STDOUT, (1234).to_bytes(4, "little") + b"!")
        await recorder.stdout_reaches(1)
        self.assertEqual(recorder.pids, [1234])
        self.assertEqual(bytes(recorder.stderr), b"sh: nothing: not found\n")
        self.assertEqual(recorder.pid_failures, [])

    async def test_too_much_stderr_before_pid(self) -> None:
        """More stderr before the PID than is held fails the handshake and drops the stream."""
        server = self.start_server()
        _, recorder = await self.open(expect_pid=True)
        await server.opened()
        server.send(STDERR, b"x" * (MAX_EARLY_STDERR + 1))
        await recorder.closed_d()
        self.assertEqual(recorder.pid_failures, ["too much output on stderr before the PID"])
        self.assertEqual((recorder.pids, bytes(recorder.stderr)), ([], b""))

    async def test_stderr_without_pid_is_delivered(self) -> None:
        """When the stream ends before the PID, what came on stderr says why."""
        server = self.start_server()
        _, recorder = await self.open(expect_pid=True)
        protocol = await server.opened()
        server.send(STDERR, b"agent: cannot start\n")
        protocol.sendClose()
        await recorder.closed_d()
        self.assertEqual(bytes(recorder.stderr), b"agent: cannot start\n")
        self.assertEqual(recorder.pid_failures, ["the output ended before the PID"])

    async def test_paused_stream_stops_reading(self) -> None:
        """A paused stream stops reading its socket; sent data waits; resuming delivers it."""
        server = self.start_server()
        stream, recorder = await self.open()
        protocol = await server.opened()
        stream.pauseProducing()
        self.assertNotIn(stream.transport, reactor.getReaders())  # type: ignore[attr-defined]
        chunk = bytes((STDOUT,)) + b"x" * 65536
        total = 0
        while total < 32 * 1024 * 1024:  # more than loopback's socket buffers hold
            protocol.sendMessage(chunk, isBinary=True)
            total += len(chunk) - 1
        for _ in range(200):  # let the reactor move whatever it can
            await task.deferLater(reactor, 0)
        self.assertLess(len(recorder.stdout), total)
        self.assertNotIn(stream.transport, reactor.getReaders())  # type: ignore[attr-defined]
        stream.resumeProducing()
        await recorder.stdout_reaches(total)
        self.assertEqual(len(recorder.stdout), total)

    async def test_stdin_backs_up_into_its_producer(self) -> None:
        """Stdin beyond the socket buffer pauses stdin's producer instead of queueing more."""
        server = self.start_server()
        stream, _ = await self.open()
        await server.opened()
        producer = CountingProducer()
        stream.register_input(producer)
        written = 0
        while not producer.paused:
            stream.write(b"y" * 65536)
            written += 65536
            self.assertLess(written, 512 * 1024 * 1024, "stdin never paused")
        self.assertLessEqual(written, 2 * 65536)
        stream.release_input()
        self.assertTrue(producer.stopped)


class CloseTimerTests(SynchronousTestCase):
    """A WebSocket lost during its close handshake leaves no timer behind."""

    def test_cancelled_when_the_connection_is_gone(self) -> None:
        clock = task.Clock()
        stream = ChannelStream()
        stream.closeHandshakeTimeoutCall = clock.callLater(1, lambda: None)
        cancel_close_timer(stream)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertIsNone(stream.closeHandshakeTimeoutCall)
        cancel_close_timer(stream)  # nothing left to cancel: no error

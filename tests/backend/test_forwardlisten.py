"""A listening port in the container (``ssh -R``) against a scripted helper: setup,
accepted connections as sessions, the shared stream's pausing, and the ends."""

from __future__ import annotations

from typing import Any

import cbor2
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.forwarddial import ForwardHelper, HelperKind
from conch_container.backend.forwardlisten import (
    LISTEN_TIMEOUT,
    ListenedConnection,
    ListenRequest,
)
from conch_container.backend.forwardprotocol import (
    ConnectionType,
    Packet,
    PacketType,
    decode_map,
    new_connection_payload,
)
from conch_container.errors import ContainerSSHError
from conch_container.interfaces import ExitStatus, ProgramRequest
from conch_container.log.logger import CodeLogger
from conch_container.testing.sessionio import RecordingSessionIO
from tests.backend.test_forwarddial import Producer, ScriptedSession


class ListenTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.events = EventLoggingObserver()
        self.log = CodeLogger("tests", observer=self.events)
        self.helper = ForwardHelper(self.clock, "/usr/bin/containerssh-agent", self.log)
        self.sessions: list[ScriptedSession] = []
        self.accepted: list[ListenedConnection] = []

    def open_session(self) -> ScriptedSession:
        session = ScriptedSession()
        self.sessions.append(session)
        return session

    def listen(self, port: int = 0) -> Any:
        request = ListenRequest(ConnectionType.PORT_FORWARD, "localhost", port)
        listener = self.helper.listen(self.open_session, request, self.accepted.append)
        return listener, listener.start()

    def listening(self) -> tuple[Any, ScriptedSession]:
        listener, started = self.listen()
        inner = self.sessions[0]
        inner.reply(PacketType.SUCCESS, 0, cbor2.dumps({"BindPort": 40123}))
        self.assertEqual(self.successResultOf(started), 40123)
        inner.written.clear()
        return listener, inner

    def arrive(self, inner: ScriptedSession, connection_id: int) -> ListenedConnection:
        inner.reply(
            PacketType.NEW_CONNECTION,
            connection_id,
            new_connection_payload("tcp", "127.0.0.1", 40123, "127.0.0.1", 50000 + connection_id),
        )
        return self.accepted[-1]

    def test_setup(self) -> None:
        _listener, started = self.listen(8080)
        inner = self.sessions[0]
        [setup] = inner.packets()
        fields = decode_map(setup.payload)
        self.assertEqual(
            (setup.type, fields["ConnectionType"], fields["BindHost"], fields["BindPort"]),
            (PacketType.SETUP, 1, "localhost", 8080),
        )
        # ContainerSSH's agent answers without the port: the one asked for.
        inner.reply(PacketType.SUCCESS, 0)
        self.assertEqual(self.successResultOf(started), 8080)

    def test_listen_refused(self) -> None:
        _listener, started = self.listen(80)
        self.sessions[0].reply(PacketType.ERROR, 0, b"listen :80: Address in use")
        error = self.failureResultOf(started, ContainerSSHError).value
        self.assertIn("Address in use", error.explanation)
        self.assertTrue(self.sessions[0].closed)

    def test_no_helper(self) -> None:
        _listener, started = self.listen()
        self.sessions[0].io.stderr(b"sh: forward-server: not found\n")
        self.sessions[0].io.exited(ExitStatus(code=127))
        error = self.failureResultOf(started, ContainerSSHError).value
        self.assertIn("not found", error.explanation)

    def test_known_plain_container_refused_at_once(self) -> None:
        self.helper.found(HelperKind.PLAIN, "no helper")
        with self.assertRaises(ContainerSSHError):
            self.listen()

    def test_deadline(self) -> None:
        _listener, started = self.listen()
        self.clock.advance(LISTEN_TIMEOUT)
        self.failureResultOf(started, ContainerSSHError)
        self.assertTrue(self.sessions[0].closed)

    def test_connection_as_a_session(self) -> None:
        """Accepted: the channel starts it (SUCCESS), bytes both ways, half-closes, close."""
        _listener, inner = self.listening()
        connection = self.arrive(inner, 1)
        self.assertEqual(connection.accepted.originator_port, 50001)
        self.assertEqual(connection.listener_port, 40123)
        self.assertEqual(inner.packets(), [])  # nothing until the client took it
        io = RecordingSessionIO()
        self.successResultOf(connection.start(ProgramRequest("exec"), io))
        connection.write(b"hello")
        connection.close_stdin()
        inner.reply(PacketType.DATA, 1, b"world")
        inner.reply(PacketType.CLOSE_WRITE, 1)
        self.assertEqual(io.stdout_data, b"world")
        self.assertTrue(io.closed)
        inner.reply(PacketType.CLOSE_CONNECTION, 1)
        self.assertEqual(io.status, ExitStatus(code=0))
        self.assertEqual(
            inner.packets(),
            [
                Packet(PacketType.SUCCESS, 1),
                Packet(PacketType.DATA, 1, b"hello"),
                Packet(PacketType.CLOSE_WRITE, 1),
                Packet(PacketType.SUCCESS, 1),
            ],
        )
        self.successResultOf(connection.close())  # the channel's close: nothing more to send
        self.assertEqual(len(inner.packets()), 4)

    def test_client_refuses_the_channel(self) -> None:
        _listener, inner = self.listening()
        self.arrive(inner, 1).refuse()
        self.assertEqual(inner.packets(), [Packet(PacketType.ERROR, 1)])

    def test_channel_closed_first(self) -> None:
        _listener, inner = self.listening()
        connection = self.arrive(inner, 1)
        connection.start(ProgramRequest("exec"), RecordingSessionIO())
        self.successResultOf(connection.close())
        self.assertEqual(inner.packets()[-1], Packet(PacketType.CLOSE_CONNECTION, 1))

    def test_shared_stream_pauses_for_any_connection(self) -> None:
        """One connection's full window pauses the stream; it resumes when none is full."""
        listener, inner = self.listening()
        ios = []
        for connection_id in (1, 2):
            io = RecordingSessionIO()
            self.arrive(inner, connection_id).start(ProgramRequest("exec"), io)
            ios.append(io)
        stream = Producer()
        listener.register_producer(stream)
        ios[0].producer.pauseProducing()
        ios[1].producer.pauseProducing()
        self.assertTrue(stream.paused)
        ios[0].producer.resumeProducing()
        self.assertTrue(stream.paused)
        ios[1].producer.resumeProducing()
        self.assertFalse(stream.paused)

    def test_helper_input_pauses_every_client(self) -> None:
        _listener, inner = self.listening()
        clients = []
        for connection_id in (1, 2):
            connection = self.arrive(inner, connection_id)
            connection.start(ProgramRequest("exec"), RecordingSessionIO())
            client = Producer()
            connection.register_input_producer(client)
            clients.append(client)
        inner.input_producer.pauseProducing()
        self.assertEqual([c.paused for c in clients], [True, True])
        inner.input_producer.resumeProducing()
        self.assertEqual([c.paused for c in clients], [False, False])

    def test_stop_then_last_connection_ends(self) -> None:
        """cancel-tcpip-forward: no more connections; the helper goes with the last one."""
        listener, inner = self.listening()
        connection = self.arrive(inner, 1)
        connection.start(ProgramRequest("exec"), RecordingSessionIO())
        listener.stop()
        self.assertEqual(inner.packets(), [Packet(PacketType.SUCCESS, 1), Packet(6, 0)])
        self.assertFalse(inner.closed)
        connection.close()
        self.assertTrue(inner.closed)

    def test_helper_ends_every_connection(self) -> None:
        _listener, inner = self.listening()
        io = RecordingSessionIO()
        self.arrive(inner, 1).start(ProgramRequest("exec"), io)
        inner.io.exited(ExitStatus(code=0))
        self.assertTrue(io.closed)
        self.assertEqual(io.status, ExitStatus(code=0))
        self.assertIn("SSH_FORWARD_FAILED", [e.get("code") for e in self.events])

    def test_bad_announcement_refused(self) -> None:
        _listener, inner = self.listening()
        inner.reply(PacketType.NEW_CONNECTION, 1, b"\x01")
        self.assertEqual(self.accepted, [])
        self.assertEqual(inner.packets(), [Packet(PacketType.ERROR, 1)])

"""Flow control in both directions, against the whole SSH server and the fake backend.

Stdin: the client gets window only while the backend takes stdin, so a
program that does not read holds the client back. Output: besides the
client's window, the connection's own socket must drain; while it does not,
every session of that connection (and only of that one) is held back.
"""

from __future__ import annotations

import struct
from typing import Any

from twisted.conch.ssh import common
from twisted.conch.ssh.connection import MSG_CHANNEL_DATA
from twisted.trial.unittest import SynchronousTestCase

from conch_container.ssh.backpressure import TransportGate
from conch_container.testing.backend import FakeSession
from tests.ssh.harness import ClientChannel, exec_request, request_result
from tests.ssh.test_session import SessionTestCase


class StdinWindowTests(SessionTestCase):
    """The client's window for stdin follows what the backend takes."""

    def server_channel(self) -> Any:
        return self.client.server.service.channels[0]

    def window(self) -> int:
        """The window the server grants a session channel."""
        size: int = self.server_channel()._window_size
        return size

    def test_no_window_while_the_backend_is_paused(self) -> None:
        """A paused backend gets no more than the window; resuming it lets the rest through."""
        channel = self.exec("cat")
        window = self.window()
        self.backend_session().input_producer.pauseProducing()
        channel.write(b"x" * (window + 50_000))
        self.harness.flush()
        self.assertEqual(channel.remoteWindowLeft, 0)
        self.assertEqual(len(channel.buf), 50_000)
        self.assertEqual(len(channel.stdout), window)

        self.backend_session().input_producer.resumeProducing()
        self.harness.flush()
        self.assertEqual(channel.buf, b"")
        self.assertEqual(channel.stdout, b"x" * (window + 50_000))

    def test_backend_without_input_flow_control_still_gets_stdin(self) -> None:
        """The producer method is optional: a backend without it gets stdin unchecked."""

        def missing(session: Any) -> Any:
            raise AttributeError("register_input_producer")

        self.patch(FakeSession, "register_input_producer", property(missing))
        channel = self.exec("cat")
        size = 3 * self.window()
        channel.write(b"w" * size)
        self.harness.flush()
        self.assertEqual(channel.stdout, b"w" * size)
        self.assertIsNone(self.backend_session().input_producer)

    def test_window_flows_while_the_backend_takes_stdin(self) -> None:
        """Without a pause the window is topped up as Conch does: many windows pass."""
        channel = self.exec("cat")
        size = 5 * self.window()
        channel.write(b"y" * size)
        self.harness.flush()
        self.assertEqual(len(channel.stdout), size)

    def test_stdin_before_the_start_is_bounded_by_the_window(self) -> None:
        """While the program starts the client may send one window, no more."""
        self.harness.backend.start_delay = 2.0
        channel = self.open()
        d = self.request(channel, b"exec", exec_request("cat"))
        self.harness.flush()
        window = self.window()
        channel.write(b"z" * (3 * window))
        self.harness.flush()
        self.assertEqual(request_result(d), "pending")
        self.assertEqual(channel.remoteWindowLeft, 0)
        self.assertEqual(len(channel.buf), 2 * window)

        self.harness.advance(2)
        self.assertEqual(request_result(d), "ok")
        self.assertEqual(channel.stdout, b"z" * (3 * window))

    def test_client_overrunning_its_window_loses_the_channel(self) -> None:
        """Data beyond the window never reaches the backend; the channel is closed."""
        channel = self.exec("cat")
        window = self.window()
        backend = self.backend_session()
        backend.input_producer.pauseProducing()
        received: list[int] = []
        write = backend.write

        def counting_write(data: bytes) -> None:
            received.append(len(data))
            write(data)

        backend.write = counting_write
        self.send_ignoring_window(channel, window + 3 * 32768)
        self.harness.flush()
        self.assertLessEqual(sum(received), window)
        self.assertTrue(channel.closed_d.called)
        self.assertTrue(backend.closed)

    def send_ignoring_window(self, channel: ClientChannel, size: int) -> None:
        """Send ``size`` bytes of stdin in 32 KiB packets, whatever the window says."""
        connection = self.client.connection
        remote = connection.channelsToRemoteChannel[channel]
        for _ in range(size // 32768):
            payload = struct.pack(">L", remote) + common.NS(b"o" * 32768)
            self.client.transport.sendPacket(MSG_CHANNEL_DATA, payload)

    def test_window_is_granted_again_once_stdin_is_dropped(self) -> None:
        """After the backend stops taking stdin, the client is not kept waiting on it."""
        channel = self.exec("cat")
        window = self.window()
        producer = self.backend_session().input_producer
        producer.pauseProducing()
        channel.write(b"w" * window)
        self.harness.flush()
        self.assertEqual(channel.remoteWindowLeft, 0)
        producer.stopProducing()
        self.harness.flush()
        self.assertEqual(channel.remoteWindowLeft, window)


class SocketBackpressureTests(SessionTestCase):
    """Output waits while the connection's socket does not drain."""

    def gate(self, client: Any = None) -> Any:
        """The producer the server registered with its TCP transport."""
        return (client or self.client).server.transport.producer

    def test_output_waits_while_the_socket_does_not_drain(self) -> None:
        """A paused socket holds the program's output back until it drains."""
        channel = self.exec("cat")
        self.gate().pauseProducing()
        channel.write(b"hello\n")
        self.harness.flush()
        self.assertEqual(channel.stdout, b"")
        self.gate().resumeProducing()
        self.harness.flush()
        self.assertEqual(channel.stdout, b"hello\n")

    def test_program_started_while_paused_waits(self) -> None:
        """A session started while the socket is full is held back from its start."""
        self.exec("true")  # the first channel registers the gate
        self.gate().pauseProducing()
        channel = self.open()
        self.request(channel, b"exec", exec_request("cat"))
        channel.write(b"early\n")
        self.harness.flush()
        self.assertEqual(channel.stdout, b"")
        self.gate().resumeProducing()
        self.harness.flush()
        self.assertEqual(channel.stdout, b"early\n")

    def test_every_channel_of_the_connection_waits(self) -> None:
        """All sessions of the connection are held back, and all are let go."""
        first, second = self.exec("cat"), self.exec("cat")
        self.gate().pauseProducing()
        first.write(b"one\n")
        second.write(b"two\n")
        self.harness.flush()
        self.assertEqual((first.stdout, second.stdout), (b"", b""))
        self.gate().resumeProducing()
        self.harness.flush()
        self.assertEqual((first.stdout, second.stdout), (b"one\n", b"two\n"))

    def test_other_connections_keep_flowing(self) -> None:
        """A connection whose socket is full does not hold back another connection."""
        stuck = self.exec("cat")
        other_client = self.harness.login()
        other = self.harness.open_session(other_client)
        self.request(other, b"exec", exec_request("cat"))
        self.harness.flush()
        self.gate().pauseProducing()
        stuck.write(b"stuck\n")
        other.write(b"flowing\n")
        self.harness.flush()
        self.assertEqual(stuck.stdout, b"")
        self.assertEqual(other.stdout, b"flowing\n")


class _Channel:
    """A channel that records its turns and may fill the socket again when resumed."""

    def __init__(self, name: str, turns: list[str], gate: TransportGate) -> None:
        self.name = name
        self.turns = turns
        self.gate = gate
        self.fills_socket = False
        self.paused = False

    def transport_paused(self) -> None:
        self.paused = True

    def transport_resumed(self) -> None:
        self.paused = False
        self.turns.append(self.name)
        if self.fills_socket:
            self.gate.pauseProducing()


class TransportGateTests(SynchronousTestCase):
    """The per-connection gate on its own."""

    def setUp(self) -> None:
        self.gate = TransportGate()
        self.turns: list[str] = []
        self.channels = [_Channel(name, self.turns, self.gate) for name in "abc"]
        for channel in self.channels:
            self.gate.add(channel)

    def test_channels_take_turns_being_resumed_first(self) -> None:
        """When the first resumed channel fills the socket again, the next resume starts later."""
        for channel in self.channels:
            channel.fills_socket = True
        for _ in range(3):
            self.gate.pauseProducing()
            self.gate.resumeProducing()
        self.assertEqual(self.turns, ["a", "b", "c"])
        self.assertTrue(all(channel.paused for channel in self.channels))

    def test_all_resumed_while_the_socket_drains(self) -> None:
        self.gate.pauseProducing()
        self.gate.resumeProducing()
        self.assertEqual(sorted(self.turns), ["a", "b", "c"])
        self.assertFalse(any(channel.paused for channel in self.channels))

    def test_added_while_paused_starts_paused(self) -> None:
        self.gate.pauseProducing()
        late = _Channel("d", self.turns, self.gate)
        self.gate.add(late)
        self.assertTrue(late.paused)

    def test_removed_channel_is_not_resumed(self) -> None:
        self.gate.pauseProducing()
        self.gate.remove(self.channels[0])
        self.gate.resumeProducing()
        self.assertNotIn("a", self.turns)

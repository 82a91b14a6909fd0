"""The exec stream holds stdin's producer and releases it before closing the connection."""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.docker.engine.stream import ExecStreamProtocol, StreamEvents
from conch_container.testing.conformance import CountingProducer


class _Events(StreamEvents):
    def pid_received(self, pid: int) -> None:
        pass

    def pid_failed(self, reason: str) -> None:
        pass

    def output_ended(self, error: str | None) -> None:
        pass

    def stream_closed(self) -> None:
        pass


class _ProducerKeptPrivately(StringTransport):
    """A consumer that keeps its producer to itself, as a TLS transport does."""

    def __init__(self) -> None:
        super().__init__()
        self.kept: Any = None

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.kept = producer

    def unregisterProducer(self) -> None:
        self.kept = None


class ReleaseInputTests(SynchronousTestCase):
    def connect(
        self, transport: StringTransport | None = None
    ) -> tuple[ExecStreamProtocol, StringTransport, CountingProducer]:
        protocol = ExecStreamProtocol(
            lambda data: None, lambda data: None, _Events(), tty=True, expect_pid=False
        )
        transport = transport if transport is not None else StringTransport()
        protocol.makeConnection(transport)
        producer = CountingProducer()
        protocol.register_input(producer)
        return protocol, transport, producer

    def test_register_input_registers_a_streaming_producer(self) -> None:
        """Stdin's producer is registered with the stream's transport as a push producer."""
        _, transport, producer = self.connect()
        self.assertIs(transport.producer, producer)
        self.assertTrue(transport.streaming)

    def test_end_of_output_releases_the_producer(self) -> None:
        """When the engine ends the stream, stdin's producer is unregistered and stopped."""
        protocol, transport, producer = self.connect()
        protocol.readConnectionLost()
        self.assertIsNone(transport.producer)
        self.assertTrue(producer.stopped)
        self.assertTrue(transport.disconnecting)

    def test_release_unregisters_and_stops(self) -> None:
        """release_input leaves the transport free to close, and tells the producer."""
        protocol, transport, producer = self.connect()
        protocol.release_input()
        self.assertIsNone(transport.producer)
        self.assertTrue(producer.stopped)

    def test_release_without_the_transports_producer_attribute(self) -> None:
        """The producer is released on a transport that keeps it to itself."""
        transport = _ProducerKeptPrivately()
        protocol, _, producer = self.connect(transport)
        self.assertIsNone(transport.producer)
        protocol.release_input()
        self.assertIsNone(transport.kept)
        self.assertTrue(producer.stopped)

    def test_release_twice_stops_once(self) -> None:
        """A second release (stdin closed, then the stream) does nothing more."""
        protocol, _, producer = self.connect()
        protocol.release_input()
        producer.stopped = False
        protocol.release_input()
        self.assertFalse(producer.stopped)

    def test_no_release_after_the_connection_is_lost(self) -> None:
        """A transport stops its producer when the connection goes; not stopped again."""
        protocol, _, producer = self.connect()
        protocol.connectionLost()
        protocol.release_input()
        self.assertFalse(producer.stopped)

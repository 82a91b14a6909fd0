"""The exec stream releases the stdin producer before it closes the engine connection."""

from __future__ import annotations

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.docker.engine.stream import (
    ExecStreamProtocol,
    StreamEvents,
    release_input,
)
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


class ReleaseInputTests(SynchronousTestCase):
    def connect(self) -> tuple[ExecStreamProtocol, StringTransport, CountingProducer]:
        protocol = ExecStreamProtocol(
            lambda data: None, lambda data: None, _Events(), tty=True, expect_pid=False
        )
        transport = StringTransport()
        protocol.makeConnection(transport)
        producer = CountingProducer()
        transport.registerProducer(producer, True)
        return protocol, transport, producer

    def test_end_of_output_releases_the_producer(self) -> None:
        """When the engine ends the stream, stdin's producer is unregistered and stopped."""
        protocol, transport, producer = self.connect()
        protocol.readConnectionLost()
        self.assertIsNone(transport.producer)
        self.assertTrue(producer.stopped)
        self.assertTrue(transport.disconnecting)

    def test_release_unregisters_and_stops(self) -> None:
        """release_input leaves the transport free to close, and tells the producer."""
        _, transport, producer = self.connect()
        release_input(transport)
        self.assertIsNone(transport.producer)
        self.assertTrue(producer.stopped)

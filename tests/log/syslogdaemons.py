"""Real syslog "daemons" for the tests: sockets on this host that keep what they receive."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.interfaces import (
    IHostnameResolver,
    IHostResolution,
    IListeningPort,
    IResolutionReceiver,
)
from twisted.internet.protocol import DatagramProtocol, Factory
from twisted.protocols.basic import LineOnlyReceiver
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from conch_container.log.formats import Formatter, format_ljson_syslog
from conch_container.log.syslog import SyslogSink


class DatagramDaemon(DatagramProtocol):
    """Keeps every datagram; :meth:`next` waits for the next one."""

    def __init__(self) -> None:
        self.received: DeferredQueue[bytes] = DeferredQueue()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.received.put(datagram)

    def next(self) -> Deferred[bytes]:
        return self.received.get()


class LineKeeper(LineOnlyReceiver):
    """One connection to a :class:`StreamDaemon`."""

    delimiter = b"\n"

    def __init__(self, daemon: StreamDaemon) -> None:
        self._daemon = daemon

    def connectionMade(self) -> None:
        self._daemon.connections.put(self)

    def lineReceived(self, line: bytes) -> None:
        self._daemon.received.put(line)


class StreamDaemon:
    """Keeps every newline-terminated line of every connection."""

    def __init__(self) -> None:
        self.received: DeferredQueue[bytes] = DeferredQueue()
        self.connections: DeferredQueue[LineKeeper] = DeferredQueue()
        self.factory = Factory.forProtocol(lambda: LineKeeper(self))

    def next(self) -> Deferred[bytes]:
        return self.received.get()


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name: str) -> None:
        self.name = name

    def cancel(self) -> None:
        raise NotImplementedError()


@implementer(IHostnameResolver)
class ScriptedResolver:
    """Answers each lookup with the next of ``answers`` (IPv4 addresses; none for "unknown")."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    def resolveHostName(
        self,
        resolutionReceiver: IResolutionReceiver,
        hostName: str,
        portNumber: int = 0,
        addressTypes: Any = None,
        transportSemantics: str = "TCP",
    ) -> IHostResolution:
        self.asked.append(hostName)
        resolution = _Resolution(hostName)
        resolutionReceiver.resolutionBegan(resolution)
        for address in self.answers.pop(0):
            resolutionReceiver.addressResolved(IPv4Address("UDP", address, portNumber))
        resolutionReceiver.resolutionComplete()
        return resolution


class ReactorWithResolver:
    """The global reactor, but names are looked up with ``resolver`` (no DNS in tests)."""

    def __init__(self, resolver: IHostnameResolver) -> None:
        self.nameResolver = resolver

    def __getattr__(self, name: str) -> Any:
        return getattr(reactor, name)


class SyslogTestCase(TestCase):
    """A test case with real daemons and sinks, all stopped after the test."""

    def socket_path(self) -> str:
        # Unix socket paths are limited to about 100 bytes; trial's temporary
        # directories can be longer.
        directory = tempfile.mkdtemp(prefix="cc-syslog-")
        self.addCleanup(shutil.rmtree, directory, True)
        return os.path.join(directory, "log")

    def unix_datagram_daemon(self, path: str) -> tuple[DatagramDaemon, IListeningPort]:
        daemon = DatagramDaemon()
        port = reactor.listenUNIXDatagram(path, daemon)  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        return daemon, port

    def unix_stream_daemon(self, path: str) -> StreamDaemon:
        daemon = StreamDaemon()
        port = reactor.listenUNIX(path, daemon.factory)  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        return daemon

    def udp_daemon(self, interface: str = "127.0.0.1") -> tuple[DatagramDaemon, int]:
        daemon = DatagramDaemon()
        port = reactor.listenUDP(0, daemon, interface=interface)  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        return daemon, port.getHost().port

    def sink(
        self, destination: str, formatter: Formatter = format_ljson_syslog, **kwargs: Any
    ) -> SyslogSink:
        """A sink on the global reactor, closed (and its transport gone) after the test."""
        kwargs.setdefault("reactor", reactor)
        sink = SyslogSink(destination, formatter, **kwargs)

        def close() -> Deferred[None]:
            sink.close()
            return sink.when_closed()

        self.addCleanup(close)
        return sink

"""Tests for conch_container.log.syslog, against real sockets on this host."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import tempfile
import time
from typing import Protocol

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.log import Level
from conch_container.log.formats import format_ljson_syslog, format_text_syslog
from conch_container.log.observers import CodeLogObserver
from conch_container.log.records import LogRecord
from conch_container.log.syslog import (
    FACILITIES,
    SyslogSink,
    facility_number,
    rfc3164_timestamp,
)
from conch_container.log.syslogdestination import (
    UDPDestination,
    UnixDestination,
    check_unix_socket,
    parse_destination,
)
from tests.log.events import T0, code_event
from tests.log.syslogdaemons import ReactorWithResolver, ScriptedResolver, SyslogTestCase

FRAME = re.compile(
    r"<(?P<pri>\d+)>(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<tag>[^:]+): (?P<body>.*)",
    re.DOTALL,
)


class WatchedStream(io.StringIO):
    """An error stream whose lines can be waited for."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: DeferredQueue[str] = DeferredQueue()

    def write(self, text: str) -> int:
        self.lines.put(text)
        return super().write(text)


def record(level: Level = Level.NOTICE, message: str = "hello") -> LogRecord:
    return LogRecord(T0, level, "SSH_SHUTDOWN", message, {"connectionId": "c1"})


def parse(data: bytes) -> re.Match[str]:
    match = FRAME.fullmatch(data.decode("utf-8"))
    assert match is not None, data
    return match


def body(data: bytes) -> dict:
    parsed: dict = json.loads(parse(data)["body"])
    return parsed


class Daemon(Protocol):
    def next(self) -> Deferred[bytes]: ...


class BehindTestCase(SyslogTestCase):
    async def assert_each_arrived_or_counted(self, daemon: Daemon, total: int) -> None:
        """Lines ``0 ...`` to ``total - 1 ...`` arrived in order, or were counted as dropped."""
        delivered: list[int] = []
        dropped = 0
        while not delivered or delivered[-1] != total - 1:
            data = body(await daemon.next())
            if data["code"] == "LOG_LINES_DROPPED":
                dropped += data["details"]["count"]
            else:
                delivered.append(int(data["message"].split()[0]))
        self.assertGreater(dropped, 0)
        self.assertEqual(delivered, sorted(delivered))
        self.assertEqual(len(delivered) + dropped, total)


class UnixDatagramTests(BehindTestCase):
    async def test_framing(self) -> None:
        """A record is one RFC 3164 datagram: <PRI>timestamp tag: ljson body without time/level."""
        path = self.socket_path()
        daemon, _ = self.unix_datagram_daemon(path)
        sink = self.sink(path, facility="auth", tag="ContainerSSH")
        sink.write(record(Level.NOTICE))
        data = await daemon.next()
        match = parse(data)
        self.assertEqual(match["pri"], str(4 * 8 + 5))
        self.assertEqual(match["ts"], rfc3164_timestamp(T0))
        self.assertEqual(match["tag"], "ContainerSSH")
        self.assertEqual(
            json.loads(match["body"]),
            {"code": "SSH_SHUTDOWN", "message": "hello", "details": {"connectionId": "c1"}},
        )
        self.assertFalse(data.endswith(b"\n"))

    async def test_pid_and_facility(self) -> None:
        """``pid`` appends the process id to the tag; the facility and severity make PRI."""
        path = self.socket_path()
        daemon, _ = self.unix_datagram_daemon(path)
        sink = self.sink(path, format_text_syslog, facility="local3", tag="gw", pid=True)
        sink.write(record(Level.ERROR))
        match = parse(await daemon.next())
        self.assertEqual(match["pri"], str(19 * 8 + 3))
        self.assertEqual(match["tag"], f"gw[{os.getpid()}]")
        self.assertEqual(match["body"], "SSH_SHUTDOWN hello (connectionId=c1)")

    async def test_through_observer(self) -> None:
        """The observer's events arrive with severity from our level."""
        path = self.socket_path()
        daemon, _ = self.unix_datagram_daemon(path)
        observer = CodeLogObserver(self.sink(path))
        observer(code_event(messages.SSH_AUTH_FAILED, "no", level=Level.WARNING, username="u"))
        match = parse(await daemon.next())
        self.assertEqual(match["pri"], str(4 * 8 + 4))
        self.assertEqual(json.loads(match["body"])["details"], {"username": "u"})

    async def test_order(self) -> None:
        """Records arrive in the order they were written."""
        path = self.socket_path()
        daemon, _ = self.unix_datagram_daemon(path)
        sink = self.sink(path)
        for i in range(20):
            sink.write(record(message=str(i)))
        received = [body(await daemon.next())["message"] for _ in range(20)]
        self.assertEqual(received, [str(i) for i in range(20)])

    async def test_from_another_thread(self) -> None:
        """A record written outside the reactor thread is handed to the reactor and arrives."""
        path = self.socket_path()
        daemon, _ = self.unix_datagram_daemon(path)
        sink = self.sink(path)
        await deferToThread(sink.write, record(message="threaded"))
        self.assertEqual(body(await daemon.next())["message"], "threaded")

    async def test_daemon_restart(self) -> None:
        """When the daemon recreates its socket, the next line reconnects and arrives."""
        path = self.socket_path()
        first, port = self.unix_datagram_daemon(path)
        errors = io.StringIO()
        sink = self.sink(path, error_stream=errors)
        sink.write(record(message="one"))
        self.assertEqual(body(await first.next())["message"], "one")
        await port.stopListening()
        os.unlink(path)
        second, _ = self.unix_datagram_daemon(path)
        sink.write(record(message="two"))
        self.assertEqual(body(await second.next())["message"], "two")
        # A daemon that came straight back is no outage worth reporting.
        self.assertEqual(errors.getvalue(), "")

    async def test_daemon_away(self) -> None:
        """While nobody listens, the outage is reported once; lines flow again when it is back."""
        path = self.socket_path()
        first, port = self.unix_datagram_daemon(path)
        errors = WatchedStream()
        sink = self.sink(path, error_stream=errors)
        sink.write(record(message="one"))
        await first.next()
        await port.stopListening()
        os.unlink(path)
        sink.write(record(message="waits"))
        report = json.loads(await errors.lines.get())
        self.assertEqual(report["code"], "LOG_WRITE_FAILED")
        self.assertEqual(report["details"]["destination"], path)
        sink.write(record(message="waits too"))
        second, _ = self.unix_datagram_daemon(path)
        received = [body(await second.next())["message"] for _ in range(2)]
        self.assertEqual(received, ["waits", "waits too"])
        # One report for the whole outage, however often reconnecting failed.
        self.assertEqual(len(errors.getvalue().splitlines()), 1)

    async def test_overflow_while_connecting(self) -> None:
        """Lines beyond the queue's limit drop the oldest; the first line sent says how many."""
        path = self.socket_path()
        daemon, _ = self.unix_datagram_daemon(path)
        sink = self.sink(path, queue_limit=3)
        # The first write starts connecting (a stream socket is tried
        # first, which takes a turn of the reactor): all ten wait.
        for i in range(10):
            sink.write(record(message=str(i)))
        notice = body(await daemon.next())
        self.assertEqual(notice["code"], "LOG_LINES_DROPPED")
        self.assertEqual(notice["details"], {"count": 7})
        received = [body(await daemon.next())["message"] for _ in range(3)]
        self.assertEqual(received, ["7", "8", "9"])

    async def test_daemon_behind(self) -> None:
        """A daemon that stops reading never blocks the writer; every line arrives or is counted."""
        path = self.socket_path()
        daemon, port = self.unix_datagram_daemon(path)
        sink = self.sink(path, queue_limit=5)
        sink.write(record(message="first"))
        self.assertEqual(body(await daemon.next())["message"], "first")
        reactor.removeReader(port)  # type: ignore[attr-defined]
        total = 500
        for i in range(total):
            sink.write(record(message=f"{i} " + "x" * 4000))
        reactor.addReader(port)  # type: ignore[attr-defined]
        await self.assert_each_arrived_or_counted(daemon, total)

    async def test_reopen(self) -> None:
        """reopen connects afresh, to whatever listens at the path now."""
        path = self.socket_path()
        first, port = self.unix_datagram_daemon(path)
        sink = self.sink(path)
        sink.write(record(message="before"))
        self.assertEqual(body(await first.next())["message"], "before")
        await port.stopListening()
        os.unlink(path)
        second, _ = self.unix_datagram_daemon(path)
        sink.reopen()
        sink.write(record(message="after"))
        self.assertEqual(body(await second.next())["message"], "after")

    async def test_closed(self) -> None:
        """Closing sends what the open transport takes; later records are dropped."""
        path = self.socket_path()
        daemon, _ = self.unix_datagram_daemon(path)
        sink = self.sink(path)
        sink.write(record(message="connected"))
        await daemon.next()
        sink.write(record(message="sent"))
        sink.close()
        sink.write(record(message="dropped"))
        await sink.when_closed()
        self.sink(path).write(record(message="from another sink"))
        received = [body(await daemon.next())["message"] for _ in range(2)]
        self.assertEqual(received, ["sent", "from another sink"])


class UnixStreamTests(BehindTestCase):
    async def test_stream_first(self) -> None:
        """A stream socket is preferred; each message ends with a newline."""
        path = self.socket_path()
        daemon = self.unix_stream_daemon(path)
        sink = self.sink(path)
        sink.write(record(message="one"))
        sink.write(record(message="two"))
        lines = [await daemon.next(), await daemon.next()]
        self.assertEqual([body(line)["message"] for line in lines], ["one", "two"])

    async def test_daemon_behind(self) -> None:
        """A stream daemon that stops reading pauses the link; lines arrive or are counted."""
        path = self.socket_path()
        daemon = self.unix_stream_daemon(path)
        sink = self.sink(path, queue_limit=5)
        sink.write(record(message="first"))
        connection = await daemon.connections.get()
        self.assertEqual(body(await daemon.next())["message"], "first")
        connection.transport.pauseProducing()
        total = 1000
        for i in range(total):
            sink.write(record(message=f"{i} " + "x" * 4000))
        connection.transport.resumeProducing()
        await self.assert_each_arrived_or_counted(daemon, total)


class UDPTests(SyslogTestCase):
    async def test_udp(self) -> None:
        """``host:port`` sends UDP datagrams."""
        daemon, port = self.udp_daemon()
        sink = self.sink(f"127.0.0.1:{port}", facility="daemon")
        sink.write(record(Level.DEBUG))
        match = parse(await daemon.next())
        self.assertEqual(match["pri"], str(3 * 8 + 7))
        self.assertEqual(json.loads(match["body"])["code"], "SSH_SHUTDOWN")

    async def test_host_name(self) -> None:
        """A host name is resolved by the reactor's resolver before the first line goes."""
        *_, address = socket.getaddrinfo("localhost", 0, type=socket.SOCK_DGRAM)[0]
        daemon, port = self.udp_daemon(address[0])
        sink = self.sink(f"localhost:{port}")
        sink.write(record(message="by name"))
        self.assertEqual(body(await daemon.next())["message"], "by name")

    async def test_resolved_again_after_failure(self) -> None:
        """A name that does not resolve is reported and looked up again until it does."""
        daemon, port = self.udp_daemon()
        resolver = ScriptedResolver([], ["127.0.0.1"])
        errors = WatchedStream()
        sink = self.sink(
            f"syslog.example:{port}", reactor=ReactorWithResolver(resolver), error_stream=errors
        )
        sink.write(record(message="after the lookup"))
        report = json.loads(await errors.lines.get())
        self.assertEqual(report["code"], "LOG_WRITE_FAILED")
        self.assertIn("syslog.example", report["details"]["error"])
        self.assertEqual(body(await daemon.next())["message"], "after the lookup")
        self.assertEqual(resolver.asked, ["syslog.example", "syslog.example"])


class ConstructionTests(SynchronousTestCase):
    def test_nobody_listening(self) -> None:
        """A Unix path without a socket is refused at once (a configuration error)."""
        missing = os.path.join(tempfile.gettempdir(), "cc-no-such-socket")
        self.assertRaises(OSError, check_unix_socket, missing)
        self.assertRaises(OSError, SyslogSink, missing, format_ljson_syslog, reactor=reactor)

    def test_bad_facility(self) -> None:
        """A facility ContainerSSH does not know is refused."""
        self.assertRaises(
            ValueError,
            SyslogSink,
            "127.0.0.1:514",
            format_ljson_syslog,
            reactor=reactor,
            facility="bogus",
        )


class HelperTests(SynchronousTestCase):
    def test_facilities(self) -> None:
        """Facility names map to the standard numbers; unknown names are rejected."""
        self.assertEqual(len(FACILITIES), 24)
        self.assertEqual(facility_number("kern"), 0)
        self.assertEqual(facility_number("auth"), 4)
        self.assertEqual(facility_number("authpriv"), 10)
        self.assertEqual(facility_number("clock"), 15)
        self.assertEqual(facility_number("local7"), 23)
        self.assertRaises(ValueError, facility_number, "bogus")

    def test_timestamp(self) -> None:
        """The timestamp is local time ``Mmm dd hh:mm:ss`` with a space-padded day."""
        when = time.mktime((2024, 3, 5, 7, 8, 9, 0, 0, -1))
        self.assertEqual(rfc3164_timestamp(when), "Mar  5 07:08:09")

    def test_destinations(self) -> None:
        """A path is a Unix socket, anything else host:port over UDP; empty is /dev/log."""
        self.assertEqual(parse_destination(""), UnixDestination("/dev/log"))
        self.assertEqual(parse_destination("/run/log"), UnixDestination("/run/log"))
        self.assertEqual(parse_destination("logs:514"), UDPDestination("logs", 514))
        self.assertEqual(parse_destination("[::1]:514"), UDPDestination("::1", 514))

    def test_bad_destination(self) -> None:
        """A destination that is neither a path nor host:port is rejected."""
        for bad in ("localhost", "localhost:port", "localhost:0", "localhost:65536", ":514"):
            self.assertRaises(ValueError, parse_destination, bad)

"""Tests for conch_container.log.syslog, against real sockets on this host."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
import time

from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.log import Level
from conch_container.log.formats import format_ljson_syslog, format_text_syslog
from conch_container.log.observers import CodeLogObserver
from conch_container.log.records import LogRecord
from conch_container.log.syslog import (
    FACILITIES,
    SyslogSink,
    connect,
    facility_number,
    rfc3164_timestamp,
)
from tests.log.events import T0, code_event

FRAME = re.compile(
    r"<(?P<pri>\d+)>(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<tag>[^:]+): (?P<body>.*)",
    re.DOTALL,
)


def record(level: Level = Level.NOTICE, message: str = "hello") -> LogRecord:
    return LogRecord(T0, level, "SSH_SHUTDOWN", message, {"connectionId": "c1"})


class SocketDirMixin:
    def socket_path(self) -> str:
        # Unix socket paths are limited to about 100 bytes; trial's temporary
        # directories can be longer.
        directory = tempfile.mkdtemp(prefix="cc-syslog-")
        self.addCleanup(shutil.rmtree, directory, True)  # type: ignore[attr-defined]
        return os.path.join(directory, "log")

    def datagram_server(self, path: str) -> socket.socket:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(server.close)  # type: ignore[attr-defined]
        server.bind(path)
        server.settimeout(5)
        return server


class UnixDatagramTests(SocketDirMixin, SynchronousTestCase):
    def test_framing(self) -> None:
        """A record is one RFC 3164 datagram: <PRI>timestamp tag: ljson body without time/level."""
        path = self.socket_path()
        server = self.datagram_server(path)
        sink = SyslogSink(path, format_ljson_syslog, facility="auth", tag="ContainerSSH")
        self.addCleanup(sink.close)
        sink.write(record(Level.NOTICE))
        data = server.recv(65536).decode("utf-8")
        match = FRAME.fullmatch(data)
        assert match is not None, data
        self.assertEqual(match["pri"], str(4 * 8 + 5))
        self.assertEqual(match["ts"], rfc3164_timestamp(T0))
        self.assertEqual(match["tag"], "ContainerSSH")
        self.assertEqual(
            json.loads(match["body"]),
            {"code": "SSH_SHUTDOWN", "message": "hello", "details": {"connectionId": "c1"}},
        )
        self.assertFalse(data.endswith("\n"))

    def test_pid_and_facility(self) -> None:
        """``pid`` appends the process id to the tag; the facility and severity make PRI."""
        path = self.socket_path()
        server = self.datagram_server(path)
        sink = SyslogSink(path, format_text_syslog, facility="local3", tag="gw", pid=True)
        self.addCleanup(sink.close)
        sink.write(record(Level.ERROR))
        match = FRAME.fullmatch(server.recv(65536).decode("utf-8"))
        assert match is not None
        self.assertEqual(match["pri"], str(19 * 8 + 3))
        self.assertEqual(match["tag"], f"gw[{os.getpid()}]")
        self.assertEqual(match["body"], "SSH_SHUTDOWN hello (connectionId=c1)")

    def test_through_observer(self) -> None:
        """The observer's events arrive with severity from our level."""
        path = self.socket_path()
        server = self.datagram_server(path)
        sink = SyslogSink(path, format_ljson_syslog)
        observer = CodeLogObserver(sink)
        self.addCleanup(observer.close)
        observer(code_event(messages.SSH_AUTH_FAILED, "no", level=Level.WARNING, username="u"))
        match = FRAME.fullmatch(server.recv(65536).decode("utf-8"))
        assert match is not None
        self.assertEqual(match["pri"], str(4 * 8 + 4))
        self.assertEqual(json.loads(match["body"])["details"], {"username": "u"})

    def test_daemon_restart(self) -> None:
        """When the daemon recreates its socket, the next line reconnects and arrives."""
        path = self.socket_path()
        first = self.datagram_server(path)
        sink = SyslogSink(path, format_ljson_syslog)
        self.addCleanup(sink.close)
        sink.write(record(message="one"))
        self.assertIn(b"one", first.recv(65536))
        first.close()
        os.unlink(path)
        second = self.datagram_server(path)
        sink.write(record(message="two"))
        self.assertIn(b"two", second.recv(65536))

    def test_daemon_gone(self) -> None:
        """With nobody listening any more, a write raises (the observer reports it)."""
        path = self.socket_path()
        server = self.datagram_server(path)
        sink = SyslogSink(path, format_ljson_syslog)
        self.addCleanup(sink.close)
        server.close()
        os.unlink(path)
        self.assertRaises(OSError, sink.write, record())

    def test_full_queue_drops(self) -> None:
        """A daemon that does not read makes writes fail fast instead of blocking."""
        path = self.socket_path()
        self.datagram_server(path)
        sink = SyslogSink(path, format_ljson_syslog)
        self.addCleanup(sink.close)
        big = record(message="x" * 8000)
        with self.assertRaises(BlockingIOError):
            for _ in range(100000):
                sink.write(big)

    def test_reopen(self) -> None:
        """reopen connects afresh."""
        path = self.socket_path()
        server = self.datagram_server(path)
        sink = SyslogSink(path, format_ljson_syslog)
        self.addCleanup(sink.close)
        sink.reopen()
        sink.write(record(message="after"))
        self.assertIn(b"after", server.recv(65536))


class UnixStreamTests(SocketDirMixin, SynchronousTestCase):
    def test_stream_first(self) -> None:
        """A stream socket is preferred; each message ends with a newline."""
        path = self.socket_path()
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(server.close)
        server.bind(path)
        server.listen(1)
        sink = SyslogSink(path, format_ljson_syslog)
        self.addCleanup(sink.close)
        sink.write(record(message="one"))
        sink.write(record(message="two"))
        conn, _ = server.accept()
        self.addCleanup(conn.close)
        conn.settimeout(5)
        data = b""
        while data.count(b"\n") < 2:
            chunk = conn.recv(65536)
            self.assertTrue(chunk)
            data += chunk
        lines = data.decode("utf-8").splitlines()
        frames = [FRAME.fullmatch(line) for line in lines]
        self.assertEqual([json.loads(f["body"])["message"] for f in frames if f], ["one", "two"])


class UDPTests(SynchronousTestCase):
    def test_udp(self) -> None:
        """``host:port`` sends UDP datagrams."""
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(server.close)
        server.bind(("127.0.0.1", 0))
        server.settimeout(5)
        port = server.getsockname()[1]
        sink = SyslogSink(f"127.0.0.1:{port}", format_ljson_syslog, facility="daemon")
        self.addCleanup(sink.close)
        sink.write(record(Level.DEBUG))
        match = FRAME.fullmatch(server.recv(65536).decode("utf-8"))
        assert match is not None
        self.assertEqual(match["pri"], str(3 * 8 + 7))
        self.assertEqual(json.loads(match["body"])["code"], "SSH_SHUTDOWN")


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

    def test_bad_destination(self) -> None:
        """A destination that is neither a path nor host:port is rejected."""
        self.assertRaises(ValueError, connect, "localhost")
        self.assertRaises(ValueError, connect, "localhost:port")

    def test_nobody_listening(self) -> None:
        """A Unix path without a socket raises OSError."""
        self.assertRaises(
            OSError, connect, os.path.join(tempfile.gettempdir(), "cc-no-such-socket")
        )

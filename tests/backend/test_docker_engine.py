"""Tests for the engine's streams (the HTTP upgrade) and the client settings.

The upgrade is checked against a tiny engine stand-in on a unix socket that
answers the way the Docker engine does, and piece by piece on a string
transport.
"""

from __future__ import annotations

import os
import socket
import struct
import tempfile
import threading
from types import SimpleNamespace

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from conch_container.backend.docker.engine.client import EngineSettings
from conch_container.backend.docker.engine.errors import EngineError
from conch_container.backend.docker.engine.upgrade import (
    MAX_HEAD,
    EngineStreams,
    UpgradedStream,
    UpgradeProtocol,
    upgrade_request,
)

UPGRADE_RESPONSE = (
    b"HTTP/1.1 101 UPGRADED\r\n"
    b"Content-Type: application/vnd.docker.raw-stream\r\n"
    b"Connection: Upgrade\r\n"
    b"Upgrade: tcp\r\n\r\n"
)


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


class FakeEngine:
    """Accepts one connection, reads one request, sends ``reply``, then ``later``."""

    def __init__(self, reply: bytes, later: bytes = b"") -> None:
        self.directory = tempfile.mkdtemp()
        self.path = os.path.join(self.directory, "engine.sock")
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(self.path)
        self.listener.listen(1)
        self.reply = reply
        self.later = later
        self.request = b""
        self.stdin = b""
        self.proceed = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            while b"\r\n\r\n" not in self.request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                self.request += chunk
            head, _, body = self.request.partition(b"\r\n\r\n")
            length = int(
                next(
                    line.split(b":")[1]
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
            )
            while len(body) < length:
                body += conn.recv(4096)
            self.request = head + b"\r\n\r\n" + body
            try:
                conn.sendall(self.reply)
                self.proceed.wait(10)
                conn.sendall(self.later)
                conn.shutdown(socket.SHUT_WR)
                while chunk := conn.recv(4096):
                    self.stdin += chunk
            except OSError:
                pass  # the client went away; only the first test reads this far

    def close(self) -> None:
        self.proceed.set()
        self.thread.join(10)
        self.listener.close()
        os.unlink(self.path)
        os.rmdir(self.directory)


class ReadAll(Protocol):
    """Collects a stream until the engine closes it."""

    def __init__(self) -> None:
        self.data = b""
        self.done: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.done.callback(None)


@implementer(IHalfCloseableProtocol)
class HalfCloseReadAll(ReadAll):
    """:class:`ReadAll` that sends stdin and half-closes once the output ended."""

    def readConnectionLost(self) -> None:
        self.transport.write(b"stdin")
        self.transport.loseWriteConnection()

    def writeConnectionLost(self) -> None:
        self.transport.loseConnection()


def streams(engine: FakeEngine, timeout: float = 10.0) -> EngineStreams:
    return EngineStreams(reactor, EngineSettings(host=f"unix://{engine.path}", timeout=timeout))


class UpgradeTests(TestCase):
    """The upgrade over a unix socket against an engine stand-in."""

    def engine(self, reply: bytes, later: bytes = b"") -> FakeEngine:
        engine = FakeEngine(reply, later)
        self.addCleanup(lambda: deferToThread(engine.close))
        return engine

    async def test_leftover_bytes_kept(self) -> None:
        """Stream bytes that arrive with the answer's head come first, in order; stdin flows."""
        engine = self.engine(UPGRADE_RESPONSE + frame(1, b"early"), frame(1, b"late"))
        stream = await streams(engine).open("/v1.41/exec/abc123/start", body={"Tty": False})
        collector = HalfCloseReadAll()
        stream.attach(collector)
        engine.proceed.set()
        await collector.done
        await deferToThread(engine.thread.join, 10)
        self.assertEqual(collector.data, frame(1, b"early") + frame(1, b"late"))
        self.assertEqual(engine.stdin, b"stdin")
        self.assertIn(b"POST /v1.41/exec/abc123/start HTTP/1.1", engine.request)
        self.assertIn(b"Upgrade: tcp", engine.request)
        self.assertIn(b'"Tty": false', engine.request)

    async def test_query_parameters(self) -> None:
        """Parameters go into the request target."""
        engine = self.engine(UPGRADE_RESPONSE)
        stream = await streams(engine).open("/v1.41/containers/c/attach", params={"stream": "1"})
        stream.close()
        self.assertIn(b"POST /v1.41/containers/c/attach?stream=1 HTTP/1.1", engine.request)

    async def test_engine_refusal(self) -> None:
        """An error answer becomes an EngineError with the engine's message and status."""
        body = b'{"message":"No such exec instance: abc"}'
        engine = self.engine(
            b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        with self.assertRaises(EngineError) as caught:
            await streams(engine).open("/v1.41/exec/abc/start", body={})
        error = caught.exception
        self.assertEqual((error.status, error.message), (404, "No such exec instance: abc"))
        self.assertTrue(error.not_found)
        self.assertFalse(error.unsent)

    async def test_no_engine(self) -> None:
        """No socket to connect to: an EngineError that says nothing was sent."""
        settings = EngineSettings(host=f"unix://{self.mktemp()}", timeout=5)
        with self.assertRaises(EngineError) as caught:
            await EngineStreams(reactor, settings).open("/v1.41/exec/abc/start")
        self.assertTrue(caught.exception.unsent)

    async def test_no_answer(self) -> None:
        """An engine that never answers: an EngineError after the HTTP timeout."""
        engine = self.engine(b"")
        with self.assertRaises(EngineError) as caught:
            await streams(engine, timeout=0.2).open("/v1.41/exec/abc/start")
        self.assertIn("did not answer within 0.2 s", caught.exception.message)


class UpgradeProtocolTests(SynchronousTestCase):
    """The answer's head, piece by piece, on a string transport."""

    def connect(self) -> tuple[UpgradeProtocol, StringTransport, Deferred[UpgradedStream]]:
        answered: Deferred[UpgradedStream] = Deferred()
        protocol = UpgradeProtocol(b"REQUEST", answered)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.assertEqual(transport.value(), b"REQUEST")
        return protocol, transport, answered

    def test_head_split_anywhere(self) -> None:
        """The head may arrive a byte at a time; what follows it is kept for the stream."""
        protocol, transport, answered = self.connect()
        for byte in UPGRADE_RESPONSE + b"xy":
            protocol.dataReceived(bytes([byte]))
        stream = self.successResultOf(answered)
        self.assertEqual(transport.producerState, "paused")  # nothing read until taken
        collected = ReadAll()
        stream.attach(collected)
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(collected.data, b"xy")
        protocol.dataReceived(b"z")
        self.assertEqual(collected.data, b"xyz")

    def test_end_before_taken_is_passed_on(self) -> None:
        """A stream that ended before a protocol took it ends for that protocol too."""
        protocol, _, answered = self.connect()
        protocol.dataReceived(UPGRADE_RESPONSE + b"all")
        stream = self.successResultOf(answered)
        protocol.connectionLost(Failure(ConnectionDone()))
        collected = ReadAll()
        stream.attach(collected)
        self.assertEqual(collected.data, b"all")
        self.successResultOf(collected.done)

    def test_older_engines_answer_200(self) -> None:
        protocol, _, answered = self.connect()
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Type: x\r\n\r\n")
        self.successResultOf(answered)

    def test_head_too_long(self) -> None:
        protocol, _, answered = self.connect()
        protocol.dataReceived(b"HTTP/1.1 101 UPGRADED\r\nX: " + b"a" * (MAX_HEAD + 1))
        error = self.failureResultOf(answered, EngineError).value
        self.assertIn("exceeds", error.message)

    def test_garbage(self) -> None:
        protocol, _, answered = self.connect()
        protocol.dataReceived(b"SSH-2.0-OpenSSH\r\n\r\n")
        self.assertIn("unreadable", self.failureResultOf(answered, EngineError).value.message)

    def test_chunked_error_body(self) -> None:
        protocol, _, answered = self.connect()
        protocol.dataReceived(
            b"HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'14\r\n{"message":"paused"}\r\n'
        )
        self.assertNoResult(answered)
        protocol.dataReceived(b"0\r\n\r\n")
        error = self.failureResultOf(answered, EngineError).value
        self.assertEqual((error.status, error.message), (409, "paused"))

    def test_error_body_until_close(self) -> None:
        protocol, _, answered = self.connect()
        protocol.dataReceived(b"HTTP/1.0 500 Oops\r\n\r\nnot json")
        self.assertNoResult(answered)
        protocol.connectionLost(Failure(ConnectionDone()))
        error = self.failureResultOf(answered, EngineError).value
        self.assertEqual((error.status, error.message), (500, "HTTP 500: not json"))

    def test_closed_before_answer(self) -> None:
        protocol, _, answered = self.connect()
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertIn(
            "closed the connection", self.failureResultOf(answered, EngineError).value.message
        )


class EndpointTests(SynchronousTestCase):
    """Which engine addresses can carry a stream."""

    def test_unsupported_scheme(self) -> None:
        error = self.assertRaises(
            EngineError, EngineStreams, MemoryReactorClock(), EngineSettings(host="ssh://h")
        )
        self.assertIn("unsupported engine address", error.message)

    def test_unusable_tls_material(self) -> None:
        settings = EngineSettings(host="tcp://127.0.0.1:2376", cacert="x", cert="y", key="z")
        error = self.assertRaises(EngineError, EngineStreams, MemoryReactorClock(), settings)
        self.assertIn("unusable TLS settings", error.message)

    def test_request_bytes(self) -> None:
        request = upgrade_request("h:1", "/v1/x", {"a": "1"}, {"Tty": True})
        head, _, body = request.partition(b"\r\n\r\n")
        self.assertEqual(body, b'{"Tty": true}')
        self.assertIn(b"Content-Length: 13", head)
        self.assertTrue(head.startswith(b"POST /v1/x?a=1 HTTP/1.1\r\nHost: h:1\r\n"))


class EngineSettingsTests(SynchronousTestCase):
    def config(self, **connection: str) -> SimpleNamespace:
        values = {"host": "unix:///var/run/docker.sock", "cacert": "", "cert": "", "key": ""}
        values.update(connection)
        return SimpleNamespace(
            connection=SimpleNamespace(**values), timeouts=SimpleNamespace(http=7.5)
        )

    def test_from_config(self) -> None:
        """Settings come from docker.connection and timeouts.http."""
        settings = EngineSettings.from_config(self.config(host="tcp://127.0.0.1:2375"))
        self.assertEqual(
            (settings.host, settings.timeout, settings.tls), ("tcp://127.0.0.1:2375", 7.5, False)
        )

    def test_tls_needs_all_three(self) -> None:
        """TLS is used only when cacert, cert and key are all set."""
        self.assertFalse(EngineSettings.from_config(self.config(cacert="a", cert="b")).tls)
        self.assertTrue(EngineSettings.from_config(self.config(cacert="a", cert="b", key="c")).tls)

    def test_secrets_not_in_repr(self) -> None:
        """The PEM values never appear in the settings' repr."""
        settings = EngineSettings(cacert="CA-PEM", cert="CERT-PEM", key="KEY-PEM")
        for secret in ("CA-PEM", "CERT-PEM", "KEY-PEM"):
            self.assertNotIn(secret, repr(settings))

    def test_hashable(self) -> None:
        """Equal settings are one cache key."""
        self.assertEqual(
            len({EngineSettings(host="a"), EngineSettings(host="a"), EngineSettings(host="b")}), 2
        )

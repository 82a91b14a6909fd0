"""Tests for the engine-facing functions: the exec stream hand-over and client settings.

The hand-over is checked against a tiny engine stand-in on a unix socket that
answers the HTTP upgrade the way the Docker engine does, so that docker-py's
real HTTP stack is exercised without a Docker engine.
"""

from __future__ import annotations

import os
import socket
import struct
import tempfile
import threading
from types import SimpleNamespace

import docker
from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.docker.client import EngineSettings
from conch_container.backend.docker.engine import EngineError, thd_exec_attach

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
                self.request += conn.recv(4096)
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


def read_all(fd: int) -> bytes:
    os.set_blocking(fd, True)
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    return data


class ExecAttachTests(SynchronousTestCase):
    def client(self, engine: FakeEngine) -> docker.APIClient:
        client = docker.APIClient(base_url=f"unix://{engine.path}", version="1.41", timeout=10)
        self.addCleanup(client.close)
        return client

    def test_leftover_bytes_kept(self) -> None:
        """Stream bytes that arrive with the response headers are handed over, in order."""
        engine = FakeEngine(UPGRADE_RESPONSE + frame(1, b"early"), frame(1, b"late"))
        self.addCleanup(engine.close)
        stream = thd_exec_attach(self.client(engine), "abc123", False)
        self.assertEqual(stream.family, socket.AF_UNIX)
        self.assertEqual(stream.leftover, frame(1, b"early"))
        engine.proceed.set()
        self.assertEqual(read_all(stream.fd), frame(1, b"late"))
        with socket.socket(fileno=stream.fd) as sock:  # takes the descriptor over
            sock.setblocking(True)
            sock.sendall(b"stdin")
            sock.shutdown(socket.SHUT_WR)
            engine.thread.join(10)
        self.assertEqual(engine.stdin, b"stdin")
        self.assertIn(b"POST /v1.41/exec/abc123/start HTTP/1.1", engine.request)
        self.assertIn(b"Upgrade: tcp", engine.request)
        self.assertIn(b'"Tty": false', engine.request)

    def test_descriptor_is_nonblocking(self) -> None:
        """The handed-over descriptor is non-blocking, as the reactor needs."""
        engine = FakeEngine(UPGRADE_RESPONSE)
        self.addCleanup(engine.close)
        stream = thd_exec_attach(self.client(engine), "abc", True)
        self.addCleanup(stream.close)
        self.assertFalse(os.get_blocking(stream.fd))
        self.assertEqual(stream.leftover, b"")

    def test_engine_refusal(self) -> None:
        """An error answer becomes an EngineError with the engine's message and status."""
        body = b'{"message":"No such exec instance: abc"}'
        engine = FakeEngine(
            b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        self.addCleanup(engine.close)
        error = self.assertRaises(EngineError, thd_exec_attach, self.client(engine), "abc", False)
        self.assertEqual((error.status, error.message), (404, "No such exec instance: abc"))
        self.assertTrue(error.not_found)


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

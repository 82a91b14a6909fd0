"""The forwarding helper (guest/forward-server.c), built for this machine and
driven over its stdin and stdout as the gateway drives it, with packets read
and written by cbor2 (an implementation independent of the gateway's own).

Every wait has a deadline; the helper runs as a child process of the test.
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cbor2
from twisted.trial.unittest import SkipTest, TestCase

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "guest" / "forward-server.c"
DEADLINE = 20.0

SETUP, SUCCESS, ERROR, DATA, NEW, CLOSE, NO_MORE, CLOSE_WRITE = range(8)
X11, PORT_FORWARD, PORT_DIAL, SOCKET_FORWARD, SOCKET_DIAL, SSH_AGENT = range(6)

_built: dict[str, str] = {}


def helper_binary() -> str:
    """The helper, compiled once per test run."""
    if "path" not in _built:
        compiler = shutil.which("cc") or shutil.which("gcc")
        if compiler is None:
            raise SkipTest("no C compiler to build the forwarding helper")
        out = os.path.join(tempfile.mkdtemp(prefix="forward-server-"), "forward-server")
        subprocess.run(
            [compiler, "-O2", "-Wall", "-Wextra", "-Werror", "-o", out, str(SOURCE)],
            check=True,
            timeout=120,
        )
        _built["path"] = out
    return _built["path"]


def packet(kind: int, connection_id: int = 0, payload: bytes | None = None) -> bytes:
    return cbor2.dumps({"Type": kind, "ConnectionId": connection_id, "Payload": payload or None})


def setup(kind: int, **fields: Any) -> bytes:
    body = {
        "ConnectionType": kind,
        "BindHost": "",
        "BindPort": 0,
        "Protocol": "tcp",
        "Screen": "",
        "SingleConnection": False,
        "AuthProtocol": "",
        "AuthCookie": "",
    }
    body.update(fields)
    return packet(SETUP, 0, cbor2.dumps(body))


def new_connection(connection_id: int, host: str, port: int = 0, protocol: str = "tcp") -> bytes:
    body = {
        "Protocol": protocol,
        "ConnectedAddress": host,
        "ConnectedPort": port,
        "OriginatorAddress": "",
        "OriginatorPort": 0,
    }
    return packet(NEW, connection_id, cbor2.dumps(body))


class Helper:
    """A running helper: packets in, packets out (read by a thread into a queue)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [helper_binary()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.packets: queue.Queue[Any] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        decoder = cbor2.CBORDecoder(self.process.stdout)
        while True:
            try:
                self.packets.put(decoder.decode())
            except Exception:
                self.packets.put(None)
                return

    def send(self, *data: bytes) -> None:
        assert self.process.stdin is not None
        for item in data:
            self.process.stdin.write(item)
        self.process.stdin.flush()

    def next(self) -> dict[str, Any]:
        item = self.packets.get(timeout=DEADLINE)
        if item is None:
            raise AssertionError("the helper's output ended")
        return dict(item)

    def expect(self, kind: int, connection_id: int = 0) -> dict[str, Any]:
        item = self.next()
        assert (item["Type"], item["ConnectionId"]) == (kind, connection_id), item
        return item

    def data_until(self, end: int, connection_id: int) -> bytes:
        """DATA payloads until a packet of type ``end`` for the connection."""
        received = bytearray()
        while True:
            item = self.next()
            if item["Type"] == DATA and item["ConnectionId"] == connection_id:
                received += item["Payload"]
            elif item["Type"] == end and item["ConnectionId"] == connection_id:
                return bytes(received)

    def close(self) -> int:
        assert self.process.stdin is not None
        if not self.process.stdin.closed:
            self.process.stdin.close()
        return self.process.wait(timeout=DEADLINE)


class ForwardServerTestCase(TestCase):
    timeout = 60

    def helper(self, *first: bytes) -> Helper:
        helper = Helper()
        self.addCleanup(self._stop, helper)
        if first:
            helper.send(*first)
        return helper

    @staticmethod
    def _stop(helper: Helper) -> None:
        if helper.process.poll() is None:
            helper.process.kill()
            helper.process.wait(timeout=DEADLINE)
        for stream in (helper.process.stdin, helper.process.stdout, helper.process.stderr):
            if stream is not None:
                stream.close()

    def echo_server(self, family: int = socket.AF_INET, path: str | None = None) -> Any:
        """A server that echoes one connection and half-closes after the client does."""
        server = socket.socket(family, socket.SOCK_STREAM)
        server.bind(path if path else ("127.0.0.1", 0))
        server.listen()
        server.settimeout(DEADLINE)
        self.addCleanup(server.close)

        def serve() -> None:
            try:
                client, _ = server.accept()
            except OSError:
                return
            with client:
                while data := client.recv(65536):
                    client.sendall(data)
                client.shutdown(socket.SHUT_WR)

        threading.Thread(target=serve, daemon=True).start()
        return server


class DialTests(ForwardServerTestCase):
    def test_echo_both_ways_with_half_close(self) -> None:
        """10 MB through a dialled connection and back; the half-close goes both
        ways; then the connection closes, and the end of stdin ends the helper."""
        server = self.echo_server()
        port = server.getsockname()[1]
        helper = self.helper(setup(PORT_DIAL), new_connection(1, "127.0.0.1", port))
        helper.expect(SUCCESS, 0)
        helper.expect(SUCCESS, 1)
        blob = os.urandom(10 * 1024 * 1024)

        def write() -> None:
            for i in range(0, len(blob), 32768):
                helper.send(packet(DATA, 1, blob[i : i + 32768]))
            helper.send(packet(CLOSE_WRITE, 1))

        threading.Thread(target=write, daemon=True).start()
        self.assertEqual(helper.data_until(CLOSE_WRITE, 1), blob)
        helper.expect(CLOSE, 1)
        helper.send(packet(SUCCESS, 1))
        self.assertEqual(helper.close(), 0)

    def test_refused(self) -> None:
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]
        helper = self.helper(setup(PORT_DIAL), new_connection(1, "127.0.0.1", port))
        helper.expect(SUCCESS, 0)
        error = helper.expect(ERROR, 1)
        self.assertIn(b"refused", error["Payload"].lower())
        self.assertEqual(helper.close(), 0)

    def test_unix_socket(self) -> None:
        path = os.path.join(self.mktemp() + "-s")
        self.echo_server(socket.AF_UNIX, path)
        self.addCleanup(os.unlink, path)
        helper = self.helper(setup(SOCKET_DIAL), new_connection(1, path, protocol="unix"))
        helper.expect(SUCCESS, 0)
        helper.expect(SUCCESS, 1)
        helper.send(packet(DATA, 1, b"hello"), packet(CLOSE_WRITE, 1))
        self.assertEqual(helper.data_until(CLOSE_WRITE, 1), b"hello")

    def test_split_byte_by_byte_and_keys_in_any_order(self) -> None:
        server = self.echo_server()
        port = server.getsockname()[1]
        first = cbor2.dumps(
            {
                "Payload": cbor2.dumps({"ConnectionType": PORT_DIAL}),
                "Extra": "ignored",
                "ConnectionId": 0,
                "Type": SETUP,
            }
        )
        helper = self.helper()
        for byte in first + new_connection(1, "127.0.0.1", port):
            helper.send(bytes([byte]))
        helper.expect(SUCCESS, 0)
        helper.expect(SUCCESS, 1)

    def test_closed_by_the_gateway(self) -> None:
        server = self.echo_server()
        helper = self.helper(
            setup(PORT_DIAL), new_connection(1, "127.0.0.1", server.getsockname()[1])
        )
        helper.expect(SUCCESS, 0)
        helper.expect(SUCCESS, 1)
        helper.send(packet(CLOSE, 1))
        helper.expect(SUCCESS, 1)

    def test_garbage(self) -> None:
        helper = self.helper(b"Usage: something else\n")
        self.assertEqual(helper.close(), 2)

    def test_backpressure(self) -> None:
        """A socket that does not read: the helper stops reading its stdin after a
        bounded amount, and its memory stays bounded."""
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen()
        self.addCleanup(server.close)
        helper = self.helper(
            setup(PORT_DIAL), new_connection(1, "127.0.0.1", server.getsockname()[1])
        )
        helper.expect(SUCCESS, 0)
        helper.expect(SUCCESS, 1)
        client, _ = server.accept()  # and never reads
        self.addCleanup(client.close)
        sent = 0
        chunk = packet(DATA, 1, b"x" * 65536)
        rest = b""
        assert helper.process.stdin is not None
        stdin = helper.process.stdin.fileno()
        os.set_blocking(stdin, False)
        deadline = time.monotonic() + DEADLINE
        stalled_since = None
        while time.monotonic() < deadline and sent < 200 * 1024 * 1024:
            if not rest:
                rest = chunk
            try:
                written = os.write(stdin, rest)
            except BlockingIOError:
                # Stopped reading: it must stay stopped while the socket does not read.
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 1.0:
                    break
                time.sleep(0.05)
                continue
            stalled_since = None
            rest = rest[written:]
            sent += written
        self.assertLess(sent, 50 * 1024 * 1024)
        status = Path(f"/proc/{helper.process.pid}/status").read_text()
        [rss] = [line for line in status.splitlines() if line.startswith("VmRSS")]
        rss_kib = int(rss.split()[1])
        self.assertLess(rss_kib, 20 * 1024)


class ListenTests(ForwardServerTestCase):
    def listening(self, **fields: Any) -> tuple[Helper, dict[str, Any]]:
        helper = self.helper(setup(**fields))
        answer = helper.expect(SUCCESS, 0)
        return helper, cbor2.loads(answer["Payload"])

    def test_port_zero(self) -> None:
        """Any free port, reported; a client's connection is announced, waits for the
        gateway's answer, then carries bytes both ways."""
        helper, answer = self.listening(kind=PORT_FORWARD, BindHost="127.0.0.1")
        port = answer["BindPort"]
        self.assertGreater(port, 0)
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as client:
            new = helper.expect(NEW, 1)
            details = cbor2.loads(new["Payload"])
            self.assertEqual(details["OriginatorPort"], client.getsockname()[1])
            self.assertEqual(details["ConnectedPort"], port)
            client.sendall(b"ping")
            helper.send(packet(SUCCESS, 1))
            self.assertEqual(helper.expect(DATA, 1)["Payload"], b"ping")
            helper.send(packet(DATA, 1, b"pong"), packet(CLOSE_WRITE, 1))
            self.assertEqual(client.recv(10), b"pong")
            self.assertEqual(client.recv(10), b"")  # the half-close arrived
            client.shutdown(socket.SHUT_WR)
            helper.expect(CLOSE_WRITE, 1)
            helper.expect(CLOSE, 1)
        self.assertEqual(helper.close(), 0)
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=DEADLINE).close()

    def test_refused_by_the_gateway(self) -> None:
        helper, answer = self.listening(kind=PORT_FORWARD, BindHost="127.0.0.1")
        with socket.create_connection(("127.0.0.1", answer["BindPort"]), timeout=DEADLINE) as c:
            helper.expect(NEW, 1)
            helper.send(packet(ERROR, 1))
            self.assertEqual(c.recv(10), b"")

    def test_port_in_use(self) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            helper = self.helper(
                setup(PORT_FORWARD, BindHost="127.0.0.1", BindPort=taken.getsockname()[1])
            )
            self.assertIn(b"in use", helper.expect(ERROR, 0)["Payload"])
            self.assertEqual(helper.close(), 1)

    def test_single_connection_and_no_more(self) -> None:
        helper, answer = self.listening(
            kind=PORT_FORWARD, BindHost="127.0.0.1", SingleConnection=True
        )
        port = answer["BindPort"]
        first = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        self.addCleanup(first.close)
        helper.expect(NEW, 1)
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=DEADLINE).close()
        helper.send(packet(SUCCESS, 1), packet(NO_MORE, 0))
        first.close()
        helper.expect(CLOSE_WRITE, 1)
        helper.send(packet(CLOSE, 1))
        helper.expect(SUCCESS, 1)
        self.assertEqual(helper.process.wait(timeout=DEADLINE), 0)

    def test_unix_socket(self) -> None:
        """Created (a stale socket replaced), mode 0600 for an agent socket, removed at the end."""
        path = self.mktemp() + ".sock"
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(path)
        stale.close()
        helper, _ = self.listening(kind=SSH_AGENT, BindHost=path, Protocol="unix")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)
            new = helper.expect(NEW, 1)
            self.assertEqual(cbor2.loads(new["Payload"])["Protocol"], "unix")
        self.assertEqual(helper.close(), 0)
        self.assertFalse(os.path.exists(path))

    def test_unix_path_that_is_no_socket(self) -> None:
        path = self.mktemp()
        Path(path).write_text("a file")
        helper = self.helper(setup(SOCKET_FORWARD, BindHost=path, Protocol="unix"))
        helper.expect(ERROR, 0)
        self.assertEqual(Path(path).read_text(), "a file")

    def test_x11(self) -> None:
        helper, answer = self.listening(kind=X11, Screen="0", SingleConnection=False)
        display = answer["Display"]
        self.assertGreaterEqual(display, 10)
        self.assertEqual(answer["BindPort"], 6000 + display)
        with socket.create_connection(("127.0.0.1", 6000 + display), timeout=DEADLINE):
            helper.expect(NEW, 1)
        self.assertEqual(helper.close(), 0)

"""The forwarding helper (guest/forward-server.c), built for this machine and
driven over its stdin and stdout as the gateway drives it.

Packets are written and read with cbor2, an implementation independent of
the helper's codec and of the gateway's, so that each side is checked
against a third. Every wait has a deadline: the helper's output is read by a
thread into a queue that is read with a timeout, sockets have timeouts, and
each helper is killed at cleanup if it still runs.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import queue
import resource
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
from twisted.trial.unittest import SkipTest, SynchronousTestCase

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "guest" / "forward-server.c"
#: The longest any one wait in these tests may take.
DEADLINE = 20.0

SETUP, SUCCESS, ERROR, DATA, NEW, CLOSE, NO_MORE, CLOSE_WRITE = range(8)
X11, PORT_FORWARD, PORT_DIAL, SOCKET_FORWARD, SOCKET_DIAL, SSH_AGENT = range(6)

_built: dict[str, str] = {}


def helper_binary() -> str:
    """The helper, compiled once per test run (not static: the host's C library serves)."""
    if "path" not in _built:
        compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
        if compiler is None:
            raise SkipTest("no C compiler (cc, gcc or clang) to build guest/forward-server.c")
        directory = tempfile.mkdtemp(prefix="forward-server-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        out = os.path.join(directory, "forward-server")
        subprocess.run(
            [compiler, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-o", out, str(SOURCE)],
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
        "OriginatorAddress": "127.0.0.1",
        "OriginatorPort": 40000,
    }
    return packet(NEW, connection_id, cbor2.dumps(body))


def socket_dir() -> str:
    """A short directory for Unix sockets (a path must fit in 108 bytes)."""
    return tempfile.mkdtemp(prefix="fs-", dir="/tmp")


class Helper:
    """A running helper: packets in, packets out (read by a thread into a queue)."""

    def __init__(self, argv: list[str]) -> None:
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.packets: queue.Queue[Any] = queue.Queue()
        self._stderr = bytearray()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        decoder = cbor2.CBORDecoder(self.process.stdout)
        while True:
            try:
                item = decoder.decode()
            except Exception:
                self.packets.put(None)
                return
            self.packets.put(item)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        fd = self.process.stderr.fileno()
        while chunk := os.read(fd, 65536):
            self._stderr += chunk

    def stderr(self) -> str:
        """What the helper wrote to stderr so far (all of it, once it has exited)."""
        return self._stderr.decode("utf-8", "replace")

    def send(self, *data: bytes) -> None:
        assert self.process.stdin is not None
        for item in data:
            self.process.stdin.write(item)
        self.process.stdin.flush()

    def next(self) -> dict[str, Any]:
        try:
            item = self.packets.get(timeout=DEADLINE)
        except queue.Empty:
            raise AssertionError(f"no packet from the helper within {DEADLINE} s") from None
        if item is None:
            raise AssertionError("the helper's output ended")
        assert isinstance(item, dict), item
        assert set(item) == {"Type", "ConnectionId", "Payload"}, item
        return item

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
            else:
                raise AssertionError(f"unexpected packet {item}")

    def rest(self) -> list[dict[str, Any]]:
        """Every packet left once the output ends."""
        items: list[dict[str, Any]] = []
        while True:
            try:
                item = self.packets.get(timeout=DEADLINE)
            except queue.Empty:
                raise AssertionError(
                    f"the helper's output did not end within {DEADLINE} s"
                ) from None
            if item is None:
                return items
            items.append(item)

    def close(self) -> int:
        """End stdin; the exit status."""
        assert self.process.stdin is not None
        if not self.process.stdin.closed:
            self.process.stdin.close()
        return self.wait()

    def wait(self) -> int:
        return self.process.wait(timeout=DEADLINE)


def run_once(stdin: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    """The helper given all of ``stdin`` and its end at once."""
    return subprocess.run(
        [helper_binary(), *args], input=stdin, capture_output=True, timeout=DEADLINE, check=False
    )


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


class ForwardServerTestCase(SynchronousTestCase):
    def helper(self, *first: bytes, args: tuple[str, ...] = ()) -> Helper:
        return self.start_helper([helper_binary(), *args], *first)

    def start_helper(self, argv: list[str], *first: bytes) -> Helper:
        """A helper run by ``argv``, stopped at cleanup, sent ``first``."""
        helper = Helper(argv)
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
                try:
                    stream.close()
                except BrokenPipeError:
                    pass

    def listening_socket(
        self, family: int = socket.AF_INET, path: str | None = None
    ) -> socket.socket:
        server = socket.socket(family, socket.SOCK_STREAM)
        server.bind(path if path else ("127.0.0.1", 0))
        server.listen()
        server.settimeout(DEADLINE)
        self.addCleanup(server.close)
        return server

    def serve(self, handler: Callable[[socket.socket], None], **kwargs: Any) -> socket.socket:
        """A server that runs ``handler`` on its first connection, in a thread."""
        server = self.listening_socket(**kwargs)

        def run() -> None:
            try:
                client, _ = server.accept()
            except OSError:
                return
            with client:
                client.settimeout(DEADLINE)
                try:
                    handler(client)
                except OSError:
                    pass

        threading.Thread(target=run, daemon=True).start()
        return server

    def echo_server(self, **kwargs: Any) -> socket.socket:
        """Echoes, and half-closes after the client does."""

        def echo(client: socket.socket) -> None:
            while data := client.recv(65536):
                client.sendall(data)
            client.shutdown(socket.SHUT_WR)

        return self.serve(echo, **kwargs)

    def dialled(self, server: socket.socket) -> Helper:
        """A helper that dialled ``server`` as connection 1."""
        helper = self.helper(
            setup(PORT_DIAL), new_connection(1, "127.0.0.1", server.getsockname()[1])
        )
        helper.expect(SUCCESS, 0)
        helper.expect(SUCCESS, 1)
        return helper

    def free_port(self) -> int:
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            return int(unused.getsockname()[1])


class UsageTests(SynchronousTestCase):
    def test_arguments(self) -> None:
        """No arguments, or the agent's sub-command name, run the helper; anything else
        is a usage error."""
        dial = setup(PORT_DIAL)
        good: tuple[tuple[str, ...], ...] = ((), ("forward-server",))
        for args in good:
            done = run_once(dial, *args)
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertEqual(
                cbor2.loads(done.stdout), {"Type": SUCCESS, "ConnectionId": 0, "Payload": None}
            )
        bad: tuple[tuple[str, ...], ...] = (("console",), ("forward-server", "x"), ("--help",))
        for args in bad:
            done = run_once(dial, *args)
            self.assertEqual(done.returncode, 1)
            self.assertIn(b"usage: forward-server", done.stderr)
            self.assertEqual(done.stdout, b"")


class SetupTests(ForwardServerTestCase):
    def test_dial_answer_bytes(self) -> None:
        """The answer to a dialling setup is exactly what cbor2 writes for the same map
        (keys in ContainerSSH's order, shortest integers, a null payload)."""
        for kind in (PORT_DIAL, SOCKET_DIAL):
            done = run_once(setup(kind))
            self.assertEqual(done.returncode, 0)
            self.assertEqual(
                done.stdout, cbor2.dumps({"Type": SUCCESS, "ConnectionId": 0, "Payload": None})
            )

    def test_listen_answer_bytes(self) -> None:
        """The answer to a listening setup carries the port bound, encoded as cbor2 would."""
        done = run_once(setup(PORT_FORWARD, BindHost="127.0.0.1"))
        self.assertEqual(done.returncode, 0)
        answer = cbor2.loads(done.stdout)
        port = cbor2.loads(answer["Payload"])["BindPort"]
        self.assertGreater(port, 1023)
        expected = {"Type": SUCCESS, "ConnectionId": 0, "Payload": cbor2.dumps({"BindPort": port})}
        self.assertEqual(done.stdout, cbor2.dumps(expected))

    def assertSetupRefused(self, first: bytes, reason: str) -> None:
        done = run_once(first)
        self.assertEqual(done.returncode, 1, done.stderr)
        answer = cbor2.loads(done.stdout)
        self.assertEqual((answer["Type"], answer["ConnectionId"]), (ERROR, 0))
        self.assertIn(reason, answer["Payload"].decode())

    def test_refused(self) -> None:
        """A bad setup is answered ERROR(0) with the reason, then the helper exits 1."""
        self.assertSetupRefused(setup(9), "unknown connection type 9")
        self.assertSetupRefused(packet(DATA, 0, b"x"), "expected a setup packet")
        self.assertSetupRefused(packet(SETUP, 0, b"not a map"), "payload")
        self.assertSetupRefused(packet(SETUP), "payload")
        self.assertSetupRefused(setup(PORT_FORWARD, BindPort=70000), "70000")
        self.assertSetupRefused(setup(PORT_FORWARD, BindPort="80"), "BindPort")
        self.assertSetupRefused(setup(PORT_DIAL, Protocol="x" * 100), "Protocol")
        self.assertSetupRefused(
            setup(SOCKET_FORWARD, BindHost="/tmp/a\0b", Protocol="unix"), "BindHost"
        )
        self.assertSetupRefused(
            setup(PORT_FORWARD, BindHost="no-such-host.invalid"), "no-such-host"
        )

    def test_port_in_use(self) -> None:
        taken = self.listening_socket()
        self.assertSetupRefused(
            setup(PORT_FORWARD, BindHost="127.0.0.1", BindPort=taken.getsockname()[1]), "in use"
        )


class CodecTests(ForwardServerTestCase):
    def test_split_byte_by_byte_keys_in_any_order(self) -> None:
        """Packets that arrive a byte at a time, keys in another order, unknown keys of
        every kind the protocol uses, and a missing payload: all taken."""
        server = self.echo_server()
        first = cbor2.dumps(
            {
                "Payload": cbor2.dumps({"Unknown": "x", "ConnectionType": PORT_DIAL}),
                "ExtraText": "ignored",
                "ExtraBytes": b"ignored",
                "ExtraNumber": 2**40,
                "ExtraTrue": True,
                "ExtraNull": None,
                "ConnectionId": 0,
                "Type": SETUP,
            }
        )
        dial = cbor2.dumps(
            {
                "ConnectionId": 1,
                "Payload": cbor2.loads(new_connection(1, "127.0.0.1", server.getsockname()[1]))[
                    "Payload"
                ],
                "Type": NEW,
            }
        )
        data = cbor2.dumps({"ConnectionId": 1, "Type": DATA, "Payload": b"split"})
        helper = self.helper()
        for byte in first + dial + data + cbor2.dumps({"Type": CLOSE_WRITE, "ConnectionId": 1}):
            helper.send(bytes([byte]))
            time.sleep(0.001)  # so that reads see parts of packets, not whole ones
        helper.expect(SUCCESS, 0)
        helper.expect(SUCCESS, 1)
        self.assertEqual(helper.data_until(CLOSE_WRITE, 1), b"split")

    def test_integer_widths_and_null_payload(self) -> None:
        """Integers in 1, 2, 4 and 8 bytes where 0 would do, and an explicit null payload."""
        server = self.echo_server()

        def text(value: str) -> bytes:
            return bytes([0x60 + len(value)]) + value.encode()

        def wide(kind: int, connection_id: int, payload: bytes | None) -> bytes:
            body = (
                b"\xf6" if payload is None else b"\x5a" + struct.pack(">I", len(payload)) + payload
            )
            return (
                b"\xa3"
                + text("Type")
                + b"\x1b"
                + struct.pack(">Q", kind)
                + text("ConnectionId")
                + b"\x1a"
                + struct.pack(">I", connection_id)
                + text("Payload")
                + body
            )

        setup_payload = cbor2.loads(setup(PORT_DIAL))["Payload"]
        dial_payload = cbor2.loads(new_connection(1, "127.0.0.1", server.getsockname()[1]))[
            "Payload"
        ]
        helper = self.helper(
            wide(SETUP, 0, setup_payload),
            wide(NEW, 1, dial_payload),
            b"\xa3"
            + text("Type")
            + b"\x18\x03"
            + text("ConnectionId")
            + b"\x19\x00\x01"
            + text("Payload")
            + b"\x42hi",
            wide(CLOSE_WRITE, 1, None),
        )
        helper.expect(SUCCESS, 0)
        helper.expect(SUCCESS, 1)
        self.assertEqual(helper.data_until(CLOSE_WRITE, 1), b"hi")

    def assertMalformed(self, data: bytes) -> None:
        """The helper stops with exit 2 on ``data`` after a good setup, without waiting
        for the end of its input."""
        helper = self.helper(setup(PORT_DIAL))
        helper.expect(SUCCESS, 0)
        helper.send(data)
        self.assertEqual(helper.wait(), 2, data[:40])
        self.assertIn("forward-server:", helper.stderr())

    def test_malformed(self) -> None:
        """Garbage, and CBOR outside the protocol's subset, end the helper with exit 2."""
        self.assertMalformed(b"Usage: something else\n")
        self.assertMalformed(
            b"\xbf" + cbor2.dumps("Type") + b"\x03\xff"
        )  # an indefinite-length map
        self.assertMalformed(cbor2.dumps([DATA, 1, b"x"]))
        self.assertMalformed(cbor2.dumps({"Type": -1, "ConnectionId": 0, "Payload": None}))
        self.assertMalformed(cbor2.dumps({"Type": 1.5, "ConnectionId": 0, "Payload": None}))
        self.assertMalformed(cbor2.dumps({"Type": DATA, "ConnectionId": 1, "Payload": "text"}))
        self.assertMalformed(cbor2.dumps({"Type": DATA, "ConnectionId": 1, "Nested": {"a": 1}}))
        self.assertMalformed(cbor2.dumps({1: DATA}))
        # A payload longer than 16 MiB is refused from its header alone.
        self.assertMalformed(
            b"\xa1" + cbor2.dumps("Payload") + b"\x5a" + struct.pack(">I", 16 * 1024 * 1024 + 1)
        )

    def test_malformed_before_setup(self) -> None:
        done = run_once(b"\x00garbage")
        self.assertEqual(done.returncode, 2)


class DialTests(ForwardServerTestCase):
    def test_echo_10_mb_with_half_close(self) -> None:
        """10 MB through a dialled connection and back intact; the half-close goes
        both ways; then the connection closes, and the end of stdin ends the helper."""
        server = self.echo_server()
        helper = self.dialled(server)
        blob = os.urandom(10 * 1024 * 1024)

        def write() -> None:
            for i in range(0, len(blob), 32768):
                helper.send(packet(DATA, 1, blob[i : i + 32768]))
            helper.send(packet(CLOSE_WRITE, 1))

        threading.Thread(target=write, daemon=True).start()
        self.assertEqual(helper.data_until(CLOSE_WRITE, 1), blob)
        helper.expect(CLOSE, 1)
        helper.send(packet(SUCCESS, 1))  # the answer to the helper's close: no reply to it
        self.assertEqual(helper.close(), 0)
        self.assertEqual(helper.rest(), [])

    def test_refused(self) -> None:
        """A refused dial is ERROR(id) with the reason; the helper carries on."""
        port = self.free_port()
        helper = self.helper(setup(PORT_DIAL), new_connection(1, "127.0.0.1", port))
        helper.expect(SUCCESS, 0)
        error = helper.expect(ERROR, 1)
        self.assertEqual(error["Payload"].decode(), f"connect 127.0.0.1:{port}: Connection refused")
        server = self.echo_server()
        helper.send(new_connection(2, "127.0.0.1", server.getsockname()[1]))
        helper.expect(SUCCESS, 2)
        self.assertEqual(helper.close(), 0)

    def test_names_and_ipv6(self) -> None:
        """A name is looked up; an IPv6 address is dialled (where the host has IPv6)."""
        server = self.echo_server()
        helper = self.helper(
            setup(PORT_DIAL), new_connection(1, "localhost", server.getsockname()[1])
        )
        helper.expect(SUCCESS, 0)
        helper.expect(SUCCESS, 1)
        helper.send(new_connection(2, "no-such-host.invalid", 80))
        self.assertIn(b"no-such-host.invalid:80", helper.expect(ERROR, 2)["Payload"])
        try:
            six = socket.socket(socket.AF_INET6)
            six.bind(("::1", 0))
        except OSError:
            six.close()
            return  # no IPv6 loopback here
        six.listen()
        six.settimeout(DEADLINE)
        self.addCleanup(six.close)
        helper.send(new_connection(3, "::1", six.getsockname()[1]))
        helper.expect(SUCCESS, 3)
        accepted, _ = six.accept()
        accepted.close()

    def test_unix_socket(self) -> None:
        directory = socket_dir()
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "s")
        self.echo_server(family=socket.AF_UNIX, path=path)
        helper = self.helper(setup(SOCKET_DIAL), new_connection(1, path, protocol="unix"))
        helper.expect(SUCCESS, 0)
        helper.expect(SUCCESS, 1)
        helper.send(packet(DATA, 1, b"hello"), packet(CLOSE_WRITE, 1))
        self.assertEqual(helper.data_until(CLOSE_WRITE, 1), b"hello")
        helper.expect(CLOSE, 1)
        # Either setup dials either protocol; a missing socket is an error with the path.
        helper.send(new_connection(2, path + "-missing", protocol="unix"))
        self.assertIn(b"-missing: No such file", helper.expect(ERROR, 2)["Payload"])

    def test_half_close_request_then_response(self) -> None:
        """The request, then CLOSE_WRITE: the server sees its end, and its response
        still arrives, then its own end."""

        def respond(client: socket.socket) -> None:
            request = bytearray()
            while data := client.recv(65536):
                request += data
            client.sendall(b"got %d bytes" % len(request))

        helper = self.dialled(self.serve(respond))
        helper.send(packet(DATA, 1, b"request"), packet(CLOSE_WRITE, 1))
        self.assertEqual(helper.data_until(CLOSE_WRITE, 1), b"got 7 bytes")
        helper.expect(CLOSE, 1)

    def test_closed_by_the_gateway(self) -> None:
        """CLOSE_CONNECTION from the gateway: what was sent before it still reaches the
        socket, the socket closes, and the helper answers SUCCESS."""
        received: queue.Queue[bytes] = queue.Queue()

        def sink(client: socket.socket) -> None:
            data = bytearray()
            while chunk := client.recv(65536):
                data += chunk
            received.put(bytes(data))

        helper = self.dialled(self.serve(sink))
        helper.send(packet(DATA, 1, b"last words"), packet(CLOSE, 1))
        helper.expect(SUCCESS, 1)
        self.assertEqual(received.get(timeout=DEADLINE), b"last words")
        # A close of a connection already gone (the two sides' closes crossed) is answered too.
        helper.send(packet(CLOSE, 1))
        helper.expect(SUCCESS, 1)
        self.assertEqual(helper.close(), 0)

    def test_reset_by_the_server(self) -> None:
        """A reset makes the helper send CLOSE_CONNECTION; the gateway's SUCCESS to it
        gets no answer."""

        def reset(client: socket.socket) -> None:
            client.recv(100)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

        helper = self.dialled(self.serve(reset))
        helper.send(packet(DATA, 1, b"hello"))
        helper.expect(CLOSE, 1)
        helper.send(packet(SUCCESS, 1))
        self.assertEqual(helper.close(), 0)
        self.assertEqual(helper.rest(), [])

    def test_ids_and_unknown_packets(self) -> None:
        """Packets for connections that are not open, and of unknown types, are noted
        and ignored; a connection id that does not grow is refused."""
        server = self.echo_server()
        helper = self.dialled(server)
        helper.send(packet(DATA, 7, b"nobody"), packet(42, 1), packet(NEW, 1, b""))
        helper.send(new_connection(1, "127.0.0.1", server.getsockname()[1]))  # 1 is open: ignored
        helper.send(packet(CLOSE, 1))
        helper.expect(SUCCESS, 1)
        helper.send(new_connection(1, "127.0.0.1", server.getsockname()[1]))
        self.assertIn(b"grow", helper.expect(ERROR, 1)["Payload"])
        self.assertEqual(helper.close(), 0)
        self.assertEqual(helper.rest(), [])
        notes = helper.stderr()
        self.assertIn("type 42", notes)
        self.assertIn("connection 7", notes)

    def test_no_more_connections(self) -> None:
        """NO_MORE_CONNECTIONS: open connections go on; the helper exits once the last
        one ends, with its stdin still open."""
        helper = self.dialled(self.echo_server())
        helper.send(packet(NO_MORE))
        helper.send(packet(DATA, 1, b"still here"), packet(CLOSE_WRITE, 1))
        self.assertEqual(helper.data_until(CLOSE_WRITE, 1), b"still here")
        helper.expect(CLOSE, 1)
        self.assertEqual(helper.wait(), 0)

    def test_backpressure(self) -> None:
        """A socket that does not read while the gateway sends 50 MB: the helper stops
        reading its stdin after a bounded amount, its memory stays bounded, and it
        goes on when the socket reads; every byte arrives in order."""
        server = self.listening_socket()
        helper = self.dialled(server)
        client, _ = server.accept()  # read only later
        self.addCleanup(client.close)
        total = 50 * 1024 * 1024
        block = os.urandom(1024 * 1024)
        chunk = 64 * 1024
        packets = (
            packet(DATA, 1, block[i % len(block) : i % len(block) + chunk])
            for i in range(0, total, chunk)
        )
        assert helper.process.stdin is not None
        stdin = helper.process.stdin.fileno()
        os.set_blocking(stdin, False)
        pending = b""
        sent_packets = 0

        def write_some(until_stalled: bool) -> None:
            """Write packets; with ``until_stalled``, stop once the helper takes nothing
            for a second."""
            nonlocal pending, sent_packets
            deadline = time.monotonic() + 3 * DEADLINE
            stalled_since = None
            while time.monotonic() < deadline:
                if not pending:
                    pending = next(packets, b"")
                    if not pending:
                        return
                    sent_packets += 1
                try:
                    written = os.write(stdin, pending)
                except BlockingIOError:
                    now = time.monotonic()
                    stalled_since = stalled_since or now
                    if until_stalled and now - stalled_since > 1.0:
                        return
                    select.select([], [stdin], [], 0.1)
                    continue
                stalled_since = None
                pending = pending[written:]
            raise AssertionError("the helper's stdin did not take the data in time")

        write_some(until_stalled=True)
        taken = sent_packets * chunk
        self.assertLess(taken, 20 * 1024 * 1024)
        self.assertLess(rss_kib(helper.process.pid), 20 * 1024)

        digest = hashlib.sha256()
        received = [0]

        def read() -> None:
            client.settimeout(DEADLINE)
            while received[0] < total:
                data = client.recv(1 << 20)
                if not data:
                    return
                digest.update(data)
                received[0] += len(data)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        write_some(until_stalled=False)
        reader.join(timeout=3 * DEADLINE)
        self.assertEqual(received[0], total)
        expected = hashlib.sha256()
        for i in range(0, total, chunk):
            expected.update(block[i % len(block) : i % len(block) + chunk])
        self.assertEqual(digest.hexdigest(), expected.hexdigest())
        self.assertLess(rss_kib(helper.process.pid), 20 * 1024)


class ListenTests(ForwardServerTestCase):
    def listening(self, **fields: Any) -> tuple[Helper, dict[str, Any]]:
        helper = self.helper(setup(**fields))
        answer = helper.expect(SUCCESS, 0)
        return helper, cbor2.loads(answer["Payload"])

    def accepted(self, **fields: Any) -> tuple[Helper, int, socket.socket]:
        """A helper listening on a loopback port, and a client's connection that it
        announced as connection 1 (not answered yet)."""
        helper, answer = self.listening(kind=PORT_FORWARD, BindHost="127.0.0.1", **fields)
        port = answer["BindPort"]
        client = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        self.addCleanup(client.close)
        helper.expect(NEW, 1)
        return helper, port, client

    def assertNotListening(self, port: int) -> None:
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=DEADLINE).close()

    def test_port_zero(self) -> None:
        """Any free port, reported; a client's connection is announced with its
        originator, waits for the gateway's answer, then carries bytes both ways."""
        helper, answer = self.listening(kind=PORT_FORWARD, BindHost="127.0.0.1")
        port = answer["BindPort"]
        self.assertGreater(port, 0)
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as client:
            new = helper.expect(NEW, 1)
            self.assertEqual(
                cbor2.loads(new["Payload"]),
                {
                    "Protocol": "tcp",
                    "ConnectedAddress": "127.0.0.1",
                    "ConnectedPort": port,
                    "OriginatorAddress": "127.0.0.1",
                    "OriginatorPort": client.getsockname()[1],
                },
            )
            client.sendall(b"ping")
            helper.send(packet(SUCCESS, 1))
            self.assertEqual(helper.expect(DATA, 1)["Payload"], b"ping")
            helper.send(packet(DATA, 1, b"pong"))
            self.assertEqual(client.recv(10), b"pong")
            helper.send(packet(CLOSE, 1))
            helper.expect(SUCCESS, 1)
            self.assertEqual(client.recv(10), b"")
        self.assertEqual(helper.close(), 0)
        self.assertNotListening(port)

    def test_half_close_response_after_request(self) -> None:
        """The client sends its request and half-closes: CLOSE_WRITE reaches the gateway,
        whose response still reaches the client, then its end."""
        helper, answer = self.listening(kind=PORT_FORWARD, BindHost="localhost")
        with socket.create_connection(
            ("127.0.0.1", answer["BindPort"]), timeout=DEADLINE
        ) as client:
            helper.expect(NEW, 1)
            helper.send(packet(SUCCESS, 1))
            client.sendall(b"request")
            client.shutdown(socket.SHUT_WR)
            self.assertEqual(helper.data_until(CLOSE_WRITE, 1), b"request")
            helper.send(packet(DATA, 1, b"response"), packet(CLOSE_WRITE, 1))
            response = bytearray()
            while data := client.recv(100):
                response += data
            self.assertEqual(response, b"response")
            helper.expect(CLOSE, 1)
            helper.send(packet(SUCCESS, 1))

    def test_refused_by_the_gateway(self) -> None:
        """ERROR(id) for an announced connection closes the client's socket."""
        helper, answer = self.listening(kind=PORT_FORWARD, BindHost="127.0.0.1")
        with socket.create_connection(("127.0.0.1", answer["BindPort"]), timeout=DEADLINE) as c:
            c.sendall(b"unread")
            helper.expect(NEW, 1)
            helper.send(packet(ERROR, 1))
            try:
                self.assertEqual(c.recv(10), b"")
            except ConnectionResetError:
                pass  # closed with bytes unread: a reset is how that ends
        # The next one is announced with the next id.
        with socket.create_connection(("127.0.0.1", answer["BindPort"]), timeout=DEADLINE):
            helper.expect(NEW, 2)

    def test_single_connection(self) -> None:
        """SingleConnection: the listener goes after the first accept; NO_MORE, then the
        end of that connection, end the helper with its stdin still open."""
        helper, port, client = self.accepted(SingleConnection=True)
        self.assertNotListening(port)
        helper.send(packet(SUCCESS, 1), packet(NO_MORE, 0))
        client.close()
        helper.expect(CLOSE_WRITE, 1)
        self.assertIsNone(helper.process.poll())
        helper.send(packet(CLOSE_WRITE, 1))
        helper.expect(CLOSE, 1)
        self.assertEqual(helper.wait(), 0)

    def test_no_more_connections(self) -> None:
        """NO_MORE_CONNECTIONS closes the listener; the open connection goes on, and
        its end ends the helper."""
        helper, port, client = self.accepted()
        helper.send(packet(SUCCESS, 1), packet(NO_MORE), packet(DATA, 1, b"after"))
        self.assertEqual(client.recv(10), b"after")
        self.assertNotListening(port)
        self.assertIsNone(helper.process.poll())
        client.close()
        helper.expect(CLOSE_WRITE, 1)
        helper.send(packet(CLOSE, 1))
        helper.expect(SUCCESS, 1)
        self.assertEqual(helper.wait(), 0)

    def test_end_of_stdin(self) -> None:
        """The end of stdin closes the listener and the connections; exit 0."""
        helper, port, client = self.accepted()
        helper.send(packet(SUCCESS, 1))
        self.assertEqual(helper.close(), 0)
        self.assertEqual(client.recv(10), b"")
        self.assertNotListening(port)

    def test_connection_limit(self) -> None:
        """At most 4096 connections: one more is closed at once; when one ends, the
        next is taken again."""
        limit = 4096
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard < 2 * limit + 256:
            raise SkipTest(f"needs {2 * limit + 256} open files, the limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2 * limit + 256), hard))
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        helper, answer = self.listening(kind=PORT_FORWARD, BindHost="127.0.0.1")
        address = ("127.0.0.1", answer["BindPort"])
        clients: list[socket.socket] = []

        def close_clients() -> None:
            for client in clients:
                client.close()

        self.addCleanup(close_clients)
        for i in range(1, limit + 1):
            clients.append(socket.create_connection(address, timeout=DEADLINE))
            helper.expect(NEW, i)
        with socket.create_connection(address, timeout=DEADLINE) as extra:
            self.assertEqual(extra.recv(1), b"")
        helper.send(packet(ERROR, 1))
        self.assertEqual(clients[0].recv(1), b"")  # the helper has taken the ERROR
        with socket.create_connection(address, timeout=DEADLINE):
            helper.expect(NEW, limit + 1)
        self.assertEqual(helper.close(), 0)
        self.assertIn("too many connections", helper.stderr())

    def test_x11(self) -> None:
        """X11: the first free display from 10, on the loopback at 6000 + N and as a
        Unix socket; a second helper takes the next display."""
        helper, answer = self.listening(
            kind=X11, Screen="0", AuthProtocol="MIT-MAGIC-COOKIE-1", AuthCookie="00"
        )
        display = answer["Display"]
        self.assertGreaterEqual(display, 10)
        self.assertEqual(answer["BindPort"], 6000 + display)
        with socket.create_connection(("127.0.0.1", 6000 + display), timeout=DEADLINE):
            details = cbor2.loads(helper.expect(NEW, 1)["Payload"])
            self.assertEqual(
                (details["ConnectedAddress"], details["ConnectedPort"]),
                ("127.0.0.1", 6000 + display),
            )
        path = f"/tmp/.X11-unix/X{display}"
        if os.path.exists(path):  # where /tmp/.X11-unix is writable
            with socket.socket(socket.AF_UNIX) as client:
                client.settimeout(DEADLINE)
                client.connect(path)
                details = cbor2.loads(helper.expect(NEW, 2)["Payload"])
                self.assertEqual(
                    (details["Protocol"], details["ConnectedAddress"], details["OriginatorPort"]),
                    ("unix", path, 0),
                )
        other, second = self.listening(kind=X11)
        self.assertNotEqual(second["Display"], display)
        self.assertEqual(other.close(), 0)
        self.assertEqual(helper.close(), 0)
        self.assertFalse(os.path.exists(path))


class UnixListenTests(ForwardServerTestCase):
    def setUp(self) -> None:
        self.directory = socket_dir()
        self.addCleanup(shutil.rmtree, self.directory)
        self.path = os.path.join(self.directory, "listen.sock")

    def listening(self, kind: int) -> Helper:
        helper = self.helper(setup(kind, BindHost=self.path, Protocol="unix"))
        answer = helper.expect(SUCCESS, 0)
        self.assertEqual(cbor2.loads(answer["Payload"]), {"BindPort": 0})
        return helper

    def test_socket(self) -> None:
        """The socket file is made with mode 0666 (0600 for an agent socket), carries
        connections, and is removed at the end of stdin."""
        for kind, mode in ((SOCKET_FORWARD, 0o666), (SSH_AGENT, 0o600)):
            helper = self.listening(kind)
            self.assertTrue(stat.S_ISSOCK(os.lstat(self.path).st_mode))
            self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), mode)
            with socket.socket(socket.AF_UNIX) as client:
                client.settimeout(DEADLINE)
                client.connect(self.path)
                new = helper.expect(NEW, 1)
                self.assertEqual(
                    cbor2.loads(new["Payload"]),
                    {
                        "Protocol": "unix",
                        "ConnectedAddress": self.path,
                        "ConnectedPort": 0,
                        "OriginatorAddress": "",
                        "OriginatorPort": 0,
                    },
                )
                helper.send(packet(SUCCESS, 1), packet(DATA, 1, b"agent"))
                self.assertEqual(client.recv(10), b"agent")
            self.assertEqual(helper.close(), 0)
            self.assertFalse(os.path.lexists(self.path))

    def test_removed_at_no_more_connections(self) -> None:
        helper = self.listening(SOCKET_FORWARD)
        helper.send(packet(NO_MORE))
        self.assertEqual(helper.wait(), 0)
        self.assertFalse(os.path.lexists(self.path))

    def test_removed_at_terminate(self) -> None:
        helper = self.listening(SSH_AGENT)
        helper.process.send_signal(signal.SIGTERM)
        self.assertEqual(helper.wait(), -signal.SIGTERM)
        self.assertFalse(os.path.lexists(self.path))

    def test_stale_socket_replaced(self) -> None:
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(self.path)
        stale.close()
        helper = self.listening(SOCKET_FORWARD)
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(DEADLINE)
            client.connect(self.path)
            helper.expect(NEW, 1)

    def test_refused(self) -> None:
        """A path that is no socket, or a socket some program listens on, is left alone."""
        Path(self.path).write_text("a file")
        done = run_once(setup(SOCKET_FORWARD, BindHost=self.path, Protocol="unix"))
        self.assertEqual(done.returncode, 1)
        self.assertIn(b"not a socket", cbor2.loads(done.stdout)["Payload"])
        self.assertEqual(Path(self.path).read_text(), "a file")
        os.unlink(self.path)
        self.listening_socket(family=socket.AF_UNIX, path=self.path)
        done = run_once(setup(SSH_AGENT, BindHost=self.path, Protocol="unix"))
        self.assertEqual(done.returncode, 1)
        self.assertIn(b"in use", cbor2.loads(done.stdout)["Payload"])
        self.assertTrue(stat.S_ISSOCK(os.lstat(self.path).st_mode))

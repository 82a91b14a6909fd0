"""The forwarding helper's own throughput, without the gateway around it.

``.venv/bin/python -m bench.forward_server [--size-mb 1024] [--docker-size-mb 512]``

- **host**: the helper (``guest/forward-server.c`` built with ``cc -O2``) dials
  a loopback server that sends ``--size-mb`` as fast as it can; this driver
  reads the helper's stdout as fast as it can and times first byte to last.
  Then the other way: the driver writes that much as DATA packets of 32 KiB
  (an SSH channel's usual piece), a loopback server reads it.
- **docker** (when the engine and the guest image are there): busybox
  ``httpd`` in a container of the guest image serves ``--docker-size-mb``;
  it is fetched with ``docker exec -i ... nc 127.0.0.1 8080 | wc -c`` and
  with ``docker exec -i ... /usr/libexec/conch-container/forward-server``
  driven from here; and, for the ceiling of ``docker exec``'s own stream, with
  ``docker exec ... cat`` of the file. Every time includes the ``docker exec``.

Figures are MB/s (10^6 bytes per second), one run each: a rough comparison,
noisy on a busy machine.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import cbor2

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "guest" / "forward-server.c"
IMAGE_HELPER = "/usr/libexec/conch-container/forward-server"
SETUP, SUCCESS, ERROR, DATA, NEW, CLOSE, NO_MORE, CLOSE_WRITE = range(8)
PORT_DIAL = 2
MB = 1_000_000
MIB = 1024 * 1024


def packet(kind: int, connection_id: int = 0, payload: bytes | None = None) -> bytes:
    return cbor2.dumps({"Type": kind, "ConnectionId": connection_id, "Payload": payload or None})


def dial_packets(host: str, port: int) -> bytes:
    target = {"Protocol": "tcp", "ConnectedAddress": host, "ConnectedPort": port}
    return packet(SETUP, 0, cbor2.dumps({"ConnectionType": PORT_DIAL})) + packet(
        NEW, 1, cbor2.dumps(target)
    )


def build() -> str:
    directory = tempfile.mkdtemp(prefix="forward-server-bench-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    out = os.path.join(directory, "forward-server")
    subprocess.run(["cc", "-std=c11", "-O2", "-o", out, str(SOURCE)], check=True, timeout=120)
    return out


class PacketReader:
    """Packets from a stream, parsed just enough to count DATA quickly: the
    helper writes every packet as a map of Type, ConnectionId and Payload."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()
        self.pos = 0

    def _fill(self) -> None:
        if self.pos:
            del self.buffer[: self.pos]
            self.pos = 0
        chunk = os.read(self.fd, 4 * MIB)
        if not chunk:
            raise EOFError("the helper's output ended")
        self.buffer += chunk

    def _need(self, n: int) -> None:
        while len(self.buffer) - self.pos < n:
            self._fill()

    def _uint(self) -> int:
        self._need(1)
        info = self.buffer[self.pos] & 0x1F
        self.pos += 1
        if info < 24:
            return info
        width = 1 << (info - 24)
        self._need(width)
        value = int.from_bytes(self.buffer[self.pos : self.pos + width], "big")
        self.pos += width
        return value

    def _skip(self, n: int) -> None:
        while len(self.buffer) - self.pos < n:
            n -= len(self.buffer) - self.pos
            self.pos = len(self.buffer)
            self._fill()
        self.pos += n

    def next(self) -> tuple[int, int, int]:
        """The next packet's type, id and payload length (the payload is skipped)."""
        self._need(1)
        if self.buffer[self.pos] != 0xA3:
            raise ValueError("not a packet of the helper's")
        self.pos += 1
        kind = connection = length = 0
        for _ in range(3):
            key_length = self._uint()
            self._need(key_length)
            key = bytes(self.buffer[self.pos : self.pos + key_length])
            self.pos += key_length
            self._need(1)
            if self.buffer[self.pos] == 0xF6:  # a null payload
                self.pos += 1
                continue
            major = self.buffer[self.pos] >> 5
            value = self._uint()
            if major == 2:
                self._skip(value)
                length = value
            elif key == b"Type":
                kind = value
            elif key == b"ConnectionId":
                connection = value
        return kind, connection, length


def sender_server(size: int) -> socket.socket:
    """A loopback server that sends ``size`` bytes to its first client, then closes."""
    server = socket.create_server(("127.0.0.1", 0))
    block = b"\x5a" * MIB

    def run() -> None:
        client, _ = server.accept()
        with client:
            left = size
            while left:
                n = min(left, len(block))
                client.sendall(block[:n])
                left -= n

    threading.Thread(target=run, daemon=True).start()
    return server


def receiver_server(size: int, done: threading.Event, received: list[int]) -> socket.socket:
    server = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        client, _ = server.accept()
        with client:
            buffer = bytearray(4 * MIB)
            while received[0] < size:
                n = client.recv_into(buffer)
                if not n:
                    break
                received[0] += n
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return server


def read_until_close_write(reader: PacketReader) -> tuple[int, float, float]:
    """DATA bytes of connection 1 until its CLOSE_WRITE; first and last byte times."""
    total, first = 0, 0.0
    while True:
        kind, connection, length = reader.next()
        if kind == ERROR:
            raise RuntimeError(f"the helper refused connection {connection}")
        if kind == DATA and connection == 1:
            if not total:
                first = time.perf_counter()
            total += length
        elif kind == CLOSE_WRITE and connection == 1:
            return total, first, time.perf_counter()


def host_download(binary: str, size: int) -> float:
    server = sender_server(size)
    with (
        server,
        subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE) as helper,
    ):
        assert helper.stdin is not None and helper.stdout is not None
        helper.stdin.write(dial_packets("127.0.0.1", server.getsockname()[1]))
        helper.stdin.flush()
        total, first, last = read_until_close_write(PacketReader(helper.stdout.fileno()))
        helper.stdin.close()
        helper.wait(timeout=30)
    if total != size:
        raise RuntimeError(f"{total} bytes of {size}")
    return size / (last - first) / MB


def host_upload(binary: str, size: int, piece: int = 32 * 1024) -> float:
    done = threading.Event()
    received = [0]
    server = receiver_server(size, done, received)
    with (
        server,
        subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE) as helper,
    ):
        assert helper.stdin is not None and helper.stdout is not None
        stdin = helper.stdin
        stdin.write(dial_packets("127.0.0.1", server.getsockname()[1]))
        stdin.flush()
        reader = PacketReader(helper.stdout.fileno())
        reader.next()  # the setup's answer
        if reader.next()[0] != SUCCESS:
            raise RuntimeError("the dial failed")
        one = packet(DATA, 1, b"\xa5" * piece)
        batch = one * 64
        start = time.perf_counter()
        left = size
        while left >= piece * 64:
            stdin.write(batch)
            left -= piece * 64
        while left > 0:
            stdin.write(packet(DATA, 1, b"\xa5" * min(piece, left)))
            left -= piece
        stdin.write(packet(CLOSE_WRITE, 1))
        stdin.flush()
        if not done.wait(timeout=300):
            raise RuntimeError("the server did not get everything")
        elapsed = time.perf_counter() - start
        stdin.close()
        helper.wait(timeout=30)
    if received[0] != size:
        raise RuntimeError(f"{received[0]} bytes of {size}")
    return size / elapsed / MB


def docker(*argv: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["docker", *argv], check=True, capture_output=True, **kwargs)  # type: ignore[call-overload, no-any-return]


def docker_compare(image: str, size: int) -> tuple[float, float, float]:
    """MB/s of ``docker exec`` carrying a file (``cat``: the stream's own ceiling), and of
    busybox nc and the helper fetching it from httpd in a container."""
    name = f"bench-forward-server-{uuid.uuid4().hex[:8]}"
    idle = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"
    docker("run", "-d", "--name", name, image, "/bin/sh", "-c", idle)
    try:
        serve = (
            f"mkdir -p /tmp/www && head -c {size} /dev/zero > /tmp/www/blob && "
            "busybox httpd -p 127.0.0.1:8080 -h /tmp/www"
        )
        docker("exec", name, "sh", "-c", serve)
        request = b"GET /blob HTTP/1.0\r\n\r\n"
        start = time.perf_counter()
        subprocess.run(
            f"docker exec -i {name} cat /tmp/www/blob | wc -c",
            shell=True,
            check=True,
            capture_output=True,
            timeout=600,
        )
        cat_time = time.perf_counter() - start
        start = time.perf_counter()
        fetched = subprocess.run(
            f"printf 'GET /blob HTTP/1.0\\r\\n\\r\\n' | docker exec -i {name} "
            "nc 127.0.0.1 8080 | wc -c",
            shell=True,
            check=True,
            capture_output=True,
            timeout=600,
        )
        nc_time = time.perf_counter() - start
        if int(fetched.stdout) < size:
            raise RuntimeError(f"nc fetched {fetched.stdout!r} bytes")
        start = time.perf_counter()
        with subprocess.Popen(
            ["docker", "exec", "-i", name, IMAGE_HELPER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        ) as helper:
            assert helper.stdin is not None and helper.stdout is not None
            helper.stdin.write(
                dial_packets("127.0.0.1", 8080) + packet(DATA, 1, request) + packet(CLOSE_WRITE, 1)
            )
            helper.stdin.flush()
            total, _, _ = read_until_close_write(PacketReader(helper.stdout.fileno()))
            helper_time = time.perf_counter() - start
            helper.stdin.close()
            helper.wait(timeout=30)
        if total < size:
            raise RuntimeError(f"the helper fetched {total} bytes")
        return size / cat_time / MB, size / nc_time / MB, size / helper_time / MB
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="host transfer (MiB)")
    parser.add_argument("--docker-size-mb", type=int, default=512, help="container fetch (MiB)")
    parser.add_argument(
        "--image",
        default=os.environ.get("CONCH_CONTAINER_GUEST_IMAGE", "conch-container/guest:latest"),
    )
    options = parser.parse_args(argv)
    binary = build()
    size = options.size_mb * MIB
    download = host_download(binary, size)
    print(f"host, socket -> helper -> stdout, {options.size_mb} MiB: {download:.0f} MB/s")
    upload = host_upload(binary, size)
    print(f"host, stdin -> helper -> socket, {options.size_mb} MiB: {upload:.0f} MB/s")
    if shutil.which("docker") is None:
        print("docker: no docker command line, skipped")
        return 0
    cat, nc, helper = docker_compare(options.image, options.docker_size_mb * MIB)
    print(f"docker exec, cat of the file (the stream's ceiling): {cat:.0f} MB/s")
    print(f"docker exec, busybox nc, {options.docker_size_mb} MiB: {nc:.0f} MB/s")
    print(f"docker exec, forward-server, {options.docker_size_mb} MiB: {helper:.0f} MB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

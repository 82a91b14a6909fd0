"""Timing one client process: time to first output byte, download and upload rate.

The child's stdout is a pipe read unbuffered, so the first byte is seen the
moment the client writes it; a download is spliced into /dev/null, so the
reader costs next to no CPU. Every wait is bounded.
"""

from __future__ import annotations

import fcntl
import math
import os
import select
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.procs import BenchError

MIB = 1 << 20
_CHUNK = 1 << 20
_PIPE_SIZE = 1 << 20


@dataclass(frozen=True)
class Transfer:
    """One download: bytes received, and when the first and last bytes came."""

    total: int
    first_chunk: int
    started: float
    first_byte: float
    finished: float

    @property
    def rate_mib_s(self) -> float:
        """MB/s (2**20 bytes) from the first byte to the last.

        Connection set-up (and, for the gateway, container creation) is left
        out: it is what the latency benchmark measures. The bytes of the first
        read are not counted, as they arrived before the clock started.
        """
        elapsed = self.finished - self.first_byte
        if elapsed <= 0:
            raise BenchError("download too short to time; use a larger --size-mb")
        return (self.total - self.first_chunk) / MIB / elapsed


def _spawn(argv: Sequence[str], stdin: int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    try:
        process = subprocess.Popen(
            list(argv),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
    except OSError as e:
        raise BenchError(f"cannot start {argv[0]}: {e}") from None
    assert process.stdout is not None
    try:
        # Fewer, larger reads: the reader must never be what limits the rate.
        fcntl.fcntl(process.stdout.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    except OSError:
        pass
    return process


class _Reader:
    """Reads a child's stdout and stderr with select, up to a deadline."""

    def __init__(self, name: str, process: subprocess.Popen[bytes], deadline: float) -> None:
        assert process.stdout is not None and process.stderr is not None
        self.name = name
        self.process = process
        self.deadline = deadline
        self.err = bytearray()
        self._out_fd = process.stdout.fileno()
        self._err_fd = process.stderr.fileno()
        self._open = {self._out_fd, self._err_fd}
        self._splice = True

    def next_stdout(self) -> bytes:
        """The next stdout chunk, or ``b""`` at end of stdout."""
        if not self._wait_for_stdout():
            return b""
        data = os.read(self._out_fd, _CHUNK)
        if not data:
            self._open.discard(self._out_fd)
        return data

    def skip_stdout(self, sink: int) -> int:
        """Move the next stdout chunk to ``sink`` and return its size; 0 at end of stdout.

        ``splice`` moves the pages without copying them through this process,
        which shares the machine's cores with the client and the server.
        """
        if not self._wait_for_stdout():
            return 0
        moved = self._move(sink)
        if not moved:
            self._open.discard(self._out_fd)
        return moved

    def _move(self, sink: int) -> int:
        if self._splice:
            try:
                return os.splice(self._out_fd, sink, _CHUNK)
            except OSError:
                self._splice = False  # no splice for this pair: plain reads
        return len(os.read(self._out_fd, _CHUNK))

    def finish(self) -> int:
        """Drain stdout and stderr, wait for the exit status (bounded), and return it."""
        while self.next_stdout():
            pass
        while self._err_fd in self._open:
            self._select()
        remaining = max(0.1, self.deadline - time.perf_counter())
        try:
            return self.process.wait(remaining)
        except subprocess.TimeoutExpired:
            raise BenchError(self.describe("did not exit")) from None

    def _wait_for_stdout(self) -> bool:
        """Wait until stdout is readable (keeping stderr); False once stdout has ended."""
        while self._out_fd in self._open:
            if self._out_fd in self._select():
                return True
        return False

    def _select(self) -> list[int]:
        """Wait for a readable pipe (bounded); stderr is read here, stdout left to the caller."""
        remaining = self.deadline - time.perf_counter()
        if remaining <= 0:
            raise BenchError(self.describe("timed out"))
        ready, _, _ = select.select(list(self._open), [], [], remaining)
        if self._err_fd in ready:
            data = os.read(self._err_fd, _CHUNK)
            if data:
                self.err += data
            else:
                self._open.discard(self._err_fd)
        return ready

    def describe(self, what: str) -> str:
        """An error message naming the client, with what it printed on stderr."""
        err = self.err.decode(errors="replace").strip() or "(nothing on stderr)"
        return f"{self.name} {what}: {err}"

    def close(self) -> None:
        """Kill the child if it still runs, and close the pipes."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5.0)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None and not stream.closed:
                stream.close()


def time_to_first_byte(argv: Sequence[str], expected: bytes, timeout: float) -> float:
    """Seconds from starting ``argv`` to its first stdout byte.

    The process is then run to completion and must have printed exactly
    ``expected`` and exited with 0, or the round is an error.
    """
    started = time.perf_counter()
    reader = _Reader(argv[0], _spawn(argv), started + timeout)
    try:
        first = reader.next_stdout()
        first_at = time.perf_counter()
        output = bytearray(first)
        while chunk := reader.next_stdout():
            output += chunk
        status = reader.finish()
        if status != 0 or bytes(output) != expected:
            raise BenchError(
                reader.describe(f"exited with {status} after printing {bytes(output)!r}")
            )
        return first_at - started
    finally:
        reader.close()


def download(argv: Sequence[str], expected_size: int, timeout: float) -> Transfer:
    """Run ``argv``, discard its stdout (into /dev/null), and time the transfer."""
    started = time.perf_counter()
    reader = _Reader(argv[0], _spawn(argv), started + timeout)
    sink = os.open(os.devnull, os.O_WRONLY)
    try:
        first = reader.skip_stdout(sink)
        first_at = time.perf_counter()
        total = first
        while moved := reader.skip_stdout(sink):
            total += moved
        finished = time.perf_counter()
        status = reader.finish()
        if status != 0 or total != expected_size:
            raise BenchError(
                reader.describe(f"exited with {status} after {total} of {expected_size} bytes")
            )
        return Transfer(total, first, started, first_at, finished)
    finally:
        os.close(sink)
        reader.close()


def upload(argv: Sequence[str], size: int, timeout: float) -> Transfer:
    """Run ``argv`` with ``size`` zero bytes on its stdin, and time the transfer.

    The clock starts once the first MiB was taken from the pipe (the client
    is connected and reading) and stops when the client exits, which it does
    once the program at the other end read everything and ended. The program
    must print nothing and exit with 0.
    """
    started = time.perf_counter()
    process = _spawn(argv, stdin=subprocess.PIPE)
    reader = _Reader(argv[0], process, started + timeout)
    assert process.stdin is not None
    stdin = process.stdin.fileno()
    os.set_blocking(stdin, False)
    chunk = memoryview(bytes(_CHUNK))
    sent = 0
    first_at: float | None = None
    try:
        while sent < size:
            remaining = reader.deadline - time.perf_counter()
            if remaining <= 0:
                raise BenchError(reader.describe(f"timed out after {sent} of {size} bytes"))
            _, writable, _ = select.select([], [stdin], [], remaining)
            if not writable:
                continue
            try:
                sent += os.write(stdin, chunk[: min(_CHUNK, size - sent)])
            except BrokenPipeError:
                raise BenchError(reader.describe(f"stopped reading after {sent} bytes")) from None
            if first_at is None and sent >= _CHUNK:
                first_at = time.perf_counter()
        process.stdin.close()
        status = reader.finish()
        finished = time.perf_counter()
        if status != 0:
            raise BenchError(reader.describe(f"exited with {status} after {sent} bytes"))
        first = first_at if first_at is not None else started
        return Transfer(sent, min(_CHUNK, sent), started, first, finished)
    finally:
        reader.close()


def p95(samples: Sequence[float]) -> float:
    """The 95th percentile by the nearest-rank method (the 19th of 20)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def median(samples: Sequence[float]) -> float:
    """The median of ``samples``."""
    return statistics.median(samples)

"""Starting, waiting for and stopping the servers under test.

Every server runs in its own process group (so a Ctrl-C in the terminal does
not reach it before the benchmark has stopped it in order) and is stopped with
SIGTERM, then SIGKILL after a bounded wait.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"


class BenchError(Exception):
    """A benchmark step failed; the message says what and why, for a person."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def accepts_connections(port: int) -> bool:
    """Whether something accepts TCP connections on loopback ``port``."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1.0):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file, indented, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "    (no log)"
    picked = text.rstrip().splitlines()[-lines:] or ["(empty log)"]
    return "\n".join("    " + line for line in picked)


@dataclass
class Server:
    """A server process started by the benchmark, with its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(
        cls, name: str, argv: Sequence[str], log_path: Path, cwd: Path | None = None
    ) -> Server:
        """Start ``argv`` with stdout and stderr going to ``log_path``."""
        with log_path.open("wb") as log:
            try:
                process = subprocess.Popen(
                    list(argv),
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as e:
                raise BenchError(f"{name}: cannot start {argv[0]}: {e}") from None
        return cls(name, process, log_path)

    def wait_for_port(self, port: int, timeout: float) -> None:
        """Return once ``port`` accepts connections; raise if the server dies or is late."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with status {self.process.returncode} before "
                    f"listening on {LOOPBACK}:{port}; its log ends with:\n{tail(self.log_path)}"
                )
            if accepts_connections(port):
                return
            time.sleep(0.1)
        raise BenchError(
            f"{self.name} did not listen on {LOOPBACK}:{port} within {timeout:.0f} s; "
            f"its log ends with:\n{tail(self.log_path)}"
        )

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; the exit status."""
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(5.0)
        return self.process.returncode

    def _signal(self, signum: int) -> None:
        # The whole group: twistd or sshd may have children of their own.
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass


def run_quietly(argv: Sequence[str], timeout: float = 60.0) -> str:
    """Run a short command to completion and return its stdout; raise on failure."""
    try:
        done = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BenchError(f"{argv[0]} failed: {e}") from None
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()
        raise BenchError(f"{' '.join(argv[:3])} exited with {done.returncode}: {err}")
    return done.stdout.decode(errors="replace")


def only_benchmark(argv: Sequence[str]) -> str | None:
    """The benchmark ``--only`` names in ``argv``, if any (for choosing an entry point)."""
    for index, arg in enumerate(argv):
        if arg == "--only" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--only="):
            return arg.partition("=")[2]
    return None


def exit_status(run: Callable[[], int]) -> int:
    """``run()``'s status; 2 when a step failed (said on stderr), 130 on Ctrl-C."""
    try:
        return run()
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; everything started has been stopped", file=sys.stderr)
        return 130

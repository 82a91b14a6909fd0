"""``./bench/run --only forwarding``: a ``-L`` tunnel against the session data path.

One gateway with ``security.forwarding.forwardingMode: enable`` and one SSH
connection to it (an OpenSSH ControlMaster). In the user's container, busybox
``httpd`` serves a file of ``--size-mb`` zeros on the container's loopback.
Interleaved rounds then download that file two ways through the same
connection and container:

- **session**: ``ssh 'cat /tmp/www/blob'``, the session data path;
- **tunnel**: ``curl`` through ``ssh -L`` to the web server, the forwarded
  data path (a dialler in the container, a ``direct-tcpip`` channel);

each timed from its first byte to its last, as the throughput benchmark
does, and reported as medians and the ratio tunnel/session (target at least
0.8). Then ``--connections`` clients (100) fetch a 1 MiB file through the
tunnel at the same moment: how many complete, and how long all took.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench import engine, servers
from bench.measure import MIB, download, median
from bench.procs import BenchError, exit_status, free_port, only_benchmark
from bench.report import GATEWAY_LABEL
from bench.sshclient import Client

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.8
CONNECTIONS = 100
#: The web server in the container (a file of zeros of N MiB, and a small
#: one), in the foreground: the master connection's own session, for as long
#: as the benchmark runs.
SERVE = (
    "mkdir -p /tmp/www && dd if=/dev/zero of=/tmp/www/blob bs=1048576 count={size} 2>/dev/null"
    " && dd if=/dev/zero of=/tmp/www/small bs=1048576 count=1 2>/dev/null"
    " && exec busybox httpd -f -p 127.0.0.1:8080 -h /tmp/www"
)
#: How long the web server may take to answer through the tunnel.
SERVE_TIMEOUT = 60.0


def requested(argv: Sequence[str]) -> bool:
    """Whether ``argv`` asks for this benchmark."""
    return only_benchmark(argv) == "forwarding"


@dataclass(frozen=True)
class Settings:
    rounds: int
    size_mb: int
    connections: int
    python: str
    image: str


def parse_args(argv: Sequence[str]) -> Settings:
    parser = argparse.ArgumentParser(
        prog="bench/run --only forwarding",
        description="Download rate through an ssh -L tunnel and through a session, side by "
        "side on one connection, then many tunnelled connections at once.",
    )
    parser.add_argument("--only", choices=["forwarding"], required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    parser.add_argument("--quick", action="store_true", help="1 round of 50 MB, 20 connections")
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args(list(argv))
    if min(args.rounds, args.size_mb, args.connections) < 1:
        parser.error("--rounds, --size-mb and --connections must be at least 1")
    if args.quick:
        args.rounds, args.size_mb, args.connections = 1, 50, 20
    image = os.environ.get("CONCH_CONTAINER_GUEST_IMAGE", "conch-container/guest:latest")
    return Settings(args.rounds, args.size_mb, args.connections, args.python, image)


class Tunnel:
    """One OpenSSH connection (a ControlMaster) to the gateway, and a ``-L`` on it."""

    def __init__(self, client: Client, control: Path, log: Path) -> None:
        self._client = client
        self._control = str(control)
        self._log = str(log)
        self.port = free_port()

    def argv(self, *options: str, command: str = "") -> list[str]:
        base = self._client.argv(command, force_cipher=True)
        # Options go before the destination, the command after it.
        return [*base[:-2], "-S", self._control, *options, *base[-2:]]

    def open(self, size_mb: int) -> None:
        """Connect (in the background) with the tunnel, serving the files; wait until
        they can be fetched through it."""
        # The master outlives this call: its output must not go to a pipe that
        # closes when the call returns (a later write would kill it).
        argv = self.argv(
            "-M", "-f", "-L", f"127.0.0.1:{self.port}:127.0.0.1:8080",
            command=SERVE.format(size=size_mb),
        )  # fmt: skip
        with open(self._log, "ab") as log:
            master = subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=120
            )
        if master.returncode != 0:
            raise BenchError(f"the ssh master exited with {master.returncode}; see {self._log}")
        deadline = time.monotonic() + SERVE_TIMEOUT
        while time.monotonic() < deadline:
            probe = subprocess.run(
                ["curl", "--silent", "--fail", "--max-time", "5", self.url("small")],
                capture_output=True,
            )
            if probe.returncode == 0 and len(probe.stdout) == MIB:
                return
            time.sleep(0.2)
        raise BenchError(f"the web server in the container did not answer within {SERVE_TIMEOUT} s")

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        subprocess.run(self.argv("-O", "exit"), capture_output=True, timeout=30)


def fetch_all(url: str, count: int) -> tuple[int, float]:
    """``count`` curls of ``url`` started together; how many got 1 MiB, and the wall time."""
    ok = 0
    lock = threading.Lock()

    def one() -> None:
        nonlocal ok
        done = subprocess.run(
            ["curl", "--silent", "--fail", "--max-time", "120", url],
            capture_output=True,
            timeout=150,
        )
        if done.returncode == 0 and len(done.stdout) == MIB:
            with lock:
                ok += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=one) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ok, time.perf_counter() - started


def measure(settings: Settings, work: servers.Workspace) -> list[str]:
    port = free_port()
    extra: dict[str, object] = {"security": {"forwarding": {"forwardingMode": "enable"}}}
    config = servers.gateway_config(work, settings.image, port, extra=extra)
    size = settings.size_mb * MIB
    lines: list[str] = []
    with ExitStack() as stack:
        stack.enter_context(
            servers.running_gateway(
                "gateway (twistd containerssh)", settings.python, config, port,
                work.root / "gateway.log", ROOT,
            )
        )  # fmt: skip
        client = work.client("gateway", port, servers.GATEWAY_USER)
        tunnel = Tunnel(client, work.root / "cm", work.root / "ssh-master.log")
        tunnel.open(settings.size_mb)
        stack.callback(tunnel.close)
        commands = {
            "session": tunnel.argv(command="cat /tmp/www/blob"),
            "tunnel": ["curl", "--silent", "--fail", tunnel.url("blob")],
        }  # fmt: skip
        rates: dict[str, list[float]] = {key: [] for key in commands}
        timeout = 60.0 + settings.size_mb / 5
        for n in range(1 + settings.rounds):
            print("." if n else "w", end="", flush=True, file=sys.stderr)
            for key, argv in commands.items():
                rate = download(argv, size, timeout).rate_mib_s
                if n:
                    rates[key].append(rate)
        print(file=sys.stderr)
        session, tunnelled = median(rates["session"]), median(rates["tunnel"])
        ratio = tunnelled / session
        verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
        lines += [
            f"download, {settings.size_mb} MB from the container, median of {settings.rounds}",
            f"  session (ssh 'cat file')           {session:8.1f} MB/s",
            f"  tunnel (curl through ssh -L)       {tunnelled:8.1f} MB/s",
            f"  ratio tunnel/session               {ratio:8.2f}   (target >= {TARGET_RATIO}) "
            f"{verdict}",
        ]
        ok, took = fetch_all(tunnel.url("small"), settings.connections)
        verdict = "PASS" if ok == settings.connections else "FAIL"
        lines.append(
            f"{settings.connections} tunnelled connections at once (1 MiB each): "
            f"{ok}/{settings.connections} complete in {took:.1f} s {verdict}"
        )
    left = engine.containers_labelled(GATEWAY_LABEL)
    lines.append(f"containers labelled {GATEWAY_LABEL} left behind: {len(left) or 'none'}")
    return lines


def main(argv: Sequence[str]) -> int:
    settings = parse_args(argv)

    def run() -> int:
        from bench.main import workspace

        engine.check_image(settings.image)
        with workspace() as work:
            lines = measure(settings, work)
        print("\n".join(lines))
        return 1 if any(line.endswith("FAIL") for line in lines) else 0

    try:
        return exit_status(run)
    finally:
        engine.remove_labelled(GATEWAY_LABEL)

"""``./bench/run --only concurrency``: session set-up alone and under a burst.

Two measurements, each for the gateway in ``connection`` mode (one container
per SSH connection), in ``session`` mode (one container per session channel)
and for ``docker run --rm`` on the same engine and image:

- **set-up time**: interleaved rounds of one client at a time, from starting
  the client to the first byte of ``echo hello`` (TCP connect, key exchange,
  authentication, a fresh container, the program, the output back); median
  and p95;
- **a burst**: :data:`BURST` clients started at the same moment. Reported:
  how many printed ``hello`` and exited 0, the time until the last one had
  printed, each session's set-up time under that load (median, p95), and
  each gateway's peak resident memory (``VmHWM`` of the ``twistd`` process,
  which covers the whole run) beside its resident memory just before the
  burst (``VmRSS``), and the CPU time the gateway used during the burst.

Every gateway is stopped with SIGTERM at the end; afterwards no container
labelled for the benchmark user may remain.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bench import engine, servers
from bench.measure import median, p95, time_to_first_byte
from bench.procs import BenchError, Server, exit_status, free_port
from bench.report import GATEWAY_LABEL, Series, machine_facts
from bench.sshclient import Client

if TYPE_CHECKING:
    from bench.main import Settings

ROOT = Path(__file__).resolve().parent.parent
#: Sessions opened at once in the burst.
BURST = 50
#: How long a whole burst may take before the stragglers count as failed.
BURST_TIMEOUT = 240.0
ROUND_TIMEOUT = 30.0
EXPECTED = b"hello\n"
TARGETS = {
    "connection": "gateway, connection mode",
    "session": "gateway, session mode",
    "docker": "docker run --rm",
}
_WIDTH = 28
BURST_COLUMNS = (
    "succeeded", "all printed", "median", "p95", "peak memory", "RSS before", "gateway CPU",
)  # fmt: skip


def progress(text: str, end: str = "\n") -> None:
    print(text, end=end, file=sys.stderr, flush=True)


# -- the gateways


@dataclass(frozen=True)
class Gateway:
    """A running gateway: how to reach it, and its process for memory readings."""

    client: Client
    pid: int


def _mode_config(work: servers.Workspace, image: str, port: int, mode: str) -> Path:
    """The benchmark's gateway config (``servers.gateway_config``) with ``execution.mode``."""
    import yaml  # the project's own dependency: only in its virtualenv

    path = servers.gateway_config(work, image, port)
    config = yaml.safe_load(path.read_text())
    config["docker"]["execution"]["mode"] = mode
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def gateway(work: servers.Workspace, python: str, image: str, mode: str) -> Iterator[Gateway]:
    """``twistd containerssh`` in ``mode``, from the project root, in a directory of its own."""
    own = servers.Workspace(work.root / f"gateway-{mode}", work.client_key, work.known_hosts)
    own.root.mkdir()
    port = free_port()
    config = _mode_config(own, image, port, mode)
    argv = [python, "-c", "from twisted.scripts.twistd import run; run()",
            "--nodaemon", "--pidfile=", "containerssh", "-c", str(config)]  # fmt: skip
    server = Server.start(f"gateway ({mode} mode)", argv, own.root / "gateway.log", cwd=ROOT)
    try:
        server.wait_for_port(port, timeout=30.0)
        yield Gateway(own.client("gateway", port, servers.GATEWAY_USER), server.process.pid)
    finally:
        # The gateway removes its containers while shutting down: give it time.
        server.stop(timeout=30.0)


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time the process has used (``/proc/PID/stat``)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; utime and stime follow it.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kib(pid: int, field_name: str) -> int | None:
    """A ``Vm*`` line of ``/proc/PID/status`` in KiB (``VmHWM``: the peak resident set)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return None


# -- the burst


@dataclass
class Burst:
    """What happened when :data:`BURST` clients started at the same moment."""

    sessions: int
    succeeded: int = 0
    #: Seconds from the first client's start until the last one had printed (all succeeded).
    all_printed: float | None = None
    #: Each successful session's time to its first output byte, in seconds.
    setup: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    rss_before_kib: int | None = None
    peak_kib: int | None = None
    #: CPU seconds the gateway process used during the burst.
    gateway_cpu: float | None = None

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "sessions": self.sessions,
            "succeeded": self.succeeded,
            "all_printed_s": self.all_printed,
            "setup_s": self.setup,
            "errors": self.errors,
            "rss_before_kib": self.rss_before_kib,
            "peak_rss_kib": self.peak_kib,
            "gateway_cpu_s": self.gateway_cpu,
        }
        if self.setup:
            out["setup_median_s"] = median(self.setup)
            out["setup_p95_s"] = p95(self.setup)
        return out


class _Child:
    """One client of the burst: its pipes, its output, when it first printed."""

    def __init__(self, argv: list[str]) -> None:
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self.out_fd = self.process.stdout.fileno()
        self.err_fd = self.process.stderr.fileno()
        self.output = bytearray()
        self.err = bytearray()
        self.first_byte: float | None = None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10.0)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def verdict(self) -> str | None:
        """None if it printed exactly ``hello`` and exited 0, or what went wrong."""
        status = self.process.poll()
        if status == 0 and bytes(self.output) == EXPECTED:
            return None
        err = self.err.decode(errors="replace").strip() or "(nothing on stderr)"
        return f"exit {status}, printed {bytes(self.output)!r}: {err}"


def burst(argv: list[str], sessions: int, timeout: float = BURST_TIMEOUT) -> Burst:
    """Start ``sessions`` copies of ``argv`` at once and follow them until all ended."""
    result = Burst(sessions)
    started = time.perf_counter()
    deadline = started + timeout
    children: list[_Child] = []
    try:
        for _ in range(sessions):
            children.append(_Child(argv))
        owner = {c.out_fd: c for c in children} | {c.err_fd: c for c in children}
        open_fds = set(owner)
        while open_fds:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            ready, _, _ = select.select(list(open_fds), [], [], remaining)
            now = time.perf_counter()
            for fd in ready:
                child = owner[fd]
                data = os.read(fd, 65536)
                if not data:
                    open_fds.discard(fd)
                elif fd == child.out_fd:
                    if child.first_byte is None:
                        child.first_byte = now - started
                    child.output += data
                else:
                    child.err += data
        for child in children:
            try:
                child.process.wait(max(0.1, deadline - time.perf_counter()))
            except subprocess.TimeoutExpired:
                pass
        errors = []
        for child in children:
            problem = child.verdict()
            if problem is None:
                result.succeeded += 1
                assert child.first_byte is not None
                result.setup.append(child.first_byte)
            else:
                errors.append(problem)
        result.errors = sorted(set(errors))[:5]
        if result.succeeded == sessions:
            result.all_printed = max(result.setup)
    finally:
        for child in children:
            child.close()
    return result


# -- the run


@dataclass
class ConcurrencyReport:
    machine: dict[str, str]
    settings: dict[str, object]
    setup: dict[str, Series] = field(default_factory=dict)
    bursts: dict[str, Burst] = field(default_factory=dict)
    leftover_containers: list[str] | None = None

    def failed(self) -> bool:
        return (
            any(s.error for s in self.setup.values())
            or any(b.succeeded < b.sessions for b in self.bursts.values())
            or bool(self.leftover_containers)
        )

    def as_json(self) -> dict[str, object]:
        return {
            "machine": self.machine,
            "settings": self.settings,
            "setup_s": {k: s.as_json() for k, s in self.setup.items()},
            "burst": {k: b.as_json() for k, b in self.bursts.items()},
            "leftover_containers": self.leftover_containers,
        }


def setup_rounds(commands: dict[str, list[str]], rounds: int) -> dict[str, Series]:
    """Interleaved rounds (after one warm-up round) of one client at a time per target."""
    series = {key: Series() for key in commands}
    for n in range(1 + rounds):
        progress("." if n else "w", end="")
        for key, argv in commands.items():
            s = series[key]
            if s.error is not None:
                continue
            try:
                value = time_to_first_byte(argv, EXPECTED, ROUND_TIMEOUT)
            except BenchError as e:
                s.error = str(e)
                continue
            if n:
                s.samples.append(value)
    progress("")
    return series


def measure(settings: Settings, work: servers.Workspace, run_id: str) -> ConcurrencyReport:
    """Start both gateways, measure, stop them; every container is gone on return."""
    report = ConcurrencyReport(
        machine_facts(),
        {"rounds": settings.latency_rounds, "burst": BURST, "image": settings.image},
    )
    with ExitStack() as stack:
        gateways: dict[str, Gateway] = {}
        commands: dict[str, list[str]] = {}
        for mode in ("connection", "session"):
            progress(f"==> starting the gateway in {mode} mode")
            try:
                started = stack.enter_context(gateway(work, settings.python, settings.image, mode))
            except BenchError as e:
                report.setup[mode] = Series(error=str(e))
                continue
            gateways[mode] = started
            commands[mode] = started.client.argv("echo hello")
        commands["docker"] = engine.docker_run_argv(settings.image, run_id, ["echo", "hello"])
        progress(f"==> session set-up: {settings.latency_rounds} rounds")
        report.setup.update(setup_rounds(commands, settings.latency_rounds))
        for key in TARGETS:
            if key not in commands:
                continue
            progress(f"==> {BURST} sessions at once: {TARGETS[key]}")
            pid = gateways[key].pid if key in gateways else None
            rss = memory_kib(pid, "VmRSS") if pid else None
            cpu = cpu_seconds(pid) if pid else None
            result = burst(commands[key], BURST)
            result.rss_before_kib = rss
            if pid:
                result.peak_kib = memory_kib(pid, "VmHWM")
                after = cpu_seconds(pid)
                if cpu is not None and after is not None:
                    result.gateway_cpu = after - cpu
            report.bursts[key] = result
        progress("==> stopping the gateways")
    report.leftover_containers = engine.containers_labelled(GATEWAY_LABEL)
    return report


# -- output


def _row(label: str, *cells: str) -> str:
    return f"  {label:<{_WIDTH}}" + "".join(f"{c:>13}" for c in cells)


def _mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.0f} MiB"


def render(report: ConcurrencyReport) -> str:
    facts = report.machine
    rounds = report.settings["rounds"]
    lines = [
        f"{facts['cores']} cores, {facts['cpu']}, Linux {facts['kernel']}; "
        f"docker engine {facts['docker engine']}, openssh {facts['openssh']}",
        f"session set-up, one at a time ({rounds} rounds, time to first output byte)",
        _row("", "median", "p95"),
    ]
    for key, label in TARGETS.items():
        s = report.setup.get(key)
        if s is None:
            continue
        if not s.ok():
            lines.append(_row(label, "not measured"))
            continue
        lines.append(_row(label, f"{median(s.samples):.3f}s", f"{p95(s.samples):.3f}s"))
    docker = report.setup.get("docker")
    for key in ("connection", "session"):
        s = report.setup.get(key)
        if s is not None and docker is not None and s.ok() and docker.ok():
            ratio = median(s.samples) / median(docker.samples)
            lines.append(_row(f"ratio {key}/docker-run", f"{ratio:.2f}x"))
    lines += [
        f"{BURST} sessions opened at once",
        _row("", *BURST_COLUMNS),
    ]
    for key, label in TARGETS.items():
        b = report.bursts.get(key)
        if b is None:
            continue
        printed = "n/a" if b.all_printed is None else f"{b.all_printed:.2f}s"
        med = f"{median(b.setup):.2f}s" if b.setup else "n/a"
        high = f"{p95(b.setup):.2f}s" if b.setup else "n/a"
        gateway_only = ("", "", "")
        if key != "docker":
            cpu = "n/a" if b.gateway_cpu is None else f"{b.gateway_cpu:.2f}s"
            gateway_only = (_mib(b.peak_kib), _mib(b.rss_before_kib), cpu)
        lines.append(_row(label, f"{b.succeeded}/{b.sessions}", printed, med, high, *gateway_only))
    left = report.leftover_containers
    found = "not checked" if left is None else (f"{len(left)} (removed now)" if left else "none")
    lines.append(f"containers labelled {GATEWAY_LABEL} left behind: {found}")
    errors = [f"  {key} set-up: {s.error}" for key, s in report.setup.items() if s.error]
    for key, b in report.bursts.items():
        errors += [f"  {key} burst: {e}" for e in b.errors]
    if errors:
        lines += ["errors:", *errors]
    return "\n".join(lines)


def main(
    settings: Settings, workspace: Callable[[], AbstractContextManager[servers.Workspace]]
) -> int:
    """Run the concurrency benchmark; the exit status ``bench/run`` returns."""
    run_id = os.urandom(6).hex()

    def run() -> int:
        engine.check_image(settings.image)
        with workspace() as work:
            report = measure(settings, work, run_id)
        print(render(report))
        if settings.json_path is not None:
            settings.json_path.write_text(json.dumps(report.as_json(), indent=2) + "\n")
        return 1 if report.failed() else 0

    try:
        return exit_status(run)
    finally:
        engine.remove_labelled(GATEWAY_LABEL, f"{engine.BENCH_LABEL}={run_id}")

"""What the soak and churn benchmarks share: options, the gateway, its process, the reactor.

``./bench/run --only soak`` and ``./bench/run --only churn`` come here (see
:func:`requested`). Both start one gateway as the other benchmarks do (same
configuration, same guest image, same client key), drive it with the
in-process Conch client of ``bench/conchclient.py``, and read the gateway's
process from ``/proc`` while they do: CPU time (``utime + stime`` of
``/proc/PID/stat``), resident memory (``VmRSS`` of ``/proc/PID/status``),
threads, and open file descriptors (the entries of ``/proc/PID/fd``, told
apart into TCP sockets, Unix sockets and the rest with ``/proc/PID/net``).

Containers are counted by label, as the other benchmarks do
(``containerssh_username=bench``), narrowed to this gateway's own
``conch_container_instance`` label when its instance id can be read, so that
another gateway on the same engine is never counted or removed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sys
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from bench import engine, servers
from bench.concurrency import cpu_seconds, memory_kib
from bench.procs import BenchError, Server, exit_status, free_port, run_quietly
from bench.report import GATEWAY_LABEL
from bench.sshclient import Client

ROOT = Path(__file__).resolve().parent.parent
INSTANCE_LABEL = "conch_container_instance"
BENCHMARKS = ("soak", "churn")


def progress(text: str, end: str = "\n") -> None:
    print(text, end=end, file=sys.stderr, flush=True)


# -- options


@dataclass(frozen=True)
class Settings:
    """What to run, from the command line."""

    benchmark: str
    sessions: int
    minutes: int
    interval_ms: int
    ramp: int
    cycles: int
    warmup: int
    sample_every: int
    mode: str
    python: str
    image: str
    json_path: Path | None

    def as_json(self) -> dict[str, object]:
        common: dict[str, object] = {"benchmark": self.benchmark, "mode": self.mode,
                                     "image": self.image}  # fmt: skip
        if self.benchmark == "soak":
            return common | {"sessions": self.sessions, "minutes": self.minutes,
                             "interval_ms": self.interval_ms, "ramp": self.ramp}  # fmt: skip
        return common | {"cycles": self.cycles, "warmup": self.warmup,
                         "sample_every": self.sample_every}  # fmt: skip


def requested(argv: Sequence[str]) -> str | None:
    """``soak`` or ``churn`` when the command line asks for one of them (``--only``)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--only")
    known, _ = pre.parse_known_args(list(argv))
    return known.only if known.only in BENCHMARKS else None


def parse_args(argv: Sequence[str]) -> Settings:
    parser = argparse.ArgumentParser(
        prog="bench/run --only soak|churn",
        description="Soak: many interactive sessions through a pty for minutes, timing the "
        "echo of every keystroke. Churn: sequential connect-exec-disconnect cycles. Both "
        "follow the gateway's CPU, memory and file descriptors (see docs/performance.md).",
    )
    parser.add_argument("--only", choices=BENCHMARKS, required=True)
    parser.add_argument("--quick", action="store_true",
                        help="soak: 20 sessions for 1 minute; churn: 50 cycles")  # fmt: skip
    parser.add_argument("--sessions", type=int, help="soak: concurrent sessions (default 200)")
    parser.add_argument("--minutes", type=int, help="soak: measured minutes (default 10)")
    parser.add_argument("--interval-ms", type=int, default=200,
                        help="soak: a key per session every N ms (default 200)")  # fmt: skip
    parser.add_argument("--ramp", type=int, default=10,
                        help="soak: sessions opened at the same time (default 10)")  # fmt: skip
    parser.add_argument("--cycles", type=int, help="churn: measured cycles (default 2000)")
    parser.add_argument("--warmup", type=int, default=20,
                        help="churn: cycles before the baseline reading (default 20)")  # fmt: skip
    parser.add_argument("--sample-every", type=int,
                        help="churn: read the gateway every this many cycles "
                        "(default a tenth of --cycles)")  # fmt: skip
    parser.add_argument("--mode", choices=["connection", "session"], default="connection",
                        help="the gateway's execution mode (default connection)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the gateway")
    args = parser.parse_args(list(argv))
    quick = args.quick
    cycles = args.cycles or (50 if quick else 2000)
    settings = Settings(
        benchmark=args.only,
        sessions=args.sessions or (20 if quick else 200),
        minutes=args.minutes or (1 if quick else 10),
        interval_ms=args.interval_ms,
        ramp=args.ramp,
        cycles=cycles,
        warmup=args.warmup,
        sample_every=args.sample_every or max(1, cycles // 10),
        mode=args.mode,
        python=args.python,
        image=os.environ.get("CONCH_CONTAINER_GUEST_IMAGE", "conch-container/guest:latest"),
        json_path=args.json,
    )
    if min(settings.sessions, settings.minutes, settings.interval_ms, settings.ramp,
           settings.cycles, settings.sample_every) < 1 or settings.warmup < 0:  # fmt: skip
        parser.error("counts and durations must be at least 1 (--warmup at least 0)")
    return settings


# -- the gateway and its process


@dataclass
class Gateway:
    """The gateway under test: how to reach it, its process, its containers' label."""

    client: Client
    server: Server
    root: Path
    #: Its ``conch_container_instance`` label value, or None if it could not be read.
    instance_id: str | None

    @property
    def pid(self) -> int:
        return self.server.process.pid

    def alive(self) -> bool:
        return self.server.process.poll() is None

    def label_filters(self) -> list[str]:
        """``docker ps`` arguments selecting this gateway's containers."""
        filters = ["--filter", f"label={GATEWAY_LABEL}"]
        if self.instance_id:
            filters += ["--filter", f"label={INSTANCE_LABEL}={self.instance_id}"]
        return filters

    def containers(self) -> list[str]:
        """IDs of this gateway's containers, running or not (blocking)."""
        argv = ["docker", "ps", "--all", "--quiet", *self.label_filters()]
        return run_quietly(argv).split()

    def remove_containers(self) -> None:
        """Force-remove whatever of this gateway's containers remain; best effort."""
        if self.instance_id:
            try:
                engine.remove_containers(self.containers())
            except BenchError:
                pass
        else:
            engine.remove_labelled(GATEWAY_LABEL)

    def log_summary(self, samples: int = 5) -> dict[str, Any]:
        """What the gateway logged (``warning`` and above): lines, count per code, a few errors.

        Lines are the gateway's JSON log records; a line that is not one (a
        traceback, say) counts under ``(not JSON)`` and is among the samples.
        """
        try:
            text = (self.root / "gateway.log").read_text(errors="replace")
        except OSError:
            return {"lines": 0, "codes": {}, "samples": []}
        codes: Counter[str] = Counter()
        shown: list[str] = []
        lines = [line for line in text.splitlines() if line.strip()]
        for line in lines:
            try:
                record = json.loads(line)
                key = f"{record.get('level', '?')} {record.get('code', '?')}"
                sample = f"{key}: {record.get('message', '')}"
                worth_showing = record.get("level") not in ("warning", "info", "debug")
            except (ValueError, AttributeError):
                key, sample, worth_showing = "(not JSON)", line, True
            codes[key] += 1
            if worth_showing and sample[:300] not in shown and len(shown) < samples:
                shown.append(sample[:300])
        return {"lines": len(lines), "codes": dict(codes.most_common()), "samples": shown}


def log_lines(summary: dict[str, Any]) -> list[str]:
    """The report's lines about the gateway's log."""
    codes = ", ".join(f"{code} x{n}" for code, n in summary["codes"].items())
    lines = [f"gateway log (warning and above): {summary['lines']} lines" +
             (f": {codes}" if codes else "")]  # fmt: skip
    return lines + [f"    {sample}" for sample in summary["samples"]]


def _config(work: servers.Workspace, image: str, port: int, mode: str) -> Path:
    """The benchmarks' gateway config (``servers.gateway_config``) with ``execution.mode``."""
    import yaml  # the project's own dependency: only in its virtualenv

    path = servers.gateway_config(work, image, port)
    config = yaml.safe_load(path.read_text())
    config["docker"]["execution"]["mode"] = mode
    path.write_text(yaml.safe_dump(config))
    return path


def _instance_id(config: Path) -> str | None:
    """The id the gateway keeps next to its configuration (``gateway.yaml.instance-N``)."""
    for slot in sorted(config.parent.glob(config.name + ".instance-*")):
        text = slot.read_text().strip()
        if len(text) == 16 and all(c in "0123456789abcdef" for c in text):
            return text
    return None


@contextmanager
def gateway(work: servers.Workspace, settings: Settings) -> Iterator[Gateway]:
    """``twistd containerssh`` from the project root, in a directory of its own."""
    own = servers.Workspace(work.root / "gateway", work.client_key, work.known_hosts)
    own.root.mkdir()
    port = free_port()
    config = _config(own, settings.image, port, settings.mode)
    argv = [settings.python, "-c", "from twisted.scripts.twistd import run; run()",
            "--nodaemon", "--pidfile=", "containerssh", "-c", str(config)]  # fmt: skip
    server = Server.start(f"gateway ({settings.mode} mode)", argv, own.root / "gateway.log",
                          cwd=ROOT)  # fmt: skip
    try:
        server.wait_for_port(port, timeout=30.0)
        client = own.client("gateway", port, servers.GATEWAY_USER)
        yield Gateway(client, server, own.root, _instance_id(config))
    finally:
        # The gateway removes its containers while shutting down: give it time.
        server.stop(timeout=60.0)


def _socket_inodes(pid: int, table: str, column: int) -> set[str]:
    """Inodes of the sockets listed in ``/proc/PID/net/TABLE`` (the process's namespace)."""
    try:
        rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
    except OSError:
        return set()
    return {fields[column] for fields in (row.split() for row in rows) if len(fields) > column}


def open_fds(pid: int) -> tuple[int, int, int] | None:
    """The process's open file descriptors: all, TCP sockets, Unix sockets.

    For the gateway the TCP sockets are its listening socket and the SSH
    connections; the Unix sockets are its connections to the Docker engine
    (the attach streams of running sessions, and the idle connections its
    engine client keeps for reuse, one per engine call that ran at the same
    time as another, up to its pool size).
    """
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    links = []
    for fd in fds:
        try:
            links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass  # closed since the listing: not open any more
    sockets = {link[8:-1] for link in links if link.startswith("socket:[")}
    tcp = _socket_inodes(pid, "tcp", 9) | _socket_inodes(pid, "tcp6", 9)
    unix = _socket_inodes(pid, "unix", 6)
    return len(links), len(sockets & tcp), len(sockets & unix)


def thread_count(pid: int) -> int | None:
    """How many threads the process has (``Threads`` of ``/proc/PID/status``)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return None


def own_cpu_seconds() -> float:
    """User plus system CPU time of this process (the load generator)."""
    times = os.times()
    return times.user + times.system


@dataclass
class ProcReading:
    """One reading of the gateway process (and of this process's CPU time)."""

    label: str
    #: Seconds since the measurement started.
    at: float
    cpu_s: float | None
    rss_kib: int | None
    fds: int | None
    #: Of ``fds``: TCP sockets (SSH) and Unix sockets (the Docker engine).
    tcp: int | None
    unix: int | None
    threads: int | None
    containers: int | None
    client_cpu_s: float

    def as_json(self) -> dict[str, object]:
        return {
            "label": self.label,
            "at_s": round(self.at, 3),
            "gateway_cpu_s": self.cpu_s,
            "rss_kib": self.rss_kib,
            "fds": self.fds,
            "fds_tcp": self.tcp,
            "fds_unix": self.unix,
            "threads": self.threads,
            "containers": self.containers,
            "client_cpu_s": round(self.client_cpu_s, 3),
        }


def read_process(pid: int, label: str, at: float, containers: int | None) -> ProcReading:
    """Read the gateway's CPU time, VmRSS and open fds now (well under a millisecond)."""
    fds, tcp, unix = open_fds(pid) or (None, None, None)
    return ProcReading(label, at, cpu_seconds(pid), memory_kib(pid, "VmRSS"), fds, tcp, unix,
                       thread_count(pid), containers, own_cpu_seconds())  # fmt: skip


async def count_containers(gw: Gateway) -> int | None:
    """How many containers the gateway has, asked of the engine without blocking the reactor."""
    from twisted.internet import utils

    docker = shutil.which("docker")
    if docker is None:
        return None
    args = ["ps", "--all", "--quiet", *gw.label_filters()]
    try:
        out, _, status = await utils.getProcessOutputAndValue(docker, args, env=dict(os.environ))
    except Exception:
        return None
    return len(out.split()) if status == 0 else None


async def settle(gw: Gateway, timeout: float) -> tuple[float | None, int | None]:
    """Wait until the gateway has no container left (it is still running).

    Returns the seconds that took (None if some were still there after
    ``timeout``, or the gateway has exited) and the last count.
    """
    from bench.conchclient import sleep

    started = now()
    count = await count_containers(gw)
    while count != 0 and gw.alive() and now() - started < timeout:
        await sleep(0.5)
        count = await count_containers(gw)
    return (now() - started if count == 0 else None), count


def now() -> float:
    from twisted.internet import reactor

    return float(reactor.seconds())


# -- running the reactor once


def run_reactor(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run ``main()`` in Twisted's reactor and return its result.

    The reactor runs once per process. Ctrl-C or SIGTERM stop it; that is then
    raised as KeyboardInterrupt, so the caller's ``with`` blocks stop the
    gateway and remove its containers.
    """
    from twisted.internet import defer, reactor
    from twisted.python.failure import Failure

    outcome: list[Any] = []

    def start() -> None:
        def finish(result: object) -> None:
            outcome.append(result)
            reactor.stop()

        defer.ensureDeferred(main()).addBoth(finish)

    _twisted_log_to_stderr()
    reactor.callWhenRunning(start)
    reactor.run()
    if not outcome:
        raise KeyboardInterrupt("interrupted")
    result = outcome[0]
    if isinstance(result, Failure):
        result.raiseException()
    return result


def _twisted_log_to_stderr() -> None:
    """Twisted's warnings and errors to stderr; nothing else, and nothing kept in memory."""
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    wanted = LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)
    observer = FilteringLogObserver(textFileLogObserver(sys.stderr), [wanted])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


# -- formatting


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted samples (q=0.99: the 99th of 100)."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.1f} ms"


def mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.1f} MiB"


def num(value: object) -> str:
    return "n/a" if value is None else str(value)


def growth(before: float | None, after: float | None) -> float | None:
    """Relative growth from ``before`` to ``after`` (0.05 is 5 %), or None."""
    if before is None or after is None or before == 0:
        return None
    return (after - before) / before


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def target_row(label: str, measured: str, ok: bool | None) -> str:
    return f"  {label:<50}{measured:>32}   {verdict(ok)}"


def header(facts: dict[str, str], date: str) -> list[str]:
    """The first lines of every report: the machine and the versions measured."""
    versions = ("python", "twisted", "cryptography", "docker engine", "openssh")
    return [
        f"date {date}; {facts['cores']} cores, {facts['cpu']}, Linux {facts['kernel']}",
        ", ".join(f"{k} {facts[k]}" for k in versions),
    ]


#: A report's verdict on one target: what, the figure measured, met (``None``: not measured).
Target = tuple[str, str, bool | None]


def preamble(facts: dict[str, str], date: str, load_before: str, description: str) -> list[str]:
    """The first lines of a soak or churn report: machine, versions, load, what ran."""
    return [*header(facts, date), f"load average before the run: {load_before}", description]


def leftover_target(left: list[str] | None) -> Target:
    """The target every long run ends with: no container left once the gateway stopped."""
    return (
        "no container left after the gateway stopped",
        "not checked" if left is None else str(len(left)),
        None if left is None else not left,
    )


def any_missed(targets: Sequence[Target]) -> bool:
    """Whether a target was missed or could not be measured."""
    return any(ok is not True for _, _, ok in targets)


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages now, for telling a busy machine from an idle one."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


# -- entry point


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str]) -> int:
    """``./bench/run --only soak|churn``; the exit status ``bench/run`` returns.

    0 when every target passed, 1 when one failed (a failed or dropped session,
    a failed cycle, a container left behind, a figure over its target), 2 when
    nothing could run, 130 when interrupted.
    """
    settings = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    if settings.benchmark == "soak":
        from bench import soak as bench_module
    else:
        from bench import churn as bench_module  # type: ignore[no-redef]
    from bench.main import workspace

    def run() -> int:
        engine.check_image(settings.image)
        with workspace() as work:
            report = bench_module.measure(settings, work)
        print(report.render())
        if settings.json_path is not None:
            report.write_json(settings.json_path)
        return 1 if report.failed() else 0

    return exit_status(run)

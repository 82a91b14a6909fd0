"""Entry point of ``./bench/run``: start the servers, run the benchmarks, print the table.

Every target is measured in the same run as its references, rounds interleaved
(one round of each target in turn) so that they share the machine's noise, and
reported as medians and ratios. A target that fails is reported as such; the
others are still measured. Exit status: 0 when everything was measured and the
gateway left no container behind, 1 otherwise, 2 when nothing could run.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from bench import (
    audit,
    concurrency,
    configserver,
    cpuuse,
    engine,
    forwarding,
    kubernetes,
    longrun,
    metrics,
    servers,
)
from bench.measure import MIB, download, time_to_first_byte, upload
from bench.procs import BenchError, exit_status
from bench.report import GATEWAY_LABEL, Report, Series, machine_facts, render
from bench.sshclient import Client, generate_key

ROOT = Path(__file__).resolve().parent.parent
WARMUP_ROUNDS = 1
LATENCY_TIMEOUT = 30.0


@dataclass(frozen=True)
class Settings:
    """What to run, resolved from the command line."""

    benchmarks: tuple[str, ...]
    latency_rounds: int
    throughput_rounds: int
    size_mb: int
    python: str
    image: str
    json_path: Path | None

    def as_json(self) -> dict[str, object]:
        return {
            "benchmarks": list(self.benchmarks),
            "latency_rounds": self.latency_rounds,
            "throughput_rounds": self.throughput_rounds,
            "size_mb": self.size_mb,
            "image": self.image,
        }


def parse_args(argv: list[str]) -> Settings:
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description="Connection latency and download throughput of the gateway, side by side "
        "with docker run, OpenSSH sshd and a bare Twisted Conch server (see docs/performance.md).",
    )
    parser.add_argument("--quick", action="store_true",
                        help="5 latency rounds, 1 throughput round of 50 MB")  # fmt: skip
    parser.add_argument("--only",
                        choices=["latency", "throughput", "concurrency", *longrun.BENCHMARKS],
                        help="one benchmark; concurrency (session set-up per execution mode "
                        "and 50 sessions at once), soak and churn (see --only soak --help) "
                        "run only when asked for")  # fmt: skip
    parser.add_argument(
        "--size-mb", type=int, help="size of each transfer in MB of 2**20 (default 1000)"
    )
    parser.add_argument("--rounds", type=int, help="latency rounds (default 20)")
    parser.add_argument("--throughput-rounds", type=int, help="rounds of each transfer (default 3)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter for the gateway and the bare Conch server")  # fmt: skip
    args = parser.parse_args(argv)
    quick = args.quick
    settings = Settings(
        benchmarks=(args.only,) if args.only else ("latency", "throughput"),
        latency_rounds=args.rounds or (5 if quick else 20),
        throughput_rounds=args.throughput_rounds or (1 if quick else 3),
        size_mb=args.size_mb or (50 if quick else 1000),
        python=args.python,
        image=os.environ.get("CONCH_CONTAINER_GUEST_IMAGE", "conch-container/guest:latest"),
        json_path=args.json,
    )
    if min(settings.latency_rounds, settings.throughput_rounds, settings.size_mb) < 1:
        parser.error("--rounds, --throughput-rounds and --size-mb must be at least 1")
    return settings


def _terminate(signum: int, frame: FrameType | None) -> None:
    # Unwind like Ctrl-C does, so that every server and container is cleaned up.
    raise KeyboardInterrupt(f"signal {signum}")


def progress(text: str, end: str = "\n") -> None:
    print(text, end=end, file=sys.stderr, flush=True)


def start_servers(
    stack: ExitStack, settings: Settings, work: servers.Workspace
) -> dict[str, Client | str]:
    """Start the servers the chosen benchmarks need: a client each, or why not."""
    wanted: dict[str, Callable[[], AbstractContextManager[Client]]] = {
        "gateway": lambda: servers.gateway(work, settings.python, ROOT, settings.image),
        "sshd": lambda: servers.sshd(work),
    }
    if "latency" in settings.benchmarks:
        wanted["pool"] = lambda: servers.pool_gateway(
            work, settings.python, ROOT, settings.image, POOL_SIZE
        )
    if "throughput" in settings.benchmarks:
        wanted["bare"] = lambda: servers.bare_conch(work, settings.python)
    started: dict[str, Client | str] = {}
    for key, make in wanted.items():
        progress(f"==> starting {key}")
        try:
            started[key] = stack.enter_context(make())
        except BenchError as e:
            progress(f"    {key} did not start: {e}")
            started[key] = str(e)
    return started


def run_rounds(
    commands: dict[str, list[str] | str], rounds: int, measure: Callable[[list[str]], float]
) -> dict[str, Series]:
    """``rounds`` interleaved rounds (after a warm-up) of each command; a string is an error."""
    return run_keyed_rounds(commands, rounds, lambda _key, argv: measure(argv))


def run_keyed_rounds(
    commands: dict[str, list[str] | str],
    rounds: int,
    measure: Callable[[str, list[str]], float],
) -> dict[str, Series]:
    """:func:`run_rounds`, telling ``measure`` which command it runs."""
    series = {key: Series(error=cmd if isinstance(cmd, str) else None)
              for key, cmd in commands.items()}  # fmt: skip
    for n in range(WARMUP_ROUNDS + rounds):
        progress("." if n >= WARMUP_ROUNDS else "w", end="")
        for key, cmd in commands.items():
            s = series[key]
            if s.error is not None or isinstance(cmd, str):
                continue
            try:
                value = measure(key, cmd)
            except BenchError as e:
                s.error = str(e)
                continue
            if n >= WARMUP_ROUNDS:
                s.samples.append(value)
    progress("")
    return series


def _over_ssh(target: Client | str, command: str, force_cipher: bool) -> list[str] | str:
    return target if isinstance(target, str) else target.argv(command, force_cipher)


def bench_latency(
    settings: Settings, targets: dict[str, Client | str], run_id: str
) -> dict[str, Series]:
    progress(f"==> connection latency: {settings.latency_rounds} rounds")
    commands = {
        "gateway": _over_ssh(targets["gateway"], "echo hello", False),
        "pool": _over_ssh(targets["pool"], "echo hello", False),
        "docker": engine.docker_run_argv(settings.image, run_id, ["echo", "hello"]),
        "sshd": _over_ssh(targets["sshd"], "echo hello", False),
    }

    def measure(key: str, argv: list[str]) -> float:
        seconds = time_to_first_byte(argv, b"hello\n", LATENCY_TIMEOUT)
        if key == "pool":
            # The refill must not run under the next target's measurement.
            servers.wait_pool_full("pool")
        return seconds

    return run_keyed_rounds(commands, settings.latency_rounds, measure)


#: Every warm pool container carries this label.
POOL_LABEL = "conch_container_pool"
#: Containers the warm pool gateway keeps ready (more than one login needs at a time).
POOL_SIZE = 2

#: The servers whose data path the throughput benchmark compares, by key.
THROUGHPUT_SERVERS = ("gateway", "sshd", "bare")


def bench_throughput(
    settings: Settings, targets: dict[str, Client | str], run_id: str, report: Report
) -> None:
    """Download and upload through each server and ``docker exec``: rates and CPU per MiB.

    The same programs run everywhere (``dd`` in 1 MiB blocks out, ``cat`` in),
    so the source and sink are never what limits a rate. ``docker exec`` into
    an idle container is the engine's own stream without SSH: the most any
    gateway in front of that engine could carry on this machine.
    """
    size = settings.size_mb * MIB
    progress(f"==> throughput: {settings.throughput_rounds} rounds of {settings.size_mb} MB")
    source = f"dd if=/dev/zero bs=1048576 count={settings.size_mb} 2>/dev/null"
    sink = "cat > /dev/null"
    with ExitStack() as stack:
        try:
            container: str | None = stack.enter_context(
                engine.idle_container(settings.image, run_id)
            )
        except BenchError as e:
            container, why = None, str(e)
        commands: dict[str, list[str] | str] = {}
        pids: dict[str, int | None] = {}
        for key in THROUGHPUT_SERVERS:
            target = targets[key]
            commands[key] = _over_ssh(target, source, True)
            commands[f"{key}-up"] = _over_ssh(target, sink, True)
            pid = target.server_pid if isinstance(target, Client) else None
            pids[key] = pids[f"{key}-up"] = pid
        # The bare server's own data, made and eaten in its process: the transport alone.
        bare = targets["bare"]
        commands["transport"] = _over_ssh(bare, f"transport-zeros {settings.size_mb}", True)
        commands["transport-up"] = _over_ssh(bare, "transport-discard", True)
        pids["transport"] = pids["transport-up"] = pids["bare"]
        commands["docker"] = engine.docker_exec_argv(container, source) if container else why
        commands["docker-up"] = (
            engine.docker_exec_argv(container, sink, stdin=True) if container else why
        )
        # At least 5 MB/s, or the round is an error rather than a hang.
        timeout = 60.0 + settings.size_mb / 5

        def rate(key: str, argv: list[str]) -> float:
            transfer = upload if key.endswith("-up") else download
            before = cpuuse.snapshot(pids.get(key))
            result = transfer(argv, size, timeout)
            server_cpu, engine_cpu = cpuuse.used(before, cpuuse.snapshot(pids.get(key)))
            mib = result.total / MIB
            if server_cpu is not None:
                report.server_cpu.setdefault(key, Series()).samples.append(server_cpu * 1e3 / mib)
            report.engine_cpu.setdefault(key, Series()).samples.append(engine_cpu * 1e3 / mib)
            return result.rate_mib_s

        report.throughput = run_keyed_rounds(commands, settings.throughput_rounds, rate)
        for series in (*report.server_cpu.values(), *report.engine_cpu.values()):
            del series.samples[:WARMUP_ROUNDS]


@contextmanager
def workspace() -> Iterator[servers.Workspace]:
    """A private temp dir with the client key; removed on exit."""
    with tempfile.TemporaryDirectory(prefix="conch-bench-") as tmp:
        root = Path(tmp)
        key = generate_key(root / "client_ed25519", "benchmark client")
        yield servers.Workspace(root, key, root / "known_hosts")


def run(settings: Settings, report: Report) -> None:
    """Measure into ``report``; every process, file and container is gone on return."""
    run_id = secrets.token_hex(6)
    try:
        engine.check_image(settings.image)
        with workspace() as work, ExitStack() as stack:
            targets = start_servers(stack, settings, work)
            if "latency" in settings.benchmarks:
                report.latency = bench_latency(settings, targets, run_id)
            if "throughput" in settings.benchmarks:
                bench_throughput(settings, targets, run_id, report)
            progress("==> stopping the servers")
        # The gateway has stopped by now: none of its containers may remain.
        # Pool containers carry no user label (they are made before any user).
        report.leftover_containers = engine.containers_labelled(
            GATEWAY_LABEL
        ) + engine.containers_labelled(POOL_LABEL)
    finally:
        engine.remove_labelled(GATEWAY_LABEL, POOL_LABEL, f"{engine.BENCH_LABEL}={run_id}")


def main(argv: list[str] | None = None) -> int:
    if longrun.requested(sys.argv[1:] if argv is None else argv):
        return longrun.main(sys.argv[1:] if argv is None else argv)
    if audit.requested(sys.argv[1:] if argv is None else argv):
        return audit.main(sys.argv[1:] if argv is None else argv)
    if configserver.requested(sys.argv[1:] if argv is None else argv):
        return configserver.main(sys.argv[1:] if argv is None else argv)
    if metrics.requested(sys.argv[1:] if argv is None else argv):
        return metrics.main(sys.argv[1:] if argv is None else argv)
    if kubernetes.requested(sys.argv[1:] if argv is None else argv):
        return kubernetes.main(sys.argv[1:] if argv is None else argv)
    if forwarding.requested(sys.argv[1:] if argv is None else argv):
        return forwarding.main(sys.argv[1:] if argv is None else argv)
    settings = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    if settings.benchmarks == ("concurrency",):
        return concurrency.main(settings, workspace)
    report = Report(machine_facts(), settings.as_json())

    def measure() -> int:
        run(settings, report)
        print(render(report))
        if settings.json_path is not None:
            report.write_json(settings.json_path)
        return 1 if report.failed() else 0

    return exit_status(measure)


if __name__ == "__main__":
    sys.exit(main())

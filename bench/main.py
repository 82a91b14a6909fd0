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

from bench import audit, concurrency, configserver, engine, kubernetes, longrun, metrics, servers
from bench.measure import MIB, download, time_to_first_byte
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
    parser.add_argument("--size-mb", type=int, help="download size in MB of 2**20 (default 200)")
    parser.add_argument("--rounds", type=int, help="latency rounds (default 20)")
    parser.add_argument("--throughput-rounds", type=int, help="throughput rounds (default 3)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter for the gateway and the bare Conch server")  # fmt: skip
    args = parser.parse_args(argv)
    quick = args.quick
    settings = Settings(
        benchmarks=(args.only,) if args.only else ("latency", "throughput"),
        latency_rounds=args.rounds or (5 if quick else 20),
        throughput_rounds=args.throughput_rounds or (1 if quick else 3),
        size_mb=args.size_mb or (50 if quick else 200),
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
    series = {key: Series(error=cmd if isinstance(cmd, str) else None)
              for key, cmd in commands.items()}  # fmt: skip
    for n in range(WARMUP_ROUNDS + rounds):
        progress("." if n >= WARMUP_ROUNDS else "w", end="")
        for key, cmd in commands.items():
            s = series[key]
            if s.error is not None or isinstance(cmd, str):
                continue
            try:
                value = measure(cmd)
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
        "docker": engine.docker_run_argv(settings.image, run_id, ["echo", "hello"]),
        "sshd": _over_ssh(targets["sshd"], "echo hello", False),
    }
    return run_rounds(
        commands,
        settings.latency_rounds,
        lambda argv: time_to_first_byte(argv, b"hello\n", LATENCY_TIMEOUT),
    )


def bench_throughput(settings: Settings, targets: dict[str, Client | str]) -> dict[str, Series]:
    size = settings.size_mb * MIB
    progress(f"==> throughput: {settings.throughput_rounds} rounds of {settings.size_mb} MB")
    command = f"head -c {size} /dev/zero"
    commands = {key: _over_ssh(targets[key], command, True) for key in ("gateway", "sshd", "bare")}
    # At least 5 MB/s, or the round is an error rather than a hang.
    timeout = 60.0 + settings.size_mb / 5

    def rate(argv: list[str]) -> float:
        return download(argv, size, timeout).rate_mib_s

    return run_rounds(commands, settings.throughput_rounds, rate)


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
                report.throughput = bench_throughput(settings, targets)
            progress("==> stopping the servers")
        # The gateway has stopped by now: none of its containers may remain.
        report.leftover_containers = engine.containers_labelled(GATEWAY_LABEL)
    finally:
        engine.remove_labelled(GATEWAY_LABEL, f"{engine.BENCH_LABEL}={run_id}")


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

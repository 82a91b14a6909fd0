"""``./bench/run --only configserver``: what a configuration server costs a session set-up.

Two gateways run at once, identical but for ``configserver``:

- ``static``: no configuration server (the reference);
- ``configserver``: a configuration server on loopback
  (``bench/config_server.py``) that answers every login with a small
  per-user configuration.

Each round times one ``ssh bench@gateway true`` through each gateway in turn
(rounds interleaved, so both share the machine's noise), from starting the
client to its exit: TCP connect, key exchange, authentication, the
configuration server's answer, a fresh container, the program. The report
gives the medians and the ratio of the two; the target is at most 1.15x.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import engine, servers
from bench.concurrency import progress
from bench.measure import median, p95
from bench.procs import LOOPBACK, BenchError, Server, exit_status, free_port, only_benchmark
from bench.report import GATEWAY_LABEL, Series
from bench.sshclient import Client

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("static", "configserver")
#: The ratio the configuration server may cost at most.
TARGET_RATIO = 1.15
ROUND_TIMEOUT = 30.0


def requested(argv: Sequence[str]) -> bool:
    """Whether ``argv`` asks for this benchmark."""
    return only_benchmark(argv) == "configserver"


@dataclass(frozen=True)
class Settings:
    rounds: int
    python: str
    image: str
    json_path: Path | None


def parse_args(argv: Sequence[str]) -> Settings:
    parser = argparse.ArgumentParser(
        prog="bench/run --only configserver",
        description="Session set-up time (connect, authenticate, container, exec true) with a "
        "configuration server on loopback and without, side by side.",
    )
    parser.add_argument("--only", choices=["configserver"], required=True)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="5 rounds")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--json", type=Path, dest="json_path")
    args = parser.parse_args(list(argv))
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    image = os.environ.get("CONCH_CONTAINER_GUEST_IMAGE", "conch-container/guest:latest")
    return Settings(5 if args.quick else args.rounds, args.python, image, args.json_path)


@contextmanager
def config_server(work: servers.Workspace, python: str) -> Iterator[str]:
    """The benchmark's configuration server on loopback; yields its URL."""
    port = free_port()
    script = Path(__file__).with_name("config_server.py")
    argv = [python, str(script), "--port", str(port), "--user", servers.GATEWAY_USER]
    server = Server.start("configuration server", argv, work.root / "config-server.log", cwd=ROOT)
    try:
        server.wait_for_port(port, timeout=30.0)
        yield f"http://{LOOPBACK}:{port}/config"
    finally:
        server.stop()


@contextmanager
def gateway(
    work: servers.Workspace, settings: Settings, name: str, url: str | None
) -> Iterator[Client]:
    port = free_port()
    extra: dict[str, object] = {"configserver": {"url": url}} if url is not None else {}
    config = servers.gateway_config(work, settings.image, port, extra=extra, name=f"gateway-{name}")
    log = work.root / f"gateway-{name}.log"
    with servers.running_gateway(f"gateway {name}", settings.python, config, port, log, ROOT):
        yield work.client(name, port, servers.GATEWAY_USER)


def time_to_exit(argv: list[str], timeout: float) -> float:
    """Seconds from starting ``argv`` to its exit; it must exit 0."""
    started = time.monotonic()
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{argv[0]} did not finish within {timeout:.0f} s") from None
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise BenchError(f"exit status {done.returncode}: {done.stderr.decode(errors='replace')}")
    return elapsed


def check_applied(client: Client) -> None:
    """The configuration server's answer reaches the container, or the comparison is moot."""
    argv = client.argv('echo "$FROM_CONFIG $PROJECT"')
    done = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=ROUND_TIMEOUT
    )
    if done.stdout != b"1 bench\n":
        raise BenchError(
            f"the configuration server's settings did not reach the container: {done.stdout!r} "
            f"{done.stderr.decode(errors='replace')}"
        )


def render(settings: Settings, results: dict[str, Series]) -> tuple[str, float | None]:
    reference = results["static"]
    ref = median(reference.samples) if reference.samples else None
    lines = [
        f"Session set-up (ssh ... true: connect, auth, container, exec), "
        f"{settings.rounds} rounds, medians",
        f"{'gateway':14} {'median ms':>10} {'p95 ms':>8} {'x static':>9}",
    ]
    ratio = None
    for name, result in results.items():
        if result.error is not None or not result.samples:
            lines.append(f"{name:14} error: {result.error}")
            continue
        mid = median(result.samples)
        shown = "-"
        if ref:
            shown = f"{mid / ref:.2f}x"
            if name == "configserver":
                ratio = mid / ref
        lines.append(f"{name:14} {mid * 1000:10.0f} {p95(result.samples) * 1000:8.0f} {shown:>9}")
    verdict = "n/a" if ratio is None else ("met" if ratio <= TARGET_RATIO else "NOT met")
    lines.append(f"target: configserver at most {TARGET_RATIO:.2f}x static: {verdict}")
    return "\n".join(lines), ratio


def main(argv: Sequence[str]) -> int:
    """Run the benchmark; the exit status ``bench/run`` returns."""
    settings = parse_args(argv)
    try:
        return exit_status(lambda: measure(settings))
    finally:
        engine.remove_labelled(GATEWAY_LABEL)


def measure(settings: Settings) -> int:
    from bench.main import run_rounds, workspace

    engine.check_image(settings.image)
    with workspace() as work, ExitStack() as stack:
        url = stack.enter_context(config_server(work, settings.python))
        clients = {
            name: stack.enter_context(gateway(work, settings, name, server_url))
            for name, server_url in (("static", None), ("configserver", url))
        }
        check_applied(clients["configserver"])
        progress(f"==> session set-up: {settings.rounds} rounds")
        results = run_rounds(
            {name: client.argv("true") for name, client in clients.items()},
            settings.rounds,
            lambda argv: time_to_exit(argv, ROUND_TIMEOUT),
        )
        progress("==> stopping the gateways")
    text, ratio = render(settings, results)
    print(text)
    if settings.json_path is not None:
        settings.json_path.write_text(
            json.dumps({name: vars(r) for name, r in results.items()}, indent=2)
        )
    leftovers = engine.containers_labelled(GATEWAY_LABEL)
    if leftovers:
        print(f"containers left behind: {leftovers}", file=sys.stderr)
    measured = ratio is not None and all(r.error is None for r in results.values())
    return 0 if measured and not leftovers else 1

"""``./bench/run --only kubernetes``: the Kubernetes backend against the Docker backend.

No cluster runs on the benchmark machine, so the Kubernetes backend talks to
the test Kubernetes API server (``python -m conch_container.testing.kubeapi``),
whose pods are containers of the same Docker engine the Docker backend uses,
from the same image. Two gateways run at once, identical but for ``backend``.

Two measurements:

- **set-up**: interleaved rounds of one ``ssh bench@gateway 'echo hello'``
  through each gateway, from starting the client to the first output byte
  (TCP connect, key exchange, authentication, a fresh container or pod, the
  program, the output back); medians, p95 and the ratio Kubernetes/Docker,
  whose target is at most 1.3x;
- **concurrent sessions**: :data:`SESSIONS` clients started at the same
  moment against the Kubernetes gateway, each printing ``hello`` and then
  holding its session open until all have printed. Reported: how many
  succeeded, the gateway's peak thread count while they ran (sampled from
  ``/proc``) beside the most its thread pools allow, and its resident memory
  with every session open minus before, per session (target under 0.25 MB).

Afterwards the API server may list no pod (it removes a pod's containers
before it stops listing the pod).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench import engine, servers
from bench.concurrency import memory_kib, progress
from bench.measure import median, p95, time_to_first_byte
from bench.procs import LOOPBACK, Server, exit_status, free_port, only_benchmark
from bench.report import GATEWAY_LABEL, Series, machine_facts
from bench.sshclient import Client

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"
NAMESPACE = "default"
#: The set-up ratio Kubernetes/Docker the backend must reach at most.
TARGET_RATIO = 1.3
#: Sessions held open at once.
SESSIONS = 100
#: Resident memory the gateway may add per open session, in MiB.
TARGET_MIB_PER_SESSION = 0.25
ROUND_TIMEOUT = 60.0
SESSIONS_TIMEOUT = 300.0
EXPECTED = b"hello\n"
#: The gateway's thread pools at their defaults: the reactor's, the
#: Kubernetes backend's, the static authenticator's bcrypt pool.
POOL_LIMITS = {"main thread": 1, "reactor pool": 10, "kubernetes pool": 10, "bcrypt pool": 2}


def requested(argv: Sequence[str]) -> bool:
    """Whether ``argv`` asks for this benchmark."""
    return only_benchmark(argv) == "kubernetes"


@dataclass(frozen=True)
class Settings:
    rounds: int
    sessions: int
    python: str
    image: str
    json_path: Path | None


def parse_args(argv: Sequence[str]) -> Settings:
    parser = argparse.ArgumentParser(
        prog="bench/run --only kubernetes",
        description="Session set-up through the Kubernetes backend (on the test API server) "
        "and the Docker backend side by side, then many Kubernetes sessions at once.",
    )
    parser.add_argument("--only", choices=["kubernetes"], required=True)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--sessions", type=int, default=SESSIONS)
    parser.add_argument("--quick", action="store_true", help="5 rounds, 20 sessions")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--json", type=Path, dest="json_path")
    args = parser.parse_args(list(argv))
    if args.rounds < 1 or args.sessions < 1:
        parser.error("--rounds and --sessions must be at least 1")
    image = os.environ.get("CONCH_CONTAINER_GUEST_IMAGE", "conch-container/guest:latest")
    if args.quick:
        return Settings(5, 20, args.python, image, args.json_path)
    return Settings(args.rounds, args.sessions, args.python, image, args.json_path)


# -- the servers


@contextmanager
def api_server(work: servers.Workspace, python: str) -> Iterator[str]:
    """The test Kubernetes API server on loopback; yields its URL."""
    port = free_port()
    argv = [python, "-m", "conch_container.testing.kubeapi",
            "--listen", f"{LOOPBACK}:{port}", "--token", TOKEN]  # fmt: skip
    server = Server.start("test Kubernetes API server", argv, work.root / "kubeapi.log", cwd=ROOT)
    try:
        server.wait_for_port(port, timeout=30.0)
        yield f"http://{LOOPBACK}:{port}"
    finally:
        # It removes every container it made when it stops.
        server.stop(timeout=60.0)


def kubernetes_section(url: str, image: str) -> dict[str, object]:
    """The ``kubernetes`` section: the Docker gateway's container as a pod."""
    return {
        "connection": {"host": url, "bearerToken": TOKEN},
        "pod": {
            "metadata": {"namespace": NAMESPACE, "generateName": "bench-"},
            "spec": {"containers": [{"name": "shell", "image": image}]},
            # As the Docker gateway of the benchmark: no agent, the same idle loop.
            "disableAgent": True,
            "idleCommand": servers.IDLE_COMMAND,
            "shellCommand": ["/bin/sh"],
        },
    }


@dataclass(frozen=True)
class Gateway:
    client: Client
    pid: int


@contextmanager
def gateway(
    work: servers.Workspace, settings: Settings, name: str, url: str | None
) -> Iterator[Gateway]:
    """A gateway on the Docker backend (``url`` None) or the Kubernetes one."""
    port = free_port()
    extra: dict[str, object] = {}
    if url is not None:
        extra = {"backend": "kubernetes", "kubernetes": kubernetes_section(url, settings.image)}
    config = servers.gateway_config(work, settings.image, port, extra=extra, name=f"gateway-{name}")
    allow_one_source(config, settings.sessions)
    log = work.root / f"gateway-{name}.log"
    with servers.running_gateway(
        f"gateway ({name})", settings.python, config, port, log, ROOT
    ) as server:
        yield Gateway(work.client(name, port, servers.GATEWAY_USER), server.process.pid)


def allow_one_source(config: Path, sessions: int) -> None:
    """Every client of the benchmark comes from loopback: let all of them log in at once
    (``ssh.perSourceMaxStartups`` would refuse those past 32, as it should a real source)."""
    import yaml  # the project's own dependency: only in its virtualenv

    document = yaml.safe_load(config.read_text())
    document["ssh"]["perSourceMaxStartups"] = sessions + 10
    document["ssh"]["maxStartups"] = f"{sessions + 10}:30:{2 * sessions + 20}"
    config.write_text(yaml.safe_dump(document))


def pods_listed(url: str) -> list[str]:
    """The names of the pods the API server lists and is not deleting."""
    request = urllib.request.Request(
        f"{url}/api/v1/namespaces/{NAMESPACE}/pods",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        items = json.load(answer)["items"]
    return [p["metadata"]["name"] for p in items if "deletionTimestamp" not in p["metadata"]]


# -- many sessions at once


def thread_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return None


class ThreadSampler:
    """The peak thread count of a process, sampled every 20 ms in a thread of its own."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.peak = thread_count(pid) or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            count = thread_count(self._pid)
            if count is not None:
                self.peak = max(self.peak, count)

    def __enter__(self) -> ThreadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Held:
    """What happened when :attr:`sessions` clients held a session open at once."""

    sessions: int
    succeeded: int = 0
    #: Seconds from the first client's start until all had printed.
    all_printed: float | None = None
    threads_before: int | None = None
    peak_threads: int | None = None
    rss_before_kib: int | None = None
    rss_all_open_kib: int | None = None
    errors: list[str] = field(default_factory=list)

    def mib_per_session(self) -> float | None:
        if self.rss_before_kib is None or self.rss_all_open_kib is None or not self.succeeded:
            return None
        return (self.rss_all_open_kib - self.rss_before_kib) / 1024 / self.sessions


def hold_sessions(client: Client, pid: int, sessions: int) -> Held:
    """Start ``sessions`` clients at once; each prints ``hello`` and waits for a line on
    stdin, so that all are open together; read the gateway then, and release them."""
    result = Held(sessions, threads_before=thread_count(pid))
    result.rss_before_kib = memory_kib(pid, "VmRSS")
    argv = client.argv("echo hello; read line")
    children: list[subprocess.Popen[bytes]] = []
    started = time.perf_counter()
    deadline = started + SESSIONS_TIMEOUT
    with ThreadSampler(pid) as sampler:
        try:
            for _ in range(sessions):
                children.append(
                    subprocess.Popen(
                        argv,
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        bufsize=0,
                    )
                )
            waiting = {c.stdout.fileno(): c for c in children if c.stdout is not None}
            output: dict[int, bytes] = {fd: b"" for fd in waiting}
            while waiting and time.perf_counter() < deadline:
                ready, _, _ = select.select(list(waiting), [], [], 1.0)
                for fd in ready:
                    data = os.read(fd, 4096)
                    output[fd] += data
                    if not data or output[fd].endswith(b"\n"):
                        del waiting[fd]
            printed = [fd for fd, out in output.items() if out == EXPECTED]
            result.succeeded = len(printed)
            if result.succeeded == sessions:
                result.all_printed = time.perf_counter() - started
                # Every session is open now: this is what they cost together.
                result.rss_all_open_kib = memory_kib(pid, "VmRSS")
            else:
                for child in children:
                    if child.poll() is not None and child.stderr is not None:
                        result.errors.append(child.stderr.read().decode(errors="replace")[:200])
                result.errors = sorted(set(result.errors))[:5]
            for child in children:
                if child.stdin is not None:
                    try:
                        child.stdin.write(b"done\n")
                        child.stdin.close()
                    except BrokenPipeError:
                        pass  # it ended already (counted above)
            for child in children:
                try:
                    child.wait(max(1.0, deadline - time.perf_counter()))
                except subprocess.TimeoutExpired:
                    result.errors.append("a client did not exit after its session was released")
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                child.wait(10.0)
                for stream in (child.stdin, child.stdout, child.stderr):
                    if stream is not None and not stream.closed:
                        stream.close()
    result.peak_threads = sampler.peak
    return result


# -- the run


@dataclass
class Report:
    setup: dict[str, Series] = field(default_factory=dict)
    held: Held | None = None
    pods_left: list[str] | None = None
    #: Where the logs were kept when something went wrong.
    logs: Path | None = None

    def ratio(self) -> float | None:
        docker, kubernetes = self.setup.get("docker"), self.setup.get("kubernetes")
        if docker is None or kubernetes is None or not docker.ok() or not kubernetes.ok():
            return None
        return median(kubernetes.samples) / median(docker.samples)

    def failed(self) -> bool:
        held = self.held
        return (
            self.ratio() is None
            or held is None
            or held.succeeded < held.sessions
            or bool(self.pods_left)
        )


def measure(settings: Settings, work: servers.Workspace) -> Report:
    report = Report()
    with ExitStack() as outer:
        url = outer.enter_context(api_server(work, settings.python))
        with ExitStack() as stack:
            progress("==> starting the gateways")
            docker = stack.enter_context(gateway(work, settings, "docker", None))
            kubernetes = stack.enter_context(gateway(work, settings, "kubernetes", url))
            commands = {
                "docker": docker.client.argv("echo hello"),
                "kubernetes": kubernetes.client.argv("echo hello"),
            }
            progress(f"==> session set-up: {settings.rounds} rounds")
            report.setup = _setup_rounds(commands, settings.rounds)
            progress(f"==> {settings.sessions} Kubernetes sessions held open at once")
            report.held = hold_sessions(kubernetes.client, kubernetes.pid, settings.sessions)
            progress("==> stopping the gateways")
        # Both gateways have stopped: none of their pods may be left.
        report.pods_left = pods_listed(url)
        if report.pods_left:
            report.logs = keep_logs(work.root)
    return report


def keep_logs(root: Path) -> Path:
    """Copy the servers' logs out of the workspace (removed on exit) for a look later."""
    kept = Path(tempfile.mkdtemp(prefix="conch-bench-kubernetes-logs-"))
    for log in root.glob("*.log"):
        shutil.copy(log, kept / log.name)
    return kept


def _setup_rounds(commands: dict[str, list[str]], rounds: int) -> dict[str, Series]:
    from bench.main import run_rounds

    return run_rounds(
        dict(commands), rounds, lambda argv: time_to_first_byte(argv, EXPECTED, ROUND_TIMEOUT)
    )


# -- output


def render(settings: Settings, report: Report) -> str:
    facts = machine_facts()
    lines = [
        f"{facts['cores']} cores, {facts['cpu']}; docker engine {facts['docker engine']}",
        f"Session set-up (ssh ... 'echo hello', time to first output byte), "
        f"{settings.rounds} rounds",
        f"{'backend':12} {'median ms':>10} {'p95 ms':>8}",
    ]
    for name, series in report.setup.items():
        if not series.ok():
            lines.append(f"{name:12} error: {series.error}")
            continue
        lines.append(
            f"{name:12} {median(series.samples) * 1000:10.0f} {p95(series.samples) * 1000:8.0f}"
        )
    ratio = report.ratio()
    verdict = "n/a" if ratio is None else ("met" if ratio <= TARGET_RATIO else "NOT met")
    shown = "n/a" if ratio is None else f"{ratio:.2f}x"
    lines.append(f"kubernetes/docker: {shown} (target at most {TARGET_RATIO:.1f}x: {verdict})")
    held = report.held
    if held is not None:
        limit = sum(POOL_LIMITS.values())
        pools = ", ".join(f"{k} {v}" for k, v in POOL_LIMITS.items())
        lines += [
            f"{held.sessions} Kubernetes sessions open at once: {held.succeeded} succeeded"
            + ("" if held.all_printed is None else f", all printed after {held.all_printed:.1f} s"),
            f"  gateway threads: {held.threads_before} before, peak {held.peak_threads} "
            f"(its pools allow {limit}: {pools})",
        ]
        per = held.mib_per_session()
        if per is None:
            lines.append("  memory per session: not measured")
        else:
            target = "met" if per < TARGET_MIB_PER_SESSION else "NOT met"
            assert held.rss_before_kib is not None and held.rss_all_open_kib is not None
            lines.append(
                f"  resident memory: {held.rss_before_kib / 1024:.1f} MiB before, "
                f"{held.rss_all_open_kib / 1024:.1f} MiB with all open: "
                f"{per:.3f} MiB per session (target under {TARGET_MIB_PER_SESSION} MiB: {target})"
            )
        lines += [f"  error: {e}" for e in held.errors]
    lines.append(f"pods left after the gateways stopped: {report.pods_left}")
    if report.logs is not None:
        lines.append(f"the servers' logs are kept in {report.logs}")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    """Run the benchmark; the exit status ``bench/run`` returns."""
    settings = parse_args(argv)

    def run() -> int:
        from bench.main import workspace

        engine.check_image(settings.image)
        with workspace() as work:
            report = measure(settings, work)
        print(render(settings, report))
        if settings.json_path is not None:
            held = report.held
            settings.json_path.write_text(
                json.dumps(
                    {
                        "setup_s": {k: s.as_json() for k, s in report.setup.items()},
                        "ratio": report.ratio(),
                        "held": None if held is None else vars(held),
                        "pods_left": report.pods_left,
                    },
                    indent=2,
                )
            )
        return 1 if report.failed() else 0

    try:
        return exit_status(run)
    finally:
        engine.remove_labelled(GATEWAY_LABEL)

"""Results of one run: the table a person reads, the JSON a script reads, and machine facts."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import engine
from bench.measure import median, p95
from bench.procs import BenchError
from bench.sshclient import CIPHER

LATENCY_ROWS = {
    "gateway": "gateway (ssh -> container echo)",
    "pool": "gateway, warm pool (docker.pool)",
    "docker": "docker run --rm echo",
    "sshd": "sshd (ssh -> local echo)",
}
THROUGHPUT_ROWS = {
    "gateway": "gateway (ssh -> container)",
    "sshd": "OpenSSH sshd (ssh -> local)",
    "bare": "bare Conch (same transport)",
    "transport": "transport alone (no program)",
    "docker": "docker exec (engine, no SSH)",
}
GATEWAY_LABEL = "containerssh_username=bench"
_WIDTH = 38
_VERSIONS = ("python", "twisted", "cryptography", "docker engine", "openssh")


@dataclass
class Series:
    """The samples of one target in one benchmark, or why it could not be measured."""

    samples: list[float] = field(default_factory=list)
    error: str | None = None

    def ok(self) -> bool:
        return self.error is None and bool(self.samples)

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"samples": self.samples, "error": self.error}
        if self.ok():
            out["median"] = median(self.samples)
            out["p95"] = p95(self.samples)
        return out


@dataclass
class Report:
    """Everything one run measured."""

    machine: dict[str, str]
    settings: dict[str, object]
    latency: dict[str, Series] = field(default_factory=dict)
    #: Rates by key: a server's download, and ``KEY-up`` its upload.
    throughput: dict[str, Series] = field(default_factory=dict)
    #: CPU milliseconds per MiB moved, of the server's process and of the engine's.
    server_cpu: dict[str, Series] = field(default_factory=dict)
    engine_cpu: dict[str, Series] = field(default_factory=dict)
    leftover_containers: list[str] | None = None
    date: str = field(default_factory=lambda: datetime.date.today().isoformat())

    def failed(self) -> bool:
        """Whether any target failed, or the gateway left containers behind."""
        every = [*self.latency.values(), *self.throughput.values()]
        return any(s.error for s in every) or bool(self.leftover_containers)

    def as_json(self) -> dict[str, object]:
        return {
            "date": self.date,
            "machine": self.machine,
            "settings": self.settings,
            "latency_s": {k: s.as_json() for k, s in self.latency.items()},
            "latency_ratios": {
                **_ratios(self.latency, "gateway", ["docker", "sshd"]),
                **_ratios(self.latency, "pool", ["docker"]),
                "pool/docker p95": _ratio_p95(self.latency, "pool", "docker"),
            },
            "throughput_mib_s": {k: s.as_json() for k, s in self.throughput.items()},
            "throughput_ratios": {
                **_ratios(self.throughput, "gateway", ["sshd", "bare", "transport", "docker"]),
                **_ratios(
                    self.throughput,
                    "gateway-up",
                    ["sshd-up", "bare-up", "transport-up", "docker-up"],
                ),
            },
            "server_cpu_ms_per_mib": {k: s.as_json() for k, s in self.server_cpu.items()},
            "engine_cpu_ms_per_mib": {k: s.as_json() for k, s in self.engine_cpu.items()},
            "leftover_containers": self.leftover_containers,
        }

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n")


def _ratio(series: dict[str, Series], top: str, bottom: str) -> float | None:
    a, b = series.get(top), series.get(bottom)
    if a is None or b is None or not (a.ok() and b.ok()):
        return None
    return median(a.samples) / median(b.samples)


def _ratio_p95(series: dict[str, Series], top: str, bottom: str) -> float | None:
    a, b = series.get(top), series.get(bottom)
    if a is None or b is None or not (a.ok() and b.ok()):
        return None
    return p95(a.samples) / p95(b.samples)


def _ratios(series: dict[str, Series], top: str, bottoms: list[str]) -> dict[str, float | None]:
    return {f"{top}/{b}": _ratio(series, top, b) for b in bottoms if b in series}


def _row(label: str, *cells: str) -> str:
    return f"  {label:<{_WIDTH}}" + "".join(f"{c:>11}" for c in cells)


def _failed_row(label: str) -> str:
    return f"  {label:<{_WIDTH}}{'not measured (see errors below)':>22}"


def _count(n: object, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _fmt_ratio(value: float | None, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.2f}{suffix}"


def latency_table(report: Report) -> list[str]:
    rounds = _count(report.settings["latency_rounds"], "round")
    lines = [f"connection latency ({rounds}, time to first output byte)",
             _row("", "median", "p95")]  # fmt: skip
    for key, label in LATENCY_ROWS.items():
        s = report.latency.get(key)
        if s is None:
            continue
        if not s.ok():
            lines.append(_failed_row(label))
            continue
        lines.append(_row(label, f"{median(s.samples):.3f}s", f"{p95(s.samples):.3f}s"))
    for bottom, name in (("docker", "docker-run"), ("sshd", "sshd")):
        if bottom in report.latency:
            ratio = _ratio(report.latency, "gateway", bottom)
            lines.append(_row(f"ratio gateway/{name}", _fmt_ratio(ratio, "x")))
    if "pool" in report.latency and "docker" in report.latency:
        for label, ratio in (
            ("ratio warm pool/docker-run (median)", _ratio(report.latency, "pool", "docker")),
            ("ratio warm pool/docker-run (p95)", _ratio_p95(report.latency, "pool", "docker")),
        ):
            lines.append(_row(label, _fmt_ratio(ratio, "x")))
    return lines


def throughput_table(report: Report) -> list[str]:
    """Download and upload rates side by side, each as a ratio of the gateway's to it,
    and the CPU the server and the engine spent per MiB."""
    size, rounds = report.settings["size_mb"], report.settings["throughput_rounds"]
    rounds = _count(rounds, "round")
    lines = [
        f"throughput, {size} MB each way, {CIPHER} ({rounds}, median)",
        _row("", "down MB/s", "gw/this", "up MB/s", "gw/this", "srv ms/MiB", "eng ms/MiB"),
    ]
    for key, label in THROUGHPUT_ROWS.items():
        down, up = report.throughput.get(key), report.throughput.get(f"{key}-up")
        if down is None and up is None:
            continue
        cells: list[str] = []
        for k, s in ((key, down), (f"{key}-up", up)):
            if s is None or not s.ok():
                cells += ["failed", ""]
                continue
            top = "gateway-up" if k.endswith("-up") else "gateway"
            ratio = _ratio(report.throughput, top, k) if k != top else None
            cells += [f"{median(s.samples):.1f}", "" if k == top else _fmt_ratio(ratio)]
        cells.append(_cpu_cell(report.server_cpu, key))
        cells.append(_cpu_cell(report.engine_cpu, key))
        lines.append(_row(label, *cells))
    lines.append(
        "  (ms/MiB: CPU per MiB moved, download/upload; srv: the server process with the "
        "programs it ran; eng: dockerd and the containerd shims, with the programs run in "
        "containers)"
    )
    return lines


def _cpu_cell(table: dict[str, Series], key: str) -> str:
    values = []
    for k in (key, f"{key}-up"):
        s = table.get(k)
        values.append(f"{median(s.samples):.2f}" if s is not None and s.samples else "-")
    return "/".join(values)


def _error_lines(report: Report) -> list[str]:
    """Each distinct error once, saying where it happened: ``gateway (latency, throughput)``."""
    kinds: dict[tuple[str, str], list[str]] = {}
    for kind, table in (("latency", report.latency), ("throughput", report.throughput)):
        for key, s in table.items():
            if s.error:
                kinds.setdefault((key, s.error), []).append(kind)
    return [f"  {key} ({', '.join(k)}): {error}" for (key, error), k in kinds.items()]


def render(report: Report) -> str:
    """The whole human-readable report."""
    facts = report.machine
    lines = [
        f"date {report.date}; {facts['cores']} cores, {facts['cpu']}, Linux {facts['kernel']}",
        ", ".join(f"{k} {facts[k]}" for k in _VERSIONS),
    ]
    if report.latency:
        lines += latency_table(report)
    if report.throughput:
        lines += throughput_table(report)
    left = report.leftover_containers
    if left is None:
        lines.append(f"gateway containers ({GATEWAY_LABEL}, pool) left behind: not checked")
    else:
        found = f"{len(left)} (removed now)" if left else "none"
        lines.append(f"gateway containers ({GATEWAY_LABEL}, pool) left behind: {found}")
    errors = _error_lines(report)
    if errors:
        lines += ["errors:", *errors]
    return "\n".join(lines)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _openssh_version() -> str:
    done = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False)
    return (done.stderr or done.stdout).split(",")[0].strip()


def _safely(fact: Callable[[], str]) -> str:
    try:
        return fact()
    except (BenchError, OSError) as e:
        return f"unknown ({e})"


def machine_facts() -> dict[str, str]:
    """Cores, CPU, kernel and the versions of everything measured."""
    return {
        "cores": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "twisted": _version("twisted"),
        "cryptography": _version("cryptography"),
        "docker engine": _safely(engine.engine_version),
        "openssh": _safely(_openssh_version),
    }

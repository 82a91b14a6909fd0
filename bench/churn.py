"""``./bench/run --only churn``: connect, exec, disconnect, over and over.

``--cycles`` (default 2000) cycles, one after the other, each a whole SSH
connection from the in-process Conch client: TCP connect, key exchange,
public-key authentication, one session running ``true`` (exit status 0
required), the channel closed, a disconnect message and the TCP connection
closed. With the gateway in ``connection`` mode each cycle is a fresh
container that the gateway creates and removes.

``--warmup`` cycles (default 20) run first, so that what the gateway
allocates once (imports, its engine client's connection pool, caches) is in
the baseline; the benchmark then waits until the gateway has no container
left and reads the gateway process (``VmRSS``, open fds, CPU time) as the
baseline. It reads it again every ``--sample-every`` cycles (default a tenth
of the cycles), and once more after the last cycle, when the gateway has
removed every container and a few seconds have passed (the settle). Then
the gateway is stopped and no container of it may be left.

Targets: open fds after the settle equal to the baseline (every cycle's
socket, engine stream and container must be gone), RSS within 5 % of the
baseline, no failed cycle, no container left.

The fds are told apart (``/proc/PID/net``): TCP sockets (SSH), Unix sockets
(connections to the Docker engine) and the rest (files, pipes, the event
loop). All but the engine connections must be back to the baseline exactly.
The engine connections may end up to two above it: the gateway's engine
client keeps a connection for reuse for each engine call that ran alongside
another (up to its pool size), so their number follows the highest overlap
of calls seen so far, not the number of sessions; a leak of one stream per
cycle, or in one cycle of a hundred, is far beyond two after 2000 cycles.

5 % of RSS: CPython returns
memory to the system only when a whole arena (256 KiB) of small objects is
free, so the resident size of a process that allocated and freed thousands
of connections wanders by an arena or so without leaking; 5 % of a 64 MiB
gateway is about 3 MiB, which a leak of 2 KiB per cycle would exceed over
2000 cycles. The slope of RSS over the intermediate readings (least squares,
KiB per cycle) is printed beside it: a leak climbs steadily, noise does
not.
"""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import longrun, servers
from bench.conchclient import Link, load_key, sleep, when
from bench.longrun import Gateway, ProcReading, Settings, percentile
from bench.report import machine_facts

COMMAND = "true"
#: Seconds one whole cycle may take before it counts as failed.
CYCLE_TIMEOUT = 60.0
#: Seconds the gateway has to remove its containers, before the baseline and after the churn.
SETTLE = 120.0
#: Seconds of quiet after the containers are gone, before the last reading.
QUIET = 3.0
#: Failed cycles in a row after which the run stops (the gateway is not serving).
GIVE_UP = 20
TARGET_RSS = 0.05
#: Idle connections to the engine the gateway may hold beyond the baseline (see the module doc).
ENGINE_SLACK = 2


def _slope(points: list[tuple[int, int]]) -> float | None:
    """Least-squares slope of (cycle, KiB) points, in KiB per cycle."""
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    if var == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in points) / var


class ChurnRun:
    def __init__(self, settings: Settings, gw: Gateway, key: Any) -> None:
        self.settings = settings
        self.gw = gw
        self.key = key
        self.readings: list[ProcReading] = []
        self.durations: list[float] = []
        self.failures: list[str] = []
        self.warmup_failures = 0
        self.done = 0
        self.loop_s = 0.0
        self.t0 = 0.0
        self.baseline_settle_s: float | None = None
        self.settle_s: float | None = None
        self.after_containers: int | None = None
        self.aborted: str | None = None

    async def cycle(self) -> str | None:
        """One connect-exec-disconnect cycle; None if it went right, else what went wrong."""
        link = Link(self.gw.client.port, self.gw.client.user, self.key)
        try:
            await link.connect(CYCLE_TIMEOUT)
            chan = await link.open_session(COMMAND, False, timeout=CYCLE_TIMEOUT)
            await when(chan.done, CYCLE_TIMEOUT)
            if chan.exit_status != 0:
                signal = f", signal {chan.exit_signal}" if chan.exit_signal else ""
                out = bytes(chan.output[-200:])
                return f"exit status {chan.exit_status}{signal}, output {out!r}"
            return None
        except Exception as e:  # anything at all: this cycle failed, the next one goes on
            return f"{e or type(e).__name__}"
        finally:
            await link.close()

    async def read(self, label: str) -> None:
        at = time.perf_counter() - self.t0 if self.t0 else 0.0
        reading = longrun.read_process(self.gw.pid, label, at, None)
        reading.containers = await longrun.count_containers(self.gw)
        self.readings.append(reading)

    async def go(self) -> None:
        s = self.settings
        if s.warmup:
            longrun.progress(f"==> {s.warmup} warm-up cycles")
            for _ in range(s.warmup):
                if await self.cycle() is not None:
                    self.warmup_failures += 1
        self.baseline_settle_s, _ = await longrun.settle(self.gw, SETTLE)
        await sleep(QUIET)
        self.t0 = time.perf_counter()
        await self.read("baseline")
        longrun.progress(f"==> {s.cycles} cycles of connect, exec {COMMAND!r}, disconnect")
        in_a_row = 0
        started = time.perf_counter()
        for i in range(1, s.cycles + 1):
            begun = time.perf_counter()
            error = await self.cycle()
            self.done = i
            if error is None:
                self.durations.append(time.perf_counter() - begun)
                in_a_row = 0
            else:
                self.failures.append(f"cycle {i}: {error}")
                in_a_row += 1
            if i % s.sample_every == 0 or i == s.cycles:
                await self.read(f"cycle {i}")
                self._progress(i)
            if not self.gw.alive():
                self.aborted = f"the gateway exited (status {self.gw.server.process.poll()})"
            elif in_a_row >= GIVE_UP:
                self.aborted = f"{GIVE_UP} cycles in a row failed"
            if self.aborted:
                longrun.progress(f"    stopping: {self.aborted}")
                break
        self.loop_s = time.perf_counter() - started
        longrun.progress("==> waiting for the gateway to remove its containers")
        self.settle_s, self.after_containers = await longrun.settle(self.gw, SETTLE)
        await sleep(QUIET)
        await self.read("after settle")

    def _progress(self, i: int) -> None:
        r = self.readings[-1]
        rate = i / (time.perf_counter() - self.t0)
        longrun.progress(
            f"    {i} cycles ({rate:.2f}/s), {len(self.failures)} failed; RSS "
            f"{longrun.mib(r.rss_kib)}, {r.fds} fds, {r.containers} containers"
        )

    # figures

    def reading(self, label: str) -> ProcReading | None:
        return next((r for r in self.readings if r.label == label), None)

    def rss_slope(self) -> float | None:
        points = [(int(r.label.split()[1]), r.rss_kib) for r in self.readings
                  if r.label.startswith("cycle ") and r.rss_kib is not None]  # fmt: skip
        return _slope(points)


@dataclass
class ChurnReport:
    machine: dict[str, str]
    settings: Settings
    load_before: str
    run: ChurnRun | None = None
    leftover_containers: list[str] | None = None
    log: dict[str, Any] = field(default_factory=dict)
    date: str = field(default_factory=lambda: datetime.date.today().isoformat())

    def targets(self) -> list[longrun.Target]:
        run = self.run
        rows: list[longrun.Target] = []
        before = run.reading("baseline") if run else None
        after = run.reading("after settle") if run else None
        b_rss, a_rss = getattr(before, "rss_kib", None), getattr(after, "rss_kib", None)
        g = longrun.growth(b_rss, a_rss)
        shown = "n/a" if g is None else (
            f"{longrun.mib(b_rss)} -> {longrun.mib(a_rss)} ({g * 100:+.1f} %)")  # fmt: skip
        rows.append(("RSS after the settle within 5 % of the baseline", shown,
                     None if g is None else abs(g) <= TARGET_RSS))  # fmt: skip
        b_fds, a_fds = getattr(before, "fds", None), getattr(after, "fds", None)
        b_unix, a_unix = getattr(before, "unix", None), getattr(after, "unix", None)
        if None in (b_fds, a_fds, b_unix, a_unix):
            rows.append(("open fds after the settle equal to the baseline",
                         f"{longrun.num(b_fds)} -> {longrun.num(a_fds)}",
                         None if b_fds is None or a_fds is None else a_fds == b_fds))  # fmt: skip
        else:
            assert b_fds is not None and a_fds is not None
            assert b_unix is not None and a_unix is not None
            b_own, a_own = b_fds - b_unix, a_fds - a_unix
            rows.append(("fds but engine connections: back to the baseline",
                         f"{b_own} -> {a_own}", a_own == b_own))  # fmt: skip
            rows.append((f"engine connections: within {ENGINE_SLACK} of the baseline",
                         f"{b_unix} -> {a_unix}", a_unix - b_unix <= ENGINE_SLACK))  # fmt: skip
        if run is not None:
            n = self.settings.cycles
            ok = len(run.durations)
            rows.append(("every cycle succeeded", f"{ok}/{n}", ok == n))
            left = run.after_containers
            rows.append(("no container after the settle (gateway up)", longrun.num(left),
                         None if left is None else left == 0))  # fmt: skip
        rows.append(longrun.leftover_target(self.leftover_containers))
        return rows

    def failed(self) -> bool:
        return longrun.any_missed(self.targets())

    def render(self) -> str:
        s = self.settings
        lines = longrun.preamble(
            self.machine,
            self.date,
            self.load_before,
            f"churn: {s.cycles} cycles of connect, exec {COMMAND!r}, disconnect, one at a "
            f"time, after {s.warmup} warm-up cycles; gateway in {s.mode} mode",
        )
        run = self.run
        if run is None:
            lines.append("not run (the gateway did not start)")
            return "\n".join(lines)
        if run.durations:
            d = sorted(run.durations)
            rate = run.done / run.loop_s if run.loop_s else 0.0
            lines.append(
                f"{run.done} cycles in {run.loop_s:.1f} s: {rate:.2f} cycles/s; one cycle: "
                f"median {percentile(d, 0.5):.3f} s, p95 {percentile(d, 0.95):.3f} s, "
                f"max {d[-1]:.3f} s"
            )
        lines += self._table(run)
        slope = run.rss_slope()
        if slope is not None:
            lines.append(f"RSS slope over the readings during the churn (least squares): "
                         f"{slope:+.2f} KiB per cycle")  # fmt: skip
        lines.append("targets")
        lines += [longrun.target_row(*row) for row in self.targets()]
        settle = "n/a" if run.settle_s is None else f"{run.settle_s:.1f} s"
        lines.append(f"containers removed after the last cycle within: {settle}")
        if run.warmup_failures:
            lines.append(f"failed warm-up cycles: {run.warmup_failures}")
        if self.log:
            lines += longrun.log_lines(self.log)
        problems = [*([run.aborted] if run.aborted else []), *run.failures]
        if problems:
            lines.append(f"errors ({len(run.failures)} failed cycles):")
            lines += [f"  {p}" for p in problems[:10]]
        return "\n".join(lines)

    def _table(self, run: ChurnRun) -> list[str]:
        def row(*cells: str) -> str:
            return f"  {cells[0]:<14}" + "".join(f"{c:>12}" for c in cells[1:])

        lines = [
            "the gateway process (fds: all; of them TCP sockets and engine connections)",
            row("", "at", "RSS", "fds", "TCP", "engine", "threads", "containers", "gw CPU"),
        ]
        base = run.reading("baseline")
        for r in run.readings:
            cpu = "" if base is None or r.cpu_s is None or base.cpu_s is None else (
                f"{r.cpu_s - base.cpu_s:.1f} s")  # fmt: skip
            lines.append(row(r.label, f"{r.at:.0f} s", longrun.mib(r.rss_kib),
                             longrun.num(r.fds), longrun.num(r.tcp), longrun.num(r.unix),
                             longrun.num(r.threads), longrun.num(r.containers), cpu))  # fmt: skip
        return lines

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "date": self.date,
            "machine": self.machine,
            "settings": self.settings.as_json(),
            "load_average_before": self.load_before,
            "targets": [{"target": t, "measured": m, "pass": ok} for t, m, ok in self.targets()],
            "leftover_containers": self.leftover_containers,
            "gateway_log": self.log,
        }
        run = self.run
        if run is None:
            return out
        d = sorted(run.durations)
        out |= {
            "cycles_done": run.done,
            "loop_s": run.loop_s,
            "cycles_per_s": run.done / run.loop_s if run.loop_s else None,
            "cycle_median_s": percentile(d, 0.5) if d else None,
            "cycle_p95_s": percentile(d, 0.95) if d else None,
            "cycle_max_s": d[-1] if d else None,
            "cycle_s": run.durations,
            "failures": run.failures,
            "warmup_failures": run.warmup_failures,
            "aborted": run.aborted,
            "readings": [r.as_json() for r in run.readings],
            "rss_slope_kib_per_cycle": run.rss_slope(),
            "baseline_settle_s": run.baseline_settle_s,
            "settle_s": run.settle_s,
            "containers_after_settle": run.after_containers,
        }
        return out

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n")


def measure(settings: Settings, work: servers.Workspace) -> ChurnReport:
    """Start the gateway, churn, stop it; every container is gone on return."""
    report = ChurnReport(machine_facts(), settings, longrun.load_average())
    key = load_key(work.client_key.private_path)
    started: list[Gateway] = []
    try:
        longrun.progress(f"==> starting the gateway ({settings.mode} mode)")
        with longrun.gateway(work, settings) as gw:
            started.append(gw)
            run = ChurnRun(settings, gw, key)
            report.run = run
            longrun.run_reactor(run.go)
            longrun.progress("==> stopping the gateway")
        report.leftover_containers = gw.containers()
        report.log = gw.log_summary()
    finally:
        for gw in started:
            gw.remove_containers()
    return report

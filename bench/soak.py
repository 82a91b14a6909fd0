"""``./bench/run --only soak``: many interactive sessions through a pty, for minutes.

``--sessions`` (default 200) SSH connections, each with ``pty-req`` and
``shell``, are opened ``--ramp`` (default 10) at a time. In each shell the
client types ``echo RE''ADY; exec cat >/dev/null`` and waits for ``READY``:
from then on the container's terminal is in its normal (canonical, echoing)
mode with ``cat`` reading it, so every key typed comes back as the terminal's
echo and as nothing else. Once every session is open the measured minutes
(``--minutes``, default 10) start: each session types one key every
``--interval-ms`` (default 200 ms; the sessions' keys are spread evenly over
the interval), a letter, and every 64th key Enter (whose echo is ``\\r\\n``),
so the line never fills the terminal's buffer.

The **echo latency** of a key is the time from the client's write of it to
the arrival of its echo in the client: the SSH packet to the gateway, the
engine's attach stream into the container's terminal, the terminal's echo,
and all the way back. It is attributed to the minute the key was typed in.

At the start and at the end of every minute the gateway process is read
(``/proc``): CPU time used in the minute, ``VmRSS``, open file descriptors;
and the engine is asked how many of the gateway's containers exist. At the
end every session is closed, the benchmark waits for the gateway to remove
the containers (it keeps running meanwhile), reads it once more, stops it,
and checks that no container is left.
"""

from __future__ import annotations

import datetime
import json
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.interfaces import IDelayedCall

from bench import longrun, servers
from bench.conchclient import Link, Session, SSHFailure, load_key, sleep, when
from bench.longrun import Gateway, ProcReading, Settings, ms, percentile
from bench.report import machine_facts

LETTERS = b"abcdefghijklmnopqrstuvwxyz"
ENTER_EVERY = 64
CR, LF = 13, 10
#: Typed first in every shell; the quotes keep the echo of the line itself from matching.
START = b"echo RE''ADY; exec cat >/dev/null\r"
MARKER = b"READY"
#: Seconds one session may take from connecting to ``READY`` (the engine is busy meanwhile).
OPEN_TIMEOUT = 180.0
#: Seconds to wait for the echoes of the last keys after typing has stopped.
DRAIN = 10.0
#: Seconds the gateway has to remove the containers after every session closed.
SETTLE = 300.0

TARGET_P99 = 0.050
TARGET_GROWTH = 0.05


def _key(n: int) -> tuple[bytes, int]:
    """The ``n``-th key a session types, and the byte of its echo to wait for."""
    if n % ENTER_EVERY == ENTER_EVERY - 1:
        return b"\r", LF
    letter = LETTERS[n % len(LETTERS)]
    return bytes([letter]), letter


@dataclass
class Minute:
    """What the sessions measured in one minute: echo latencies and timer lag, in seconds."""

    echo: array[float] = field(default_factory=lambda: array("d"))
    lag: array[float] = field(default_factory=lambda: array("d"))
    keys: int = 0


class Typist:
    """One interactive session: opens, waits for its terminal, types, times the echoes."""

    def __init__(self, index: int, run: SoakRun) -> None:
        self.index = index
        self.run = run
        self.link: Link | None = None
        self.chan: Session | None = None
        self.open_s: float | None = None
        #: Why the session failed to open, or ended before it was closed.
        self.error: str | None = None
        self.dropped = False
        self.closing = False
        self.ready: defer.Deferred[None] = defer.Deferred()
        self._seen = bytearray()
        self._typing = False
        self._n = 0
        self._due = 0.0
        self._timer: IDelayedCall | None = None
        #: Keys typed and not yet echoed: (echo byte, time written, minute).
        self.pending: deque[tuple[int, float, int]] = deque()
        self.unechoed = 0
        self.unexpected = 0

    async def open(self, port: int, user: str, key: Any) -> None:
        started = time.perf_counter()
        self.link = Link(port, user, key)
        try:
            await self.link.connect(OPEN_TIMEOUT)
            self.chan = await self.link.open_session(None, True, self._data, OPEN_TIMEOUT)
            self.chan.write(START)
            try:
                await when(self.ready, OPEN_TIMEOUT)
            except defer.TimeoutError:
                seen = bytes(self._seen[-120:])
                raise SSHFailure(
                    f"no {MARKER.decode()} within {OPEN_TIMEOUT:.0f} s: {seen!r}"
                ) from None
        except Exception as e:  # anything at all: this session failed, the others go on
            self.error = f"open: {e or type(e).__name__}"
            self.link.abort()
            return
        self.open_s = time.perf_counter() - started
        self.link.closed.addCallback(self._ended, "connection closed")
        self.chan.done.addCallback(self._ended, "channel closed")

    def _ended(self, _: object, what: str) -> None:
        if self.closing or self.dropped:
            return
        self.dropped = True
        self.stop()
        assert self.link is not None and self.chan is not None
        why = self.link.disconnect_reason or (
            f"exit status {self.chan.exit_status}" if self.chan.exit_status is not None else ""
        )
        elapsed = time.perf_counter() - self.run.t0 if self.run.t0 else 0.0
        self.error = f"dropped after {elapsed:.0f} s: {what}" + (f" ({why})" if why else "")

    # typing

    def start(self, first: float) -> None:
        """Type one key every interval from reactor time ``first`` until the run's end."""
        self._typing = True
        self._schedule(first)

    def _schedule(self, due: float) -> None:
        if due >= self.run.end or self.dropped:
            self._timer = None
            return
        self._due = due
        self._timer = reactor.callLater(max(0.0, due - longrun.now()), self._type)

    def _type(self) -> None:
        assert self.chan is not None
        lag = longrun.now() - self._due
        written = time.perf_counter()
        minute = self.run.minute_of(written)
        key, echo = _key(self._n)
        self._n += 1
        self.pending.append((echo, written, minute))
        stats = self.run.minutes[minute]
        stats.keys += 1
        stats.lag.append(lag)
        self.chan.write(key)
        self._schedule(self._due + self.run.interval)

    def stop(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _data(self, data: bytes) -> None:
        arrived = time.perf_counter()
        if not self.ready.called:
            self._seen += data
            if MARKER in self._seen:
                self.ready.callback(None)
            return
        if not self._typing:
            return  # the end of the READY line
        pending = self.pending
        for byte in data:
            if byte == CR:
                continue
            skipped = next((k for k, (echo, _, _) in enumerate(pending) if echo == byte), None)
            if skipped is None:
                self.unexpected += 1
                continue
            for _ in range(skipped):
                pending.popleft()
                self.unechoed += 1
            _, written, minute = pending.popleft()
            self.run.minutes[minute].echo.append(arrived - written)

    async def close(self) -> None:
        self.closing = True
        self.stop()
        if self.link is not None:
            await self.link.close()


class SoakRun:
    """The sessions, the clock of the measured minutes, and the readings."""

    def __init__(self, settings: Settings, gw: Gateway, key: Any) -> None:
        self.settings = settings
        self.gw = gw
        self.key = key
        self.interval = settings.interval_ms / 1000
        self.typists = [Typist(i, self) for i in range(settings.sessions)]
        self.minutes = [Minute() for _ in range(settings.minutes)]
        self.readings: list[ProcReading] = []
        #: perf_counter time the measured minutes started; reactor time they end.
        self.t0 = 0.0
        self.end = 0.0
        self.ramp_s = 0.0
        self.settle_s: float | None = None
        self.after_close_containers: int | None = None
        #: Why the measured minutes ended early, if they did.
        self.aborted: str | None = None

    def minute_of(self, t: float) -> int:
        return min(len(self.minutes) - 1, max(0, int((t - self.t0) // 60)))

    async def read(self, label: str) -> None:
        at = time.perf_counter() - self.t0
        reading = longrun.read_process(self.gw.pid, label, at, None)
        reading.containers = await longrun.count_containers(self.gw)
        self.readings.append(reading)

    async def go(self) -> None:
        settings = self.settings
        port, user = self.gw.client.port, self.gw.client.user
        longrun.progress(f"==> opening {settings.sessions} sessions, {settings.ramp} at a time")
        started = time.perf_counter()
        gate = defer.DeferredSemaphore(settings.ramp)
        opening = [gate.run(t.open, port, user, self.key) for t in self.typists]
        await defer.gatherResults(opening)
        self.ramp_s = time.perf_counter() - started
        live = [t for t in self.typists if t.error is None]
        longrun.progress(f"    {len(live)} open in {self.ramp_s:.1f} s")
        if not live:
            return
        self.t0 = time.perf_counter()
        begin = longrun.now()
        self.end = begin + 60 * settings.minutes
        await self.read("start")
        for i, t in enumerate(live):
            t.start(begin + self.interval * i / len(live))
        for m in range(1, settings.minutes + 1):
            await sleep(begin + 60 * m - longrun.now())
            await self.read(f"minute {m}")
            self._minute_progress(m)
            if not self.gw.alive():
                status = self.gw.server.process.poll()
                self.aborted = f"the gateway exited (status {status}) in minute {m}"
                longrun.progress(f"    stopping: {self.aborted}")
                for t in live:
                    t.stop()
                break
        deadline = time.perf_counter() + DRAIN
        while any(t.pending for t in live) and time.perf_counter() < deadline:
            await sleep(0.1)
        for t in self.typists:
            t.unechoed += len(t.pending)
            t.pending.clear()
        longrun.progress("==> closing the sessions")
        await defer.gatherResults([defer.ensureDeferred(t.close()) for t in self.typists])
        self.settle_s, self.after_close_containers = await longrun.settle(self.gw, SETTLE)
        await self.read("after close")

    def _minute_progress(self, m: int) -> None:
        stats = self.minutes[m - 1]
        reading = self.readings[-1]
        echo = sorted(stats.echo)
        p99 = ms(percentile(echo, 0.99)) if echo else "n/a"
        dropped = sum(t.dropped for t in self.typists)
        longrun.progress(
            f"    minute {m}: {stats.keys} keys, echo p99 {p99}, RSS {longrun.mib(reading.rss_kib)}"
            f", {reading.fds} fds, {reading.containers} containers, {dropped} dropped"
        )


@dataclass
class SoakReport:
    machine: dict[str, str]
    settings: Settings
    load_before: str
    run: SoakRun | None = None
    leftover_containers: list[str] | None = None
    log: dict[str, Any] = field(default_factory=dict)
    date: str = field(default_factory=lambda: datetime.date.today().isoformat())

    # figures

    def _echo(self, minutes: list[Minute]) -> list[float]:
        return sorted(x for m in minutes for x in m.echo)

    def _baseline(self) -> tuple[int, ProcReading | None, ProcReading | None]:
        """The readings the growth targets compare: end of minute 2 (or the start) and the last."""
        assert self.run is not None
        readings = {r.label: r for r in self.run.readings}
        last = self.settings.minutes
        first = 2 if last > 2 else 0
        label = f"minute {first}" if first else "start"
        return first, readings.get(label), readings.get(f"minute {last}")

    def targets(self) -> list[longrun.Target]:
        run = self.run
        rows: list[longrun.Target] = []
        echo = self._echo(run.minutes) if run else []
        p99 = percentile(echo, 0.99) if echo else None
        rows.append(("p99 echo latency under 50 ms", ms(p99),
                     None if p99 is None else p99 < TARGET_P99))  # fmt: skip
        first, before, after = self._baseline() if run else (0, None, None)
        span = f"minute {first} to {self.settings.minutes}" if first else "whole run"
        for what, attr in (("RSS", "rss_kib"), ("open fds", "fds")):
            b = getattr(before, attr, None)
            a = getattr(after, attr, None)
            g = longrun.growth(b, a)
            shown = "n/a" if g is None else f"{b} -> {a} ({g * 100:+.1f} %)"
            if attr == "rss_kib" and g is not None:
                shown = f"{longrun.mib(b)} -> {longrun.mib(a)} ({g * 100:+.1f} %)"
            rows.append((f"{what} growth, {span}, under 5 %", shown,
                         None if g is None else g < TARGET_GROWTH))  # fmt: skip
        n = self.settings.sessions
        if run is not None:
            ok = sum(1 for t in run.typists if t.error is None)
            rows.append(("every session opened and lasted the whole run", f"{ok}/{n}", ok == n))
            missing = sum(t.unechoed for t in run.typists)
            rows.append(("every key echoed", f"{missing} missing", missing == 0))
            left = run.after_close_containers
            rows.append(("no container once the sessions closed (gateway up)",
                         longrun.num(left), None if left is None else left == 0))  # fmt: skip
        rows.append(longrun.leftover_target(self.leftover_containers))
        return rows

    def failed(self) -> bool:
        return longrun.any_missed(self.targets())

    # output

    def render(self) -> str:
        s = self.settings
        lines = longrun.preamble(
            self.machine,
            self.date,
            self.load_before,
            f"soak: {s.sessions} sessions through a pty, {s.minutes} min, one key every "
            f"{s.interval_ms} ms per session; gateway in {s.mode} mode",
        )
        run = self.run
        if run is None:
            lines.append("not run (the gateway did not start)")
            return "\n".join(lines)
        opened = sorted(t.open_s for t in run.typists if t.open_s is not None)
        if opened:
            lines.append(
                f"sessions opened {len(opened)}/{s.sessions} ({s.ramp} at a time) in "
                f"{run.ramp_s:.1f} s; one session: median {percentile(opened, 0.5):.2f} s, "
                f"p95 {percentile(opened, 0.95):.2f} s"
            )
        lines += self._minute_table(run)
        lines.append("targets")
        lines += [longrun.target_row(*row) for row in self.targets()]
        lag = sorted(x for m in run.minutes for x in m.lag)
        if lag:
            client_cpu = run.readings[-1].client_cpu_s - run.readings[0].client_cpu_s
            lines.append(
                f"load generator (this process): timer lag p99 {ms(percentile(lag, 0.99))}, "
                f"max {ms(lag[-1])}; CPU {client_cpu:.1f} s"
            )
        settle = "n/a" if run.settle_s is None else f"{run.settle_s:.1f} s"
        lines.append(f"containers removed after the sessions closed within: {settle}")
        unexpected = sum(t.unexpected for t in run.typists)
        lines.append(f"bytes that were no echo of a key typed: {unexpected}")
        if self.log:
            lines += longrun.log_lines(self.log)
        errors = sorted({t.error for t in run.typists if t.error})
        if run.aborted:
            errors.insert(0, run.aborted)
        if errors:
            lines.append("errors:")
            lines += [f"  {e}" for e in errors[:10]]
        return "\n".join(lines)

    def _minute_table(self, run: SoakRun) -> list[str]:
        def row(*cells: str) -> str:
            return f"  {cells[0]:<12}" + "".join(f"{c:>11}" for c in cells[1:])

        lines = [
            "echo latency (key written -> its echo back) and the gateway process, per minute",
            row(
                "", "keys", "p50", "p99", "max", "gw CPU", "RSS", "fds", "containers", "client CPU"
            ),
        ]
        by_label = {r.label: r for r in run.readings}
        start = by_label.get("start")
        if start is not None:
            lines.append(row("start", "", "", "", "", "", longrun.mib(start.rss_kib),
                             longrun.num(start.fds), longrun.num(start.containers)))  # fmt: skip
        previous = start
        for m, stats in enumerate(run.minutes, 1):
            reading = by_label.get(f"minute {m}")
            echo = sorted(stats.echo)
            figures = [ms(percentile(echo, q)) for q in (0.5, 0.99)] if echo else ["n/a"] * 2
            figures.append(ms(echo[-1]) if echo else "n/a")
            proc = ["n/a"] * 5
            if reading is not None:
                cpu = _delta(previous, reading, "cpu_s")
                client = _delta(previous, reading, "client_cpu_s")
                proc = [
                    "n/a" if cpu is None else f"{cpu:.2f} s",
                    longrun.mib(reading.rss_kib),
                    longrun.num(reading.fds),
                    longrun.num(reading.containers),
                    "n/a" if client is None else f"{client:.2f} s",
                ]
                previous = reading
            lines.append(row(f"minute {m}", str(stats.keys), *figures, *proc))
        echo = self._echo(run.minutes)
        if echo:
            keys = sum(m.keys for m in run.minutes)
            lines.append(row("all", str(keys), ms(percentile(echo, 0.5)),
                             ms(percentile(echo, 0.99)), ms(echo[-1])))  # fmt: skip
        after = by_label.get("after close")
        if after is not None:
            lines.append(row("after close", "", "", "", "", "", longrun.mib(after.rss_kib),
                             longrun.num(after.fds), longrun.num(after.containers)))  # fmt: skip
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
        minutes = []
        for m, stats in enumerate(run.minutes, 1):
            echo = sorted(stats.echo)
            minutes.append({
                "minute": m,
                "keys": stats.keys,
                "echoes": len(echo),
                "echo_p50_s": percentile(echo, 0.5) if echo else None,
                "echo_p99_s": percentile(echo, 0.99) if echo else None,
                "echo_max_s": echo[-1] if echo else None,
                "timer_lag_p99_s": percentile(sorted(stats.lag), 0.99) if stats.lag else None,
            })  # fmt: skip
        echo = self._echo(run.minutes)
        out |= {
            "ramp_s": run.ramp_s,
            "open_s": [t.open_s for t in run.typists],
            "minutes": minutes,
            "echo_all": {
                "count": len(echo),
                "p50_s": percentile(echo, 0.5) if echo else None,
                "p99_s": percentile(echo, 0.99) if echo else None,
                "max_s": echo[-1] if echo else None,
            },
            "readings": [r.as_json() for r in run.readings],
            "sessions_failed": [t.error for t in run.typists if t.error],
            "keys_unechoed": sum(t.unechoed for t in run.typists),
            "bytes_unexpected": sum(t.unexpected for t in run.typists),
            "containers_after_close": run.after_close_containers,
            "settle_s": run.settle_s,
            "aborted": run.aborted,
        }
        return out

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n")


def _delta(before: ProcReading | None, after: ProcReading, attr: str) -> float | None:
    a = getattr(after, attr)
    b = getattr(before, attr, None) if before is not None else None
    return None if a is None or b is None else a - b


def measure(settings: Settings, work: servers.Workspace) -> SoakReport:
    """Start the gateway, run the sessions, stop it; every container is gone on return."""
    report = SoakReport(machine_facts(), settings, longrun.load_average())
    key = load_key(work.client_key.private_path)
    started: list[Gateway] = []
    try:
        longrun.progress(f"==> starting the gateway ({settings.mode} mode)")
        with longrun.gateway(work, settings) as gw:
            started.append(gw)
            run = SoakRun(settings, gw, key)
            report.run = run
            longrun.run_reactor(run.go)
            longrun.progress("==> stopping the gateway")
        report.leftover_containers = gw.containers()
        report.log = gw.log_summary()
    finally:
        for gw in started:
            gw.remove_containers()
    return report

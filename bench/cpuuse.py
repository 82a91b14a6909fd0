"""CPU time used by the processes on a data path, read from ``/proc``.

A transfer's rate says how fast; the CPU each process on its path spent per
MiB says where the machine's cores went. Two groups are measured around each
transfer: the server (the process started by the benchmark, with the
children it has reaped: sshd's sessions and the programs they ran) and the
container engine (``dockerd`` and every ``containerd-shim``, with the programs
the shims reaped: the ones run in containers).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: Names (``/proc/PID/comm``, at most 15 characters) of the engine's processes.
ENGINE_NAMES = ("dockerd", "containerd-shim")
_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> tuple[str, float] | None:
    """A process's name and CPU seconds (its own and its reaped children's), if it exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The name is in parentheses and may contain spaces: split after the last one.
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    # utime, stime, cutime, cstime are fields 14-17 (1-based) of the whole line.
    ticks = sum(int(f) for f in fields[11:15])
    return name, ticks / _TICKS


def _engine_pids() -> Iterable[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            found = _cpu_seconds(int(entry.name))
            if found is not None and found[0].startswith(ENGINE_NAMES):
                yield int(entry.name)


@dataclass(frozen=True)
class Snapshot:
    """CPU seconds of the server and of each engine process at one moment."""

    server: float | None
    engine: dict[int, float]


def snapshot(server_pid: int | None) -> Snapshot:
    """The CPU time used so far by the server (if given) and the engine."""
    server = _cpu_seconds(server_pid) if server_pid is not None else None
    engine: dict[int, float] = {}
    for pid in _engine_pids():
        found = _cpu_seconds(pid)
        if found is not None:
            engine[pid] = found[1]
    return Snapshot(server[1] if server else None, engine)


def used(before: Snapshot, after: Snapshot) -> tuple[float | None, float]:
    """CPU seconds the server and the engine used between two snapshots.

    An engine process that started in between counts in full (a new
    container's shim); one that ended in between is missed, which is why the
    snapshot is taken as soon as the transfer ends.
    """
    server = None
    if before.server is not None and after.server is not None:
        server = after.server - before.server
    engine = sum(t - before.engine.get(pid, 0.0) for pid, t in after.engine.items())
    return server, engine

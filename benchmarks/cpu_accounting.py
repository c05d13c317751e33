"""CPU accounting for a benchmark cell: who used the cores while it ran.

This machine type has 2 cores and other jobs may share it. Each cell records the
cores used by the gateway, by the load generator and by everything else ("other"),
so a cell disturbed by a foreign process is visible in the results.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def system_busy_seconds() -> float:
    """CPU-seconds spent busy by all cores since boot (everything but idle and iowait)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / _TICKS


def process_seconds(pid: int) -> float:
    """user + system CPU-seconds of a process and all its threads (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def child_pids(pid: int) -> list[int]:
    """Live child processes of ``pid`` (every thread's children; [] when it is gone)."""
    children: list[int] = []
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children += [int(child) for child in path.read_text().split()]
        except OSError:  # the thread ended meanwhile
            continue
    return children


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident set (VmRSS) or its peak (VmHWM) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass(frozen=True)
class CpuShare:
    """Average cores busy during a cell, split by owner."""

    gateway: float
    loadgen: float
    other: float

    def to_dict(self) -> dict[str, float]:
        return {"gateway": self.gateway, "loadgen": self.loadgen, "other": self.other}


class CpuMeter:
    """Start before a cell, ``stop`` after it: cores used by the gateway, by the load
    generator (children of this process reaped meanwhile) and by everything else."""

    def __init__(self, gateway_pids: int | list[int]) -> None:
        self._gateway = [gateway_pids] if isinstance(gateway_pids, int) else list(gateway_pids)
        self._start = time.perf_counter()
        self._system = system_busy_seconds()
        self._gateway_cpu = sum(process_seconds(pid) for pid in self._gateway)
        self._children = _children_seconds()
        self._own = _own_seconds()

    def stop(self) -> CpuShare:
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        system = system_busy_seconds() - self._system
        gateway = sum(process_seconds(pid) for pid in self._gateway) - self._gateway_cpu
        loadgen = (_children_seconds() - self._children) + (_own_seconds() - self._own)
        other = max(system - gateway - loadgen, 0.0)
        return CpuShare(gateway / elapsed, loadgen / elapsed, other / elapsed)


def _children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _own_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def background_cores(seconds: float = 1.0) -> float:
    """Cores busy while this process sleeps: the machine's background load."""
    before = system_busy_seconds()
    time.sleep(seconds)
    return (system_busy_seconds() - before) / seconds

"""The processes of a gateway started with ``--workers N``, seen from outside.

The primary (the PID the benchmark started) spawns N-1 replica processes
(``python -m edge_server.workers.replica``); the benchmark reads how many to expect
from the flags, sums memory over all of them and makes sure none outlives a stop.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
from pathlib import Path

from benchmarks.cpu_accounting import rss_mb

_REPLICA = "edge_server.workers.replica"


def worker_count(flags: list[str]) -> int:
    """Gateway processes ``--workers N`` / ``--workers=N`` asks for (0 or none: automatic,
    one per core here; GatewayProcess corrects it from the gateway's log)."""
    count = 0
    for index, flag in enumerate(flags):
        if flag == "--workers" and index + 1 < len(flags):
            count = int(flags[index + 1])
        elif flag.startswith("--workers="):
            count = int(flag.split("=", 1)[1])
    return count or len(os.sched_getaffinity(0))


def sum_rss_mb(pids: list[int], field: str) -> float:
    """``field`` of /proc/PID/status summed over ``pids``, MiB; a replica gone
    meanwhile counts 0, the primary gone makes it NaN."""
    total = 0.0
    for index, pid in enumerate(pids):
        try:
            value = rss_mb(pid, field)
        except OSError:
            value = float("nan")
        if math.isnan(value) and index == 0:
            return value
        total += 0.0 if math.isnan(value) else value  # a replica exiting (or a zombie)
    return total


def reap_replicas(pids: list[int], timeout: float = 10.0) -> None:
    """A replica outliving its primary stops once its stdin closes; SIGKILL any still
    there after ``timeout`` (only our replicas: the command line is checked)."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while _is_replica(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _is_replica(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _is_replica(pid: int) -> bool:
    try:
        return _REPLICA in Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return False

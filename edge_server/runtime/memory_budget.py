"""The automatic memory budget: a share of the memory this process may use.

The board's memory is ``MemTotal`` (/proc/meminfo), or the cgroup v2 ``memory.max`` of
the process's cgroup when that is set and smaller (a container). The budget for
request payloads and decoded images (``--memory-budget-bytes 0``) is
``--memory-budget-percent`` (25) of it, divided by the gateway processes
(``--workers``), kept between ``FLOOR_BYTES`` (64 MiB) and ``CEILING_BYTES`` (4 GiB):
the rest is left to the models, the runtime and whatever else runs on the board.
"""

from __future__ import annotations

from pathlib import Path

MIB = 1024 * 1024
FLOOR_BYTES = 64 * MIB
CEILING_BYTES = 4096 * MIB
FALLBACK_BYTES = 1024 * MIB  # neither /proc/meminfo nor a cgroup limit readable


def _mem_total(proc: Path) -> int | None:
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_limit(proc: Path, cgroup_root: Path) -> int | None:
    """cgroup v2 memory.max of this process's cgroup (None: unlimited or v1/absent)."""
    try:
        lines = (proc / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            folder = cgroup_root / line[3:].strip().lstrip("/")
            for candidate in (folder / "memory.max", cgroup_root / "memory.max"):
                try:
                    value = candidate.read_text().strip()
                    return None if value == "max" else int(value)
                except (OSError, ValueError):  # absent, or not a limit we can read
                    continue
    return None


def board_memory_bytes(
    proc: Path = Path("/proc"), cgroup_root: Path = Path("/sys/fs/cgroup")
) -> int:
    """The memory this process may use: MemTotal, or a smaller cgroup v2 limit."""
    known = [v for v in (_mem_total(proc), _cgroup_limit(proc, cgroup_root)) if v]
    return min(known) if known else FALLBACK_BYTES


def memory_budget_bytes(configured: int, percent: int, workers: int, board: int) -> int:
    """``configured`` when set, else ``percent`` of ``board`` per process, clamped."""
    if configured > 0:
        return configured
    share = board * percent // 100 // max(1, workers)
    return max(FLOOR_BYTES, min(CEILING_BYTES, share))

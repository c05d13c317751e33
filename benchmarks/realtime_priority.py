"""Command prefixes that run a benchmark process above the gateway's priority.

On a 2-core box saturated by decode and inference, a process that must answer fast
(the HAProxy front) or measure fast (the overload probe, which stands for a client on
another device) waits for a core behind the gateway's own threads. ``realtime`` uses
SCHED_FIFO (``chrt -f``, as systemd's ``CPUSchedulingPolicy=fifo`` does for a
service); without the privilege it falls back to ``nice -n -10``, and without that to
no prefix, and says which one it got.
"""

from __future__ import annotations

import functools
import shutil
import subprocess

FRONT_RT_PRIORITY = 10
PROBE_RT_PRIORITY = 20


@functools.cache
def _works(*prefix: str) -> bool:
    if shutil.which(prefix[0]) is None:
        return False
    done = subprocess.run([*prefix, "true"], capture_output=True, check=False)
    return done.returncode == 0


def realtime(priority: int) -> list[str]:
    """``chrt -f PRIORITY`` when permitted, else ``nice -n -10``, else []."""
    for prefix in (("chrt", "-f", str(priority)), ("nice", "-n", "-10")):
        if _works(*prefix):
            return list(prefix)
    return []


def describe(prefix: list[str]) -> str:
    """How a prefix schedules its process, for the results."""
    if not prefix:
        return "normal priority"
    if prefix[0] == "chrt":
        return f"SCHED_FIFO {prefix[-1]}"
    return f"nice {prefix[-1]}"

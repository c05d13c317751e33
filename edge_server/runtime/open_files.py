"""The open-files limit: raised at start where allowed, and shared fairly between faces.

Every gRPC and HTTP connection, model file and pool thread's pipe costs a descriptor.
Distributions start services with a soft limit as low as 1024 (256 on some boards) while
the hard limit is far higher; the gateway raises its soft limit to the hard one (capped),
so idle HTTP clients cannot exhaust the table that gRPC's ``accept`` needs. The HTTP face
is also capped (``--http-max-connections``); both limits are exported in ``/metrics``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# Beyond this the kernel's per-process table costs memory for nothing on a small board.
TARGET_SOFT_LIMIT = 65_536


@dataclass(frozen=True)
class OpenFilesLimit:
    soft: int
    hard: int
    raised_from: int | None  # the soft limit before start-up raised it, if it did


def raise_open_files_limit(target: int = TARGET_SOFT_LIMIT) -> OpenFilesLimit:
    """Raise the soft RLIMIT_NOFILE towards ``target`` (never above the hard limit)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return OpenFilesLimit(-1, -1, None)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = target if hard == resource.RLIM_INFINITY else min(hard, target)
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
        except (ValueError, OSError) as exc:  # a container may forbid it: keep going
            logger.warning("cannot raise the open-files limit from %d: %s", soft, exc)
            return OpenFilesLimit(soft, hard, None)
        logger.info("open-files limit raised from %d to %d (hard limit %d)", soft, ceiling, hard)
        return OpenFilesLimit(ceiling, hard, soft)
    return OpenFilesLimit(soft, hard, None)


def open_files_now() -> int:
    """Descriptors this process holds (Linux /proc; -1 where unknown)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1

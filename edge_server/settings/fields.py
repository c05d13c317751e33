"""What every settings section is made of: the field helper with its help text, the
environment prefix, and the core count defaults are derived from."""

from __future__ import annotations

import os
from dataclasses import field
from typing import Any

ENV_PREFIX = "EDGE_"
GRAPH_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
SHARED_MEMORY_MODES = ("off", "local", "on")


def default_cpu_count() -> int:
    """Cores this process may use (respects CPU affinity / cgroup cpusets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def setting(default: Any, help: str) -> Any:
    """A settings field with its help text (a dict default is copied per instance)."""
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})

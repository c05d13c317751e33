"""Plain data shared by the pull-mode reconciler and its gRPC client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from edge_server.lifecycle.updater import Mode

__all__ = [
    "DesiredVersion",
    "Fetch",
    "RunningModel",
    "StatusEvent",
]


@dataclass(frozen=True)
class DesiredVersion:
    model: str
    version: str
    sha256: str
    size: int
    mode: Mode = Mode.ACTIVATE
    rollout_id: str = ""
    window: str = ""  # HH:MM-HH:MM local time: activate only then (empty: any time)


@dataclass(frozen=True)
class RunningModel:
    model: str
    active_version: str
    state: str  # LOADING READY FAILED UNLOADED
    sha256: str = ""


@dataclass(frozen=True)
class StatusEvent:
    model: str
    version: str
    kind: str  # ACTIVATED REJECTED ROLLED_BACK STAGED FAILED
    reason: str
    at: float


# (model, version, offset) -> chunks as (offset, bytes)
Fetch = Callable[[str, str, int], AsyncIterator[tuple[int, bytes]]]

"""What a rollout looks like to its readers: the rollout, its targets, a listing row."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cloud_orchestrator.storage.models import Rollout, RolloutTarget

__all__ = ["RolloutRecord", "RolloutSummary", "TargetRecord", "record_from_rows"]


@dataclass(frozen=True)
class TargetRecord:
    gateway_id: str
    wave: int
    state: str
    previous_version: str
    attempts: int
    bytes_sent: int
    reason: str
    updated_at: float
    pushed_by: str
    evidence: str = ""  # JSON: the gate's evidence and verdict for this gateway

    @property
    def evidence_data(self) -> dict[str, Any] | None:
        return json.loads(self.evidence) if self.evidence else None

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["evidence"] = self.evidence_data
        return data


@dataclass(frozen=True)
class RolloutRecord:
    id: str
    model_name: str
    version: str
    selector: str
    strategy: str
    max_parallel: int
    max_failures: str
    watch_seconds: float
    state: str
    current_wave: int
    wave_count: int
    owner: str
    lease_expires_at: float
    created_by: str
    created_at: float
    updated_at: float
    reason: str
    targets: tuple[TargetRecord, ...] = field(default=())
    rate_per_minute: float = 0.0  # 0: paced by --max-parallel only
    gate: str = ""  # GateConfig as JSON (rollouts/gates.py); "" without an evidence gate
    stage_only: bool = False
    windows: str = ""  # maintenance windows as JSON (rollouts/windows.py)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["targets"] = [t.to_dict() for t in self.targets]
        data["gate"] = json.loads(self.gate) if self.gate else None
        data["windows"] = json.loads(self.windows) if self.windows else []
        return data


@dataclass(frozen=True)
class RolloutSummary:
    """One row of `edge-orchestrator rollouts`: target counts, not 10,000 targets."""

    id: str
    model_name: str
    version: str
    strategy: str
    state: str
    created_at: float
    targets_by_state: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.targets_by_state.values())

    @property
    def succeeded(self) -> int:
        return self.targets_by_state.get("SUCCEEDED", 0)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["targets"] = self.total
        data["succeeded"] = self.succeeded
        return data


def _target(row: RolloutTarget) -> TargetRecord:
    return TargetRecord(
        row.gateway_id,
        row.wave,
        row.state,
        row.previous_version,
        row.attempts,
        row.bytes_sent,
        row.reason,
        row.updated_at,
        row.pushed_by,
        row.evidence or "",
    )


def record_from_rows(row: Rollout, targets: Sequence[RolloutTarget] = ()) -> RolloutRecord:
    return RolloutRecord(
        id=row.id,
        model_name=row.model_name,
        version=row.version,
        selector=row.selector,
        strategy=row.strategy,
        max_parallel=row.max_parallel,
        max_failures=row.max_failures,
        watch_seconds=row.watch_seconds,
        state=row.state,
        current_wave=row.current_wave,
        wave_count=row.wave_count,
        owner=row.owner,
        lease_expires_at=row.lease_expires_at,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        reason=row.reason,
        rate_per_minute=row.rate_per_minute or 0.0,
        gate=row.gate or "",
        stage_only=bool(row.stage_only),
        windows=row.windows or "",
        targets=tuple(_target(t) for t in sorted(targets, key=lambda t: (t.wave, t.gateway_id))),
    )

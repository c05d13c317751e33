"""Running a finished rollout again: `deploy --retry-failed` (its failed gateways) and
`rollout ID --activate` (a stage-only rollout's staged gateways). Both put targets back
to PENDING and the rollout back to the first wave with such a target, claimed by the
caller or left for an `edge-orchestrator serve` process."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from cloud_orchestrator.errors import InvalidRequest, NotFound
from cloud_orchestrator.rollouts.records import RolloutRecord
from cloud_orchestrator.storage.db import Database
from cloud_orchestrator.storage.models import Rollout, RolloutEvent, RolloutTarget

__all__ = ["ACTIVE_STATES", "RETRY_TARGET_STATES", "RolloutRestarts"]

ACTIVE_STATES = ("PENDING", "RUNNING")
RETRY_TARGET_STATES = ("FAILED", "SKIPPED", "ROLLED_BACK", "GATE_FAILED")


class RolloutRestarts:
    """Mixed into RolloutStore (rollouts/store.py)."""

    db: Database

    if TYPE_CHECKING:

        def get(self, rollout_id: str) -> RolloutRecord: ...

    def retry_failed(self, rollout_id: str, owner: str, lease_seconds: float) -> RolloutRecord:
        """Put a finished or halted rollout's FAILED, SKIPPED, ROLLED_BACK and GATE_FAILED
        targets back
        to PENDING and the rollout back to its first wave with such a target; claimed by
        ``owner`` when ``lease_seconds`` > 0 (else an `edge-orchestrator serve` runs it)."""
        retry = RETRY_TARGET_STATES
        with self.db.session() as session:
            row = session.get(Rollout, rollout_id)
            if row is None:
                raise NotFound(f"no rollout {rollout_id!r}")
            if row.state in ACTIVE_STATES:
                raise InvalidRequest(
                    f"rollout {rollout_id} is {row.state}: wait for it to end or cancel it "
                    f"(`edge-orchestrator rollout {rollout_id} --cancel`) before retrying"
                )
            waves = session.scalars(
                select(RolloutTarget.wave).where(
                    RolloutTarget.rollout_id == rollout_id, RolloutTarget.state.in_(retry)
                )
            ).all()
            if not waves:
                raise InvalidRequest(f"rollout {rollout_id} has no failed gateway to retry")
            _restart(
                session,
                row,
                RolloutTarget.state.in_(retry),
                min(waves),
                owner,
                lease_seconds,
                "RETRY",
                f"{len(waves)} gateways back to PENDING from wave {min(waves) + 1}",
            )
        return self.get(rollout_id)

    def activate_staged(self, rollout_id: str, owner: str, lease_seconds: float) -> RolloutRecord:
        """`rollout ID --activate`: a stage-only rollout's STAGED gateways back to PENDING
        and the rollout back to its first wave, now activating (its waves, pace and
        windows still apply); claimed by ``owner`` when ``lease_seconds`` > 0."""
        with self.db.session() as session:
            row = session.get(Rollout, rollout_id)
            if row is None:
                raise NotFound(f"no rollout {rollout_id!r}")
            if not row.stage_only:
                raise InvalidRequest(
                    f"rollout {rollout_id} was not started with --stage-only: it activates "
                    "by itself"
                )
            if row.state in ACTIVE_STATES:
                raise InvalidRequest(
                    f"rollout {rollout_id} is {row.state}: wait until every gateway is staged"
                )
            staged = session.scalars(
                select(RolloutTarget.wave).where(
                    RolloutTarget.rollout_id == rollout_id, RolloutTarget.state == "STAGED"
                )
            ).all()
            if not staged:
                raise InvalidRequest(f"rollout {rollout_id} has no staged gateway to activate")
            row.stage_only = 0
            _restart(
                session,
                row,
                RolloutTarget.state == "STAGED",
                min(staged),
                owner,
                lease_seconds,
                "ACTIVATE_STAGED",
                f"{len(staged)} staged gateways to activate",
            )
        return self.get(rollout_id)


def _restart(
    session: Session,
    row: Rollout,
    targets: ColumnElement[bool],
    first_wave: int,
    owner: str,
    lease_seconds: float,
    kind: str,
    detail: str,
) -> None:
    """The rollout's ``targets`` back to PENDING and the rollout back to ``first_wave``,
    claimed by ``owner`` when ``lease_seconds`` > 0, with one event saying why."""
    now = time.time()
    session.execute(
        update(RolloutTarget)
        .where(RolloutTarget.rollout_id == row.id, targets)
        .values(state="PENDING", reason="", updated_at=now)
    )
    row.state = "RUNNING" if lease_seconds > 0 else "PENDING"
    row.current_wave = first_wave
    row.owner = owner if lease_seconds > 0 else ""
    row.lease_expires_at = now + lease_seconds if lease_seconds > 0 else 0.0
    row.reason = ""
    row.updated_at = now
    session.add(
        RolloutEvent(rollout_id=row.id, owner=owner or "cli", kind=kind, detail=detail, at=now)
    )

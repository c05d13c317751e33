"""Persisted rollouts: creation, claiming with a lease, per-gateway progress, events.

Claiming is a compare-and-set on (owner, lease_expires_at), so exactly one process
owns a rollout at a time on either database. On PostgreSQL the candidate row is
picked with ``SELECT ... FOR UPDATE SKIP LOCKED`` so competing orchestrators skip
rows another one is claiming instead of queueing behind it. An owner renews its
lease while it works; when it dies, the lease runs out and another process takes
the rollout over where the persisted target states say it stopped.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, func, or_, select, update

from cloud_orchestrator.errors import InvalidRequest, LeaseLost, NotFound
from cloud_orchestrator.fleet.store import Fleet, Selector
from cloud_orchestrator.registry.store import Registry
from cloud_orchestrator.rollouts.gates import GateConfig
from cloud_orchestrator.rollouts.plan import FailureThreshold, Strategy, plan_waves
from cloud_orchestrator.rollouts.records import (
    RolloutRecord,
    RolloutSummary,
    TargetRecord,
    record_from_rows,
)
from cloud_orchestrator.rollouts.restarts import (
    ACTIVE_STATES,
    RETRY_TARGET_STATES,
    RolloutRestarts,
)
from cloud_orchestrator.rollouts.windows import parse_windows, windows_to_json
from cloud_orchestrator.storage.db import Database
from cloud_orchestrator.storage.models import Rollout, RolloutEvent, RolloutTarget

__all__ = [
    "ACTIVE_STATES",
    "RETRY_TARGET_STATES",
    "TERMINAL_TARGET_STATES",
    "RolloutRecord",
    "RolloutStore",
    "TargetRecord",
]

# STAGED: verified on the gateway, waiting for `rollout ID --activate` (stage-only);
# GATE_FAILED: the wave's evidence gate failed, the candidate never served there.
TERMINAL_TARGET_STATES = ("SUCCEEDED", "FAILED", "ROLLED_BACK", "SKIPPED", "STAGED", "GATE_FAILED")


def _execute(session: Any, statement: Any) -> CursorResult[Any]:
    """An UPDATE whose rowcount the caller checks (compare-and-set)."""
    return cast(CursorResult[Any], session.execute(statement))


class RolloutStore(RolloutRestarts):
    def __init__(self, db: Database, registry: Registry, fleet: Fleet) -> None:
        self.db = db
        self.registry = registry
        self.fleet = fleet

    def create(
        self,
        model: str,
        version: str,
        selector: str,
        strategy: str = "all",
        max_parallel: int = 4,
        max_failures: str = "0",
        watch_seconds: float = 10.0,
        created_by: str = "",
        lease_seconds: float = 0.0,
        rate_per_minute: float = 0.0,
        gate: GateConfig | None = None,
        stage_only: bool = False,
        windows: Sequence[str] = (),
    ) -> RolloutRecord:
        """Plan the waves now (the fleet as it is) and persist the rollout as PENDING, or
        already claimed by ``created_by`` when ``lease_seconds`` is given (so a `serve`
        process cannot take a rollout the creating process is about to run itself)."""
        info = self.registry.version(model, version)
        parsed_selector = Selector.parse(selector)
        parsed_strategy = Strategy.parse(strategy)
        FailureThreshold.parse(max_failures)
        if max_parallel < 1:
            raise InvalidRequest("--max-parallel must be at least 1")
        if watch_seconds < 0:
            raise InvalidRequest("--watch-seconds must be >= 0")
        if rate_per_minute < 0:
            raise InvalidRequest("--rate must be positive (or 0 for no rate limit)")
        gate = gate.checked() if gate is not None else None
        if gate is not None and stage_only:
            raise InvalidRequest(
                "--stage-only and --gate do not combine: a gate activates what passes it"
            )
        window_rules = parse_windows(windows)
        gateways = self.fleet.gateways(parsed_selector)
        if not gateways:
            raise InvalidRequest(
                f"selector {selector!r} matches no registered gateway (add one with "
                "`edge-orchestrator gateways register ID --address HOST:PORT`)"
            )
        waves = plan_waves([g.id for g in gateways], parsed_strategy)
        now = time.time()
        rollout_id = f"r-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(now))}-{uuid.uuid4().hex[:6]}"
        with self.db.session() as session:
            session.add(
                Rollout(
                    id=rollout_id,
                    model_name=model,
                    version=info.version,
                    selector=parsed_selector.text,
                    strategy=str(parsed_strategy),
                    max_parallel=max_parallel,
                    max_failures=max_failures,
                    watch_seconds=watch_seconds,
                    state="RUNNING" if lease_seconds > 0 else "PENDING",
                    current_wave=0,
                    wave_count=len(waves),
                    owner=created_by if lease_seconds > 0 else "",
                    lease_expires_at=now + lease_seconds if lease_seconds > 0 else 0.0,
                    created_by=created_by,
                    created_at=now,
                    updated_at=now,
                    reason="",
                    rate_per_minute=rate_per_minute,
                    gate=gate.to_json() if gate is not None else "",
                    stage_only=int(stage_only),
                    windows=windows_to_json(window_rules),
                )
            )
            session.flush()
            for index, wave in enumerate(waves):
                for gateway_id in wave:
                    session.add(
                        RolloutTarget(
                            rollout_id=rollout_id,
                            gateway_id=gateway_id,
                            wave=index,
                            state="PENDING",
                            updated_at=now,
                        )
                    )
            session.add(
                RolloutEvent(
                    rollout_id=rollout_id,
                    owner=created_by or "cli",
                    kind="CREATED",
                    detail=f"{len(waves)} waves",
                    at=now,
                )
            )
        return self.get(rollout_id)

    def get(self, rollout_id: str) -> RolloutRecord:
        with self.db.session() as session:
            row = session.get(Rollout, rollout_id)
            if row is None:
                raise NotFound(f"no rollout {rollout_id!r}")
            targets = session.scalars(
                select(RolloutTarget).where(RolloutTarget.rollout_id == rollout_id)
            ).all()
            return record_from_rows(row, targets)

    def recent(self, limit: int = 50) -> list[RolloutSummary]:
        """The newest rollouts with their targets counted by state in the database (one
        query for all of them: a listing stays fast with 10,000 targets a rollout)."""
        with self.db.session() as session:
            rows = session.scalars(
                select(Rollout).order_by(Rollout.created_at.desc()).limit(limit)
            ).all()
            counts: dict[str, dict[str, int]] = {row.id: {} for row in rows}
            if rows:
                grouped = session.execute(
                    select(RolloutTarget.rollout_id, RolloutTarget.state, func.count())
                    .where(RolloutTarget.rollout_id.in_(list(counts)))
                    .group_by(RolloutTarget.rollout_id, RolloutTarget.state)
                )
                for rollout_id, state, count in grouped:
                    counts[rollout_id][state] = int(count)
            return [
                RolloutSummary(
                    row.id,
                    row.model_name,
                    row.version,
                    row.strategy,
                    row.state,
                    row.created_at,
                    counts[row.id],
                )
                for row in rows
            ]

    # -- ownership --------------------------------------------------------------------------

    def claim(
        self, owner: str, lease_seconds: float, rollout_id: str | None = None
    ) -> RolloutRecord | None:
        """Take one unowned (or expired, or already ours) active rollout; None when none."""
        now = time.time()
        claimable = or_(Rollout.owner == "", Rollout.owner == owner, Rollout.lease_expires_at < now)
        with self.db.session() as session:
            query = select(Rollout).where(Rollout.state.in_(ACTIVE_STATES), claimable)
            if rollout_id is not None:
                query = query.where(Rollout.id == rollout_id)
            query = query.order_by(Rollout.created_at).limit(1)
            if self.db.supports_skip_locked:
                query = query.with_for_update(skip_locked=True)
            row = session.scalars(query).first()
            if row is None:
                return None
            previous = row.owner
            claimed = _execute(
                session,
                update(Rollout)
                .where(Rollout.id == row.id, Rollout.state.in_(ACTIVE_STATES), claimable)
                .values(
                    owner=owner,
                    lease_expires_at=now + lease_seconds,
                    state="RUNNING",
                    updated_at=now,
                )
                .execution_options(synchronize_session=False),
            )
            if claimed.rowcount != 1:
                return None
            detail = f"taken over from {previous}" if previous and previous != owner else ""
            session.add(
                RolloutEvent(rollout_id=row.id, owner=owner, kind="CLAIMED", detail=detail, at=now)
            )
            claimed_id = row.id
        return self.get(claimed_id)

    def renew(self, rollout_id: str, owner: str, lease_seconds: float) -> None:
        """Extend our lease; LeaseLost when another process owns the rollout now.

        A late renewal still succeeds while nobody claimed the rollout in between: the
        claim is the compare-and-set that moves ownership, so ``owner`` decides."""
        now = time.time()
        with self.db.session() as session:
            result = _execute(
                session,
                update(Rollout)
                .where(
                    Rollout.id == rollout_id,
                    Rollout.owner == owner,
                    Rollout.state.in_(ACTIVE_STATES),
                )
                .values(lease_expires_at=now + lease_seconds)
                .execution_options(synchronize_session=False),
            )
            if result.rowcount != 1:
                raise LeaseLost(f"rollout {rollout_id} is no longer owned by {owner}")

    def _owned(self, session: Any, rollout_id: str, owner: str) -> Rollout:
        row = session.get(Rollout, rollout_id)
        if row is None or row.owner != owner:
            raise LeaseLost(f"rollout {rollout_id} is no longer owned by {owner}")
        if row.state not in ACTIVE_STATES:
            raise LeaseLost(f"rollout {rollout_id} is {row.state} now")
        return row  # type: ignore[no-any-return]

    def release(self, rollout_id: str, owner: str) -> None:
        """Give the rollout up (clean shutdown) so another process may claim it at once."""
        with self.db.session() as session:
            session.execute(
                update(Rollout)
                .where(Rollout.id == rollout_id, Rollout.owner == owner)
                .values(owner="", lease_expires_at=0.0)
                .execution_options(synchronize_session=False)
            )

    # -- progress ---------------------------------------------------------------------------

    def update_target(self, rollout_id: str, gateway_id: str, owner: str, **changes: Any) -> None:
        with self.db.session() as session:
            self._owned(session, rollout_id, owner)
            target = session.get(RolloutTarget, (rollout_id, gateway_id))
            if target is None:
                raise NotFound(f"gateway {gateway_id} is not a target of rollout {rollout_id}")
            for key, value in changes.items():
                setattr(target, key, value)
            target.updated_at = time.time()

    def event(
        self, rollout_id: str, owner: str, kind: str, gateway_id: str = "", detail: str = ""
    ) -> None:
        with self.db.session() as session:
            session.add(
                RolloutEvent(
                    rollout_id=rollout_id,
                    owner=owner,
                    kind=kind,
                    gateway_id=gateway_id,
                    detail=detail[:2000],
                    at=time.time(),
                )
            )

    def events(self, rollout_id: str) -> list[dict[str, Any]]:
        with self.db.session() as session:
            rows = session.scalars(
                select(RolloutEvent)
                .where(RolloutEvent.rollout_id == rollout_id)
                .order_by(RolloutEvent.id)
            ).all()
            return [
                {
                    "at": r.at,
                    "owner": r.owner,
                    "kind": r.kind,
                    "gateway_id": r.gateway_id,
                    "detail": r.detail,
                }
                for r in rows
            ]

    def advance(self, rollout_id: str, owner: str, wave: int) -> None:
        with self.db.session() as session:
            row = self._owned(session, rollout_id, owner)
            row.current_wave = wave
            row.updated_at = time.time()

    def finish(self, rollout_id: str, owner: str, state: str, reason: str = "") -> None:
        with self.db.session() as session:
            row = self._owned(session, rollout_id, owner)
            row.state = state
            row.reason = reason
            row.owner = ""
            row.lease_expires_at = 0.0
            row.updated_at = time.time()
            session.add(
                RolloutEvent(
                    rollout_id=rollout_id,
                    owner=owner,
                    kind=state,
                    detail=reason[:2000],
                    at=time.time(),
                )
            )

    def cancel(self, rollout_id: str) -> None:
        with self.db.session() as session:
            row = session.get(Rollout, rollout_id)
            if row is None:
                raise NotFound(f"no rollout {rollout_id!r}")
            if row.state in ACTIVE_STATES:
                row.state = "CANCELLED"
                row.reason = "cancelled by an operator"
                row.updated_at = time.time()

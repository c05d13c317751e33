"""What an operator does to rollouts from the console, each recorded in the rollout's
event log with the operator's name (``RolloutEvent.actor``).

Rollouts the console creates or resumes are left PENDING without an owner: the
``serve`` processes' runners claim them (within ``--poll-seconds``), as they do a
``deploy --detach``.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from cloud_orchestrator.errors import Conflict, InvalidRequest, NotFound
from cloud_orchestrator.fleet.selector import Selector
from cloud_orchestrator.rollouts.plan import FailureThreshold, Strategy, plan_waves
from cloud_orchestrator.rollouts.records import RolloutRecord
from cloud_orchestrator.rollouts.store import ACTIVE_STATES, RolloutStore
from cloud_orchestrator.storage.models import Rollout, RolloutEvent

__all__ = ["DeployRequest", "RolloutActions"]


class DeployRequest:
    """The deploy form, validated by RolloutStore.create's own checks."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.model = _text(body, "model")
        self.version = _text(body, "version", "latest")
        self.selector = _text(body, "selector", "all")
        self.strategy = _text(body, "strategy", "all")
        self.max_parallel = _int(body, "max_parallel", 4)
        self.max_failures = _text(body, "max_failures", "0")
        self.watch_seconds = _number(body, "watch_seconds", 10.0)
        self.rate_per_minute = _number(body, "rate_per_minute", 0.0)


def _text(body: dict[str, Any], key: str, default: str | None = None) -> str:
    value = body.get(key, default)
    if value is None or (isinstance(value, str) and not value.strip() and default is None):
        raise InvalidRequest(f"{key} is required")
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise InvalidRequest(f"{key} must be a string")
    return str(value).strip() or (default or "")


def _number(body: dict[str, Any], key: str, default: float) -> float:
    value = body.get(key, default)
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except (TypeError, ValueError):
        raise InvalidRequest(f"{key} must be a number, not {value!r}") from None


def _int(body: dict[str, Any], key: str, default: int) -> int:
    number = _number(body, key, default)
    if number != int(number):
        raise InvalidRequest(f"{key} must be a whole number, not {number:g}")
    return int(number)


class RolloutActions:
    def __init__(self, store: RolloutStore, owner: str) -> None:
        self.store = store
        self.db = store.db
        self.owner = owner  # this orchestrator process, as in the runner's events

    def record(self, rollout_id: str, actor: str, kind: str, detail: str) -> None:
        with self.db.session() as session:
            session.add(
                RolloutEvent(
                    rollout_id=rollout_id,
                    owner=self.owner,
                    kind=kind,
                    detail=detail[:2000],
                    actor=actor,
                    at=time.time(),
                )
            )

    def preview(self, request: DeployRequest) -> dict[str, Any]:
        """The waves ``deploy`` would run now, without recording anything."""
        info = self.store.registry.version(request.model, request.version)
        record_checks(request)
        gateways = self.store.fleet.gateways(Selector.parse(request.selector))
        waves = plan_waves([g.id for g in gateways], Strategy.parse(request.strategy))
        return {
            "model": request.model,
            "version": info.version,
            "size_bytes": info.size_bytes,
            "gateways": len(gateways),
            "waves": [{"wave": i + 1, "gateways": wave} for i, wave in enumerate(waves)],
        }

    def deploy(self, request: DeployRequest, actor: str) -> RolloutRecord:
        record = self.store.create(
            request.model,
            request.version,
            request.selector,
            request.strategy,
            request.max_parallel,
            request.max_failures,
            request.watch_seconds,
            created_by=f"{actor} (console)",
            lease_seconds=0.0,
            rate_per_minute=request.rate_per_minute,
        )
        self.record(
            record.id,
            actor,
            "DEPLOY",
            f"{record.model_name} {record.version} to {record.selector}, {record.strategy}",
        )
        return record

    def cancel(self, rollout_id: str, actor: str) -> RolloutRecord:
        state = self.store.get(rollout_id).state
        if state not in ACTIVE_STATES:
            raise Conflict(f"rollout {rollout_id} is {state}: only a running rollout is cancelled")
        self.store.cancel(rollout_id)
        self.record(rollout_id, actor, "CANCEL", f"cancelled while {state}")
        return self.store.get(rollout_id)

    def resume(self, rollout_id: str, actor: str) -> RolloutRecord:
        """A CANCELLED rollout goes on from its current wave (finished gateways stay
        done); an active one whose owner's lease ran out is handed to any runner now."""
        now = time.time()
        with self.db.session() as session:
            row = session.get(Rollout, rollout_id)
            if row is None:
                raise NotFound(f"no rollout {rollout_id!r}")
            if row.state in ACTIVE_STATES and not row.owner:
                raise Conflict(f"rollout {rollout_id} is {row.state}, waiting for a runner")
            if row.state in ACTIVE_STATES and row.lease_expires_at > now:
                raise Conflict(
                    f"rollout {rollout_id} is {row.state} under {row.owner}: nothing to resume"
                )
            if row.state not in (*ACTIVE_STATES, "CANCELLED"):
                hint = " (retry-failed runs its failed gateways again)"
                raise Conflict(f"rollout {rollout_id} is {row.state}: it cannot resume{hint}")
            before = row.state
            row.state = "PENDING"
            row.owner = ""
            row.lease_expires_at = 0.0
            row.reason = ""
            row.updated_at = now
        self.record(rollout_id, actor, "RESUME", f"from {before} at wave {row.current_wave + 1}")
        return self.store.get(rollout_id)

    def retry_failed(self, rollout_id: str, actor: str) -> RolloutRecord:
        record = self.store.retry_failed(rollout_id, "", 0.0)
        failed = sum(t.state == "PENDING" for t in record.targets)
        self.record(rollout_id, actor, "RETRY_FAILED", f"{failed} gateways to run again")
        return record

    def events(self, rollout_id: str, limit: int = 500) -> list[dict[str, Any]]:
        """The newest ``limit`` events, oldest first, with who asked for each."""
        with self.db.session() as session:
            rows = session.scalars(
                select(RolloutEvent)
                .where(RolloutEvent.rollout_id == rollout_id)
                .order_by(RolloutEvent.id.desc())
                .limit(limit)
            ).all()
            return [
                {
                    "at": r.at,
                    "owner": r.owner,
                    "actor": r.actor,
                    "kind": r.kind,
                    "gateway_id": r.gateway_id,
                    "detail": r.detail,
                }
                for r in reversed(rows)
            ]


def record_checks(request: DeployRequest) -> None:
    """The form's numbers, checked as RolloutStore.create checks them."""
    FailureThreshold.parse(request.max_failures)
    if request.max_parallel < 1:
        raise InvalidRequest("max_parallel must be at least 1")
    if request.watch_seconds < 0:
        raise InvalidRequest("watch_seconds must be >= 0")
    if request.rate_per_minute < 0:
        raise InvalidRequest("rate_per_minute must be >= 0 (0: no rate limit)")

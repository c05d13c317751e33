"""The Fleet page's data: one page of gateways (running vs desired per model, drift), the
counts over every gateway the filter keeps, in a bounded number of queries.

Label selectors are the CLI's (fleet/selector.py) and match JSON labels, which neither
database indexes portably: the filter reads the light columns of every gateway (id,
address, labels, last seen) once, and only the page's gateways have their models read.
Desired state comes from one snapshot of assignments and pins (fleet/desired.py), as
the Subscribe streams compute it, so drift is counted over the whole filtered fleet.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from cloud_orchestrator.errors import InvalidRequest
from cloud_orchestrator.fleet.desired import DesiredSnapshot, load_snapshot
from cloud_orchestrator.fleet.selector import Selector
from cloud_orchestrator.registry.store import Registry
from cloud_orchestrator.storage.db import Database
from cloud_orchestrator.storage.models import Gateway, GatewayModel

__all__ = ["STATUSES", "FleetQuery", "fleet_page"]

STATUSES = ("any", "online", "offline", "unobserved")
MAX_PER_PAGE = 500


@dataclass(frozen=True)
class FleetQuery:
    selector: str = "all"
    status: str = "any"  # any | online | offline | unobserved (fleet/census.py's words)
    drift_only: bool = False
    page: int = 1
    per_page: int = 50

    def check(self) -> Selector:
        if self.status not in STATUSES:
            raise InvalidRequest(f"status must be one of {', '.join(STATUSES)}")
        if self.page < 1:
            raise InvalidRequest("page must be >= 1")
        if not 1 <= self.per_page <= MAX_PER_PAGE:
            raise InvalidRequest(f"per_page must be 1..{MAX_PER_PAGE}")
        return Selector.parse(self.selector)


# One gateway's light columns: id, address, labels, last seen, gateway version.
_Row = tuple[str, str, Mapping[str, str], float, str]


def _status(address: str, last_seen: float, now: float, online_seconds: float) -> str:
    """As the metrics count them (fleet/census.py): seen within the window is online; an
    older pull gateway is offline; an older push gateway is unobserved (the orchestrator
    only dials it during a rollout)."""
    if last_seen >= now - online_seconds:
        return "online"
    return "unobserved" if address else "offline"


class _DesiredMemo:
    """Desired versions per gateway; gateways without pins whose labels are the same get
    the same answer (most of a large fleet), unless an assignment selects by id."""

    def __init__(self, snapshot: DesiredSnapshot) -> None:
        self.snapshot = snapshot
        self.by_id = any(
            key == "id" for a in snapshot.assignments for key, _, _ in a.selector.terms
        )
        self.memo: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}

    def __call__(self, gateway_id: str, labels: Mapping[str, str]) -> dict[str, str]:
        if self.by_id or gateway_id in self.snapshot.pins:
            return self._compute(gateway_id, labels)
        key = tuple(sorted(labels.items()))
        found = self.memo.get(key)
        if found is None:
            found = self.memo[key] = self._compute(gateway_id, labels)
        return found

    def _compute(self, gateway_id: str, labels: Mapping[str, str]) -> dict[str, str]:
        return {d.model_name: d.version for d in self.snapshot.desired(gateway_id, labels)}


def _drifts(desired: Mapping[str, str], running: Mapping[str, str]) -> bool:
    return any(want != running.get(model, "") for model, want in desired.items() if want)


def _models(desired: Mapping[str, str], running: Mapping[str, str]) -> list[dict[str, Any]]:
    entries = []
    for model in sorted(set(desired) | set(running)):
        want, have = desired.get(model, ""), running.get(model, "")
        entries.append(
            {"model": model, "desired": want, "running": have, "drift": bool(want) and want != have}
        )
    return entries


def _read_rows(
    db: Database, labels: Mapping[str, Mapping[str, str]]
) -> tuple[list[_Row], dict[str, dict[str, str]]]:
    """Every gateway's light columns and every running version (two queries); labels
    come from the desired-state snapshot, which has read them already."""
    with db.session() as session:
        rows = session.execute(
            select(
                Gateway.id, Gateway.address, Gateway.last_seen, Gateway.gateway_version
            ).order_by(Gateway.id)
        ).all()
        models = session.execute(
            select(GatewayModel.gateway_id, GatewayModel.model_name, GatewayModel.active_version)
        ).all()
    running: dict[str, dict[str, str]] = {}
    for gateway_id, model, version in models:
        running.setdefault(gateway_id, {})[model] = version
    empty: Mapping[str, str] = {}
    gateways = [
        (gid, address, labels.get(gid, empty), seen, version)
        for gid, address, seen, version in rows
    ]
    return gateways, running


def fleet_page(
    db: Database, registry: Registry, query: FleetQuery, online_seconds: float
) -> dict[str, Any]:
    """The JSON of GET /api/v1/gateways; ``server_ms`` and ``server_cpu_ms`` say what it
    cost (CPU time of this thread: meaningful on a busy machine too)."""
    selector = query.check()
    started, cpu = time.perf_counter(), time.thread_time()
    snapshot = load_snapshot(db, registry)
    rows, running = _read_rows(db, snapshot.labels)
    desired_of = _DesiredMemo(snapshot)
    now = time.time()
    counts = dict.fromkeys(("total", "online", "offline", "unobserved", "push", "pull", "drift"), 0)
    nothing: dict[str, str] = {}
    kept: list[tuple[_Row, str, dict[str, str], dict[str, str]]] = []
    for row in rows:
        gateway_id, address, labels, last_seen, _ = row
        if selector.terms and not selector.matches(gateway_id, labels):
            continue
        status = _status(address, last_seen, now, online_seconds)
        desired = desired_of(gateway_id, labels)
        have = running.get(gateway_id, nothing)
        drift = _drifts(desired, have)
        counts["total"] += 1
        counts[status] += 1
        counts["push" if address else "pull"] += 1
        counts["drift"] += drift
        if query.status not in ("any", status) or (query.drift_only and not drift):
            continue
        kept.append((row, status, desired, have))
    first = (query.page - 1) * query.per_page
    page = [
        _gateway_json(row, status, _models(desired, have))
        for row, status, desired, have in kept[first : first + query.per_page]
    ]
    return {
        "selector": selector.text,
        "counts": counts,
        "matched": len(kept),
        "page": query.page,
        "per_page": query.per_page,
        "pages": max(1, -(-len(kept) // query.per_page)),
        "gateways": page,
        "server_ms": round((time.perf_counter() - started) * 1000, 1),
        "server_cpu_ms": round((time.thread_time() - cpu) * 1000, 1),
    }


def _gateway_json(row: _Row, status: str, models: list[dict[str, Any]]) -> dict[str, Any]:
    gateway_id, address, labels, last_seen, gateway_version = row
    return {
        "id": gateway_id,
        "mode": "push" if address else "pull",
        "address": address,
        "labels": dict(labels),
        "last_seen": last_seen,
        "status": status,
        "gateway_version": gateway_version,
        "models": models,
        "drift": any(m["drift"] for m in models),
    }

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

STATUSES = ("any", "online", "offline", "never")
MAX_PER_PAGE = 500


@dataclass(frozen=True)
class FleetQuery:
    selector: str = "all"
    status: str = "any"  # any | online | offline | never (seen)
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


@dataclass(frozen=True)
class _Row:
    id: str
    address: str
    labels: dict[str, str]
    last_seen: float
    gateway_version: str


def _status(last_seen: float, now: float, online_seconds: float) -> str:
    if not last_seen:
        return "never"
    return "online" if now - last_seen <= online_seconds else "offline"


def _desired(snapshot: DesiredSnapshot, row: _Row) -> dict[str, str]:
    return {d.model_name: d.version for d in snapshot.desired(row.id, row.labels)}


def _models(desired: Mapping[str, str], running: Mapping[str, str]) -> list[dict[str, Any]]:
    entries = []
    for model in sorted(set(desired) | set(running)):
        want, have = desired.get(model, ""), running.get(model, "")
        entries.append(
            {"model": model, "desired": want, "running": have, "drift": bool(want) and want != have}
        )
    return entries


def _read_rows(db: Database) -> tuple[list[_Row], dict[str, dict[str, str]]]:
    """Every gateway's light columns and every running version (two queries)."""
    with db.session() as session:
        rows = session.execute(
            select(
                Gateway.id,
                Gateway.address,
                Gateway.labels,
                Gateway.last_seen,
                Gateway.gateway_version,
            ).order_by(Gateway.id)
        ).all()
        models = session.execute(
            select(GatewayModel.gateway_id, GatewayModel.model_name, GatewayModel.active_version)
        ).all()
    running: dict[str, dict[str, str]] = {}
    for gateway_id, model, version in models:
        running.setdefault(gateway_id, {})[model] = version
    gateways = [
        _Row(gid, address, {str(k): str(v) for k, v in (labels or {}).items()}, seen, version)
        for gid, address, labels, seen, version in rows
    ]
    return gateways, running


def fleet_page(
    db: Database, registry: Registry, query: FleetQuery, online_seconds: float
) -> dict[str, Any]:
    """The JSON of GET /api/v1/gateways."""
    selector = query.check()
    started = time.perf_counter()
    rows, running = _read_rows(db)
    snapshot = load_snapshot(db, registry)
    now = time.time()
    counts = {"total": 0, "online": 0, "offline": 0, "never": 0, "push": 0, "pull": 0, "drift": 0}
    kept: list[tuple[_Row, str, list[dict[str, Any]]]] = []
    for row in rows:
        if not selector.matches(row.id, row.labels):
            continue
        status = _status(row.last_seen, now, online_seconds)
        models = _models(_desired(snapshot, row), running.get(row.id, {}))
        drift = any(m["drift"] for m in models)
        counts["total"] += 1
        counts[status] += 1
        counts["push" if row.address else "pull"] += 1
        counts["drift"] += drift
        if query.status not in ("any", status) or (query.drift_only and not drift):
            continue
        kept.append((row, status, models))
    first = (query.page - 1) * query.per_page
    page = kept[first : first + query.per_page]
    return {
        "selector": selector.text,
        "counts": counts,
        "matched": len(kept),
        "page": query.page,
        "per_page": query.per_page,
        "pages": max(1, -(-len(kept) // query.per_page)),
        "gateways": [
            {
                "id": row.id,
                "mode": "push" if row.address else "pull",
                "address": row.address,
                "labels": row.labels,
                "last_seen": row.last_seen,
                "status": status,
                "gateway_version": row.gateway_version,
                "models": models,
                "drift": any(m["drift"] for m in models),
            }
            for row, status, models in page
        ],
        "server_ms": round((time.perf_counter() - started) * 1000, 1),
    }

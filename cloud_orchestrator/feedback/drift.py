"""Drift per gateway, site and version, from the drift reports inside result batches.

A gateway measures drift (docs/drift.md) and sends, with each batch of aggregates, one
report per monitored model version; the newest report per (gateway, model, version)
is kept (a batch that arrives late does not overwrite a newer one). A gateway is
drifting when its own monitor says so, or, when the caller gives a threshold, when
its score is above it. Only the version a gateway reports as active counts towards
the drifting totals (a report of a version it has since replaced stays visible, marked
inactive). Sites are the gateways' ``site`` label. The outbox's loss
totals (budget, expired, full) are kept beside, per gateway and model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_orchestrator.fleet.selector import Selector
from cloud_orchestrator.storage.db import Database
from cloud_orchestrator.storage.models import Gateway, GatewayDrift, GatewayModel, OutboxDrop

__all__ = [
    "DriftIn",
    "DriftSummary",
    "DropIn",
    "GatewayDriftRow",
    "GroupDrift",
    "count_drifting",
    "drift_summary",
    "record_uplink",
]

NO_SITE = "-"


@dataclass(frozen=True)
class DriftIn:
    model_name: str
    model_version: str
    score: float
    class_distance: float
    confidence_distance: float
    low_margin_share: float
    reference_low_margin_share: float
    window: int
    drifting: bool


@dataclass(frozen=True)
class DropIn:
    model_name: str
    reason: str  # budget, expired, full
    count: int


def record_uplink(
    session: Session,
    gateway_id: str,
    measured_at: float,
    received_at: float,
    drift: Sequence[DriftIn],
    drops: Sequence[DropIn],
) -> None:
    """Keep a batch's drift reports (newest per version wins) and its loss totals."""
    for report in drift:
        key = (gateway_id, report.model_name, report.model_version)
        row = session.get(GatewayDrift, key)
        if row is None:
            row = GatewayDrift(gateway_id=gateway_id, model_name=key[1], model_version=key[2])
            session.add(row)
        elif row.measured_at > measured_at:
            continue
        row.score = report.score
        row.class_distance = report.class_distance
        row.confidence_distance = report.confidence_distance
        row.low_margin_share = report.low_margin_share
        row.reference_low_margin_share = report.reference_low_margin_share
        row.window = report.window
        row.drifting = report.drifting
        row.measured_at = measured_at
        row.received_at = received_at
    for drop in drops:
        found = session.get(OutboxDrop, (gateway_id, drop.model_name, drop.reason))
        if found is None:
            session.add(
                OutboxDrop(
                    gateway_id=gateway_id,
                    model_name=drop.model_name,
                    reason=drop.reason,
                    count=drop.count,
                )
            )
        else:  # totals only grow; a late batch carries older, smaller ones
            found.count = max(found.count, drop.count)


@dataclass(frozen=True)
class GatewayDriftRow:
    gateway_id: str
    site: str
    version: str
    score: float
    class_distance: float
    confidence_distance: float
    low_margin_share: float
    reference_low_margin_share: float
    window: int
    drifting: bool
    measured_at: float
    active: bool = True  # the version the gateway runs now
    dropped: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class GroupDrift:
    """Gateways of one site or one version: how many drift, worst and mean score."""

    key: str
    gateways: int = 0
    drifting: int = 0
    max_score: float = 0.0
    score_sum: float = 0.0

    def add(self, row: GatewayDriftRow) -> None:
        self.gateways += 1
        self.drifting += row.drifting and row.active
        self.max_score = max(self.max_score, row.score)
        self.score_sum += row.score

    def to_dict(self) -> dict[str, Any]:
        return {
            "gateways": self.gateways,
            "drifting": self.drifting,
            "max_score": round(self.max_score, 6),
            "mean_score": round(self.score_sum / self.gateways, 6) if self.gateways else 0.0,
        }


@dataclass(frozen=True)
class DriftSummary:
    model_name: str
    version: str
    threshold: float | None  # None: the gateways' own verdicts
    gateways: list[GatewayDriftRow]
    sites: dict[str, GroupDrift]
    versions: dict[str, GroupDrift]

    @property
    def drifting(self) -> int:
        return len({g.gateway_id for g in self.gateways if g.drifting and g.active})

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "version": self.version or "all",
            "threshold": self.threshold,
            "drifting": self.drifting,
            "gateways": [g.to_dict() for g in self.gateways],
            "sites": {k: v.to_dict() for k, v in sorted(self.sites.items())},
            "versions": {k: v.to_dict() for k, v in sorted(self.versions.items())},
        }


def _drops(session: Session, model_name: str) -> dict[str, dict[str, int]]:
    rows = session.scalars(select(OutboxDrop).where(OutboxDrop.model_name == model_name)).all()
    found: dict[str, dict[str, int]] = {}
    for row in rows:
        found.setdefault(row.gateway_id, {})[row.reason] = int(row.count)
    return found


def _active_versions(session: Session, model_name: str) -> dict[str, str]:
    rows = session.scalars(select(GatewayModel).where(GatewayModel.model_name == model_name))
    return {row.gateway_id: row.active_version for row in rows}


def _is_active(active: dict[str, str], gateway_id: str, version: str) -> bool:
    """Unknown (a gateway that has not reported status yet) counts as active."""
    return active.get(gateway_id, "") in ("", version)


def drift_summary(
    db: Database,
    model_name: str,
    version: str = "",
    selector: Selector | None = None,
    threshold: float | None = None,
) -> DriftSummary:
    """The newest drift of each gateway running ``model_name`` (one version or all)."""
    with db.session() as session:
        query = select(GatewayDrift).where(GatewayDrift.model_name == model_name)
        if version:
            query = query.where(GatewayDrift.model_version == version)
        reports = session.scalars(query).all()
        labels = {g.id: dict(g.labels or {}) for g in session.scalars(select(Gateway))}
        drops = _drops(session, model_name)
        active = _active_versions(session, model_name)
    rows = []
    for r in reports:
        gateway_labels = labels.get(r.gateway_id, {})
        if selector is not None and not selector.matches(r.gateway_id, gateway_labels):
            continue
        drifting = r.drifting if threshold is None else (r.window > 0 and r.score > threshold)
        rows.append(
            GatewayDriftRow(
                r.gateway_id,
                str(gateway_labels.get("site", NO_SITE)),
                r.model_version,
                r.score,
                r.class_distance,
                r.confidence_distance,
                r.low_margin_share,
                r.reference_low_margin_share,
                r.window,
                bool(drifting),
                r.measured_at,
                _is_active(active, r.gateway_id, r.model_version),
                drops.get(r.gateway_id, {}),
            )
        )
    rows.sort(key=lambda row: (row.gateway_id, row.version))
    sites: dict[str, GroupDrift] = {}
    versions: dict[str, GroupDrift] = {}
    for row in rows:
        sites.setdefault(row.site, GroupDrift(row.site)).add(row)
        versions.setdefault(row.version, GroupDrift(row.version)).add(row)
    return DriftSummary(model_name, version, threshold, rows, sites, versions)


def count_drifting(db: Database, model_name: str = "") -> int:
    """Gateways whose newest report marks their active version of a model (one model, or
    any) as drifting: the number a console badge or a fleet metric shows."""
    with db.session() as session:
        query = select(GatewayDrift).where(GatewayDrift.drifting.is_(True))
        if model_name:
            query = query.where(GatewayDrift.model_name == model_name)
        reports = session.scalars(query).all()
        active = {
            (row.gateway_id, row.model_name): row.active_version
            for row in session.scalars(select(GatewayModel))
        }
    return len(
        {
            r.gateway_id
            for r in reports
            if active.get((r.gateway_id, r.model_name), "") in ("", r.model_version)
        }
    )

"""The Models page's data: every model and version in the registry with its lineage
(parent), signer key id, size, evaluation block and publish time, and where each
version runs (counted in the database, a few gateway ids named)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from cloud_orchestrator.registry.store import Registry
from cloud_orchestrator.storage.db import Database
from cloud_orchestrator.storage.models import GatewayModel

__all__ = ["model_detail", "models_list"]

NAMED_GATEWAYS = 10


def models_list(db: Database, registry: Registry) -> dict[str, Any]:
    with db.session() as session:
        running: dict[str, int] = {
            str(name): int(count)
            for name, count in session.execute(
                select(GatewayModel.model_name, func.count()).group_by(GatewayModel.model_name)
            )
        }
    return {
        "models": [
            {
                "name": m.name,
                "versions": m.versions,
                "latest_version": m.latest_version,
                "latest_published_at": m.latest_published_at,
                "gateways": int(running.get(m.name, 0)),
            }
            for m in registry.models()
        ]
    }


def model_detail(db: Database, registry: Registry, name: str) -> dict[str, Any]:
    versions = registry.versions(name)  # NotFound for an unknown model
    with db.session() as session:
        counts: dict[str, int] = {
            str(version): int(count)
            for version, count in session.execute(
                select(GatewayModel.active_version, func.count())
                .where(GatewayModel.model_name == name)
                .group_by(GatewayModel.active_version)
            )
        }
        named: dict[str, list[str]] = {}
        for version in counts:
            named[version] = list(
                session.scalars(
                    select(GatewayModel.gateway_id)
                    .where(GatewayModel.model_name == name, GatewayModel.active_version == version)
                    .order_by(GatewayModel.gateway_id)
                    .limit(NAMED_GATEWAYS)
                )
            )
    rows = []
    for info in reversed(versions):  # newest first
        policy = info.manifest.get("feedback")
        rows.append(
            {
                **info.to_dict(),
                "feedback_policy": policy.get("policy", "") if isinstance(policy, dict) else "",
                "running_on": int(counts.get(info.version, 0)),
                "running_gateways": named.get(info.version, []),
            }
        )
    return {"name": name, "versions": rows}

"""Shadow evidence reported by pull-mode gateways (ReportStatus), kept until a rollout's
evidence gate reads it: the latest counts per gateway, model and version."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from cloud_orchestrator.errors import InvalidRequest
from cloud_orchestrator.storage.db import Database
from cloud_orchestrator.storage.models import ShadowEvidenceReport
from edge_contracts.shadow_evidence import ShadowEvidence

__all__ = ["MAX_SHADOW_REPORTS", "ShadowEvidenceStore"]

MAX_SHADOW_REPORTS = 32  # per ReportStatus: a gateway shadows a few versions at most


class ShadowEvidenceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, gateway_id: str, reports: Sequence[tuple[str, str, ShadowEvidence]]) -> None:
        if len(reports) > MAX_SHADOW_REPORTS:
            raise InvalidRequest(
                f"{len(reports)} shadow reports in one ReportStatus; at most {MAX_SHADOW_REPORTS}"
            )
        now = time.time()
        with self.db.session() as session:
            for model, version, evidence in reports:
                key = (gateway_id, model[:128], version[:128])
                row = session.get(ShadowEvidenceReport, key)
                if row is None:
                    row = ShadowEvidenceReport(
                        gateway_id=key[0], model_name=key[1], model_version=key[2]
                    )
                    session.add(row)
                row.evidence = json.dumps(evidence.to_dict())
                row.updated_at = now

    def latest(self, gateway_id: str, model: str, version: str) -> tuple[ShadowEvidence, float]:
        """The last reported counts and when they arrived (zeros and 0.0 when none)."""
        with self.db.session() as session:
            row = session.get(ShadowEvidenceReport, (gateway_id, model, version))
            if row is None:
                return ShadowEvidence(), 0.0
            return ShadowEvidence.from_dict(json.loads(row.evidence)), row.updated_at

"""The gateway's link to the cloud, as settings: pull mode (the orchestrator it dials
out to and how it is known there) and the feedback it keeps for the cloud (outbox,
uplink budget, drift monitor). The other sections are in edge_server/settings/sections.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from edge_server.settings.fields import setting


@dataclass(frozen=True)
class CloudSettings:
    """Pull mode: the orchestrator this gateway dials out to, and how it is known there."""

    orchestrator: str = setting(
        "",
        "HOST:PORT of the orchestrator to dial out to (pull mode: desired versions, status, "
        "feedback upload), or a gRPC target naming every replica (dns:///NAME:PORT with one "
        "address per replica, or ipv4:IP:PORT,IP:PORT): one is picked at random and the "
        "next is tried when it goes away; empty = off",
    )
    orchestrator_enrollment_token: str = setting(
        "",
        "enrollment token the gateway trades once for its own secret (stored in "
        "MODEL_ROOT/.orchestrator-identity.json); prefer --orchestrator-enrollment-token-file",
    )
    orchestrator_enrollment_token_file: Path | None = setting(
        None, "file holding the enrollment token"
    )
    orchestrator_token: str = setting(
        "",
        "older name of --orchestrator-enrollment-token (the fleet token of `serve "
        "--gateway-token-file` enrolls too); used when no enrollment token is given",
    )
    orchestrator_token_file: Path | None = setting(
        None, "older name of --orchestrator-enrollment-token-file"
    )
    orchestrator_ca: Path | None = setting(
        None, "PEM CA of the orchestrator's TLS certificate (enables TLS to it)"
    )
    gateway_labels: Mapping[str, str] = setting(
        {},
        "labels reported to the orchestrator, as KEY=VALUE[,KEY=VALUE] (e.g. "
        "site=berlin,hardware=rpi4)",
    )

    def problems(self) -> list[str]:
        if self.orchestrator and not self.orchestrator.rpartition(":")[2].isdigit():
            return ["orchestrator must be HOST:PORT (empty = pull mode off)"]
        return []


@dataclass(frozen=True)
class FeedbackSettings:
    """Results kept for the orchestrator (aggregation, the offline outbox and its uplink
    budget) and the drift monitor (docs/drift.md)."""

    feedback_db: Path | None = setting(
        None, "SQLite outbox of results waiting for upload (default: MODEL_ROOT/.feedback.sqlite3)"
    )
    outbox_max_bytes: int = setting(
        64 * 1024 * 1024,
        "byte cap of the feedback outbox; the oldest batches are dropped (and counted) beyond it",
    )
    feedback_bucket_seconds: int = setting(60, "length of a feedback aggregation bucket, seconds")
    outbox_ttl: float = setting(
        7 * 86_400.0,
        "seconds a result waits in the outbox for the cloud before it expires (dropped and "
        "counted as expired)",
    )
    uplink_budget_bytes_per_day: int = setting(
        0,
        "bytes of hard examples one model may queue for upload per UTC day (aggregates "
        "and status are never held back); 0 = no budget",
    )
    drift_threshold: float = setting(
        0.3,
        "drift score (Jensen-Shannon distance, 0..1) above which a model version is "
        "drifting; docs/drift.md has the measurements behind the default",
    )
    drift_window: int = setting(
        500, "predictions per model version in the drift monitor's rolling window"
    )
    drift_min_samples: int = setting(
        100, "predictions the window needs before a version can be marked drifting"
    )

    def problems(self) -> list[str]:
        found = []
        if self.outbox_max_bytes < 1024:
            found.append("outbox_max_bytes must be at least 1024")
        if not 1 <= self.feedback_bucket_seconds <= 86_400:
            found.append("feedback_bucket_seconds must be 1..86400")
        if not self.outbox_ttl > 0:
            found.append("outbox_ttl must be positive")
        if self.uplink_budget_bytes_per_day < 0:
            found.append("uplink_budget_bytes_per_day must be 0 (no budget) or positive")
        if not 0 < self.drift_threshold <= 1:
            found.append("drift_threshold must be within (0, 1]")
        if not 10 <= self.drift_window <= 100_000:
            found.append("drift_window must be 10..100000")
        if not 1 <= self.drift_min_samples <= self.drift_window:
            found.append("drift_min_samples must be 1..drift_window")
        return found

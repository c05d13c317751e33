"""SQLAlchemy 2 ORM tables of the orchestrator database (SQLite or PostgreSQL).

Times are UNIX seconds (floats) from the writing process's clock, so the same
code runs on both databases; JSON columns hold labels, selectors and summaries.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ArtifactChunk",
    "Assignment",
    "Base",
    "DesiredPin",
    "FeedbackAggregate",
    "FeedbackBatch",
    "FleetGeneration",
    "Gateway",
    "GatewayDrift",
    "GatewayEvent",
    "GatewayModel",
    "HardExampleRow",
    "Model",
    "ModelVersion",
    "OutboxDrop",
    "Rollout",
    "RolloutEvent",
    "RolloutTarget",
    "ShadowEvidenceReport",
]

Json = dict[str, Any]


class Base(DeclarativeBase):
    pass


class Model(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[float] = mapped_column(Float)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    version: Mapped[str] = mapped_column(String(128))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    signature: Mapped[str] = mapped_column(Text)  # the bundle's signature document
    key_id: Mapped[str] = mapped_column(String(64))
    evaluation: Mapped[Json] = mapped_column(JSON, default=dict)
    labels: Mapped[list[Any]] = mapped_column(JSON, default=list)
    manifest: Mapped[Json] = mapped_column(JSON, default=dict)
    parent_version: Mapped[str] = mapped_column(String(128), default="")
    published_by: Mapped[str] = mapped_column(String(256), default="")
    published_at: Mapped[float] = mapped_column(Float)


class Gateway(Base):
    __tablename__ = "gateways"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    address: Mapped[str] = mapped_column(String(256), default="")  # "" = pull mode only
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    token: Mapped[str] = mapped_column(Text, default="")  # management bearer token
    ca_pem: Mapped[str] = mapped_column(Text, default="")  # CA of the management TLS cert
    registered_at: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float, default=0.0)
    gateway_version: Mapped[str] = mapped_column(String(64), default="")


class GatewayModel(Base):
    """What a gateway reported it runs (pull mode) or what a push observed."""

    __tablename__ = "gateway_models"

    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    active_version: Mapped[str] = mapped_column(String(128), default="")
    state: Mapped[str] = mapped_column(String(32), default="")
    bundle_sha256: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[float] = mapped_column(Float)


class GatewayEvent(Base):
    """Activations, rejections and rollbacks a gateway reported."""

    __tablename__ = "gateway_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(128), index=True)
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    occurred_at: Mapped[float] = mapped_column(Float)
    received_at: Mapped[float] = mapped_column(Float)


class Assignment(Base):
    """A standing desired state: gateways matching ``selector`` run ``version`` of a model
    (``latest`` follows every publish)."""

    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("model_name", "selector"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_name: Mapped[str] = mapped_column(String(128))
    selector: Mapped[str] = mapped_column(String(512))
    version: Mapped[str] = mapped_column(String(128))
    mode: Mapped[str] = mapped_column(String(16), default="ACTIVATE")
    created_at: Mapped[float] = mapped_column(Float)


class DesiredPin(Base):
    """A per-gateway desired version set by a rollout; it wins over assignments."""

    __tablename__ = "desired_pins"

    gateway_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[str] = mapped_column(String(128))
    rollout_id: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[float] = mapped_column(Float)
    # ACTIVATE, STAGE or SHADOW (an evidence-gated or stage-only rollout), and the
    # maintenance window the gateway activates in (HH:MM-HH:MM local; '' any time).
    mode: Mapped[str] = mapped_column(String(16), default="ACTIVATE", server_default="'ACTIVATE'")
    window: Mapped[str] = mapped_column(String(16), default="", server_default="''")


class FleetGeneration(Base):
    """One row counting changes that may alter some gateway's desired state, so every
    orchestrator replica sees the same generation (cloud_orchestrator/fleet/changes.py)."""

    __tablename__ = "fleet_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
    changed_at: Mapped[float] = mapped_column(Float, default=0.0)


class Rollout(Base):
    __tablename__ = "rollouts"
    __table_args__ = (Index("ix_rollouts_state", "state"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(128))
    selector: Mapped[str] = mapped_column(String(512))
    strategy: Mapped[str] = mapped_column(String(128))
    max_parallel: Mapped[int] = mapped_column(Integer)
    max_failures: Mapped[str] = mapped_column(String(16))
    watch_seconds: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16))  # PENDING RUNNING SUCCEEDED HALTED CANCELLED
    current_wave: Mapped[int] = mapped_column(Integer, default=0)
    wave_count: Mapped[int] = mapped_column(Integer, default=0)
    owner: Mapped[str] = mapped_column(String(128), default="")
    lease_expires_at: Mapped[float] = mapped_column(Float, default=0.0)
    created_by: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text, default="")
    # Targets started per minute at most (0: only --max-parallel paces the rollout).
    # server_default: storage/db.py adds the column to databases made before it existed.
    rate_per_minute: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    # Evidence gate settings as JSON (rollouts/gates.py GateConfig); '' for no gate.
    gate: Mapped[str] = mapped_column(Text, default="", server_default="''")
    # 1: download and verify everywhere, activate later (`rollout ID --activate`).
    stage_only: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Maintenance windows as JSON [[selector, "HH:MM-HH:MM"], ...]; '' for none.
    windows: Mapped[str] = mapped_column(Text, default="", server_default="''")


class RolloutTarget(Base):
    __tablename__ = "rollout_targets"

    rollout_id: Mapped[str] = mapped_column(ForeignKey("rollouts.id"), primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    wave: Mapped[int] = mapped_column(Integer)
    # PENDING PUSHING WATCHING SUCCEEDED FAILED ROLLED_BACK SKIPPED
    state: Mapped[str] = mapped_column(String(16), default="PENDING")
    previous_version: Mapped[str] = mapped_column(String(128), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    bytes_sent: Mapped[int] = mapped_column(BigInteger, default=0)
    reason: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[float] = mapped_column(Float)
    pushed_by: Mapped[str] = mapped_column(String(128), default="")
    # The gate's evidence and verdict for this gateway as JSON; '' without a gate.
    evidence: Mapped[str] = mapped_column(Text, default="", server_default="''")


class ShadowEvidenceReport(Base):
    """The latest shadow evidence a pull-mode gateway reported for one version."""

    __tablename__ = "shadow_evidence"

    gateway_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(128), primary_key=True)
    evidence: Mapped[str] = mapped_column(Text)  # edge_contracts.shadow_evidence as JSON
    updated_at: Mapped[float] = mapped_column(Float)


class RolloutEvent(Base):
    """An append-only log of what each orchestrator did in a rollout (who, when)."""

    __tablename__ = "rollout_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rollout_id: Mapped[str] = mapped_column(String(64), index=True)
    gateway_id: Mapped[str] = mapped_column(String(128), default="")
    owner: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[float] = mapped_column(Float)
    # The operator who asked for it (console actions); "" for what a process did on its own.
    actor: Mapped[str] = mapped_column(String(128), default="", server_default=text("''"))


class FeedbackBatch(Base):
    """One uploaded result batch; the primary key makes storage exactly-once."""

    __tablename__ = "feedback_batches"

    batch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[float] = mapped_column(Float)
    received_at: Mapped[float] = mapped_column(Float)
    dropped_batches: Mapped[int] = mapped_column(BigInteger, default=0)


class FeedbackAggregate(Base):
    __tablename__ = "feedback_aggregates"
    __table_args__ = (Index("ix_feedback_model", "model_name", "model_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("feedback_batches.batch_id"))
    gateway_id: Mapped[str] = mapped_column(String(128))
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(128))
    bucket_start: Mapped[float] = mapped_column(Float)
    bucket_seconds: Mapped[int] = mapped_column(Integer)
    class_counts: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [[id, label, n]]
    confidence_histogram: Mapped[list[Any]] = mapped_column(JSON, default=list)
    success_count: Mapped[int] = mapped_column(BigInteger, default=0)
    error_count: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_count: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_sum_us: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_max_us: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_p50_us: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_p99_us: Mapped[int] = mapped_column(BigInteger, default=0)


class HardExampleRow(Base):
    __tablename__ = "hard_examples"
    __table_args__ = (Index("ix_hard_examples_model", "model_name", "model_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("feedback_batches.batch_id"))
    gateway_id: Mapped[str] = mapped_column(String(128))
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(128))
    predicted_class: Mapped[int] = mapped_column(Integer)
    predicted_label: Mapped[str] = mapped_column(String(256), default="")
    confidence: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(32))
    content_type: Mapped[str] = mapped_column(String(64), default="")
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    captured_at: Mapped[float] = mapped_column(Float)


class GatewayDrift(Base):
    """The newest drift report of one gateway for one model version (from result batches)."""

    __tablename__ = "gateway_drift"

    gateway_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(128), primary_key=True)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    class_distance: Mapped[float] = mapped_column(Float, default=0.0)
    confidence_distance: Mapped[float] = mapped_column(Float, default=0.0)
    low_margin_share: Mapped[float] = mapped_column(Float, default=0.0)
    reference_low_margin_share: Mapped[float] = mapped_column(Float, default=0.0)
    window: Mapped[int] = mapped_column(Integer, default=0)
    drifting: Mapped[bool] = mapped_column(Boolean, default=False)
    measured_at: Mapped[float] = mapped_column(Float)  # the batch's created_at (gateway clock)
    received_at: Mapped[float] = mapped_column(Float)


class OutboxDrop(Base):
    """What a gateway's outbox lost per model and reason (budget, expired, full): the
    totals its newest batch reported."""

    __tablename__ = "outbox_drops"

    gateway_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    reason: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class ArtifactChunk(Base):
    """One chunk of a bundle kept in the database (registry/db_artifacts.py): chunks
    ``0..n-1`` of ``sha256`` in order, each with its own sha256, so a damaged row is
    caught before its bytes are sent."""

    __tablename__ = "artifact_chunks"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    start: Mapped[int] = mapped_column(BigInteger)  # byte offset of the chunk in the bundle
    length: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))  # sha256 of ``data``
    data: Mapped[bytes] = mapped_column(LargeBinary)

"""Results that gateways send back: stored exactly once per batch id, summarized per
gateway and class, and hard examples exported as an image folder for retraining.

Delivery is at-least-once (a gateway deletes a batch only after the ack), storage is
exactly-once: the batch row's primary key is the gateway's batch id, and its
aggregates and examples are written in the same transaction, so a batch that is
sent again is acknowledged without being stored twice. The rows of a group commit's
batches are written together at its end (feedback/batch_writes.py).
"""

from __future__ import annotations

import functools
import json
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud_orchestrator.feedback.batch_writes import MergedBatches
from cloud_orchestrator.feedback.drift import DriftIn, DropIn
from cloud_orchestrator.storage.db import Database
from cloud_orchestrator.storage.group_commit import GroupCommit
from cloud_orchestrator.storage.merged import Later, merged, run_merged
from cloud_orchestrator.storage.models import FeedbackAggregate, FeedbackBatch, HardExampleRow

__all__ = [
    "AggregateIn",
    "BatchIn",
    "FeedbackStore",
    "FeedbackSummary",
    "HardExampleIn",
    "export_folder_name",
]

_SUFFIXES = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/bmp": ".bmp",
    "image/gif": ".gif",
    "image/webp": ".webp",
}


@dataclass(frozen=True)
class AggregateIn:
    model_name: str
    model_version: str
    bucket_start: float
    bucket_seconds: int
    class_counts: Sequence[tuple[int, str, int]]
    confidence_histogram: Sequence[int]
    success_count: int
    error_count: int
    latency_count: int
    latency_sum_us: int
    latency_max_us: int
    latency_p50_us: int
    latency_p99_us: int


@dataclass(frozen=True)
class HardExampleIn:
    model_name: str
    model_version: str
    predicted_class: int
    predicted_label: str
    confidence: float
    reason: str
    data: bytes = field(repr=False)
    content_type: str
    captured_at: float


@dataclass(frozen=True)
class BatchIn:
    batch_id: str
    gateway_id: str
    created_at: float
    aggregates: Sequence[AggregateIn]
    hard_examples: Sequence[HardExampleIn]
    dropped_batches: int = 0
    drift: Sequence[DriftIn] = ()
    outbox_drops: Sequence[DropIn] = ()


@dataclass
class GatewaySummary:
    gateway_id: str
    versions: set[str] = field(default_factory=set)
    predictions: int = 0
    errors: int = 0
    classes: dict[str, int] = field(default_factory=dict)
    confidence_histogram: list[int] = field(default_factory=lambda: [0] * 10)
    latency_count: int = 0
    latency_sum_us: int = 0
    latency_max_us: int = 0
    latency_p99_us: int = 0
    hard_examples: int = 0
    dropped_batches: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["versions"] = sorted(self.versions)
        data["mean_latency_us"] = (
            self.latency_sum_us // self.latency_count if self.latency_count else 0
        )
        return data


@dataclass(frozen=True)
class FeedbackSummary:
    model_name: str
    version: str
    gateways: list[GatewaySummary]
    batches: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "version": self.version or "all",
            "batches": self.batches,
            "gateways": [g.to_dict() for g in self.gateways],
        }


def export_folder_name(label: str, class_id: int) -> str:
    """A safe folder name for a class: its label, else its index."""
    name = label.strip() or str(class_id)
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
    return safe.lstrip(".") or str(class_id)


class FeedbackStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def store(self, batch: BatchIn) -> bool:
        """Store a batch; False when it was stored before (still acknowledge it)."""
        try:
            with self.db.session() as session:
                stored: bool = run_merged(session, functools.partial(self.add, batch=batch))
                return stored
        except IntegrityError:
            return False  # another orchestrator stored the same batch a moment ago

    async def store_in(
        self,
        writes: GroupCommit,
        batch: BatchIn,
        charge: Callable[[Session], None] | None = None,
    ) -> bool:
        """``store`` through the process's group commit (storage/group_commit.py), after
        ``charge`` (the sender's quota) in the same transaction."""

        def write(session: Session) -> Later[bool]:
            if charge is not None:
                charge(session)
            return self.add(session, batch)

        try:
            return await writes.run_later(write)
        except IntegrityError:
            return False  # another orchestrator stored the same batch a moment ago

    def add(self, session: Session, batch: BatchIn) -> Later[bool]:
        """A batch's rows in a group commit's transaction (storage/merged.py): with the
        group's other batches at its end (feedback/batch_writes.py); True once applied
        when it was new, False when it was there already."""
        pending = merged(session, "feedback_batches", MergedBatches)
        if pending is None:
            raise RuntimeError("FeedbackStore.add runs in a group commit's session (run_merged)")
        return pending.add(batch)

    def batch_count(self) -> int:
        with self.db.session() as session:
            return len(session.scalars(select(FeedbackBatch.batch_id)).all())

    def hard_example_counts(self, model_name: str) -> dict[str, int]:
        """How many hard examples of each version of a model are stored."""
        with self.db.session() as session:
            rows = session.execute(
                select(HardExampleRow.model_version, func.count(HardExampleRow.id))
                .where(HardExampleRow.model_name == model_name)
                .group_by(HardExampleRow.model_version)
            ).all()
        return {str(version): int(count) for version, count in rows}

    def summarize(self, model_name: str, version: str = "") -> FeedbackSummary:
        with self.db.session() as session:
            query = select(FeedbackAggregate).where(FeedbackAggregate.model_name == model_name)
            examples = select(HardExampleRow.gateway_id).where(
                HardExampleRow.model_name == model_name
            )
            if version:
                query = query.where(FeedbackAggregate.model_version == version)
                examples = examples.where(HardExampleRow.model_version == version)
            rows = session.scalars(query).all()
            example_gateways = session.scalars(examples).all()
            batch_ids = {r.batch_id for r in rows}
            dropped = {
                b.gateway_id: b.dropped_batches
                for b in session.scalars(select(FeedbackBatch).order_by(FeedbackBatch.created_at))
            }
        per_gateway: dict[str, GatewaySummary] = {}
        for row in rows:
            summary = per_gateway.setdefault(row.gateway_id, GatewaySummary(row.gateway_id))
            summary.versions.add(row.model_version)
            summary.predictions += row.success_count
            summary.errors += row.error_count
            for class_id, label, count in row.class_counts:
                key = label or str(class_id)
                summary.classes[key] = summary.classes.get(key, 0) + int(count)
            for i, count in enumerate(row.confidence_histogram[:10]):
                summary.confidence_histogram[i] += int(count)
            summary.latency_count += row.latency_count
            summary.latency_sum_us += row.latency_sum_us
            summary.latency_max_us = max(summary.latency_max_us, row.latency_max_us)
            summary.latency_p99_us = max(summary.latency_p99_us, row.latency_p99_us)
        counts: defaultdict[str, int] = defaultdict(int)
        for gateway_id in example_gateways:
            counts[gateway_id] += 1
        for gateway_id, count in counts.items():
            per_gateway.setdefault(gateway_id, GatewaySummary(gateway_id)).hard_examples = count
        for gateway_id, summary in per_gateway.items():
            summary.dropped_batches = dropped.get(gateway_id, 0)
        return FeedbackSummary(
            model_name, version, [per_gateway[k] for k in sorted(per_gateway)], len(batch_ids)
        )

    def export_hard_examples(self, model_name: str, folder: Path, version: str = "") -> int:
        """Write ``folder/<predicted label>/<gateway>-<sha12>.<ext>`` plus ``index.jsonl``;
        returns how many images were written. Existing files are left alone."""
        with self.db.session() as session:
            query = select(HardExampleRow).where(HardExampleRow.model_name == model_name)
            if version:
                query = query.where(HardExampleRow.model_version == version)
            rows = session.scalars(query.order_by(HardExampleRow.id)).all()
            items = [
                (
                    r.gateway_id,
                    r.model_version,
                    r.predicted_class,
                    r.predicted_label,
                    r.confidence,
                    r.reason,
                    r.content_type,
                    r.sha256,
                    bytes(r.data),
                    r.captured_at,
                )
                for r in rows
            ]
        folder.mkdir(parents=True, exist_ok=True)
        written = 0
        index: list[dict[str, Any]] = []
        for (
            gateway_id,
            model_version,
            class_id,
            label,
            confidence,
            reason,
            content_type,
            sha,
            data,
            captured_at,
        ) in items:
            suffix = _SUFFIXES.get(content_type, ".bin")
            class_dir = folder / export_folder_name(label, class_id)
            class_dir.mkdir(exist_ok=True)
            target = class_dir / f"{export_folder_name(gateway_id, 0)}-{sha[:12]}{suffix}"
            if not target.exists():
                tmp = target.with_name(f".{target.name}.tmp")
                with tmp.open("wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                tmp.replace(target)
                written += 1
            index.append(
                {
                    "file": str(target.relative_to(folder)),
                    "gateway_id": gateway_id,
                    "model_version": model_version,
                    "predicted_class": class_id,
                    "predicted_label": label,
                    "confidence": confidence,
                    "reason": reason,
                    "captured_at": captured_at,
                }
            )
        lines = "".join(json.dumps(entry, sort_keys=True) + "\n" for entry in index)
        (folder / "index.jsonl").write_text(lines, encoding="utf-8")
        return written

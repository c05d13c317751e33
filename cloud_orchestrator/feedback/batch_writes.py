"""A group commit's result batches, written together at its end (storage/merged.py).

Written one by one, each batch cost a lookup of its id and a flush of its row, two round
trips per batch inside the group's transaction, and a batch another replica had just
stored failed the whole group, which then ran write by write. Here the group's batches
are one ``INSERT ... ON CONFLICT (batch_id) DO NOTHING RETURNING batch_id`` in id order
(on PostgreSQL one array per column, the same statement whatever the group's size:
storage/row_arrays.py):
the ids it returns are the batches that are new, and only their aggregates, examples and
drift reports are inserted (in one statement per table); a batch stored before, by this
replica or another one, is simply not returned (on PostgreSQL the insert waits for the
other replica's transaction and then skips the row), so it is acknowledged again
without being stored twice and without failing its neighbours.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cloud_orchestrator.feedback.drift import record_uplink
from cloud_orchestrator.storage.merged import Later
from cloud_orchestrator.storage.models import FeedbackAggregate, FeedbackBatch, HardExampleRow
from cloud_orchestrator.storage.row_arrays import array_params, upsert

if TYPE_CHECKING:  # feedback/store.py imports this module
    from cloud_orchestrator.feedback.store import AggregateIn, BatchIn, HardExampleIn

__all__ = ["MergedBatches"]

_BATCHES = cast(Table, FeedbackBatch.__table__)
_AGGREGATES = cast(Table, FeedbackAggregate.__table__)
_EXAMPLES = cast(Table, HardExampleRow.__table__)
_BATCH_COLUMNS = ("batch_id", "gateway_id", "created_at", "received_at", "dropped_batches")


class MergedBatches:
    def __init__(self) -> None:
        self._batches: dict[str, BatchIn] = {}
        self._stored: set[str] = set()

    def add(self, batch: BatchIn) -> Later[bool]:
        """True once applied when the batch was new; a second copy in the same group is
        not (the first one is)."""
        if batch.batch_id in self._batches:
            return Later(lambda: False)
        self._batches[batch.batch_id] = batch
        return Later(lambda: batch.batch_id in self._stored)

    def apply(self, session: Session) -> None:
        if not self._batches:
            return
        now = time.time()
        ordered = [self._batches[key] for key in sorted(self._batches)]
        self._stored = {str(batch_id) for batch_id in _insert_new(session, ordered, now)}
        new = [b for b in ordered if b.batch_id in self._stored]
        aggregates = [_aggregate_row(b, a) for b in new for a in b.aggregates]
        if aggregates:
            session.execute(_AGGREGATES.insert(), aggregates)
        examples = [_example_row(b, e) for b in new for e in b.hard_examples]
        if examples:
            session.execute(_EXAMPLES.insert(), examples)
        for b in new:
            record_uplink(session, b.gateway_id, b.created_at, now, b.drift, b.outbox_drops)


def _insert_new(session: Session, ordered: list[BatchIn], now: float) -> Any:
    """Insert the batches whose ids are new; the ids inserted."""
    rows = [_batch_row(b, now) for b in ordered]
    if session.get_bind().dialect.name == "postgresql":  # one statement, any size
        new_ids = upsert(_BATCHES, _BATCH_COLUMNS, ("batch_id",), (), returning=("batch_id",))
        values = [tuple(row[name] for name in _BATCH_COLUMNS) for row in rows]
        return session.execute(new_ids, array_params(_BATCH_COLUMNS, values)).scalars()
    statement = (
        sqlite_insert(_BATCHES)
        .values(rows)
        .on_conflict_do_nothing(index_elements=[_BATCHES.c.batch_id])
        .returning(_BATCHES.c.batch_id)
    )
    return session.execute(statement).scalars()


def _batch_row(batch: BatchIn, now: float) -> dict[str, Any]:
    return {
        "batch_id": batch.batch_id,
        "gateway_id": batch.gateway_id,
        "created_at": batch.created_at,
        "received_at": now,
        "dropped_batches": batch.dropped_batches,
    }


def _aggregate_row(batch: BatchIn, a: AggregateIn) -> dict[str, Any]:
    return {
        "batch_id": batch.batch_id,
        "gateway_id": batch.gateway_id,
        "model_name": a.model_name,
        "model_version": a.model_version,
        "bucket_start": a.bucket_start,
        "bucket_seconds": a.bucket_seconds,
        "class_counts": [list(c) for c in a.class_counts],
        "confidence_histogram": list(a.confidence_histogram),
        "success_count": a.success_count,
        "error_count": a.error_count,
        "latency_count": a.latency_count,
        "latency_sum_us": a.latency_sum_us,
        "latency_max_us": a.latency_max_us,
        "latency_p50_us": a.latency_p50_us,
        "latency_p99_us": a.latency_p99_us,
    }


def _example_row(batch: BatchIn, e: HardExampleIn) -> dict[str, Any]:
    return {
        "batch_id": batch.batch_id,
        "gateway_id": batch.gateway_id,
        "model_name": e.model_name,
        "model_version": e.model_version,
        "predicted_class": e.predicted_class,
        "predicted_label": e.predicted_label,
        "confidence": e.confidence,
        "reason": e.reason,
        "content_type": e.content_type,
        "sha256": hashlib.sha256(e.data).hexdigest(),
        "data": e.data,
        "captured_at": e.captured_at,
    }

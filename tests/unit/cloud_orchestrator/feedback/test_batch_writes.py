"""A group commit's result batches on a real SQLite database: one insert of the group's
batch rows, the aggregates of the new ones only, and a batch stored before (or twice in
the group) acknowledged as not new without failing the group."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from cloud_orchestrator.feedback.drift import DriftIn
from cloud_orchestrator.feedback.store import AggregateIn, BatchIn, FeedbackStore
from cloud_orchestrator.storage.db import Database
from cloud_orchestrator.storage.group_commit import GroupCommit
from cloud_orchestrator.storage.models import FeedbackAggregate, GatewayDrift


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'orchestrator.db'}")
    yield database
    database.dispose()


def batch(batch_id: str, gateway_id: str = "gw-1", score: float = 0.0) -> BatchIn:
    aggregate = AggregateIn("gray", "2", 60.0, 60, [(3, "3", 40)], [0] * 9 + [40], 40, 0, 40,
                            40_000, 2_000, 900, 1_900)  # fmt: skip
    drift = [DriftIn("gray", "2", score, 0.1, 0.1, 0.2, 0.1, 100, score > 0.5)] if score else []
    return BatchIn(batch_id, gateway_id, 1.0, [aggregate], [], drift=drift)


def statements_on(db: Database, table: str) -> list[str]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith(f"INSERT INTO {table} "):
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    return seen


async def test_a_groups_batches_are_one_insert_and_old_ones_are_not_stored_again(
    db: Database,
) -> None:
    feedback = FeedbackStore(db)
    assert feedback.store(batch("old")) is True
    inserts = statements_on(db, "feedback_batches")
    writes = GroupCommit(db)
    writes.start()
    try:
        ids = ["b-3", "old", "b-1", "b-3", "b-2"]
        stored = await asyncio.gather(*(feedback.store_in(writes, batch(i)) for i in ids))
    finally:
        await writes.stop()
    assert stored == [True, False, True, False, True]  # the second b-3 is a copy
    assert (writes.groups, writes.split) == (1, 0)
    assert len(inserts) == 1
    assert feedback.batch_count() == 4
    with db.session() as session:
        aggregates = session.scalar(select(func.count()).select_from(FeedbackAggregate))
    assert aggregates == 4  # one per stored batch, none for the copies


async def test_drift_of_the_new_batches_is_kept(db: Database) -> None:
    feedback = FeedbackStore(db)
    writes = GroupCommit(db)
    writes.start()
    try:
        await asyncio.gather(
            feedback.store_in(writes, batch("d-1", "gw-1", score=0.7)),
            feedback.store_in(writes, batch("d-2", "gw-2", score=0.2)),
        )
    finally:
        await writes.stop()
    with db.session() as session:
        rows = {r.gateway_id: (r.score, r.drifting) for r in session.scalars(select(GatewayDrift))}
    assert rows == {"gw-1": (0.7, True), "gw-2": (0.2, False)}

"""Group commit on a real SQLite database: many calls' writes share transactions, a
failing write costs only its own caller, and stop() commits what was queued."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_orchestrator.errors import LimitReached, NotFound
from cloud_orchestrator.feedback.store import BatchIn, FeedbackStore
from cloud_orchestrator.fleet.store import Fleet, ReportedEvent, ReportedModel
from cloud_orchestrator.registry.artifacts import FolderArtifacts
from cloud_orchestrator.registry.store import Registry
from cloud_orchestrator.storage.db import Database
from cloud_orchestrator.storage.group_commit import GroupCommit


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'orchestrator.db'}")
    yield database
    database.dispose()


@pytest.fixture
def fleet(db: Database, tmp_path: Path) -> Fleet:
    fleet = Fleet(db, Registry(db, FolderArtifacts(tmp_path / "artifacts")))
    for index in range(20):
        fleet.register(f"gw-{index}")
    return fleet


def _batch(batch_id: str, gateway_id: str = "gw-0") -> BatchIn:
    return BatchIn(batch_id, gateway_id, 1.0, aggregates=(), hard_examples=())


def _report(fleet: Fleet, gateway_id: str) -> functools.partial[int]:
    return functools.partial(
        fleet.report_in,
        gateway_id=gateway_id,
        models=[ReportedModel("gray", "2", "ACTIVE")],
        events=[ReportedEvent("gray", "2", "ACTIVATED", "", 0.0)],
    )


async def test_concurrent_writes_share_transactions_and_all_land(
    db: Database, fleet: Fleet
) -> None:
    writes = GroupCommit(db)
    writes.start()
    try:
        stored = await asyncio.gather(
            *(writes.run(_report(fleet, f"gw-{i % 20}")) for i in range(400))
        )
    finally:
        await writes.stop()
    assert stored == [1] * 400
    assert writes.writes == 400
    assert writes.groups < 100  # grouped: far fewer transactions than writes
    assert len(fleet.events("gw-7")) == 20


async def test_a_failing_write_fails_only_its_caller(db: Database, fleet: Fleet) -> None:
    writes = GroupCommit(db)
    writes.start()
    try:
        outcomes = await asyncio.gather(
            writes.run(_report(fleet, "gw-1")),
            writes.run(_report(fleet, "gw-unknown")),
            writes.run(_report(fleet, "gw-2")),
            return_exceptions=True,
        )
    finally:
        await writes.stop()
    assert outcomes[0] == 1 and outcomes[2] == 1
    assert isinstance(outcomes[1], NotFound)
    assert len(fleet.events("gw-1")) == 1 and len(fleet.events("gw-2")) == 1


async def test_a_batch_sent_twice_is_stored_once_and_acknowledged_twice(db: Database) -> None:
    feedback = FeedbackStore(db)
    writes = GroupCommit(db)
    writes.start()
    try:
        first = await asyncio.gather(
            *(feedback.store_in(writes, _batch(f"b-{i % 5}")) for i in range(10))
        )
        again = await feedback.store_in(writes, _batch("b-3"))
    finally:
        await writes.stop()
    assert sorted(first) == [False] * 5 + [True] * 5
    assert again is False
    assert feedback.batch_count() == 5


async def test_stop_commits_what_was_queued(db: Database, fleet: Fleet) -> None:
    writes = GroupCommit(db)
    writes.start()
    calls = [asyncio.ensure_future(writes.run(_report(fleet, "gw-3"))) for _ in range(50)]
    await asyncio.sleep(0)  # queued, not yet committed
    await writes.stop()
    assert [call.result() for call in calls] == [1] * 50
    assert len(fleet.events("gw-3")) == 50


async def test_a_full_queue_asks_callers_to_retry(db: Database, fleet: Fleet) -> None:
    writes = GroupCommit(db, max_queued=3)
    writes.start()
    try:
        calls = [asyncio.ensure_future(writes.run(_report(fleet, "gw-4"))) for _ in range(8)]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
    finally:
        await writes.stop()
    refused = [o for o in outcomes if isinstance(o, LimitReached)]
    assert refused and all(o.retry_after_ms > 0 for o in refused)
    assert len(fleet.events("gw-4")) == outcomes.count(1)


async def test_writes_for_the_same_new_gateway_share_a_group(db: Database, fleet: Fleet) -> None:
    """No autoflush in a group: the second write still finds the row the first added."""
    writes = GroupCommit(db)
    writes.start()
    connect = functools.partial(
        fleet.connect_in, gateway_id="gw-new", labels={"site": "a"}, gateway_version="1"
    )
    try:
        labels = await asyncio.gather(writes.run(connect), writes.run(connect))
        stored = await asyncio.gather(*(writes.run(_report(fleet, "gw-new")) for _ in range(3)))
    finally:
        await writes.stop()
    assert labels == [{"site": "a"}] * 2 and stored == [1] * 3
    assert writes.groups <= 3  # they were grouped, not retried one by one
    assert len(fleet.events("gw-new")) == 3


async def test_a_write_whose_caller_left_before_it_was_taken_is_not_written(
    db: Database, fleet: Fleet
) -> None:
    writes = GroupCommit(db)
    writes.start()
    try:
        busy = asyncio.ensure_future(writes.run(lambda _session: time.sleep(0.3)))
        await asyncio.sleep(0.1)  # the writer is busy with it
        left = asyncio.ensure_future(writes.run(_report(fleet, "gw-5")))
        await asyncio.sleep(0)  # queued behind it
        left.cancel()
        await busy
        assert await writes.run(_report(fleet, "gw-6")) == 1
    finally:
        await writes.stop()
    assert writes.abandoned == 1
    assert fleet.events("gw-5") == [] and len(fleet.events("gw-6")) == 1

"""Two orchestrator replicas' write paths on one real PostgreSQL: their group commits
(cloud_orchestrator/storage/group_commit.py) charge the same gateways' usage rows, touch
the same gateway rows and store the same batch ids at once, in opposite orders, and
nothing is lost, counted twice or refused; a group the server picks as a deadlock
victim runs again whole. And the verified-chunk cache of the database artifact store:
a bundle read once is served again without its rows, and a row damaged meanwhile is
never served. (Engines in one process, each with its own pool and writer thread: as
two replicas, concurrent transactions on the server.)"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine.interfaces import CacheStats
from sqlalchemy.orm import Session

from cloud_orchestrator.errors import LimitReached
from cloud_orchestrator.feedback.store import AggregateIn, BatchIn, FeedbackStore
from cloud_orchestrator.fleet.limits import Quotas, UsageLedger
from cloud_orchestrator.fleet.store import Fleet, ReportedEvent, ReportedModel
from cloud_orchestrator.registry.artifacts import ArtifactCorrupt, FolderArtifacts
from cloud_orchestrator.registry.db_artifacts import DatabaseArtifacts
from cloud_orchestrator.registry.store import Registry
from cloud_orchestrator.storage.db import Database
from cloud_orchestrator.storage.group_commit import GroupCommit
from tests.support.orchestrator import fresh_database, postgres_server  # noqa: F401

pytestmark = pytest.mark.slow

GATEWAYS = [f"gw-{i:02d}" for i in range(24)]


class Replica:
    """What one orchestrator process writes with: its own engine and group commit."""

    def __init__(self, url: str, tmp_path: Path, quotas: Quotas) -> None:
        self.db = Database(url)
        self.fleet = Fleet(self.db, Registry(self.db, FolderArtifacts(tmp_path)))
        self.feedback = FeedbackStore(self.db)
        self.ledger = UsageLedger(self.db, quotas)
        self.writes = GroupCommit(self.db)

    def close(self) -> None:
        self.db.dispose()


@pytest.fixture
def replicas(postgres_server: str, tmp_path: Path) -> Iterator[tuple[Replica, Replica]]:
    url = fresh_database(postgres_server)
    quotas = Quotas(result_bytes_per_day=1 << 40, events_per_day=1_000_000)
    pair = (Replica(url, tmp_path, quotas), Replica(url, tmp_path, quotas))
    for gateway_id in GATEWAYS:
        pair[0].fleet.register(gateway_id)
    try:
        yield pair
    finally:
        for replica in pair:
            replica.close()


def _batch(batch_id: str, gateway_id: str) -> BatchIn:
    aggregate = AggregateIn("gray", "2", 60.0, 60, [(3, "3", 40)], [0] * 9 + [40], 40, 0, 40,
                            40_000, 2_000, 900, 1_900)  # fmt: skip
    return BatchIn(batch_id, gateway_id, 1.0, aggregates=[aggregate], hard_examples=())


def _report_and_charge(replica: Replica, gateway_id: str, session: Session) -> int:
    """ReportStatus's write: the event quota, then the gateway's row and its event."""
    replica.ledger.charge_in(session, gateway_id, events=1)
    return replica.fleet.report_in(
        session,
        gateway_id,
        [ReportedModel("gray", "2", "ACTIVE")],
        [ReportedEvent("gray", "2", "ACTIVATED", "", 0.0)],
    )


async def _flood(replica: Replica, sends: list[tuple[str, str]]) -> list[Any]:
    """A status report and a result batch for each (gateway, batch id), all at once."""
    calls: list[Any] = []
    for gateway_id, batch_id in sends:
        calls.append(replica.writes.run(functools.partial(_report_and_charge, replica, gateway_id)))
        charge = functools.partial(replica.ledger.charge_in, gateway_id=gateway_id, result_bytes=7)
        batch = _batch(batch_id, gateway_id)
        calls.append(replica.feedback.store_in(replica.writes, batch, charge))
    return await asyncio.gather(*calls, return_exceptions=True)


async def test_two_replicas_writing_the_same_rows_lose_and_refuse_nothing(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    rounds = 100  # 2,400 reports and 2,400 batches per replica
    sends_a = [(gateway_id, f"a-{i}") for i, gateway_id in enumerate(GATEWAYS * rounds)]
    # B: the same gateways in another order; half of its batches are A's, sent again to
    # the other replica (as after a lost answer).
    sends_b = [pair if i % 2 else (pair[0], f"b-{i}") for i, pair in enumerate(sends_a)]
    random.Random(3).shuffle(sends_b)
    for replica in replicas:
        replica.writes.start()
    try:
        outcome_a, outcome_b = await asyncio.gather(_flood(a, sends_a), _flood(b, sends_b))
    finally:
        for replica in replicas:
            await replica.writes.stop()
    failures = [o for o in outcome_a + outcome_b if isinstance(o, BaseException)]
    assert failures == []
    reports = outcome_a[0::2] + outcome_b[0::2]
    stored = outcome_a[1::2] + outcome_b[1::2]
    assert reports == [1] * (len(sends_a) + len(sends_b))
    distinct = set(sends_a) | set(sends_b)
    assert stored.count(True) == len(distinct)  # each id stored once, by one replica
    assert a.feedback.batch_count() == len(distinct)
    sent = 2 * rounds
    for gateway_id in GATEWAYS:
        result_bytes, events = a.ledger.usage(gateway_id)
        assert events == sent and len(a.fleet.events(gateway_id)) == sent
        # A batch sent again is charged unless its write failed as a duplicate.
        kept = sum(1 for g, _ in distinct if g == gateway_id)
        assert 7 * kept <= result_bytes <= 7 * sent
    # Grouped: far fewer transactions than writes, on both replicas; and no group ran
    # write by write (a batch the other replica stored is skipped by the group's insert).
    assert a.writes.groups < a.writes.writes / 4 and b.writes.groups < b.writes.writes / 4
    assert a.writes.split == b.writes.split == 0


async def test_merged_writes_are_one_statement_whatever_the_group_size(
    replicas: tuple[Replica, Replica],
) -> None:
    """Groups of 1 to 24 reports and batches: the usage upsert, the last-seen update, the
    models upsert, the events insert and the batches insert keep one SQL text each (rows as arrays:
    storage/row_arrays.py), so they are compiled once and prepared by the driver, not
    compiled and parsed again per group size."""
    a, _ = replicas
    texts: set[str] = set()
    merged = (
        "INSERT INTO gateway_usage",
        "UPDATE gateways",
        "INSERT INTO gateway_models",
        "INSERT INTO gateway_events",
        "INSERT INTO feedback_batches",
    )

    compiled: list[CacheStats] = []

    def record(
        _conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, *_: Any
    ) -> None:
        if statement.lstrip().startswith(merged):
            texts.add(statement)
            compiled.append(context.cache_hit)

    event.listen(a.db.engine, "before_cursor_execute", record)
    a.writes.start()
    try:
        for size in (1, 2, 5, 13, 24):
            calls = [
                a.writes.run(functools.partial(_report_and_charge, a, gateway_id))
                for gateway_id in GATEWAYS[:size]
            ]
            assert await asyncio.gather(*calls) == [1] * size
            batches = [
                a.feedback.store_in(a.writes, _batch(f"s{size}-{gateway_id}", gateway_id), None)
                for gateway_id in GATEWAYS[:size]
            ]
            assert await asyncio.gather(*batches) == [True] * size
    finally:
        await a.writes.stop()
    assert a.writes.groups >= 5
    assert [sum(t.lstrip().startswith(m) for t in texts) for m in merged] == [1] * 5, texts
    # Compiled by SQLAlchemy once each (the first group), then taken from its cache: a
    # construct without a cache key would be compiled at every group.
    assert compiled[5:] and set(compiled[5:]) == {CacheStats.CACHE_HIT}, compiled
    assert a.ledger.usage("gw-00") == (0, 5) and a.ledger.usage(GATEWAYS[-1]) == (0, 1)


async def test_quotas_hold_for_calls_on_both_replicas(postgres_server: str, tmp_path: Path) -> None:
    url = fresh_database(postgres_server)
    quotas = Quotas(result_bytes_per_day=10_000, events_per_day=1_000)
    pair = [Replica(url, tmp_path, quotas), Replica(url, tmp_path, quotas)]
    for replica in pair:
        replica.writes.start()
    try:
        calls = [
            replica.writes.run(
                functools.partial(replica.ledger.charge_in, gateway_id="gw-0", result_bytes=100)
            )
            for _ in range(80)
            for replica in pair
        ]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
    finally:
        for replica in pair:
            await replica.writes.stop()
        usage = pair[0].ledger.usage("gw-0")
        for replica in pair:
            replica.close()
    assert outcomes.count(None) == 100
    assert all(isinstance(o, LimitReached) for o in outcomes if o is not None)
    assert usage == (10_000, 0)


async def test_a_deadlock_victims_group_runs_again_whole(
    replicas: tuple[Replica, Replica],
) -> None:
    """Two writes lock the same two rows in opposite orders, each in its replica's group:
    PostgreSQL aborts one (deadlock_detected); its group runs again and both succeed."""
    both_hold_one = threading.Barrier(2, timeout=10)
    attempts = {"a": 0, "b": 0}

    def cross(name: str, first: str, second: str, session: Session) -> str:
        attempts[name] += 1
        lock = text("UPDATE gateways SET last_seen = last_seen + 1 WHERE id = :id")
        session.execute(lock, {"id": first})
        if attempts[name] == 1:
            both_hold_one.wait()
        session.execute(lock, {"id": second})
        return name

    a, b = replicas
    for replica in replicas:
        replica.writes.start()
    try:
        done = await asyncio.gather(
            a.writes.run(functools.partial(cross, "a", "gw-00", "gw-01")),
            a.writes.run(lambda _session: "a-other"),  # a group, not a lone write
            b.writes.run(functools.partial(cross, "b", "gw-01", "gw-00")),
            b.writes.run(lambda _session: "b-other"),
        )
    finally:
        for replica in replicas:
            await replica.writes.stop()
    assert list(done) == ["a", "a-other", "b", "b-other"]
    assert a.writes.retried + b.writes.retried == 1
    assert sorted(attempts.values()) == [1, 2]
    assert a.writes.split == b.writes.split == 0  # again whole, not write by write
    with psycopg.connect(a.db.url.replace("+psycopg", "")) as connection:
        seen = connection.execute(
            "SELECT last_seen FROM gateways WHERE id IN ('gw-00', 'gw-01')"
        ).fetchall()
    assert [row[0] for row in seen] == [2.0, 2.0]  # each write applied once


def _chunk_reads(db: Database) -> list[int]:
    reads: list[int] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("SELECT artifact_chunks.data"):
            reads.append(1)

    event.listen(db.engine, "before_cursor_execute", count)
    return reads


def test_a_bundle_read_once_is_served_from_verified_chunks_and_a_damaged_row_never(
    postgres_server: str,
) -> None:
    url = fresh_database(postgres_server)
    db = Database(url)
    try:
        store = DatabaseArtifacts(db, chunk_bytes=1000)
        data = os.urandom(4000)
        sha256 = hashlib.sha256(data).hexdigest()
        store.write(io.BytesIO(data), sha256)
        reads = _chunk_reads(db)
        assert b"".join(store.blocks(sha256)) == data
        assert len(reads) == 4
        assert b"".join(store.blocks(sha256, 1500)) == data[1500:]
        assert len(reads) == 4  # every chunk from the cache
        with psycopg.connect(url) as connection:
            connection.execute(
                "UPDATE artifact_chunks SET data = set_byte(data, 3, (get_byte(data, 3) + 1) "
                "%% 256) WHERE sha256 = %s AND idx = 2",
                (sha256,),
            )
        # This replica serves the bytes it verified; one that must read the row refuses.
        assert b"".join(store.blocks(sha256)) == data
        other = DatabaseArtifacts(db, chunk_bytes=1000, cache_bytes=0)
        with pytest.raises(ArtifactCorrupt, match="chunk 2 of bundle"):
            b"".join(other.blocks(sha256))
        small = DatabaseArtifacts(db, chunk_bytes=1000, cache_bytes=1000)  # one chunk
        with pytest.raises(ArtifactCorrupt, match="chunk 2 of bundle"):
            b"".join(small.blocks(sha256))
        with pytest.raises(ArtifactCorrupt, match="chunk 2 of bundle"):
            b"".join(small.blocks(sha256, 2000))  # the damaged row was never kept
    finally:
        db.dispose()

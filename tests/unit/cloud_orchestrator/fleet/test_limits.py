"""Daily usage charges on a real SQLite database: within a group commit they are merged,
one upsert for the whole group at its end, gateways in order; a group whose sum passes a
quota refuses only the writes past it; outside a group a charge is written at once."""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from cloud_orchestrator.errors import InvalidRequest, LimitReached
from cloud_orchestrator.fleet.limits import Quotas, UsageLedger
from cloud_orchestrator.storage.db import Database
from cloud_orchestrator.storage.group_commit import GroupCommit


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'orchestrator.db'}")
    yield database
    database.dispose()


def usage_statements(db: Database) -> list[tuple[str, ...]]:
    """The gateway of every statement on gateway_usage, in the order they run."""
    seen: list[tuple[str, ...]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "gateway_usage" in statement:
            seen.append(tuple(p for p in parameters if isinstance(p, str) and "gw" in p))

    event.listen(db.engine, "before_cursor_execute", record)
    return seen


async def test_charges_in_a_group_are_one_upsert_in_gateway_order(
    db: Database,
) -> None:
    ledger = UsageLedger(db, Quotas())
    calls = [(f"gw-{i % 4}", 100) for i in range(40)]
    random.Random(7).shuffle(calls)
    statements = usage_statements(db)
    writes = GroupCommit(db)
    writes.start()
    try:
        await asyncio.gather(
            *(
                writes.run(
                    functools.partial(ledger.charge_in, gateway_id=gid, result_bytes=n, events=1)
                )
                for gid, n in calls
            )
        )
    finally:
        await writes.stop()
    assert (writes.groups, writes.split) == (1, 0)  # all queued before the writer woke
    assert statements == [tuple(f"gw-{i}" for i in range(4))]  # one upsert, gateway order
    assert [ledger.usage(f"gw-{i}") for i in range(4)] == [(1000, 10)] * 4


async def test_a_group_past_a_quota_refuses_only_the_writes_past_it(db: Database) -> None:
    ledger = UsageLedger(db, Quotas(result_bytes_per_day=10_000, events_per_day=10))
    ledger.charge("gw-full", events=7)  # at once: no group
    assert ledger.usage("gw-full") == (0, 7)
    writes = GroupCommit(db)
    writes.start()
    try:
        outcomes = await asyncio.gather(
            *(
                writes.run(functools.partial(ledger.charge_in, gateway_id=gid, events=1))
                for gid in ["gw-full"] * 5 + ["gw-other"] * 5
            ),
            return_exceptions=True,
        )
    finally:
        await writes.stop()
    refused = [o for o in outcomes[:5] if isinstance(o, LimitReached)]
    assert len(refused) == 2 and outcomes[5:] == [None] * 5
    assert "gw-full reached its daily quota of status events" in str(refused[0])
    assert refused[0].retry_after_ms > 0
    assert ledger.usage("gw-full") == (0, 10) and ledger.usage("gw-other") == (0, 5)


def test_a_charge_larger_than_a_whole_day_is_invalid(db: Database) -> None:
    ledger = UsageLedger(db, Quotas(result_bytes_per_day=1_000, events_per_day=10))
    with pytest.raises(InvalidRequest, match="larger than the daily result quota"):
        ledger.charge("gw-0", result_bytes=1_001)
    with pytest.raises(LimitReached):
        ledger.charge("gw-0", result_bytes=600)
        ledger.charge("gw-0", result_bytes=600)
    assert ledger.usage("gw-0") == (600, 0)

"""Status reports merged per group commit, on a real SQLite database: the gateways' rows
and models are two statements at the group's end; an unknown gateway fails only its own
report; the last report of a group wins."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from cloud_orchestrator.errors import NotFound
from cloud_orchestrator.fleet.store import Fleet, ReportedEvent, ReportedModel
from cloud_orchestrator.registry.artifacts import FolderArtifacts
from cloud_orchestrator.registry.store import Registry
from cloud_orchestrator.storage.db import Database
from cloud_orchestrator.storage.group_commit import GroupCommit


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    db = Database(f"sqlite:///{tmp_path / 'orchestrator.db'}")
    fleet = Fleet(db, Registry(db, FolderArtifacts(tmp_path / "artifacts")))
    for index in range(3):
        fleet.register(f"gw-{index}")
    yield fleet
    db.dispose()


def report(fleet: Fleet, gateway_id: str, version: str) -> functools.partial[int]:
    return functools.partial(
        fleet.report_in,
        gateway_id=gateway_id,
        models=[ReportedModel("gray", version, "ACTIVE")],
        events=[ReportedEvent("gray", version, "ACTIVATED", "", 0.0)],
    )


async def test_a_groups_reports_are_two_statements_and_the_last_one_wins(fleet: Fleet) -> None:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "gateway_models" in statement or statement.startswith("UPDATE gateways"):
            statements.append(statement.split(" (", 1)[0].split(" SET", 1)[0])

    event.listen(fleet.db.engine, "before_cursor_execute", record)
    writes = GroupCommit(fleet.db)
    writes.start()
    try:
        order = [("gw-2", "1"), ("gw-0", "1"), ("gw-1", "1"), ("gw-0", "2"), ("gw-2", "3")]
        stored = await asyncio.gather(*(writes.run(report(fleet, g, v)) for g, v in order))
    finally:
        await writes.stop()
    assert stored == [1] * 5 and (writes.groups, writes.split) == (1, 0)
    assert statements == ["UPDATE gateways", "INSERT INTO gateway_models"]
    running = {g: fleet.gateway(g).running["gray"].active_version for g in ("gw-0", "gw-1", "gw-2")}
    assert running == {"gw-0": "2", "gw-1": "1", "gw-2": "3"}
    assert len(fleet.events("gw-0")) == 2
    assert fleet.gateway("gw-1").last_seen > 0


async def test_an_unknown_gateway_fails_only_its_own_report(fleet: Fleet) -> None:
    writes = GroupCommit(fleet.db)
    writes.start()
    try:
        outcomes = await asyncio.gather(
            writes.run(report(fleet, "gw-0", "1")),
            writes.run(report(fleet, "gw-unknown", "1")),
            writes.run(report(fleet, "gw-1", "1")),
            return_exceptions=True,
        )
    finally:
        await writes.stop()
    assert outcomes[0] == 1 and outcomes[2] == 1
    assert isinstance(outcomes[1], NotFound)
    assert "gateway 'gw-unknown' is unknown; Subscribe first" in str(outcomes[1])
    assert fleet.events("gw-unknown") == []
    assert fleet.gateway("gw-1").running["gray"].active_version == "1"


def test_a_report_outside_a_group_commit_is_a_group_of_its_own(fleet: Fleet) -> None:
    assert fleet.report("gw-0", [ReportedModel("gray", "4", "ACTIVE")]) == 0
    assert fleet.gateway("gw-0").running["gray"].active_version == "4"
    with pytest.raises(NotFound):
        fleet.report("gw-9", [])

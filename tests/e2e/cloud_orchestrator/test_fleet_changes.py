"""Desired state is event-driven: an assign wakes subscribed gateways at once, an idle
fleet costs the database (almost) nothing, and on PostgreSQL a change made anywhere
reaches the streams of every replica (LISTEN/NOTIFY, with the generation poll as the
safety net). Streams are the many-gateway client of tests/support/fleet_load.py."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event

from cloud_orchestrator.app import Orchestrator, ServeOptions, serve
from cloud_orchestrator.fleet.changes import LISTENER_NAME
from tests.support.fleet_load import ENROLL_FREELY, StreamFleet
from tests.support.orchestrator import (  # noqa: F401
    OrchestratorProcess,
    Publisher,
    cli,
    free_port,
    fresh_database,
    postgres_server,
    publisher,
)


def publish(publisher: Publisher, db: str, artifacts: Path, version: str) -> None:
    bundle = publisher.gray_bundle(version, golden=False)
    cli(
        "publish",
        str(bundle),
        "--trusted-keys",
        str(publisher.public_key),
        db=db,
        artifacts=artifacts,
    )


@contextlib.asynccontextmanager
async def serving(
    db: str, artifacts: Path, **options: Any
) -> AsyncIterator[tuple[Orchestrator, str]]:
    """``serve`` in this event loop, so the test can watch its database engine."""
    orchestrator = Orchestrator(db, artifacts)
    port = free_port()
    stop = asyncio.Event()
    settings = ServeOptions(
        port=port, run_rollouts=False, enroll_rate_per_second=1e5, enroll_burst=100_000, **options
    )
    task = asyncio.create_task(serve(orchestrator, settings, stop))
    await asyncio.sleep(0.5)
    try:
        yield orchestrator, f"127.0.0.1:{port}"
    finally:
        stop.set()
        await task
        orchestrator.close()


async def reach(fleet: StreamFleet, ids: list[str], want: dict[str, str], timeout: float) -> float:
    """Seconds until every stream of ``ids`` was told ``want``."""
    started = time.monotonic()
    done = await fleet.wait_until(lambda f: all(f.desired.get(g) == want for g in ids), timeout)
    assert done, {g: fleet.desired.get(g) for g in ids if fleet.desired.get(g) != want}
    return time.monotonic() - started


async def test_an_assign_wakes_subscribed_gateways_without_polling(
    publisher: Publisher, tmp_path: Path
) -> None:
    db, artifacts = f"sqlite:///{tmp_path / 'o.db'}", tmp_path / "artifacts"
    publish(publisher, db, artifacts, "2")
    # A poll of a minute: only the event can be this fast.
    async with serving(db, artifacts, desired_poll_seconds=60.0) as (orchestrator, target):
        fleet = StreamFleet(target)
        ids = [f"gw-{i}" for i in range(20)]
        fleet.open(ids, {"site": "lab"})
        await reach(fleet, ids, {}, 30)
        await asyncio.to_thread(orchestrator.fleet.assign, "gray", "site=lab", "2")
        assert await reach(fleet, ids, {"gray": "2"}, 5) < 1.0
        await asyncio.to_thread(orchestrator.fleet.pin, "gw-3", "gray", "1", "r-test")
        assert await reach(fleet, ["gw-3"], {"gray": "1"}, 5) < 1.0
        assert fleet.desired["gw-4"] == {"gray": "2"}  # the others were not moved
        await fleet.close()


async def test_an_idle_fleet_makes_almost_no_queries(publisher: Publisher, tmp_path: Path) -> None:
    db, artifacts = f"sqlite:///{tmp_path / 'o.db'}", tmp_path / "artifacts"
    streams = 300
    # Heartbeats every 30 s: each one rechecks the gateway's credential, a query of its own
    # (cloud_orchestrator/grpc/auth.py); this counts what desired state and presence cost.
    async with serving(db, artifacts, heartbeat_seconds=30.0, desired_poll_seconds=0.5) as (
        orchestrator,
        target,
    ):
        fleet = StreamFleet(target, streams_per_channel=100)
        ids = [f"gw-{i:03d}" for i in range(streams)]
        fleet.open(ids)
        assert await fleet.wait_until(lambda f: len(f.first_at) == streams, 60)
        await asyncio.sleep(2)
        statements: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            statements.append(statement)

        event.listen(orchestrator.db.engine, "before_cursor_execute", count)
        await asyncio.sleep(6)
        event.remove(orchestrator.db.engine, "before_cursor_execute", count)
        alive = sum(1 for task in fleet._tasks if not task.done())
        await fleet.close()
    assert alive == streams
    # One generation check every 0.5 s (--desired-poll-seconds) and a presence flush or
    # two, for 300 streams (polling did ~5 queries per stream and second: ~9,000 here).
    assert len(statements) <= 16, statements


async def test_notify_reaches_the_streams_of_another_replica(
    postgres_server: str, publisher: Publisher, tmp_path: Path
) -> None:
    db, artifacts = fresh_database(postgres_server), tmp_path / "artifacts"
    publish(publisher, db, artifacts, "2")
    options = ("--no-rollouts", "--desired-poll-seconds", "60", *ENROLL_FREELY)
    replicas = [OrchestratorProcess(db, artifacts, *options) for _ in range(2)]
    fleets = [StreamFleet(r.target) for r in replicas]
    try:
        ids = [[f"a-{i}" for i in range(10)], [f"b-{i}" for i in range(10)]]
        for fleet, group in zip(fleets, ids, strict=True):
            fleet.open(group)
        for fleet, group in zip(fleets, ids, strict=True):
            await reach(fleet, group, {}, 30)
        # Another process (the CLI) commits the change: only NOTIFY tells the replicas.
        await asyncio.to_thread(
            cli, "assign", "gray", "--gateways", "all", "--version", "2", db=db, artifacts=artifacts
        )
        for fleet, group in zip(fleets, ids, strict=True):
            assert await reach(fleet, group, {"gray": "2"}, 5) < 1.0
    finally:
        for fleet in fleets:
            await fleet.close()
        for replica in replicas:
            replica.terminate()


async def test_the_generation_poll_converges_when_notify_is_lost(
    postgres_server: str, publisher: Publisher, tmp_path: Path
) -> None:
    db, artifacts = fresh_database(postgres_server), tmp_path / "artifacts"
    publish(publisher, db, artifacts, "2")
    replica = OrchestratorProcess(
        db, artifacts, "--no-rollouts", "--desired-poll-seconds", "1", *ENROLL_FREELY
    )
    fleet = StreamFleet(replica.target)
    try:
        ids = [f"gw-{i}" for i in range(10)]
        fleet.open(ids)
        await reach(fleet, ids, {}, 30)
        with psycopg.connect(db, autocommit=True) as connection:
            killed = connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (LISTENER_NAME,),
            ).fetchall()
        assert killed == [(True,)]
        await asyncio.to_thread(
            cli, "assign", "gray", "--gateways", "all", "--version", "2", db=db, artifacts=artifacts
        )
        # The listener comes back after 5 s (fleet/changes.py); the poll is sooner.
        assert await reach(fleet, ids, {"gray": "2"}, 10) < 3.5
        assert any("LISTEN edge_fleet_desired lost" in line for line in replica.log)
    finally:
        await fleet.close()
        replica.terminate()

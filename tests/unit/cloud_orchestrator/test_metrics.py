"""The orchestrator's metrics page: fleet counts from one query on a real SQLite database,
what the page says when that query fails, the rollout steps its runner reports, and the
metrics-only listener over real HTTP on a loopback port."""

from __future__ import annotations

import socket
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from cloud_orchestrator.errors import InvalidRequest
from cloud_orchestrator.feedback.drift import DriftIn, count_drifting, record_uplink
from cloud_orchestrator.fleet.census import FleetCensus, take_census
from cloud_orchestrator.fleet.store import Fleet, ReportedModel
from cloud_orchestrator.metrics import CONTENT_TYPE, OrchestratorMetrics
from cloud_orchestrator.metrics_listener import MetricsListener
from cloud_orchestrator.registry.artifacts import FolderArtifacts
from cloud_orchestrator.registry.store import Registry
from cloud_orchestrator.storage.db import Database
from cloud_orchestrator.storage.models import Rollout
from tests.support.metrics_text import sample

WINDOW = 35.0


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'orchestrator.db'}")
    yield database
    database.dispose()


def fleet_of(db: Database, tmp_path: Path) -> Fleet:
    return Fleet(db, Registry(db, FolderArtifacts(tmp_path / "artifacts")))


def add_rollout(db: Database, rollout_id: str, state: str) -> None:
    with db.session() as session:
        session.add(
            Rollout(
                id=rollout_id,
                model_name="gray",
                version="1",
                selector="all",
                strategy="all",
                max_parallel=1,
                max_failures="0",
                watch_seconds=0.0,
                state=state,
                created_at=time.time(),
                updated_at=time.time(),
            )
        )


def page_of(db: Database) -> str:
    return OrchestratorMetrics(lambda: take_census(db, time.time(), WINDOW)).render().decode()


def test_gateways_are_counted_by_presence_and_rollouts_by_state(
    db: Database, tmp_path: Path
) -> None:
    fleet = fleet_of(db, tmp_path)
    for gateway_id in ("pull-1", "pull-2", "pull-3"):
        fleet.connect(gateway_id, {"site": "lab"}, "1.0")  # seen now
    fleet.touch_many({"pull-3": time.time() - WINDOW - 5})  # its stream ended a while ago
    fleet.register("push-1", address="10.0.0.1:50051")  # never seen: not watched
    fleet.register("push-2", address="10.0.0.2:50051")
    fleet.touch("push-2")  # a rollout pushed to it just now
    for number, state in enumerate(("RUNNING", "RUNNING", "HALTED", "SUCCEEDED")):
        add_rollout(db, f"r-{number}", state)

    page = page_of(db)

    assert sample(page, "edge_orchestrator_gateways", state="online") == 3
    assert sample(page, "edge_orchestrator_gateways", state="offline") == 1
    assert sample(page, "edge_orchestrator_gateways", state="unobserved") == 1
    assert sample(page, "edge_orchestrator_rollouts", state="RUNNING") == 2
    assert sample(page, "edge_orchestrator_rollouts", state="HALTED") == 1
    assert sample(page, "edge_orchestrator_rollouts", state="SUCCEEDED") == 1
    # States no rollout is in are still series, at 0: an alert has something to compare.
    assert 'edge_orchestrator_rollouts{state="CANCELLED"} 0.0' in page
    assert 'edge_orchestrator_rollouts{state="PENDING"} 0.0' in page
    assert sample(page, "edge_orchestrator_database_up") == 1
    assert sample(page, "edge_orchestrator_gateways_drifting") == 0
    assert "process_resident_memory_bytes" in page and "python_info" in page


def test_a_scrape_is_one_query_whatever_the_fleet_size(db: Database, tmp_path: Path) -> None:
    fleet = fleet_of(db, tmp_path)
    for number in range(300):
        fleet.connect(f"gw-{number}", {}, "1.0")
    fleet.touch_many({f"gw-{number}": 1.0 for number in range(100)})
    add_rollout(db, "r-1", "PENDING")
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        page = page_of(db)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)

    assert len(statements) == 1, statements
    assert sample(page, "edge_orchestrator_gateways", state="online") == 200
    assert sample(page, "edge_orchestrator_gateways", state="offline") == 100
    assert sample(page, "edge_orchestrator_rollouts", state="PENDING") == 1


def test_registering_the_fleet_collector_queries_nothing() -> None:
    calls: list[float] = []

    def census() -> FleetCensus:
        calls.append(time.time())
        return FleetCensus({"online": 1}, {})

    metrics = OrchestratorMetrics(census)
    assert calls == []
    assert sample(metrics.render().decode(), "edge_orchestrator_gateways", state="online") == 1
    assert len(calls) == 1


def test_a_failing_database_leaves_the_fleet_out_and_says_so(db: Database, tmp_path: Path) -> None:
    fleet_of(db, tmp_path).connect("pull-1", {}, "1.0")
    with sqlite3.connect(tmp_path / "orchestrator.db") as raw:  # a database gone wrong
        raw.execute("ALTER TABLE gateways RENAME TO gateways_lost")

    page = page_of(db)

    assert sample(page, "edge_orchestrator_database_up") == 0
    assert "edge_orchestrator_gateways{" not in page
    assert "edge_orchestrator_rollouts{" not in page
    # The rest of the page still answers: the process is up, its database is not.
    assert "edge_orchestrator_subscribe_streams 0.0" in page
    assert "process_cpu_seconds_total" in page


def report_drift(db: Database, gateway_id: str, *reports: tuple[str, str, bool]) -> None:
    """What ReportResults stores from a batch's drift reports (model, version, drifting)."""
    drift = [
        DriftIn(model, version, 0.5 if drifting else 0.1, 0.5, 0.2, 0.1, 0.1, 500, drifting)
        for model, version, drifting in reports
    ]
    with db.session() as session:
        record_uplink(session, gateway_id, time.time(), time.time(), drift, [])


def test_gateways_drifting_are_counted_like_the_drift_view(db: Database, tmp_path: Path) -> None:
    fleet = fleet_of(db, tmp_path)
    for gateway_id in ("runs-2", "moved-on", "two-models", "calm"):
        fleet.connect(gateway_id, {}, "1.0", [ReportedModel("digits", "2", "READY")])
    report_drift(db, "runs-2", ("digits", "2", True))
    report_drift(db, "moved-on", ("digits", "1", True))  # an old version's report
    report_drift(db, "two-models", ("digits", "2", True), ("gray", "1", True))
    report_drift(db, "calm", ("digits", "2", False))
    report_drift(db, "never-said", ("gray", "3", True))  # no running version reported

    page = page_of(db)

    assert sample(page, "edge_orchestrator_gateways_drifting") == 3 == count_drifting(db)


def test_rollout_steps_are_counted_by_kind() -> None:
    metrics = OrchestratorMetrics()
    observer = metrics.rollout_observer
    observer.on_wave("r-1", 0, 2)
    for gateway_id in ("a", "b"):
        observer.on_target("r-1", gateway_id, "PUSHING", "")
    observer.on_target("r-1", "a", "SUCCEEDED", "")
    observer.on_target("r-1", "b", "FAILED", "gateway refused the bundle")
    observer.on_target("r-1", "b", "ROLLED_BACK", "restored 1")
    observer.on_bytes("r-1", "a", 10, 20)  # progress only: not a step

    page = metrics.render().decode()
    events = "edge_orchestrator_rollout_events_total"
    assert sample(page, events, kind="wave_started") == 1
    assert sample(page, events, kind="target_pushing") == 2
    assert sample(page, events, kind="target_succeeded") == 1
    assert sample(page, events, kind="target_failed") == 1
    assert sample(page, events, kind="target_rolled_back") == 1
    assert "_created" not in page  # no *_created series: half the page for nothing
    assert "edge_orchestrator_gateways{" not in page  # no census given: no fleet families


def test_streams_and_fetched_bytes_are_what_the_servicer_reports() -> None:
    metrics = OrchestratorMetrics()
    metrics.subscribe_streams.inc()
    metrics.subscribe_streams.inc()
    metrics.subscribe_streams.dec()
    metrics.fetch_model_bytes.inc(1 << 20)
    page = metrics.render().decode()
    assert sample(page, "edge_orchestrator_subscribe_streams") == 1
    assert sample(page, "edge_orchestrator_fetch_model_bytes_total") == 1 << 20


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def test_the_listener_serves_metrics_and_nothing_else() -> None:
    metrics = OrchestratorMetrics()
    metrics.fetch_model_bytes.inc(42)
    listener = MetricsListener(metrics, "127.0.0.1", 0)
    try:
        status, kind, body = get(listener.url)
        assert (status, kind) == (200, CONTENT_TYPE)
        assert sample(body, "edge_orchestrator_fetch_model_bytes_total") == 42
        status, _, body = get(f"http://127.0.0.1:{listener.port}/")
        assert status == 404 and "only GET /metrics" in body
    finally:
        listener.close()
    with pytest.raises(ConnectionRefusedError):  # closed: nothing listens there any more
        socket.create_connection(("127.0.0.1", listener.port), timeout=5).close()


def test_connections_beyond_the_cap_are_closed_until_one_ends() -> None:
    listener = MetricsListener(OrchestratorMetrics(), "127.0.0.1", 0, max_connections=1)
    idle = socket.create_connection(("127.0.0.1", listener.port), timeout=5)
    try:
        time.sleep(0.2)  # the idle client holds the one slot
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(listener.url, timeout=5).close()
        idle.close()  # its thread ends and gives the slot back

        def answered() -> bool:
            try:
                return get(listener.url)[0] == 200
            except (urllib.error.URLError, ConnectionError):
                return False

        deadline = time.monotonic() + 10
        while not answered():
            assert time.monotonic() < deadline, "the slot never came back"
            time.sleep(0.1)
    finally:
        idle.close()
        listener.close()


def test_a_busy_metrics_port_is_refused_naming_the_flag() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(InvalidRequest) as refused:
            MetricsListener(OrchestratorMetrics(), "127.0.0.1", port)
    assert str(refused.value) == (
        f"cannot listen on 127.0.0.1:{port}: the port is in use by another program; "
        "stop it or choose another port with --metrics-port"
    )

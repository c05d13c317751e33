"""Additive schema changes: a database made before a column existed gets it on open, and
its rows read the column's default (no migration tool, no manual step)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cloud_orchestrator.storage.db import Database
from cloud_orchestrator.storage.models import Rollout, RolloutEvent


def test_a_column_added_since_the_database_was_made_is_added_on_open(tmp_path: Path) -> None:
    path = tmp_path / "orchestrator.db"
    Database(f"sqlite:///{path}").dispose()
    with sqlite3.connect(path) as raw:  # the database as an older release left it
        raw.execute("ALTER TABLE rollouts DROP COLUMN rate_per_minute")
        raw.execute(
            "INSERT INTO rollouts (id, model_name, version, selector, strategy, max_parallel,"
            " max_failures, watch_seconds, state, current_wave, wave_count, owner,"
            " lease_expires_at, created_by, created_at, updated_at, reason) VALUES"
            " ('r-old', 'gray', '1', 'all', 'all', 4, '0', 10, 'SUCCEEDED', 1, 1, '', 0, '',"
            " 1, 1, '')"
        )
        columns = {row[1] for row in raw.execute("PRAGMA table_info(rollouts)")}
    assert "rate_per_minute" not in columns
    db = Database(f"sqlite:///{path}")
    try:
        with db.session() as session:
            old = session.get(Rollout, "r-old")
            assert old is not None and old.rate_per_minute == 0.0
    finally:
        db.dispose()
    Database(f"sqlite:///{path}").dispose()  # opening again changes nothing


def test_rollout_events_made_before_the_actor_column_read_an_empty_actor(tmp_path: Path) -> None:
    path = tmp_path / "orchestrator.db"
    Database(f"sqlite:///{path}").dispose()
    with sqlite3.connect(path) as raw:  # an older release's event log (a string default)
        raw.execute("ALTER TABLE rollout_events DROP COLUMN actor")
        raw.execute(
            "INSERT INTO rollout_events (rollout_id, gateway_id, owner, kind, detail, at)"
            " VALUES ('r-old', '', 'host-1', 'CREATED', '', 1)"
        )
    db = Database(f"sqlite:///{path}")
    try:
        with db.session() as session:
            event = session.query(RolloutEvent).one()
            assert event.actor == "" and event.kind == "CREATED"
    finally:
        db.dispose()

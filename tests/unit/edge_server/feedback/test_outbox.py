"""The budgeted, prioritized outbox: priority classes, time-to-live, a per-model daily
budget for hard examples, the byte cap taking the least important first, and loss
totals that survive reopening the file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edge_server.feedback.outbox import AGGREGATES, EXAMPLES, Outbox, OutboxItem

DAY = 86_400.0


class Clock:
    def __init__(self) -> None:
        self.now = 100 * DAY + 10.0

    def __call__(self) -> float:
        return self.now


def example(batch_id: str, size: int, model: str = "m") -> OutboxItem:
    return OutboxItem(batch_id, bytes(size), EXAMPLES, model)


def aggregates(batch_id: str, size: int = 100, model: str = "m") -> OutboxItem:
    return OutboxItem(batch_id, bytes(size), AGGREGATES, model)


def test_aggregates_go_before_examples_queued_earlier(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", 1 << 20)
    outbox.put([example("e1", 10), example("e2", 10)])
    outbox.put([aggregates("a1")])
    assert [e.batch_id for e in outbox.pending()] == ["a1", "e1", "e2"]
    outbox.close()


def test_budget_holds_back_examples_per_model_and_day_but_never_aggregates(
    tmp_path: Path,
) -> None:
    clock = Clock()
    losses: list[tuple[str, str, int]] = []
    path = tmp_path / "o.sqlite3"
    outbox = Outbox(
        path, 1 << 20, budget_bytes_per_day=250, clock=clock, on_drop=lambda *a: losses.append(a)
    )
    lost = outbox.put([example(f"e{i}", 100) for i in range(4)] + [aggregates("a", 5000)])
    assert lost == {("m", "budget"): 2} and losses == [("m", "budget", 2)]
    assert outbox.put([example("x1", 100, model="other")]) == {}  # each model has its own
    assert outbox.spent_today("m") == 200
    outbox.close()
    reopened = Outbox(path, 1 << 20, budget_bytes_per_day=250, clock=clock)
    assert reopened.put([example("e9", 100)]) == {("m", "budget"): 1}  # spent survives a restart
    clock.now += DAY  # a new UTC day, a new budget
    assert reopened.put([example("e10", 100)]) == {}
    assert reopened.drops().by_model == {("m", "budget"): 3}
    ids = [e.batch_id for e in reopened.pending()]
    assert ids == ["a", "e0", "e1", "x1", "e10"]
    reopened.close()


def test_expired_items_are_deleted_and_counted(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "o.sqlite3"
    outbox = Outbox(path, 1 << 20, ttl_seconds=60, clock=clock)
    outbox.put([aggregates("old"), example("old-e", 10, model="n")])
    clock.now += 30
    outbox.put([aggregates("new")])
    clock.now += 40
    assert [e.batch_id for e in outbox.pending()] == ["new"]
    outbox.close()
    reopened = Outbox(path, 1 << 20, ttl_seconds=60, clock=clock)
    assert reopened.drops().by_model == {("m", "expired"): 1, ("n", "expired"): 1}
    reopened.close()


def test_the_byte_cap_drops_examples_before_aggregates(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=1000)
    outbox.put([aggregates("a1", 400), example("e1", 300), example("e2", 300)])
    lost = outbox.put([aggregates("a2", 400)])
    assert lost == {("m", "full"): 2}
    assert [e.batch_id for e in outbox.pending()] == ["a1", "a2"]
    assert outbox.dropped() == 2 and outbox.drops().full_batches == 2
    outbox.close()


def test_an_outbox_file_from_before_priorities_gains_them(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE batches (seq INTEGER PRIMARY KEY AUTOINCREMENT, batch_id TEXT NOT NULL "
            "UNIQUE, created_at REAL NOT NULL, size INTEGER NOT NULL, payload BLOB NOT NULL);"
            "INSERT INTO batches (batch_id, created_at, size, payload) "
            "VALUES ('b0', 5.0, 1, x'00');"
        )
    clock = Clock()
    clock.now = 6.0
    outbox = Outbox(path, 1 << 20, ttl_seconds=10, clock=clock)
    outbox.put([example("e", 1)])
    assert [e.batch_id for e in outbox.pending()] == ["b0", "e"]  # kept, as aggregates
    clock.now = 16.0  # b0 was made at 5 with a 10 s life
    assert [e.batch_id for e in outbox.pending()] == ["e"]
    outbox.close()

"""The durable outbox: result batches in a local SQLite file until the cloud acks them.

An item is written in one transaction (WAL, synchronous=FULL) and deleted only after
the orchestrator acknowledged its id, so delivery is at-least-once across network
failures and gateway restarts. The uplink is budgeted and prioritized:

- every item has a priority class (``AGGREGATES`` before ``EXAMPLES``; status events
  never enter the outbox: they have their own bounded queue and go first) and
  ``pending`` hands out the most important, oldest items first;
- every item has a time-to-live: one that waited longer is deleted unsent (``expired``);
- hard examples of a model are charged against a bytes-per-UTC-day budget when they
  are queued; one that would overspend it is refused (``budget``);
- at the byte cap the least important, oldest items go first (``full``).

What is lost is counted per model and reason in the same file, so the totals survive
a restart and reach the cloud with every batch. Blocking: call it from a worker
thread, never the event loop. Standard library only.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "AGGREGATES",
    "DROP_REASONS",
    "EXAMPLES",
    "Drops",
    "Outbox",
    "OutboxEntry",
    "OutboxItem",
]

AGGREGATES = 1  # counts, histograms, drift: small, bounded by the bucket length
EXAMPLES = 2  # input data: the class a budget holds back
DROP_REASONS = ("budget", "expired", "full")
DAY_SECONDS = 86_400

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    size INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS drops (
    model TEXT NOT NULL, reason TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (model, reason)
);
CREATE TABLE IF NOT EXISTS spend (
    model TEXT NOT NULL, day INTEGER NOT NULL, bytes INTEGER NOT NULL,
    PRIMARY KEY (model, day)
);
"""
# Columns added after the first release: an outbox file from then gains them in place.
_ADDED_COLUMNS = {
    "priority": f"INTEGER NOT NULL DEFAULT {AGGREGATES}",
    "model": "TEXT NOT NULL DEFAULT ''",
    "expires_at": "REAL NOT NULL DEFAULT 0",
}


@dataclass(frozen=True)
class OutboxItem:
    batch_id: str
    payload: bytes
    priority: int = AGGREGATES
    model: str = ""
    created_at: float | None = None


@dataclass(frozen=True)
class OutboxEntry:
    batch_id: str
    created_at: float
    payload: bytes


@dataclass(frozen=True)
class Drops:
    """What the outbox lost: ``full_batches`` (all models, the older counter) and, per
    (model, reason), totals since the file was made."""

    full_batches: int
    by_model: dict[tuple[str, str], int]


# (model, reason, items) for each loss, as it happens: the metrics' hook.
DropListener = Callable[[str, str, int], None]


class Outbox:
    def __init__(
        self,
        path: Path,
        max_bytes: int,
        ttl_seconds: float = 7 * DAY_SECONDS,
        budget_bytes_per_day: int = 0,
        clock: Callable[[], float] = time.time,
        on_drop: DropListener | None = None,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.ttl_seconds = ttl_seconds
        self.budget_bytes_per_day = budget_bytes_per_day
        self._clock = clock
        self._on_drop = on_drop
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        present = {row[1] for row in self._db.execute("PRAGMA table_info(batches)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in present:
                self._db.execute(f"ALTER TABLE batches ADD COLUMN {column} {kind}")
        # Items from before the time-to-live existed get one from their creation time.
        self._db.execute(
            "UPDATE batches SET expires_at = created_at + ? WHERE expires_at = 0", (ttl_seconds,)
        )

    def add(self, batch_id: str, payload: bytes, created_at: float | None = None) -> int:
        """Store one aggregates batch; returns how many items the byte cap dropped."""
        lost = self.put([OutboxItem(batch_id, payload, created_at=created_at)])
        return sum(n for (_, reason), n in lost.items() if reason == "full")

    def put(self, items: Iterable[OutboxItem]) -> dict[tuple[str, str], int]:
        """Store items in one transaction; returns what this call lost per (model, reason)."""
        lost: dict[tuple[str, str], int] = {}
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                now = self._clock()
                for item in items:
                    if not self._within_budget(item, now):
                        _count(lost, item.model, "budget")
                        continue
                    created = item.created_at or now
                    db.execute(
                        "INSERT OR IGNORE INTO batches (batch_id, created_at, size, payload, "
                        "priority, model, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            item.batch_id,
                            created,
                            len(item.payload),
                            item.payload,
                            item.priority,
                            item.model,
                            created + self.ttl_seconds,
                        ),
                    )
                self._make_room(lost)
                self._record(lost)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        self._notify(lost)
        return lost

    def _within_budget(self, item: OutboxItem, now: float) -> bool:
        """Charge a hard example to its model's budget for today; False when over it."""
        if item.priority < EXAMPLES or self.budget_bytes_per_day <= 0:
            return True
        day = int(now // DAY_SECONDS)
        self._db.execute("DELETE FROM spend WHERE day < ?", (day,))
        row = self._db.execute(
            "SELECT bytes FROM spend WHERE model = ? AND day = ?", (item.model, day)
        ).fetchone()
        spent = int(row[0]) if row else 0
        if spent + len(item.payload) > self.budget_bytes_per_day:
            return False
        self._db.execute(
            "INSERT INTO spend (model, day, bytes) VALUES (?, ?, ?) "
            "ON CONFLICT(model, day) DO UPDATE SET bytes = bytes + excluded.bytes",
            (item.model, day, len(item.payload)),
        )
        return True

    def _make_room(self, lost: dict[tuple[str, str], int]) -> None:
        """Over the byte cap: the least important, oldest items go first."""
        db = self._db
        total = db.execute("SELECT COALESCE(SUM(size), 0) FROM batches").fetchone()[0]
        while total > self.max_bytes:
            victim = db.execute(
                "SELECT seq, size, model FROM batches ORDER BY priority DESC, seq LIMIT 1"
            ).fetchone()
            if victim is None:
                break
            db.execute("DELETE FROM batches WHERE seq = ?", (victim[0],))
            total -= victim[1]
            _count(lost, victim[2], "full")

    def _record(self, lost: dict[tuple[str, str], int]) -> None:
        for (model, reason), count in lost.items():
            self._db.execute(
                "INSERT INTO drops (model, reason, count) VALUES (?, ?, ?) "
                "ON CONFLICT(model, reason) DO UPDATE SET count = count + excluded.count",
                (model, reason, count),
            )
        full = sum(n for (_, reason), n in lost.items() if reason == "full")
        if full:
            self._db.execute(
                "INSERT INTO counters (name, value) VALUES ('dropped', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (full,),
            )

    def _notify(self, lost: dict[tuple[str, str], int]) -> None:
        if self._on_drop is not None:
            for (model, reason), count in lost.items():
                self._on_drop(model, reason, count)

    def expire(self) -> dict[tuple[str, str], int]:
        """Delete the items whose time-to-live has passed; returns them per (model, reason)."""
        lost: dict[tuple[str, str], int] = {}
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                now = self._clock()
                rows = db.execute(
                    "SELECT model, COUNT(*) FROM batches WHERE expires_at < ? GROUP BY model",
                    (now,),
                ).fetchall()
                db.execute("DELETE FROM batches WHERE expires_at < ?", (now,))
                for model, count in rows:
                    lost[(str(model), "expired")] = int(count)
                self._record(lost)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        self._notify(lost)
        return lost

    def pending(self, limit: int = 32, max_bytes: int = 16 << 20) -> list[OutboxEntry]:
        """Unexpired items, most important and oldest first: at most ``limit``, about
        ``max_bytes`` together."""
        self.expire()
        with self._lock:
            rows = self._db.execute(
                "SELECT batch_id, created_at, payload FROM batches ORDER BY priority, seq LIMIT ?",
                (limit,),
            ).fetchall()
        entries: list[OutboxEntry] = []
        total = 0
        for batch_id, created_at, payload in rows:
            if entries and total + len(payload) > max_bytes:
                break
            entries.append(OutboxEntry(batch_id, created_at, bytes(payload)))
            total += len(payload)
        return entries

    def ack(self, batch_ids: list[str]) -> None:
        if not batch_ids:
            return
        with self._lock:
            self._db.executemany(
                "DELETE FROM batches WHERE batch_id = ?", [(b,) for b in batch_ids]
            )

    def dropped(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        return int(row[0]) if row else 0

    def drops(self) -> Drops:
        """Everything lost so far (persisted totals)."""
        with self._lock:
            rows = self._db.execute("SELECT model, reason, count FROM drops").fetchall()
        return Drops(self.dropped(), {(str(m), str(r)): int(n) for m, r, n in rows})

    def spent_today(self, model: str) -> int:
        """Hard-example bytes ``model`` has queued today (UTC), against its budget."""
        with self._lock:
            row = self._db.execute(
                "SELECT bytes FROM spend WHERE model = ? AND day = ?",
                (model, int(self._clock() // DAY_SECONDS)),
            ).fetchone()
        return int(row[0]) if row else 0

    def stats(self) -> tuple[int, int]:
        """(batches, bytes) waiting."""
        with self._lock:
            count, size = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM batches"
            ).fetchone()
        return int(count), int(size)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _count(lost: dict[tuple[str, str], int], model: str, reason: str) -> None:
    lost[(model, reason)] = lost.get((model, reason), 0) + 1

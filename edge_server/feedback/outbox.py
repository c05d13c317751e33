"""The durable outbox: result batches in a local SQLite file until the cloud acks them.

A batch is written in one transaction (WAL, synchronous=FULL) and deleted only after
the orchestrator acknowledged its id, so delivery is at-least-once across network
failures and gateway restarts. The file has a byte cap: when a new batch would
exceed it, the oldest batches are dropped first and counted (persisted, reported to
the cloud and in metrics). Blocking: call it from a worker thread, never the event
loop. Standard library only.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Outbox", "OutboxEntry"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    size INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class OutboxEntry:
    batch_id: str
    created_at: float
    payload: bytes


class Outbox:
    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def add(self, batch_id: str, payload: bytes, created_at: float | None = None) -> int:
        """Store a batch; returns how many old batches the byte cap dropped to make room."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT OR IGNORE INTO batches (batch_id, created_at, size, payload) "
                    "VALUES (?, ?, ?, ?)",
                    (batch_id, created_at or time.time(), len(payload), payload),
                )
                dropped = 0
                total = db.execute("SELECT COALESCE(SUM(size), 0) FROM batches").fetchone()[0]
                while total > self.max_bytes:
                    oldest = db.execute(
                        "SELECT seq, size FROM batches ORDER BY seq LIMIT 1"
                    ).fetchone()
                    if oldest is None:
                        break
                    db.execute("DELETE FROM batches WHERE seq = ?", (oldest[0],))
                    total -= oldest[1]
                    dropped += 1
                if dropped:
                    db.execute(
                        "INSERT INTO counters (name, value) VALUES ('dropped', ?) "
                        "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                        (dropped,),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return dropped

    def pending(self, limit: int = 32, max_bytes: int = 16 << 20) -> list[OutboxEntry]:
        """The oldest batches, at most ``limit`` and about ``max_bytes`` together."""
        with self._lock:
            rows = self._db.execute(
                "SELECT batch_id, created_at, payload FROM batches ORDER BY seq LIMIT ?", (limit,)
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

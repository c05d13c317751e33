"""What one gateway may ask of the orchestrator: calls per second and storage per day.

``RateLimiter`` keeps a token bucket per (gateway id, method) in this process; its keys
exist only for authenticated gateways (and enrollment tokens), so it stays as small as
the fleet. ``UsageLedger`` counts, per gateway and UTC day, the result bytes and status
events stored, in the database (so every orchestrator process sharing it enforces one
quota). Both refuse with ``LimitReached``, whose ``retry_after_ms`` becomes the retry hint.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cloud_orchestrator.errors import InvalidRequest, LimitReached
from cloud_orchestrator.storage.access_models import GatewayUsage
from cloud_orchestrator.storage.db import Database
from cloud_orchestrator.storage.merged import merged
from cloud_orchestrator.storage.row_arrays import array_params, upsert

__all__ = ["Quotas", "RateLimiter", "UsageLedger"]

DAY = 86_400
Charge = tuple[str, int, int, int]  # gateway id, day, result bytes, events


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """``rate`` calls per second per key on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise InvalidRequest("rate limits need a rate > 0 and a burst >= 1")
        self.rate = rate
        self.burst = burst
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str, method: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._buckets.get((key, method))
            if bucket is None:
                bucket = self._buckets[(key, method)] = _Bucket(float(self.burst), now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return
            wait_ms = math.ceil((1.0 - bucket.tokens) / self.rate * 1000)
        raise LimitReached(
            f"{method}: {key} calls more often than {self.rate:g} per second "
            f"(bursts of {self.burst}); retry in {wait_ms} ms",
            wait_ms,
        )


@dataclass(frozen=True)
class Quotas:
    result_bytes_per_day: int = 64 * 1024 * 1024
    events_per_day: int = 10_000


def _ms_to_next_day(now: float) -> int:
    return math.ceil((DAY - now % DAY) * 1000)


class UsageLedger:
    def __init__(self, db: Database, quotas: Quotas) -> None:
        self.db = db
        self.quotas = quotas

    def charge(self, gateway_id: str, result_bytes: int = 0, events: int = 0) -> None:
        """Count what ``gateway_id`` is about to store, or refuse it all."""
        with self.db.session() as session:
            self.charge_in(session, gateway_id, result_bytes, events)

    def charge_in(
        self, session: Session, gateway_id: str, result_bytes: int = 0, events: int = 0
    ) -> None:
        """``charge`` in ``session``'s transaction: the write it pays for (a status report,
        a result batch) commits with it, in the same group commit (storage/group_commit.py),
        instead of a transaction of its own per call."""
        if result_bytes > self.quotas.result_bytes_per_day:
            raise InvalidRequest(
                f"a batch of {result_bytes} bytes is larger than the daily result quota of "
                f"{self.quotas.result_bytes_per_day} bytes; send smaller batches"
            )
        if events > self.quotas.events_per_day:
            raise InvalidRequest(
                f"{events} events in one report exceed the daily quota of "
                f"{self.quotas.events_per_day}"
            )
        now = time.time()
        day = int(now // DAY)
        pending = merged(session, "gateway_usage", lambda: _MergedCharges(self))
        if pending is not None:  # a group commit's: one upsert per gateway at its end
            pending.add(gateway_id, day, result_bytes, events)
            return
        self.charge_sum(session, gateway_id, day, result_bytes, events)

    def charge_sum(
        self, session: Session, gateway_id: str, day: int, result_bytes: int, events: int
    ) -> None:
        """Add to a gateway's day, or raise ``LimitReached``."""
        self.charge_many(session, [(gateway_id, day, result_bytes, events)])

    def charge_many(self, session: Session, charges: Sequence[Charge]) -> None:
        """Add to several gateways' days in one conditional upsert, rows in the order given
        (sorted by a group commit), or raise ``LimitReached`` for the first that does not
        fit. Concurrent calls of a gateway (or several orchestrator processes) cannot both
        pass a quota they only fit under one at a time: the upsert locks the row, and its
        condition sees the latest committed counts."""
        quotas = self.quotas
        fitting = [
            c
            for c in charges
            if c[2] <= quotas.result_bytes_per_day and c[3] <= quotas.events_per_day
        ]
        charged: set[tuple[str, int]] = set()
        if fitting:
            table = cast(Table, GatewayUsage.__table__)
            names = ("gateway_id", "day", "result_bytes", "events")
            if self.db.engine.dialect.name == "postgresql":  # one statement, any size
                statement: Any = upsert(
                    table,
                    names,
                    ("gateway_id", "day"),
                    (
                        "result_bytes = gateway_usage.result_bytes + excluded.result_bytes",
                        "events = gateway_usage.events + excluded.events",
                    ),
                    where="gateway_usage.result_bytes + excluded.result_bytes <= :max_bytes "
                    "AND gateway_usage.events + excluded.events <= :max_events",
                    returning=("gateway_id", "day"),
                )
                params: dict[str, Any] = array_params(names, fitting)
                params.update(
                    max_bytes=quotas.result_bytes_per_day, max_events=quotas.events_per_day
                )
                returned = session.execute(statement, params)
            else:
                insert = sqlite_insert(table).values(
                    [dict(zip(names, c, strict=True)) for c in fitting]
                )
                added_bytes = table.c.result_bytes + insert.excluded.result_bytes
                added_events = table.c.events + insert.excluded.events
                statement = insert.on_conflict_do_update(
                    index_elements=[table.c.gateway_id, table.c.day],
                    set_={"result_bytes": added_bytes, "events": added_events},
                    where=(added_bytes <= quotas.result_bytes_per_day)
                    & (added_events <= quotas.events_per_day),
                )
                # RETURNING, not rowcount: the driver's rowcount of an upsert is not reliable.
                returned = session.execute(statement.returning(table.c.gateway_id, table.c.day))
            charged = {(str(g), int(d)) for g, d in returned}
        for gateway_id, day, result_bytes, _events in charges:
            if (gateway_id, day) not in charged:
                what = "result bytes" if result_bytes else "status events"
                raise LimitReached(
                    f"gateway {gateway_id} reached its daily quota of {what} "
                    f"({quotas.result_bytes_per_day} bytes, {quotas.events_per_day} events "
                    "per UTC day); retry after midnight UTC",
                    _ms_to_next_day(time.time()),
                )

    def usage(self, gateway_id: str) -> tuple[int, int]:
        """Result bytes and events ``gateway_id`` stored today."""
        with self.db.session() as session:
            found = session.get(GatewayUsage, (gateway_id, int(time.time() // DAY)))
            return (found.result_bytes, found.events) if found else (0, 0)


class _MergedCharges:
    """A group commit's charges (storage/merged.py): summed per gateway and day, one
    upsert for all of them at the group's end, gateways in sorted order. When a sum does not fit,
    ``LimitReached`` fails the group, which then runs write by write: each write is
    charged alone and only the ones past the quota are refused."""

    def __init__(self, ledger: UsageLedger) -> None:
        self._ledger = ledger
        self._sums: dict[tuple[str, int], list[int]] = {}

    def add(self, gateway_id: str, day: int, result_bytes: int, events: int) -> None:
        found = self._sums.setdefault((gateway_id, day), [0, 0])
        found[0] += result_bytes
        found[1] += events

    def apply(self, session: Session) -> None:
        charges = [(g, d, b, e) for (g, d), (b, e) in sorted(self._sums.items())]
        self._ledger.charge_many(session, charges)

"""Event-driven desired state: a fleet generation in the database, and a hub per
orchestrator that wakes Subscribe streams when it moves.

Every change that can alter some gateway's desired state (assign, unassign, rollout pins,
gateway registration and label changes: cloud_orchestrator/fleet/store.py) bumps the row
of ``fleet_generation`` in its own transaction. On PostgreSQL the same transaction sends
``NOTIFY edge_fleet_desired``, delivered to every replica's listener at commit; in this
process the hub is also told directly. Streams wait on the hub and recompute only when it
wakes them, from one snapshot per generation shared by all streams (fleet/desired.py).

Safety nets, one query each per orchestrator (not per gateway): every ``poll_seconds``
the hub compares the generation row and the registry's version count (a CLI ``publish``
or ``assign`` in another process on SQLite, a lost notification on PostgreSQL), and
every ``reconcile_seconds`` (with jitter) it rereads the snapshot even when nothing
seems to have changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cloud_orchestrator.errors import NotFound
from cloud_orchestrator.fleet.desired import DesiredSnapshot, DesiredVersion, load_snapshot
from cloud_orchestrator.fleet.fan_out import FanOut
from cloud_orchestrator.fleet.heartbeats import HeartbeatWheel
from cloud_orchestrator.registry.store import Registry
from cloud_orchestrator.storage.db import Database
from cloud_orchestrator.storage.models import FleetGeneration, ModelVersion

__all__ = ["CHANNEL", "LISTENER_NAME", "DesiredStateHub", "FleetChanges"]

logger = logging.getLogger(__name__)

CHANNEL = "edge_fleet_desired"
LISTENER_NAME = "edge-orchestrator-listen"  # application_name of the LISTEN connection
Fingerprint = tuple[int, int, int]


class FleetChanges:
    """The database side: bump the generation inside a change's transaction; tell the
    hubs of this process once it committed."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def bump(self, session: Session) -> None:
        now = time.time()
        postgres = self.db.engine.dialect.name == "postgresql"
        insert = pg_insert if postgres else sqlite_insert
        statement = insert(FleetGeneration).values(id=1, generation=1, changed_at=now)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=[FleetGeneration.id],
                set_={"generation": FleetGeneration.generation + 1, "changed_at": now},
            )
        )
        if postgres:  # delivered at commit, to every replica listening
            session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})

    def committed(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def listen(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` (from any thread) after each committed change; returns the
        function that stops it."""
        with self._lock:
            self._listeners.append(listener)

        def stop() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return stop

    def fingerprint(self) -> Fingerprint:
        """Generation, and the registry's version count and newest id (``latest``)."""
        with self.db.session() as session:
            row = session.execute(
                select(
                    select(FleetGeneration.generation)
                    .where(FleetGeneration.id == 1)
                    .scalar_subquery(),
                    select(func.count(ModelVersion.id)).scalar_subquery(),
                    select(func.max(ModelVersion.id)).scalar_subquery(),
                )
            ).one()
        return (int(row[0] or 0), int(row[1] or 0), int(row[2] or 0))


class DesiredStateHub:
    """Per orchestrator: one epoch, one waiter event and one snapshot for all streams."""

    def __init__(
        self,
        db: Database,
        registry: Registry,
        changes: FleetChanges,
        poll_seconds: float = 0.25,
        reconcile_seconds: float = 600.0,
        listen_retry_seconds: float = 5.0,
        heartbeat_seconds: float = 10.0,
    ) -> None:
        self.heartbeats = HeartbeatWheel(heartbeat_seconds)  # woken too by every change
        self.fan_out = FanOut()  # which streams still owe the current change its send
        self._db = db
        self._registry = registry
        self._changes = changes
        self._poll = max(0.05, poll_seconds)
        self._reconcile = reconcile_seconds
        self._listen_retry = listen_retry_seconds
        self._epoch = 0
        self._changed = asyncio.Event()
        self._poke = asyncio.Event()
        self._fingerprint: Fingerprint | None = None
        self._snapshot: tuple[int, DesiredSnapshot] | None = None
        self._building: asyncio.Task[DesiredSnapshot] | None = None
        self._failed_at = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._stop_listening: Callable[[], None] = lambda: None
        self.snapshots_loaded = 0

    @property
    def epoch(self) -> int:
        return self._epoch

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._fingerprint = await asyncio.to_thread(self._changes.fingerprint)

        def poke() -> None:  # from the thread that committed the change
            loop.call_soon_threadsafe(self._poke.set)

        self._stop_listening = self._changes.listen(poke)
        self.heartbeats.start()
        self._tasks.append(asyncio.create_task(self._watch()))
        if self._db.engine.dialect.name == "postgresql":
            self._tasks.append(asyncio.create_task(self._listen_postgres()))

    async def stop(self) -> None:
        self._stop_listening()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.heartbeats.stop()

    async def desired(
        self, gateway_id: str, labels: Mapping[str, Any], labels_epoch: int
    ) -> list[DesiredVersion]:
        """``labels`` as the gateway's stream knew them at ``labels_epoch``; a snapshot
        read after a later change has the newer ones (``gateways register``)."""
        epoch, snapshot = await self._current()
        if epoch > labels_epoch:
            if gateway_id not in snapshot.labels:
                raise NotFound(f"gateway {gateway_id!r} was removed from the fleet")
            labels = snapshot.labels[gateway_id]
        return snapshot.desired(gateway_id, labels)

    async def desired_of(self, gateway_id: str) -> list[DesiredVersion] | None:
        """A gateway's desired state from the current snapshot (no query), with the labels
        the snapshot holds; None for a gateway the snapshot does not know."""
        _, snapshot = await self._current()
        labels = snapshot.labels.get(gateway_id)
        return None if labels is None else snapshot.desired(gateway_id, labels)

    async def _current(self) -> tuple[int, DesiredSnapshot]:
        cached = self._snapshot
        retry_later = time.monotonic() - self._failed_at < 1.0
        if cached is not None and (cached[0] == self._epoch or retry_later):
            return cached
        if self._building is None:
            self._building = asyncio.create_task(self._load(self._epoch))
        building = self._building
        try:
            snapshot = await asyncio.shield(building)
        except Exception:
            if cached is None:
                raise
            return cached  # the database is away: keep what every stream was told
        cached = self._snapshot
        return cached if cached is not None else (self._epoch, snapshot)

    async def _load(self, epoch: int) -> DesiredSnapshot:
        try:
            snapshot = await asyncio.to_thread(load_snapshot, self._db, self._registry)
        except Exception:
            self._failed_at = time.monotonic()
            logger.warning("could not read the desired state; retrying", exc_info=True)
            raise
        finally:
            self._building = None
        self.snapshots_loaded += 1
        self._snapshot = (epoch, snapshot)
        return snapshot

    async def _prepare(self, epoch: int) -> None:
        """The snapshot of ``epoch``, read before any stream is woken for it: 10,000
        streams then wake once and find it, instead of waking, each waiting on the read
        (a future each), and waking again when it ends."""
        try:
            snapshot = await asyncio.to_thread(load_snapshot, self._db, self._registry)
        except Exception:  # the streams read it themselves (_current), with its retry
            logger.warning("could not read the desired state ahead of a change", exc_info=True)
            return
        self.snapshots_loaded += 1
        self._snapshot = (epoch, snapshot)

    def _advance(self) -> None:
        self._epoch += 1
        self.fan_out.begin(self._epoch)
        woken, self._changed = self._changed, asyncio.Event()
        woken.set()
        self.heartbeats.wake_all()

    async def _watch(self) -> None:
        next_full = self._next_reconcile()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._poke.wait()
            self._poke.clear()
            try:
                fingerprint = await asyncio.to_thread(self._changes.fingerprint)
            except Exception:
                logger.warning("could not read the fleet generation", exc_info=True)
                continue
            full = time.monotonic() >= next_full
            if full:
                next_full = self._next_reconcile()
            if fingerprint != self._fingerprint or full:
                self._fingerprint = fingerprint
                await self._prepare(self._epoch + 1)
                self._advance()

    def _next_reconcile(self) -> float:
        return time.monotonic() + self._reconcile * random.uniform(0.75, 1.25)

    async def _listen_postgres(self) -> None:
        import psycopg

        url = self._db.engine.url.set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    conninfo, autocommit=True, application_name=LISTENER_NAME
                ) as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    self._poke.set()  # whatever changed while nobody listened
                    async for _ in connection.notifies():
                        self._poke.set()
            except Exception as error:  # the poll in _watch covers the gap
                logger.warning(
                    "LISTEN %s lost (%s); again in %g s", CHANNEL, error, self._listen_retry
                )
            await asyncio.sleep(self._listen_retry)

"""Last-seen times of subscribed gateways, kept in memory and written in one transaction
every ``flush_seconds`` and at shutdown.

A heartbeat per gateway every few seconds would otherwise be one write each: an idle
fleet of 10,000 would cost the database ~1,000 transactions a second. Only presence is
buffered: what a gateway reports in ReportStatus is stored at once (fleet/store.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time

from cloud_orchestrator.fleet.store import Fleet
from cloud_orchestrator.storage.group_commit import GroupCommit

__all__ = ["PresenceBuffer"]

logger = logging.getLogger(__name__)

MAX_PENDING = 200_000  # gateways; beyond it the oldest news is the least useful


class PresenceBuffer:
    def __init__(self, fleet: Fleet, writes: GroupCommit, flush_seconds: float = 5.0) -> None:
        self._fleet = fleet
        self._writes = writes  # the process's one writer: SQLite takes one at a time
        self._flush_seconds = flush_seconds
        self._pending: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self.flushes = 0

    def seen(self, gateway_id: str) -> None:
        """On the event loop: no database work, no thread."""
        if len(self._pending) < MAX_PENDING or gateway_id in self._pending:
            self._pending[gateway_id] = time.time()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            await self._writes.run(functools.partial(self._fleet.touch_many_in, seen=pending))
            self.flushes += 1
        except asyncio.CancelledError:  # stopping: stop() flushes them once more
            for gateway_id, seen in pending.items():
                self._pending.setdefault(gateway_id, seen)
            raise
        except Exception:
            logger.warning("could not store last-seen of %d gateways", len(pending), exc_info=True)
            for gateway_id, seen in pending.items():  # newer news wins, kept for next time
                self._pending.setdefault(gateway_id, seen)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            await self.flush()

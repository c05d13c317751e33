"""Replica side: make this process's models follow the primary's.

Events only say which version should be active; the follower loads that version from
the shared model store beside the current one and swaps the reference, exactly like
a hot swap on the primary, so requests in flight on a replica are never dropped. Only
the newest event per model matters: a version superseded while another was loading
is skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from edge_server.catalogue.serving import ModelState, ServingCatalogue
from edge_server.workers.control import Followed, ModelEvent

logger = logging.getLogger(__name__)


class ModelFollower:
    def __init__(
        self, models: ServingCatalogue, report: Callable[[Followed], None] = lambda _f: None
    ) -> None:
        self._models = models
        self._report = report  # tells the primary how far this process has followed
        self._wanted: dict[str, ModelEvent] = {}
        self._latest = 0
        self._changed = asyncio.Event()

    def offer(self, event: ModelEvent) -> None:
        self._wanted[event.model] = event
        self._latest = max(self._latest, event.seq)
        self._changed.set()

    async def read(self, reader: asyncio.StreamReader) -> None:
        """Take events from the primary until it closes the pipe (it stopped or died)."""
        while line := await reader.readline():
            try:
                self.offer(ModelEvent.decode(line))
            except (ValueError, KeyError) as exc:
                logger.error("ignoring a malformed line from the primary: %s", exc)

    async def follow(self, initial_load: asyncio.Task[None]) -> None:
        """Apply events for ever, after this process's own start-up load is done."""
        await asyncio.shield(initial_load)
        while True:
            await self._changed.wait()
            self._changed.clear()
            reached = self._latest  # every event up to it is in _wanted now
            for name in list(self._wanted):
                await self._apply(self._wanted[name])
            self._report(Followed(reached))

    async def _apply(self, event: ModelEvent) -> None:
        slot = self._models.slot(event.model)
        active = slot.active.version if slot is not None and slot.active is not None else ""
        if event.version and event.version != active:
            found = self._models.store.find(event.model, event.version)
            if found is None:
                logger.error(
                    "primary serves %s version %s but it is not on disk here",
                    event.model,
                    event.version,
                )
                return
            try:
                await self._models.activate(found)
            except Exception as exc:  # recorded on the slot; the next event retries
                logger.error(
                    "could not follow %s to version %s: %s", event.model, event.version, exc
                )
        elif not event.version and event.state == ModelState.UNLOADED.name and active:
            self._models.unload(event.model)

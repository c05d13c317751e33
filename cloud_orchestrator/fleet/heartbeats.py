"""One timer for the heartbeats of every idle Subscribe stream.

With a timer per stream, 10,000 idle gateways at a 10 s heartbeat meant 1,000 timers
armed and cancelled a second, each wait ending in a CancelledError turned TimeoutError:
most of an idle orchestrator's CPU. Here the heartbeat interval is cut into slots
(``TICK_SECONDS`` each); a stream is given a slot when it subscribes (round robin, so
slots fill evenly) and waits on that slot's event, which one task sets when the slot's
turn comes. A change to the desired state wakes every slot at once (``wake_all``), so
the same wait serves both reasons a stream has to send something.
"""

from __future__ import annotations

import asyncio
import itertools

__all__ = ["HeartbeatWheel"]

TICK_SECONDS = 0.25


class HeartbeatWheel:
    def __init__(self, interval_seconds: float) -> None:
        self.interval = interval_seconds
        self._slots = max(1, round(interval_seconds / TICK_SECONDS))
        self._events = [asyncio.Event() for _ in range(self._slots)]
        self._next_slot = itertools.cycle(range(self._slots))
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0

    def join(self) -> int:
        """A slot for a new stream."""
        return next(self._next_slot)

    async def wait(self, slot: int) -> None:
        """Until ``slot``'s turn, or until ``wake_all``."""
        await self._events[slot].wait()

    def wake_all(self) -> None:
        for slot in range(self._slots):
            self._fire(slot)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.wake_all()  # nobody stays parked on a wheel that no longer turns

    def _fire(self, slot: int) -> None:
        fired, self._events[slot] = self._events[slot], asyncio.Event()
        fired.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        tick = self.interval / self._slots
        due = loop.time()
        for slot in itertools.cycle(range(self._slots)):
            due += tick  # from the schedule, not from when we woke: no drift
            await asyncio.sleep(max(0.0, due - loop.time()))
            self._fire(slot)
            self.ticks += 1

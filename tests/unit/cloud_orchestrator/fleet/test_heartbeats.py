"""The heartbeat wheel on a real event loop: each slot's turn comes once per interval,
slots fill evenly, and wake_all reaches every waiting stream at once."""

from __future__ import annotations

import asyncio
import collections

from cloud_orchestrator.fleet.heartbeats import HeartbeatWheel


async def test_slots_are_given_round_robin() -> None:
    wheel = HeartbeatWheel(1.0)  # 4 slots of 0.25 s
    slots = collections.Counter(wheel.join() for _ in range(400))
    assert sorted(slots) == [0, 1, 2, 3]
    assert set(slots.values()) == {100}


async def test_each_slot_turns_once_per_interval() -> None:
    wheel = HeartbeatWheel(0.5)  # 2 slots
    wheel.start()
    woken: collections.Counter[int] = collections.Counter()

    async def stream(slot: int) -> None:
        while True:
            await wheel.wait(slot)
            woken[slot] += 1

    streams = [asyncio.create_task(stream(s)) for s in (0, 1)]
    await asyncio.sleep(2.1)  # about four turns of the wheel
    for task in streams:
        task.cancel()
    await wheel.stop()
    assert 3 <= woken[0] <= 5 and 3 <= woken[1] <= 5
    assert wheel.ticks >= 7


async def test_wake_all_reaches_every_slot_without_the_wheel_turning() -> None:
    wheel = HeartbeatWheel(60.0)  # not started: no slot's turn comes by itself
    waiting = [asyncio.create_task(wheel.wait(wheel.join())) for _ in range(1000)]
    await asyncio.sleep(0)
    assert not any(task.done() for task in waiting)
    wheel.wake_all()
    await asyncio.wait_for(asyncio.gather(*waiting), 1.0)

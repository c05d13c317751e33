"""How many bundle blocks every FetchModel call of this process holds at once, together.

A block read for a fetcher stays in memory, with its protobuf message and gRPC's copy of
it, until gRPC has written it to that fetcher's connection, which a slow gateway can make
last. Fifty fetchers each holding their own blocks cost what fifty copies of a 4 MB bundle
do (measured in tests/e2e/cloud_orchestrator/test_shared_artifacts.py), so a call takes a
slot from a budget for each block from the read to the write's completion: the memory is
bounded by the slots, not by the fetchers, who share the bandwidth in turns.
"""

from __future__ import annotations

import asyncio
from weakref import WeakKeyDictionary

__all__ = ["FETCH_BLOCKS_IN_FLIGHT", "FetchBudget", "fetch_budget"]

# 256 KiB blocks (registry/artifacts.py BLOCK_BYTES): about 768 KiB each while in flight
# (the block, its message, gRPC's copy), 6 MiB for the process.
FETCH_BLOCKS_IN_FLIGHT = 8


class FetchBudget:
    """An asyncio.Semaphore per event loop (one in ``serve``; tests run several loops)."""

    def __init__(self, slots: int) -> None:
        self._slots = slots
        self._by_loop: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            WeakKeyDictionary()
        )

    def slot(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        semaphore = self._by_loop.get(loop)
        if semaphore is None:
            semaphore = self._by_loop[loop] = asyncio.Semaphore(self._slots)
        return semaphore


fetch_budget = FetchBudget(FETCH_BLOCKS_IN_FLIGHT)

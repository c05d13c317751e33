"""glibc allocator setup, malloc_trim, and the Trimmer on a real asyncio loop with short
real intervals. Timers never fire early, so "not yet" is checked at fixed points and
"done" by waiting with a generous bound (a loaded machine only makes things later)."""

from __future__ import annotations

import asyncio
import time

from edge_server.runtime.allocator import (
    MMAP_THRESHOLD_BYTES,
    TRIM_AFTER_BYTES,
    TRIM_THRESHOLD_BYTES,
    AllocatorSetup,
    Trimmer,
    configure,
    trim,
)

SETTLE_S = 0.03
INTERVAL_S = 0.3
PEAK = 1024


def trimmer() -> Trimmer:
    return Trimmer(after_bytes=PEAK, interval_s=INTERVAL_S, settle_s=SETTLE_S)


async def trims_reach(subject: Trimmer, count: int, within_s: float = 3.0) -> None:
    end = time.monotonic() + within_s
    while subject.trims < count:
        assert time.monotonic() < end, f"{subject.trims} trims, expected {count}"
        await asyncio.sleep(0.005)


def test_configure_fixes_the_mmap_threshold_on_glibc() -> None:
    assert configure() == AllocatorSetup(
        glibc=True, mmap_threshold=MMAP_THRESHOLD_BYTES, trim_threshold=TRIM_THRESHOLD_BYTES
    )
    assert configure() == configure()  # idempotent


def test_trim_gives_back_freed_small_blocks() -> None:
    blocks = [bytes(1000) for _ in range(20_000)]  # ~20 MB of blocks below the threshold
    del blocks
    assert trim() is True


def test_a_small_peak_trims_nothing() -> None:
    async def scenario() -> int:
        subject = trimmer()
        subject.drained(PEAK - 1)
        subject.drained(0)
        await asyncio.sleep(SETTLE_S * 4)
        return subject.trims

    assert asyncio.run(scenario()) == 0


def test_the_default_threshold_is_the_documented_one() -> None:
    async def scenario() -> int:
        subject = Trimmer(interval_s=INTERVAL_S, settle_s=SETTLE_S)
        subject.drained(TRIM_AFTER_BYTES - 1)
        await asyncio.sleep(SETTLE_S * 4)
        assert subject.trims == 0
        subject.drained(TRIM_AFTER_BYTES)
        await trims_reach(subject, 1)
        return subject.trims

    assert asyncio.run(scenario()) == 1


def test_a_large_peak_trims_once_after_the_settle_time() -> None:
    async def scenario() -> None:
        subject = trimmer()
        started = time.monotonic()
        subject.drained(PEAK)
        assert subject.trims == 0  # scheduled, not run on the caller's stack
        await trims_reach(subject, 1)
        assert time.monotonic() - started >= SETTLE_S
        await asyncio.sleep(SETTLE_S * 3)
        assert subject.trims == 1

    asyncio.run(scenario())


def test_drains_while_a_trim_is_pending_make_one_trim() -> None:
    async def scenario() -> None:
        subject = trimmer()
        for _ in range(50):
            subject.drained(PEAK * 10)
        await trims_reach(subject, 1)
        await asyncio.sleep(SETTLE_S * 3)
        assert subject.trims == 1

    asyncio.run(scenario())


def test_a_drain_soon_after_a_trim_waits_for_the_interval() -> None:
    async def scenario() -> None:
        subject = trimmer()
        subject.drained(PEAK)
        await trims_reach(subject, 1)
        subject.drained(PEAK)  # rate-limited: waits, is not dropped
        subject.drained(PEAK)
        await asyncio.sleep(INTERVAL_S / 2)
        assert subject.trims == 1
        await trims_reach(subject, 2)
        await asyncio.sleep(SETTLE_S * 3)
        assert subject.trims == 2

    asyncio.run(scenario())


def test_a_drain_after_the_interval_only_waits_the_settle_time() -> None:
    async def scenario() -> None:
        subject = Trimmer(after_bytes=PEAK, interval_s=0.05, settle_s=SETTLE_S)
        subject.drained(PEAK)
        await trims_reach(subject, 1)
        await asyncio.sleep(0.1)
        subject.drained(PEAK)
        await trims_reach(subject, 2, within_s=1.0)

    asyncio.run(scenario())


def test_a_drain_without_a_running_loop_is_ignored() -> None:
    subject = trimmer()
    subject.drained(PEAK * 10)  # no loop here: nothing scheduled, nothing raised
    assert subject.trims == 0

    async def later() -> None:
        subject.drained(PEAK)  # not left "pending" by the ignored call
        await trims_reach(subject, 1)

    asyncio.run(later())
    assert subject.trims == 1

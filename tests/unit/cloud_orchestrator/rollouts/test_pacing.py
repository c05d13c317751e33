"""Rollout pacing by rate: the --rate grammar, and starts spaced evenly on a real loop."""

from __future__ import annotations

import asyncio
import time

import pytest

from cloud_orchestrator.errors import InvalidRequest
from cloud_orchestrator.rollouts.pacing import RatePacer, parse_rate


@pytest.mark.parametrize(
    ("text", "per_minute"),
    [("200/min", 200.0), ("5/s", 300.0), ("1000 / h", 1000 / 60), ("0", 0.0), ("", 0.0),
     ("2.5/minute", 2.5), ("1/sec", 60.0)],
)  # fmt: skip
def test_rates_are_read_per_minute(text: str, per_minute: float) -> None:
    assert parse_rate(text) == pytest.approx(per_minute)


@pytest.mark.parametrize("text", ["200", "fast", "-5/min", "0/min", "5/day", "5/min/s"])
def test_bad_rates_name_the_form(text: str) -> None:
    with pytest.raises(InvalidRequest, match="such as 200/min"):
        parse_rate(text)


async def test_starts_are_spaced_by_the_rate_even_when_asked_at_once() -> None:
    pacer = RatePacer(600)  # one start every 0.1 s
    started: list[float] = []

    async def start() -> None:
        await pacer.wait()
        started.append(time.monotonic())

    await asyncio.gather(*(start() for _ in range(5)))
    # Start i is due 0.1 s x i after the first; a late wake-up never delays the ones after
    # it (the schedule, not the wake-ups, sets the pace), so check against the schedule.
    offsets = [moment - started[0] for moment in started]
    assert all(offset >= 0.1 * i - 0.005 for i, offset in enumerate(offsets)), offsets
    assert offsets[-1] < 1.0


async def test_no_rate_means_no_wait() -> None:
    pacer = RatePacer(0)
    began = time.monotonic()
    for _ in range(1000):
        await pacer.wait()
    assert time.monotonic() - began < 0.5

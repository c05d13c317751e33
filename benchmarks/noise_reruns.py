"""Keeping other processes' CPU out of the figures: wait for quiet, re-run disturbed cells.

The machine may be shared. Noise only ever slows a measurement down, so a cell during
which other processes used more than ``summary_markdown.DISTURBED_CORES`` is re-run after
waiting for quiet (up to ``--retries`` times, within a time budget shared by the whole
run) and the least disturbed attempt is kept.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from benchmarks import summary_markdown, verified_cell
from benchmarks.cpu_accounting import background_cores
from benchmarks.payloads import Payload


def wait_quiet(limit: float) -> float:
    """Wait (up to ``limit`` s) until other processes use under DISTURBED_CORES cores."""
    deadline = time.monotonic() + limit
    while True:
        busy = background_cores(0.5)
        if busy <= summary_markdown.DISTURBED_CORES or time.monotonic() >= deadline:
            return busy
        time.sleep(1.0)


def steady_cell(
    args: argparse.Namespace, server: verified_cell.Server, payload: Payload, clients: int
) -> dict[str, Any]:
    """A cell, re-run (after waiting for quiet) when other processes disturbed it;
    the least disturbed attempt is kept. Spends ``args.retry_budget`` (seconds)."""
    attempts = []
    for attempt in range(1 + args.retries):
        if attempt:
            if args.retry_budget <= 0:
                break
            started = time.monotonic()
            wait_quiet(min(30.0, args.retry_budget))
            args.retry_budget -= time.monotonic() - started + args.duration + args.warmup
        row = verified_cell.measure(
            server,
            payload,
            clients,
            args.duration,
            args.warmup,
            args.out / "scratch",
            args.generator,
        )
        attempts.append(row)
        if row["cpu"]["other"] <= summary_markdown.DISTURBED_CORES:
            break
    best = min(attempts, key=lambda r: r["cpu"]["other"])
    best["attempts"] = len(attempts)
    return best

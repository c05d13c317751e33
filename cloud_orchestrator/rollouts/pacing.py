"""Rollout pacing by rate: ``--rate 200/min`` starts at most that many targets a minute.

``--max-parallel`` bounds how many gateways are being updated at once; a rate bounds how
fast new ones are started, which is what a fleet of thousands needs (AWS IoT Jobs and
hawkBit pace rollouts the same way): the orchestrator, the artifact store and the
network see a steady stream instead of a burst at every wave.
"""

from __future__ import annotations

import asyncio
import re
import time

from cloud_orchestrator.errors import InvalidRequest

__all__ = ["RatePacer", "parse_rate"]

_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*")
_PER_MINUTE = {"s": 60.0, "sec": 60.0, "second": 60.0, "m": 1.0, "min": 1.0, "minute": 1.0,
               "h": 1 / 60, "hour": 1 / 60}  # fmt: skip


def parse_rate(text: str) -> float:
    """``200/min``, ``5/s``, ``1000/h`` -> targets per minute; ``0``/empty: unpaced."""
    if text.strip() in ("", "0"):
        return 0.0
    match = _RATE.fullmatch(text)
    if match is None or float(match[1]) <= 0:
        raise InvalidRequest(
            f"rate {text!r} must be a positive number per s, min or h, such as 200/min"
        )
    return float(match[1]) * _PER_MINUTE[match[2]]


class RatePacer:
    """Spaces starts evenly at ``per_minute``; the first start is immediate."""

    def __init__(self, per_minute: float) -> None:
        self._interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if self._interval == 0.0:
            return
        async with self._lock:  # one waiter at a time: starts stay in order and spaced
            now = time.monotonic()
            if self._next > now:
                await asyncio.sleep(self._next - now)
                now = self._next
            self._next = now + self._interval

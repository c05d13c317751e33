"""When to skip the thread pools: tiny models run on the event loop itself.

A hop to a worker thread and back costs two thread wake-ups and a self-pipe write,
roughly 100-300 us on a small board: more than a digits-sized model's whole
preprocess + inference. For a model version whose measured CPU time (the thread's own,
so waiting for a core or the GIL under load does not count) stays under ``threshold``
the gateway runs it inline; the event loop then blocks for at most
that long, so health checks and metrics still answer promptly. Everything else
(and every version until it has been measured) goes through the pools.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_SAMPLES = 16
SMOOTHING = 0.1


@dataclass
class _Cost:
    seconds: float = 0.0
    samples: int = 0

    def add(self, seconds: float) -> None:
        self.seconds = (
            seconds if self.samples == 0 else ((1 - SMOOTHING) * self.seconds + SMOOTHING * seconds)
        )
        self.samples += 1


class InlinePolicy:
    def __init__(self, threshold_us: int) -> None:
        self.threshold_s = threshold_us / 1e6
        self._costs: dict[tuple[str, str, str], _Cost] = {}

    def record(self, model: str, version: str, stage: str, seconds: float) -> None:
        """CPU time of one stage ("preprocess" or "run") in the thread that ran it."""
        if self.threshold_s > 0:
            cost = self._costs.get((model, version, stage))
            if cost is None:
                cost = self._costs[(model, version, stage)] = _Cost()
            cost.add(seconds)

    def inline(self, model: str, version: str, with_preprocess: bool) -> bool:
        if self.threshold_s <= 0:
            return False
        run = self._costs.get((model, version, "run"))
        if run is None or run.samples < MIN_SAMPLES:
            return False
        total = run.seconds
        if with_preprocess:
            pre = self._costs.get((model, version, "preprocess"))
            if pre is None or pre.samples < MIN_SAMPLES:
                return False
            total += pre.seconds
        return total < self.threshold_s

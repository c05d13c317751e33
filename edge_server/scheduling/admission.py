"""How long a new request would wait: refuse at once what cannot meet its deadline.

A count bound (``--max-queue-size``) caps memory, but the wait behind N admitted
requests depends on the model: 128 digits requests drain in tens of milliseconds,
128 MobileNet requests in about half a second. Each model's drain rate is measured
from its own completions (the interval between two completions while requests were
waiting, which folds in batching and parallel workers), so a request whose deadline
is shorter than the work ahead of it is refused immediately with RESOURCE_EXHAUSTED
and a retry hint, instead of holding a slot until it expires. The same estimate
makes the hint of a full-queue refusal ("retry after the queue has half drained").
"""

from __future__ import annotations

import time
from dataclasses import dataclass

SMOOTHING = 0.05  # EWMA weight of one completion interval
MIN_SAMPLES = 16  # refuse by estimate only once the model has shown its pace
MIN_HINT_MS = 10
MAX_HINT_MS = 5_000
DEFAULT_HINT_MS = 50


@dataclass
class _Pace:
    interval_s: float = 0.0
    samples: int = 0
    last_completion: float = 0.0


class DrainEstimator:
    def __init__(self) -> None:
        self._paces: dict[str, _Pace] = {}

    def completed(self, model: str, received: float, now: float | None = None) -> None:
        """A request of ``model`` that arrived at ``received`` (perf_counter) finished."""
        now = time.perf_counter() if now is None else now
        pace = self._paces.get(model)
        if pace is None:
            pace = self._paces[model] = _Pace()
        # Waiting since before the previous completion: an inter-completion interval.
        # Otherwise the model was idle in between and the request's own time counts.
        interval = now - max(pace.last_completion, received)
        pace.last_completion = now
        if pace.samples == 0:
            pace.interval_s = interval
        else:
            pace.interval_s += SMOOTHING * (interval - pace.interval_s)
        pace.samples += 1

    def wait_s(self, model: str, ahead: int) -> float | None:
        """Expected wait behind ``ahead`` admitted requests, None until measured."""
        pace = self._paces.get(model)
        if pace is None or pace.samples < MIN_SAMPLES:
            return None
        return ahead * pace.interval_s

    def retry_hint_ms(self, model: str, ahead: int) -> int:
        """A retry-after hint: the time for half of the requests ahead to finish."""
        wait = self.wait_s(model, ahead)
        if wait is None:
            return DEFAULT_HINT_MS
        return int(min(MAX_HINT_MS, max(MIN_HINT_MS, wait * 500)))

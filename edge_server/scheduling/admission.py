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

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from edge_server.catalogue.serving import ServingCatalogue, ServingModel
from edge_server.errors import Overloaded

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


class AdmissionControl:
    """Per-model queue slots: resolve the version a request runs on and refuse what
    cannot be served in time (RESOURCE_EXHAUSTED with a retry hint).

    The in-flight count is also what the dynamic batcher asks ("is another request of
    this model on its way?"), so it lives here, apart from the predictor that uses it.
    """

    def __init__(self, models: ServingCatalogue, max_queue_size: int) -> None:
        self._models = models
        self._max_queue = max_queue_size
        self._in_flight: defaultdict[str, int] = defaultdict(int)
        self.drain = DrainEstimator()

    def queue_depth(self, model_name: str) -> int:
        return self._in_flight[model_name]

    def take(self, model_name: str, model_version: str, deadline: float | None) -> ServingModel:
        """Resolve the version and take a queue slot; give it back with ``release``."""
        model = self._models.resolve(model_name, model_version)
        ahead = self._in_flight[model.name]
        if ahead >= self._max_queue:
            raise Overloaded(
                f"model {model.name!r} has {self._max_queue} requests in progress, the "
                "gateway's limit; retry after a short pause",
                self.drain.retry_hint_ms(model.name, ahead),
            )
        if deadline is not None and ahead:
            wait = self.drain.wait_s(model.name, ahead)
            left = deadline - time.monotonic()
            if wait is not None and wait > left:
                raise Overloaded(
                    f"model {model.name!r} has {ahead} requests ahead, about "
                    f"{wait * 1000:.0f} ms of work, and this call has {max(0.0, left) * 1000:.0f}"
                    " ms left before its deadline; retry later or with a longer deadline",
                    self.drain.retry_hint_ms(model.name, ahead),
                )
        self._in_flight[model.name] += 1
        return model

    def release(self, model: ServingModel, received: float) -> None:
        self._in_flight[model.name] -= 1
        self.drain.completed(model.name, received)

    @contextlib.contextmanager
    def slot(
        self, model_name: str, model_version: str = "", deadline: float | None = None
    ) -> Iterator[ServingModel]:
        """``take`` and ``release`` around a block; the version is fixed at entry."""
        received = time.perf_counter()
        model = self.take(model_name, model_version, deadline)
        try:
            yield model
        finally:
            self.release(model, received)

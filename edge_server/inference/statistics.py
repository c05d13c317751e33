"""Per-model, per-version request accounting (what V2 ModelStatistics reports).

Fed by the predictor on the same code path as the Prometheus metrics, so the two
never disagree about how many requests a version served.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

RECENT_OUTCOMES = 4096  # per version: enough for a p99 over a watch window, bounded


@dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.ns += max(0, int(seconds * 1e9))


@dataclass
class VersionStatistics:
    """Counters of one model version since the gateway started."""

    inference_count: int = 0  # batch rows inferred
    execution_count: int = 0  # session.run calls
    last_inference_ms: int = 0  # wall clock, milliseconds since the epoch
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)


class Outcome(NamedTuple):  # one per request: cheaper to build than a frozen dataclass
    at: float  # time.monotonic()
    latency_s: float
    model_fault: bool


@dataclass(frozen=True)
class WindowSummary:
    """Requests of one version inside a time window (for rollback decisions)."""

    count: int
    faults: int
    p99_s: float

    @property
    def fault_rate(self) -> float:
        return self.faults / self.count if self.count else 0.0


class StatisticsBook:
    """Thread-safe store of VersionStatistics keyed by (model, version)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats: dict[tuple[str, str], VersionStatistics] = {}
        self._recent: dict[tuple[str, str], deque[Outcome]] = {}

    def _entry(self, model: str, version: str) -> VersionStatistics:
        entry = self._stats.get((model, version))
        if entry is None:  # not setdefault: that would build a throwaway entry per call
            entry = self._stats[(model, version)] = VersionStatistics()
        return entry

    def _remember(self, model: str, version: str, outcome: Outcome) -> None:
        recent = self._recent.get((model, version))
        if recent is None:
            recent = self._recent[(model, version)] = deque(maxlen=RECENT_OUTCOMES)
        recent.append(outcome)

    def window(
        self, model: str, version: str, since: float, until: float = math.inf
    ) -> WindowSummary:
        """Outcomes of ``model``/``version`` with since <= at < until (monotonic clock)."""
        with self._lock:
            items = [o for o in self._recent.get((model, version), ()) if since <= o.at < until]
        ok_latencies = sorted(o.latency_s for o in items if not o.model_fault)
        # Below 100 samples a p99 is just the slowest request, so one scheduling hiccup
        # would decide; the p90 stands in until the window holds enough requests.
        quantile = 0.99 if len(ok_latencies) >= 100 else 0.90
        tail = (
            ok_latencies[min(len(ok_latencies) - 1, int(quantile * len(ok_latencies)))]
            if ok_latencies
            else 0.0
        )
        return WindowSummary(len(items), sum(o.model_fault for o in items), tail)

    def record_success(
        self,
        model: str,
        version: str,
        rows: int,
        total_s: float,
        preprocess_s: float,
        queue_s: float,
        infer_s: float,
        postprocess_s: float,
    ) -> None:
        with self._lock:
            entry = self._entry(model, version)
            entry.inference_count += rows
            entry.execution_count += 1
            entry.last_inference_ms = int(time.time() * 1000)
            entry.success.add(total_s)
            entry.queue.add(queue_s)
            entry.compute_input.add(preprocess_s)
            entry.compute_infer.add(infer_s)
            entry.compute_output.add(postprocess_s)
            self._remember(model, version, Outcome(time.monotonic(), total_s, False))

    def record_failure(
        self, model: str, version: str, total_s: float, model_fault: bool = False
    ) -> None:
        """A failed request; ``model_fault`` when the model itself failed (not bad input)."""
        with self._lock:
            self._entry(model, version).fail.add(total_s)
            if model_fault:
                self._remember(model, version, Outcome(time.monotonic(), total_s, True))

    def snapshot(
        self, model: str = "", version: str = ""
    ) -> dict[tuple[str, str], VersionStatistics]:
        """Copies of the entries matching ``model`` / ``version`` (empty = any)."""
        with self._lock:
            return {
                key: copy.deepcopy(value)
                for key, value in self._stats.items()
                if (not model or key[0] == model) and (not version or key[1] == version)
            }

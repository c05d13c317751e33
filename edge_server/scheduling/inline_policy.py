"""Where a call's work runs: inline on the event loop, fused in one thread, or through
the pools (decode pool, dynamic batcher, inference pool).

A hop to a worker thread and back costs two thread wake-ups and a self-pipe write,
roughly 100-300 us on a small board: more than a digits-sized model's whole
preprocess + inference. For a model version whose measured CPU time (the thread's own,
so waiting for a core or the GIL under load does not count) stays under ``threshold``
the gateway runs it inline; the event loop then blocks for at most
that long, so health checks and metrics still answer promptly. Everything else
(and every version until it has been measured) goes through the pools.

Fused: an image model whose run costs at least ``FUSE_THRESHOLD_S`` of CPU per call
decodes and runs in one inference thread, one hop, batch of one. On a CPU such a run
is compute-bound: a batch saves only the per-call overhead (tens of microseconds,
under 5 %), while a second pool, the batch wait and a second hop cost more than that.
Measured in the in-process pipeline limit (benchmarks/pipeline_limit.py, MobileNetV2
INT8, 512 px JPEG): two threads each decoding and running one image served 299 img/s,
a decode pool feeding batches of 1, 4 or 8 served 249-257.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_SAMPLES = 16
SMOOTHING = 0.1
FUSE_THRESHOLD_S = 0.001


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

    def record(self, model: str, version: str, stage: str, seconds: float, rows: int = 1) -> None:
        """CPU time of one stage ("preprocess" or "run" of ``rows`` rows) in the thread
        that ran it. A batched run counts whole for inlining (a conservative estimate of
        one call) and per row for fusing."""
        self._add((model, version, stage), seconds)
        if stage == "run":
            self._add((model, version, "row"), seconds / max(1, rows))

    def _add(self, key: tuple[str, str, str], seconds: float) -> None:
        cost = self._costs.get(key)
        if cost is None:
            cost = self._costs[key] = _Cost()
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

    def fused(self, model: str, version: str) -> bool:
        """Decode and run in one thread: a row of this version costs at least
        ``FUSE_THRESHOLD_S`` of CPU (measured per row, so a cheap model seen in batches
        stays batched, and an expensive one stays fused once it runs one row at a time)."""
        row = self._costs.get((model, version, "row"))
        return row is not None and row.samples >= MIN_SAMPLES and row.seconds >= FUSE_THRESHOLD_S

"""Raw ONNX Runtime: session.run on ready tensors, the ceiling for tensor input.

Two arrangements of the machine's 2 cores, each at several batch sizes:
``1 caller x 2 threads`` (one run at a time, 2 intra-op threads) and
``2 callers x 1 thread`` (two concurrent runs of one session, 1 intra-op thread each,
as the gateway's default 2 inference workers do). Batch-1 latency comes from the
single caller; the best rows/s over all batch sizes is the "best batch" figure.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.pipeline_limit import session


def _one_caller(model_path: Path, rows: np.ndarray, seconds: float) -> dict[str, float]:
    sess = session(model_path, 2)
    name = sess.get_inputs()[0].name
    for _ in range(5):
        sess.run(None, {name: rows})
    times: list[float] = []
    stop_at = time.perf_counter() + seconds
    while time.perf_counter() < stop_at or len(times) < 5:
        started = time.perf_counter()
        sess.run(None, {name: rows})
        times.append(time.perf_counter() - started)
    times.sort()
    return {
        "p50_ms": float(np.median(times)) * 1000,
        "p99_ms": times[int(0.99 * (len(times) - 1))] * 1000,
        "throughput_rps": rows.shape[0] * len(times) / sum(times),
    }


def _two_callers(model_path: Path, rows: np.ndarray, seconds: float) -> dict[str, float]:
    sess = session(model_path, 1)
    name = sess.get_inputs()[0].name
    for _ in range(5):
        sess.run(None, {name: rows})
    counts = [0, 0]
    stop_at = time.perf_counter() + seconds

    def caller(index: int) -> None:
        while time.perf_counter() < stop_at or counts[index] < 3:
            sess.run(None, {name: rows})
            counts[index] += 1

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(2)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"throughput_rps": rows.shape[0] * sum(counts) / (time.perf_counter() - started)}


def raw_session_run(
    model_path: Path, row: np.ndarray, seconds: float, batches: tuple[int, ...]
) -> dict[str, Any]:
    """Latency at batch 1 and rows/s per (arrangement, batch); ``row`` is [1, ...]."""
    by_config: dict[str, float] = {}
    batch1 = _one_caller(model_path, row, seconds)
    by_config["1x2t b1"] = batch1["throughput_rps"]
    by_config["2x1t b1"] = _two_callers(model_path, row, seconds)["throughput_rps"]
    for batch in batches:
        if batch == 1:
            continue
        rows = np.ascontiguousarray(np.concatenate([row] * batch))
        by_config[f"1x2t b{batch}"] = _one_caller(model_path, rows, seconds)["throughput_rps"]
        by_config[f"2x1t b{batch}"] = _two_callers(model_path, rows, seconds)["throughput_rps"]
    best = max(by_config, key=lambda k: by_config[k])
    b1_best = max(("1x2t b1", "2x1t b1"), key=lambda k: by_config[k])
    return {
        "p50_ms": batch1["p50_ms"],
        "p99_ms": batch1["p99_ms"],
        "batch1_rps": by_config[b1_best],
        "batch1_config": b1_best,
        "best_rps": by_config[best],
        "best_config": best,
        "by_config": by_config,
    }


def merge(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Two passes of raw_session_run: noise only ever slows a run down, so the limit is
    the best figure per arrangement (and the lowest batch-1 latency)."""
    by_config = {
        k: max(first["by_config"][k], second["by_config"].get(k, 0.0)) for k in first["by_config"]
    }
    best = max(by_config, key=lambda k: by_config[k])
    b1_best = max(("1x2t b1", "2x1t b1"), key=lambda k: by_config[k])
    fast = first if first["p50_ms"] <= second["p50_ms"] else second
    return {
        "p50_ms": fast["p50_ms"],
        "p99_ms": fast["p99_ms"],
        "batch1_rps": by_config[b1_best],
        "batch1_config": b1_best,
        "best_rps": by_config[best],
        "best_config": best,
        "by_config": by_config,
        "passes": 2,
    }

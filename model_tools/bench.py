"""Latency and throughput of ONNX models under ONNX Runtime, side by side."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tqdm import tqdm

from model_tools.errors import ToolError
from model_tools.sessions import open_session

__all__ = [
    "LatencyStats",
    "bench_models",
    "format_table",
    "measure_latency",
    "profile_operators",
    "random_feed",
]

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}


@dataclass(frozen=True)
class LatencyStats:
    """Per-call latency percentiles in milliseconds and samples per second."""

    model: str
    batch_size: int
    threads: int
    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    throughput: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def random_feed(
    session: ort.InferenceSession, batch_size: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """Random inputs for every graph input; the first dimension becomes ``batch_size``."""
    rng = np.random.default_rng(seed)
    feed: dict[str, np.ndarray] = {}
    for arg in session.get_inputs():
        dims = list(arg.shape)
        if dims and not isinstance(dims[0], int):
            dims[0] = batch_size
        elif dims and dims[0] != batch_size:
            raise ToolError(
                f"input {arg.name!r} has a fixed batch size of {dims[0]}; "
                f"cannot run batch {batch_size}"
            )
        if not all(isinstance(d, int) for d in dims):
            raise ToolError(f"input {arg.name!r} has dynamic dimensions {arg.shape} beyond batch")
        dtype = _ORT_TYPES.get(arg.type)
        if dtype is None:
            raise ToolError(f"input {arg.name!r} has unsupported type {arg.type}")
        if np.issubdtype(dtype, np.floating):
            feed[arg.name] = rng.standard_normal(dims).astype(dtype)
        else:
            feed[arg.name] = rng.integers(0, 2, size=dims).astype(dtype)
    return feed


def measure_latency(
    session: ort.InferenceSession,
    feed: dict[str, np.ndarray],
    *,
    runs: int = 100,
    warmup: int = 10,
    desc: str | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Wall-clock milliseconds of ``runs`` calls after ``warmup`` discarded ones."""
    if runs < 1:
        raise ToolError(f"runs must be at least 1, got {runs}")
    for _ in range(max(warmup, 0)):
        session.run(None, feed)
    times = np.empty(runs, dtype=np.float64)
    for i in tqdm(range(runs), desc=desc, unit="run", disable=not progress, leave=False):
        start = time.perf_counter()
        session.run(None, feed)
        times[i] = (time.perf_counter() - start) * 1000.0
    return times


def _stats(name: str, batch_size: int, threads: int, times: np.ndarray) -> LatencyStats:
    p50, p90, p99 = (float(v) for v in np.percentile(times, [50, 90, 99]))
    mean = float(times.mean())
    return LatencyStats(
        name, batch_size, threads, len(times), p50, p90, p99, mean, batch_size * 1000.0 / mean
    )


def bench_models(
    models: Sequence[Path],
    *,
    batch_sizes: Sequence[int] = (1,),
    threads: Sequence[int] = (1,),
    runs: int = 100,
    warmup: int = 10,
    progress: bool = True,
) -> list[LatencyStats]:
    """Every model at every (threads, batch size), measured on the same random inputs."""
    results: list[LatencyStats] = []
    for thread_count in threads:
        if thread_count < 1:
            raise ToolError(f"thread count must be at least 1, got {thread_count}")
        sessions = [(path, open_session(path, threads=thread_count)) for path in models]
        for batch in batch_sizes:
            for path, session in sessions:
                feed = random_feed(session, batch)
                desc = f"{path.name} b{batch} t{thread_count}"
                times = measure_latency(
                    session, feed, runs=runs, warmup=warmup, desc=desc, progress=progress
                )
                results.append(_stats(str(path), batch, thread_count, times))
    return results


def profile_operators(
    path: Path, batch_size: int = 1, threads: int = 1, runs: int = 20
) -> dict[str, float]:
    """Milliseconds per run spent in each op type of the graph ONNX Runtime actually executes
    (after its fusions), from ORT's profiler; most expensive first."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    with tempfile.TemporaryDirectory(prefix="ort-profile-") as tmp:
        options.profile_file_prefix = str(Path(tmp) / "profile")
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ToolError(f"ONNX Runtime cannot load {path}: {exc}") from None
        feed = random_feed(session, batch_size)
        for _ in range(3):
            session.run(None, feed)
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    totals: dict[str, float] = {}
    for event in events:
        if event.get("cat") == "Node" and str(event.get("name", "")).endswith("_kernel_time"):
            op = str(event.get("args", {}).get("op_name", "?"))
            totals[op] = totals.get(op, 0.0) + float(event.get("dur", 0)) / 1000.0
    per_run = {op: total / (runs + 3) for op, total in totals.items()}
    return dict(sorted(per_run.items(), key=lambda item: -item[1]))


def format_table(stats: Sequence[LatencyStats]) -> str:
    """A plain-text table, one row per measurement, with speed relative to the first model."""
    header = ("model", "batch", "threads", "p50 ms", "p90 ms", "p99 ms", "items/s", "vs first")
    baseline: dict[tuple[int, int], float] = {}
    rows: list[tuple[str, ...]] = []
    for s in stats:
        key = (s.batch_size, s.threads)
        base = baseline.setdefault(key, s.p50_ms)
        rows.append(
            (
                s.model,
                str(s.batch_size),
                str(s.threads),
                f"{s.p50_ms:.3f}",
                f"{s.p90_ms:.3f}",
                f"{s.p99_ms:.3f}",
                f"{s.throughput:.1f}",
                f"{base / s.p50_ms:.2f}x",
            )
        )
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in (header, *rows)]
    return "\n".join(line.rstrip() for line in lines)

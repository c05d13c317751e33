"""Cold start and memory: time to the first answered Predict, peak RSS under load.

Cold start is measured from spawning `edge-server` to the first OK Predict answer
(a fresh process each time, the model files in the page cache), with the moments
the port was bound and health said SERVING. Peak RSS (VmHWM) is read after a few
seconds of load, so it includes ONNX Runtime's arenas at the batch sizes it served.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import grpc

from benchmarks import models, verified_cell
from benchmarks.payloads import Payload
from benchmarks.server_processes import GatewayProcess

FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 5),
    ("grpc.min_reconnect_backoff_ms", 5),
    ("grpc.max_reconnect_backoff_ms", 20),
]


def single_model_root(name: str) -> Path:
    """A model root that holds only ``name`` (a symlink to the benchmark copy)."""
    root = models.CACHE / "roots" / name
    link = root / name
    if not link.exists():
        root.mkdir(parents=True, exist_ok=True)
        link.symlink_to(models.model_root() / name, target_is_directory=True)
    return root


def first_answer(gateway: GatewayProcess, payload: Payload, timeout: float = 60.0) -> float:
    """Seconds from process start to the first OK answer to ``payload``."""
    deadline = time.monotonic() + timeout
    while not gateway.target:
        if time.monotonic() > deadline or not gateway.alive():
            raise RuntimeError("edge-server did not bind its port:\n" + "\n".join(gateway.log_tail))
        time.sleep(0.001)
    with grpc.insecure_channel(gateway.target, options=FAST_RECONNECT) as channel:
        call = channel.unary_unary(payload.method)
        while time.monotonic() < deadline:
            try:
                call(payload.message, timeout=2, wait_for_ready=True)
                return time.perf_counter() - gateway.started_at
            except grpc.RpcError as err:
                if err.code() not in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ):
                    raise
                time.sleep(0.002)
    raise TimeoutError("no OK answer from the gateway")


def cold_start(
    name: str,
    payload: Payload,
    repeats: int,
    extra_args: list[str],
    load_seconds: float,
    scratch: Path,
    generator: str,
) -> dict[str, Any]:
    """Median cold start over ``repeats`` fresh processes serving only ``name``; the last
    one is then loaded at 32 clients for ``load_seconds`` and its peak RSS read."""
    root = single_model_root(name)
    firsts, listening = [], []
    idle_rss = peak = float("nan")
    for attempt in range(repeats):
        gateway = GatewayProcess(root, extra_args)
        try:
            gateway.start(wait=False)
            firsts.append(first_answer(gateway, payload))
            listening.append(gateway.listening_s)
            if attempt == repeats - 1:
                idle_rss = gateway.rss_mb()
                verified_cell.measure(gateway, payload, 32, load_seconds, 0.5, scratch, generator)
                peak = gateway.peak_rss_mb()
        finally:
            gateway.stop()
    return {
        "model": name,
        "input": payload.kind,
        "first_answer_s": statistics.median(firsts),
        "first_answer_all_s": firsts,
        "port_bound_s": statistics.median(listening),
        "rss_idle_mb": idle_rss,
        "peak_rss_mb": peak,
    }

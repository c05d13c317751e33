"""Cold start for the footprint: process start to grpc.health SERVING, beside a bare server.

The reference is the least a gRPC model server can do: grpc.aio + health + an ONNX
Runtime session with the same model, no gateway code. The difference is what the
gateway's own start costs. Goal: median < ``COLD_START_GOAL_S``.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.footprint.server_processes import Process, free_port, gateway

COLD_START_GOAL_S = 0.6
BARE_NAME = "bare grpc.aio + health + ONNX Runtime"
BARE_SERVER = """import asyncio, sys, onnxruntime as ort, grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
async def main():
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_insecure_port("127.0.0.1:" + sys.argv[2])
    await server.start()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await server.wait_for_termination()
asyncio.run(main())
"""


def cold_start(root: Path, runs: int = 5) -> dict[str, Any]:
    """Median, min and max seconds to SERVING of `edge-server` and the bare server."""
    model = next(root.glob("*/1/model.onnx"))
    results: dict[str, Any] = {}
    bare_port = free_port()
    commands: dict[str, Callable[[], Process]] = {
        "edge-server": lambda: gateway(root),
        BARE_NAME: lambda: Process(
            [sys.executable, "-c", BARE_SERVER, str(model), str(bare_port)], bare_port
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):  # interleaved, so a change in machine load hits both alike
        for name, start in commands.items():
            server = start()
            try:
                times[name].append(server.wait_serving())
            finally:
                server.stop()
    for name, values in times.items():
        results[name] = {
            "median_s": round(statistics.median(values), 3),
            "min_s": round(min(values), 3),
            "max_s": round(max(values), 3),
        }
    results["ratio_to_bare"] = round(
        results["edge-server"]["median_s"] / results[BARE_NAME]["median_s"], 2
    )
    results["within_goal"] = results["edge-server"]["median_s"] < COLD_START_GOAL_S
    return results

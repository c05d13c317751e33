"""Closed-loop gRPC load generator (grpc.aio): N concurrent callers, fixed duration.

Run in its own process so its CPU use is visible and separate from the gateway's:
    python -m benchmarks.load --target 127.0.0.1:50051 --request req.bin -c 8 -d 5
``req.bin`` holds one serialized edge.v1.PredictRequest. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import grpc

from edge.v1 import inference_pb2, inference_pb2_grpc


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


async def run(target: str, request: inference_pb2.PredictRequest, concurrency: int,
              duration: float, warmup: float) -> dict[str, float]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    options = [("grpc.max_receive_message_length", 64 << 20)]
    # One channel per 8 callers: a single HTTP/2 connection serializes on one core.
    channels = [grpc.aio.insecure_channel(target, options=options)
                for _ in range(max(1, concurrency // 8))]
    stubs = [inference_pb2_grpc.InferenceServiceStub(ch) for ch in channels]
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration

    async def caller(index: int) -> None:
        stub = stubs[index % len(stubs)]
        while True:
            sent = time.perf_counter()
            if sent >= stop_at:
                return
            try:
                await stub.Predict(request, timeout=30)
                code = "OK"
            except grpc.aio.AioRpcError as err:
                code = err.code().name
            done = time.perf_counter()
            if sent >= measure_from:
                if code == "OK":
                    latencies.append(done - sent)
                else:
                    errors[code] = errors.get(code, 0) + 1

    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    for ch in channels:
        await ch.close()
    latencies.sort()
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": sum(errors.values()),
        "error_codes": errors,  # type: ignore[dict-item]
        "throughput_rps": len(latencies) / duration,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p90_ms": percentile(latencies, 0.90) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "mean_ms": (statistics.fmean(latencies) * 1000) if latencies else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--request", type=Path, required=True)
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("-d", "--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args(argv)
    request = inference_pb2.PredictRequest.FromString(args.request.read_bytes())
    result = asyncio.run(run(args.target, request, args.concurrency, args.duration, args.warmup))
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Closed-loop gRPC load generator in Python (grpc.aio): the fallback to h2load.

N concurrent callers, fixed duration, any unary method, request and response kept
as raw bytes (no protobuf work on the client). Every call's gRPC status is seen, so
this is also the correctness cross-check for h2load. Run in its own process so its
CPU use is separate from the gateway's:
    python -m benchmarks.aio_load --target 127.0.0.1:50051
        --method /edge.v1.InferenceService/Predict --request req.bin -c 8 -d 5
``req.bin`` holds one serialized request message. Prints one JSON line.

``--rate R`` turns it into an open-loop probe: one call every 1/R s whatever the
answers, each call's status code and latency recorded (used by the overload test).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import grpc

OPTIONS = [
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.max_send_message_length", 64 << 20),
]


def command(target: str, method: str, request_file: Path, *options: str) -> list[str]:
    """``python -m benchmarks.aio_load`` against ``target`` with one request file and flags."""
    return [
        sys.executable, "-m", "benchmarks.aio_load", "--target", target, "--method", method,
        "--request", str(request_file), *options,
    ]  # fmt: skip


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index]


def summary(latencies: list[float], errors: dict[str, int], duration: float) -> dict[str, Any]:
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": sum(errors.values()),
        "error_codes": errors,
        "throughput_rps": len(latencies) / duration,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p90_ms": percentile(latencies, 0.90) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "mean_ms": sum(latencies) / len(latencies) * 1000 if latencies else float("nan"),
    }


async def closed_loop(
    target: str,
    method: str,
    request: bytes,
    concurrency: int,
    duration: float,
    warmup: float,
    metadata: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    response_bytes = 0
    # One channel per 8 callers: a single HTTP/2 connection serializes on one core.
    channels = [
        grpc.aio.insecure_channel(target, options=OPTIONS) for _ in range(max(1, concurrency // 8))
    ]
    calls = [ch.unary_unary(method) for ch in channels]  # bytes in, bytes out
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration

    async def caller(index: int) -> None:
        nonlocal response_bytes
        call = calls[index % len(calls)]
        while True:
            sent = time.perf_counter()
            if sent >= stop_at:
                return
            try:
                reply = await call(request, timeout=30, metadata=metadata or None)
                code = "OK"
            except grpc.aio.AioRpcError as err:
                code = err.code().name
            done = time.perf_counter()
            if sent >= measure_from:
                if code == "OK":
                    latencies.append(done - sent)
                    response_bytes += len(reply)
                else:
                    errors[code] = errors.get(code, 0) + 1

    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    for ch in channels:
        await ch.close()
    result = summary(latencies, errors, duration)
    result["response_bytes"] = response_bytes
    return result


async def open_loop(
    target: str, method: str, request: bytes, rate: float, duration: float
) -> dict[str, Any]:
    """One call every 1/rate s; per status code: count and latency percentiles."""
    channel = grpc.aio.insecure_channel(target, options=OPTIONS)
    call = channel.unary_unary(method)
    by_code: dict[str, list[float]] = {}
    retry_after: list[str] = []
    details: dict[str, str] = {}

    async def one() -> None:
        sent = time.perf_counter()
        try:
            await call(request, timeout=30)
            code = "OK"
        except grpc.aio.AioRpcError as err:
            code = err.code().name
            details.setdefault(code, str(err.details()))
            if code == "RESOURCE_EXHAUSTED" and len(retry_after) < 5:
                metadata = dict(err.trailing_metadata() or ())
                retry_after.append(str(metadata.get("retry-after-ms", "")))
        by_code.setdefault(code, []).append(time.perf_counter() - sent)

    tasks = []
    start = time.perf_counter()
    n = 0
    while (now := time.perf_counter()) < start + duration:
        due = start + n / rate
        if due > now:
            await asyncio.sleep(due - now)
        tasks.append(asyncio.ensure_future(one()))
        n += 1
    await asyncio.gather(*tasks)
    await channel.close()
    codes = {}
    for code, values in by_code.items():
        values.sort()
        codes[code] = {
            "count": len(values),
            "p50_ms": percentile(values, 0.5) * 1000,
            "p99_ms": percentile(values, 0.99) * 1000,
            "max_ms": values[-1] * 1000,
            "within_5ms": sum(v <= 0.005 for v in values),
        }
    return {"sent": n, "codes": codes, "retry_after_ms": retry_after, "details": details}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--method", default="/edge.v1.InferenceService/Predict")
    parser.add_argument("--request", type=Path, required=True)
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("-d", "--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=0.0, help="open loop: calls per second")
    parser.add_argument(
        "--header", action="append", default=[], help="KEY:VALUE metadata on every call"
    )
    args = parser.parse_args(argv)
    request = args.request.read_bytes()
    metadata = tuple(
        (key.strip().lower(), value.strip())
        for key, _, value in (item.partition(":") for item in args.header)
    )
    if args.rate > 0:
        result = asyncio.run(open_loop(args.target, args.method, request, args.rate, args.duration))
    else:
        result = asyncio.run(
            closed_loop(
                args.target,
                args.method,
                request,
                args.concurrency,
                args.duration,
                args.warmup,
                metadata,
            )
        )
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

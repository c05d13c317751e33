"""One verified benchmark cell: a payload at a concurrency against a running gateway.

h2load (or the grpc.aio fallback) drives the load; success is then checked, not
assumed: the gateway's ``edge_requests_total`` counters by gRPC status code must
show no failure during the cell (a few CANCELLED calls cut off when the generator
stops are allowed), must have answered OK at least as many calls as the generator
completed, and the DATA bytes h2load received must fit that many good answers.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Protocol

import grpc
import numpy as np

from benchmarks import aio_load, h2load, models
from benchmarks.cpu_accounting import CpuMeter
from benchmarks.payloads import Payload, prepare, response_bounds


class Server(Protocol):
    """What a cell needs from the server under test (gateway, group or naive server)."""

    @property
    def target(self) -> str: ...

    @property
    def pid(self) -> int: ...

    def request_counts(self, method: str, model: str) -> dict[str, int] | None: ...


def probe(gateway: Server, payload: Payload) -> bytes:
    """One call with a real client: the answer must be OK; returns the response bytes."""
    with grpc.insecure_channel(gateway.target) as channel:
        call = channel.unary_unary(payload.method)
        reply: bytes = call(payload.message, timeout=30, metadata=payload.headers or None)
    return reply


def _percentiles(latencies_ms: np.ndarray) -> dict[str, float]:
    if latencies_ms.size == 0:
        return {
            "p50_ms": float("nan"),
            "p90_ms": float("nan"),
            "p99_ms": float("nan"),
            "mean_ms": float("nan"),
        }
    return {
        "p50_ms": float(np.percentile(latencies_ms, 50)),
        "p90_ms": float(np.percentile(latencies_ms, 90)),
        "p99_ms": float(np.percentile(latencies_ms, 99)),
        "mean_ms": float(latencies_ms.mean()),
    }


def _aio(
    gateway: Server,
    payload: Payload,
    concurrency: int,
    duration: float,
    warmup: float,
    scratch: Path,
) -> dict[str, Any]:
    scratch.mkdir(parents=True, exist_ok=True)  # h2load.run makes it; this path may run first
    request_file = scratch / "request.bin"
    request_file.write_bytes(payload.message)
    output = subprocess.run(
        aio_load.command(
            gateway.target,
            payload.method,
            request_file,
            "-c",
            str(concurrency),
            "-d",
            str(duration),
            "--warmup",
            str(warmup),
            *(arg for key, value in payload.headers for arg in ("--header", f"{key}:{value}")),
        ),
        check=True,
        capture_output=True,
        text=True,
        cwd=models.REPO,
    ).stdout
    result: dict[str, Any] = json.loads(output)
    return result


def measure(
    gateway: Server,
    payload: Payload,
    concurrency: int,
    duration: float,
    warmup: float,
    scratch: Path,
    generator: str,
) -> dict[str, Any]:
    """Run one cell; the row includes the checks and who used the CPU."""
    prepare(gateway.target, payload)  # a v2-shm payload's region, on this gateway
    good = probe(gateway, payload)
    low, high = response_bounds(payload, good)
    before = gateway.request_counts(payload.rpc, payload.model)
    counted = before is not None  # the naive reference server has no counters
    if not counted and generator == "h2load" and warmup > 0:
        # Warm up apart, so the DATA bytes of the measured run belong to its calls only.
        h2load.run(
            gateway.target,
            payload.method,
            payload.frame,
            concurrency,
            warmup,
            0,
            scratch,
            headers=payload.headers,
        )
        warmup = 0.0
    meter = CpuMeter(getattr(gateway, "pids", None) or gateway.pid)
    checks: list[str] = []
    if generator == "h2load":
        h2 = h2load.run(
            gateway.target,
            payload.method,
            payload.frame,
            concurrency,
            duration,
            warmup,
            scratch,
            headers=payload.headers,
        )
        cpu = meter.stop()
        row: dict[str, Any] = {
            "requests": h2.done,
            "throughput_rps": h2.throughput_rps,
            **_percentiles(h2.latencies_ms),
        }
        done, data_bytes = h2.done, h2.data_bytes
        if h2.failed or h2.status_2xx != h2.done:
            checks.append(f"h2load: {h2.failed} failed, {h2.status_2xx}/{h2.done} HTTP 2xx")
    else:
        result = _aio(gateway, payload, concurrency, duration, warmup, scratch)
        cpu = meter.stop()
        row = {
            k: result[k]
            for k in ("requests", "throughput_rps", "p50_ms", "p90_ms", "p99_ms", "mean_ms")
        }
        done, data_bytes = result["requests"], None
        if result["errors"]:
            checks.append(f"client saw errors {result['error_codes']}")
    failures: dict[str, int] = {}
    ok = done
    if before is not None:
        after = gateway.request_counts(payload.rpc, payload.model) or {}
        delta = {code: after.get(code, 0) - before.get(code, 0) for code in after}
        ok = delta.pop("OK", 0)
        cancelled = delta.pop("CANCELLED", 0)
        failures = {code: n for code, n in delta.items() if n}
        if failures:
            checks.append(f"gateway answered {failures}")
        if cancelled > concurrency:
            checks.append(f"{cancelled} CANCELLED calls (more than the {concurrency} in flight)")
        if ok < done:
            checks.append(f"gateway answered OK {ok} times, the generator counted {done}")
    # A call cut off when h2load stops may be counted OK by the gateway but never read,
    # so allow one answer per connection either way. With counters, the byte count
    # includes warm-up, as does the gateway's OK count.
    fits = max(ok - concurrency, 0) * low <= (data_bytes or 0) <= (ok + concurrency) * high
    if data_bytes is not None and ok and not fits:
        checks.append(f"DATA {data_bytes} B does not fit {ok} good answers of {low}..{high} B")
    row.update(
        generator=generator,
        concurrency=concurrency,
        errors=sum(failures.values()),
        server_ok=ok,
        verified=not checks,
        checks=checks,
        cpu=cpu.to_dict(),
    )
    return row

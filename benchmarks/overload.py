"""Overload: offer 10x what the gateway can serve for 30 s, then check it is unharmed.

A fresh gateway is warmed at 32 clients (which also measures its capacity for the
payload), then h2load offers ``factor`` x that rate from 64 connections with up to
64 calls in flight each, far beyond ``--max-queue-size``. Meanwhile an open-loop
grpc.aio probe sends 100 calls/s and records every call's status and latency: the
refused ones must be RESOURCE_EXHAUSTED (with retry-after-ms) answered within 5 ms.
The probe stands for a client on another device, so it runs at real-time priority
where permitted (benchmarks/realtime_priority.py): at normal priority on this 2-core box it
would measure how long it waits for a core behind the gateway, not the gateway's
answer. A second, "local" probe at normal priority runs beside it and is reported
too (a client on the gateway's own board).
The gateway's RSS is sampled each second; afterwards it must still be alive,
SERVING, and answer a normal call.

With ``--workers N`` among ``extra_args`` the gateway is N processes: RSS and CPU
are summed over them, and a replica that died meanwhile (the primary restarts it
under a new PID) fails the test like a crash. ``patches`` reach the primary only.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks import aio_load, h2load, models, realtime_priority, verified_cell
from benchmarks.cpu_accounting import CpuMeter
from benchmarks.haproxy_front import FrontedGateway
from benchmarks.payloads import Payload
from benchmarks.server_processes import GatewayProcess

CONNECTIONS = 64
STREAMS = 64
PROBE_RATE = 100.0
RSS_BUDGET_MB = 20.0


def run_overload(
    root: Path,
    payload: Payload,
    seconds: float,
    factor: float,
    extra_args: list[str],
    scratch: Path,
    generator: str,
    patches: list[str] | None = None,
    front_maxconn: int = 0,
) -> dict[str, Any]:
    """``front_maxconn`` > 0: flood and probe go through the HAProxy front
    (benchmarks/haproxy_front.py) admitting that many inference calls at once."""
    server = (
        FrontedGateway(root, extra_args, patches, front_maxconn)
        if front_maxconn
        else GatewayProcess(root, extra_args, patches)
    )
    with server as gateway:
        warm = verified_cell.measure(gateway, payload, 32, 3.0, 0.5, scratch, generator)
        capacity = warm["throughput_rps"]
        offered = capacity * factor
        rss_before = gateway.rss_mb()
        pids_before = gateway.pids
        before = gateway.request_counts(payload.rpc, payload.model)
        request_file = scratch / "overload-request.bin"
        request_file.write_bytes(payload.message)
        probe_prefix = realtime_priority.realtime(realtime_priority.PROBE_RT_PRIORITY)
        probe = _start_probe(gateway.target, payload, request_file, seconds, probe_prefix)
        local_probe = _start_probe(gateway.target, payload, request_file, seconds, [])
        meter = CpuMeter(pids_before)
        flood: dict[str, Any] = {}

        def drive() -> None:
            try:
                if generator == "h2load":
                    flood["result"] = h2load.run(
                        gateway.target,
                        payload.method,
                        payload.frame,
                        CONNECTIONS,
                        seconds,
                        0.0,
                        scratch / "overload",
                        streams_per_client=STREAMS,
                        rps_per_client=offered / CONNECTIONS,
                        timeout=seconds + 120,
                    )
                else:  # no h2load: a closed loop of many Python callers, as hard as it can
                    output = subprocess.run(
                        aio_load.command(
                            gateway.target,
                            payload.method,
                            request_file,
                            "-c",
                            str(CONNECTIONS * 8),
                            "-d",
                            str(seconds),
                            "--warmup",
                            "0",
                        ),
                        capture_output=True,
                        text=True,
                        check=True,
                        cwd=models.REPO,
                    ).stdout
                    flood["aio"] = json.loads(output)
            except Exception as exc:  # reported below, not raised from the thread
                flood["error"] = repr(exc)

        driver = threading.Thread(target=drive)
        started = time.perf_counter()
        driver.start()
        rss_samples = []
        while driver.is_alive():
            if gateway.alive():
                rss_samples.append((round(time.perf_counter() - started, 1), gateway.rss_mb()))
            driver.join(1.0)
        probe_out, _ = probe.communicate(timeout=120)
        local_out, _ = local_probe.communicate(timeout=120)
        cpu = meter.stop()
        alive = gateway.alive()
        pids_after = gateway.pids if alive else []
        rss_end = rss_samples[-1][1] if rss_samples else float("nan")
        after = gateway.request_counts(payload.rpc, payload.model) if alive else {}
        time.sleep(2.0)  # let the admitted queue drain
        healthy = alive and gateway.alive()
        try:
            gateway.wait_serving(timeout=10)
            verified_cell.probe(gateway, payload)
        except Exception:
            healthy = False
        rss_after = gateway.rss_mb() if gateway.alive() else float("nan")
        exit_code = gateway.stop()
    probe_result = json.loads(probe_out) if probe_out.strip() else {}
    local_result = json.loads(local_out) if local_out.strip() else {}
    local_refused = _refusals(local_result)
    local_other_codes = _other_codes(local_result)
    delta = {code: after.get(code, 0) - before.get(code, 0) for code in after}
    h2 = flood.get("result")
    refused = _refusals(probe_result)
    other_codes = _other_codes(probe_result)
    growth = rss_end - rss_before
    replicas_replaced = sorted(set(pids_before) - set(pids_after)) if alive else []
    return {
        "model": payload.model,
        "input": payload.kind,
        "patches": patches or [],
        "front_maxconn": front_maxconn,
        "workers": gateway.workers,
        "seconds": seconds,
        "capacity_rps": capacity,
        "factor": factor,
        "offered_rps_target": offered,
        "offered_rps": (h2.done / seconds) if h2 else _aio_offered(flood, seconds),
        "flood_failed": h2.failed if h2 else None,
        "generator_error": flood.get("error"),
        "served_ok_rps": delta.get("OK", 0) / seconds,
        "gateway_codes": delta,
        "probe": probe_result,
        "probe_refused": refused.get("count", 0),
        "probe_refused_max_ms": refused.get("max_ms", float("nan")),
        "probe_refused_p99_ms": refused.get("p99_ms", float("nan")),
        "probe_refused_within_5ms": refused.get("within_5ms", 0),
        "probe_other_codes": other_codes,
        "probe_scheduling": realtime_priority.describe(probe_prefix),
        "front_scheduling": getattr(gateway, "scheduling", None),
        "local_probe": local_result,
        "local_probe_other_codes": local_other_codes,
        "local_probe_refused": local_refused.get("count", 0),
        "local_probe_refused_within_5ms": local_refused.get("within_5ms", 0),
        "local_probe_refused_p99_ms": local_refused.get("p99_ms", float("nan")),
        "local_probe_refused_max_ms": local_refused.get("max_ms", float("nan")),
        "rss_before_mb": rss_before,
        "rss_end_mb": rss_end,
        "rss_max_mb": max((r for _, r in rss_samples), default=float("nan")),
        "rss_after_idle_mb": rss_after,
        "rss_growth_mb": growth,
        "rss_samples": rss_samples,
        "alive": alive,
        "pids_before": pids_before,
        "pids_after": pids_after,
        "replicas_replaced": replicas_replaced,
        "healthy_after": healthy,
        "exit_code": exit_code,
        "cpu": cpu.to_dict(),
        "met": bool(
            alive
            and healthy
            and not replicas_replaced
            and exit_code == 0
            and growth < RSS_BUDGET_MB
            and refused.get("count", 0) > 0
            and refused.get("within_5ms", 0) == refused.get("count", 0)
            and not other_codes
            and not local_other_codes
        ),
    }


def _refusals(probe_result: dict[str, Any]) -> dict[str, Any]:
    """A probe's RESOURCE_EXHAUSTED statistics (count, within_5ms, p99_ms, max_ms)."""
    refused: dict[str, Any] = probe_result.get("codes", {}).get("RESOURCE_EXHAUSTED", {})
    return refused


def _other_codes(probe_result: dict[str, Any]) -> dict[str, int]:
    """Counts of the statuses a probe saw besides OK and RESOURCE_EXHAUSTED."""
    return {
        code: stats["count"]
        for code, stats in probe_result.get("codes", {}).items()
        if code not in ("OK", "RESOURCE_EXHAUSTED")
    }


def _start_probe(
    target: str, payload: Payload, request_file: Path, seconds: float, prefix: list[str]
) -> subprocess.Popen[str]:
    """An open-loop grpc.aio caller at PROBE_RATE calls/s that prints its JSON summary."""
    command = aio_load.command(
        target, payload.method, request_file, "--rate", str(PROBE_RATE), "-d", str(seconds)
    )
    return subprocess.Popen([*prefix, *command], stdout=subprocess.PIPE, text=True, cwd=models.REPO)


def _aio_offered(flood: dict[str, Any], seconds: float) -> float:
    aio = flood.get("aio")
    if not aio:
        return float("nan")
    return float(aio["requests"] + aio["errors"]) / seconds

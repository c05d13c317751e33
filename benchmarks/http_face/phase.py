"""One run: every server of the comparison, interleaved, repeated; medians and targets.

Per repeat, in a rotating order (drift and noise then spread over all of them):
- the in-process pipeline limit for MobileNetV2 INT8 on the 512 px JPEG
  (benchmarks/pipeline_limit.py: the best of several thread/batch arrangements);
- the gateway with no flags (the default configuration): gRPC Predict (h2load, every
  call checked against its counters) and HTTP ``/predict`` (wrk multipart uploads), both
  models at 32 clients, and its RSS before and after the HTTP cells;
- (not with --quick) the same gateway with ``--workers 1``, the previous default;
- the naive sync grpcio server (benchmarks/naive_server.py) on the digits;
- the Flask baseline (flask_baseline.py) on both models, driven by the same wrk script;
- the serving floor (benchmarks/serving_floor.py) on the JPEG: the limit's own recipe and
  session behind a bare grpc.aio, sync grpc.server and aiohttp server, each cell measured
  the way the gateway's is: what any Python server reaches here, beside the limit.
Writes OUT/http_face.json and OUT/http_face.md.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import h2load, models, verified_cell
from benchmarks.cpu_accounting import CpuMeter
from benchmarks.gateway_workers import sum_rss_mb
from benchmarks.http_face import http_cells, report, wrk
from benchmarks.http_face.cases import CLIENTS, Case, cases
from benchmarks.http_face.http_cells import FlaskProcess
from benchmarks.noise_reruns import wait_quiet
from benchmarks.pipeline_limit import pipeline_limit
from benchmarks.run_options import RESULTS
from benchmarks.server_processes import FloorProcess, GatewayProcess, NaiveProcess


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat, short cells")
    parser.add_argument("--repeats", type=int, help="default 3; quick 1")
    parser.add_argument("--duration", type=float, help="seconds per cell (default 4; quick 2)")
    parser.add_argument(
        "--configs",
        help="gateway configurations, comma-separated: default (no flags), workers1 "
        "(--workers 1), workers2 (default: default,workers1; quick: default)",
    )
    parser.add_argument("--gateway-args", default="", help="extra flags for every gateway")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=60.0,
        help="before each repeat, wait up to this many seconds for a quiet machine",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args, _unknown = parser.parse_known_args(argv)  # make bench passes BENCH_ARGS on
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.duration = args.duration or (2.0 if args.quick else 4.0)
    args.configs = (args.configs or ("default" if args.quick else "default,workers1")).split(",")
    args.generator = "h2load" if h2load.binary() else "aio"
    return args


CONFIG_FLAGS = {"default": [], "workers1": ["--workers", "1"], "workers2": ["--workers", "2"]}


def grpc_cell(args: argparse.Namespace, server: Any, case: Case) -> dict[str, Any]:
    row = verified_cell.measure(
        server, case.payload(), CLIENTS, args.duration, 1.0, args.out / "scratch", args.generator
    )
    row["protocol"] = "grpc"
    return row


def run_gateway(
    args: argparse.Namespace, root: Path, config: str, record: Callable[..., None]
) -> None:
    flags = [*CONFIG_FLAGS[config], *args.gateway_args.split()]
    with GatewayProcess(root, flags) as gateway:
        for case in cases().values():
            record(config, case.model, grpc_cell(args, gateway, case), workers=gateway.workers)
        before_http = sum_rss_mb(gateway.pids, "VmRSS")
        base = f"http://127.0.0.1:{gateway.http_port}/v1/models"
        if not wrk.binary() or not http_cells.answers(f"{base}/digits/predict", cases()["digits"]):
            record(config, "http", {"skipped": "no wrk, or no HTTP /predict on this gateway"})
            return
        for case in cases().values():
            url = f"{base}/{case.model}/predict"  # /predict with the model named
            row = http_cells.measure(
                url, case, gateway.pids, CLIENTS, args.duration, args.out / "scratch"
            )
            record(config, case.model, row, workers=gateway.workers)
        after_http = sum_rss_mb(gateway.pids, "VmRSS")
        record(config, "rss", {"before_http_mb": before_http, "after_http_mb": after_http})


def run_baselines(args: argparse.Namespace, root: Path, record: Callable[..., None]) -> None:
    digits = cases()["digits"]
    with NaiveProcess(root / "digits" / "1") as naive:
        record("naive-grpc", "digits", grpc_cell(args, naive, digits))
    if not wrk.binary():
        record("flask", "http", {"skipped": "wrk is not installed (apt-get install wrk)"})
        return
    for case in cases().values():
        with FlaskProcess(root / case.model / "1") as flask:
            row = http_cells.measure(
                flask.url, case, flask.pids, CLIENTS, args.duration, args.out / "scratch"
            )
            record("flask", case.model, row)


FLOOR_GRPC = {"floor-aio": "grpc-aio", "floor-sync": "grpc-sync"}  # server -> --protocol


def run_floor(args: argparse.Namespace, root: Path, record: Callable[..., None]) -> None:
    case = cases()["mobilenet-int8"]
    model_dir = models.MODELS[case.model].path(root).parent
    for server, protocol in FLOOR_GRPC.items():
        with FloorProcess(model_dir, protocol) as floor:
            record(server, case.model, grpc_cell(args, floor, case))
    if not wrk.binary():
        record("floor-http", "http", {"skipped": "wrk is not installed (apt-get install wrk)"})
        return
    with FloorProcess(model_dir, "http") as floor:
        row = http_cells.measure(
            floor.url, case, floor.pids, CLIENTS, args.duration, args.out / "scratch"
        )
        record("floor-http", case.model, row)


def run_pipeline(args: argparse.Namespace, root: Path, record: Callable[..., None]) -> None:
    case = cases()["mobilenet-int8"]
    seconds = 1.0 if args.quick else 2.0
    meter = CpuMeter([])  # the limit runs in this process: the "load generator" share
    limit = pipeline_limit(models.MODELS[case.model].path(root), case.picture, seconds)
    share = meter.stop()
    limit["cpu"] = {"gateway": share.loadgen, "loadgen": 0.0, "other": share.other}
    record("pipeline", case.model, limit)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    root = models.model_root()
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    now = {"repeat": 0}

    def record(server: str, model: str, row: dict[str, Any], **extra: Any) -> None:
        repeat = now["repeat"]
        rows.append({"repeat": repeat, "server": server, "model": model, **extra, **row})
        rate = row.get("throughput_rps")
        print(
            f"[{repeat}] {server} {model} {row.get('protocol', '')}: "
            + (f"{rate:.0f}/s" if rate else json.dumps(row)[:160]),
            flush=True,
        )

    steps: list[Callable[[], None]] = [
        lambda: run_pipeline(args, root, record),
        lambda: run_floor(args, root, record),
        *[lambda c=c: run_gateway(args, root, c, record) for c in args.configs],
        lambda: run_baselines(args, root, record),
    ]
    for repeat in range(args.repeats):
        now["repeat"] = repeat
        busy = wait_quiet(args.wait_quiet)  # other processes' load starves the servers
        print(f"[{repeat}] other processes use {busy:.2f} cores", flush=True)
        shift = repeat % len(steps)
        for step in steps[shift:] + steps[:shift]:
            step()
    results: dict[str, Any] = {
        "meta": {
            "repeats": args.repeats,
            "duration": args.duration,
            "clients": CLIENTS,
            "generator": args.generator,
            "configs": args.configs,
            "runtime_s": time.perf_counter() - started,
        },
        "rows": rows,
    }
    results["summary"] = report.summarize(rows)
    results["targets"] = report.targets(results["summary"])
    (args.out / "http_face.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    markdown = report.markdown(results)
    (args.out / "http_face.md").write_text(markdown)
    print(markdown)
    return 0

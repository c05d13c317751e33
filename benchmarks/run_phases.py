"""The measurement phases of `python -m benchmarks.run`, each filling its part of ``results``.

Every phase takes the parsed arguments (benchmarks/run_options.py), the model root and
the shared ``results`` dict, adds its rows under its own keys and reports progress on
stderr (stdout is kept for the Markdown summary). benchmarks/run.py calls them in order.
"""

from __future__ import annotations

import argparse
import math
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import haproxy_front, models, payloads, summary_markdown
from benchmarks.cold_start_and_rss import cold_start
from benchmarks.cpu_accounting import CpuMeter
from benchmarks.noise_reruns import steady_cell, wait_quiet
from benchmarks.overload import run_overload
from benchmarks.pipeline_limit import merge as pipeline_merge
from benchmarks.pipeline_limit import pipeline_limit
from benchmarks.py_spy_profiles import profile_cell
from benchmarks.raw_session_run import merge as raw_merge
from benchmarks.raw_session_run import raw_session_run
from benchmarks.run_options import comma_list, gateway_args, gateway_configs, worker_flags
from benchmarks.server_processes import GatewayProcess, NaiveProcess

# Inference calls the HAProxy front admits at once in the overload run (32 measured best
# for MobileNetV2 INT8 on 2 cores: full batches, ~110 ms p50 for admitted calls).
FRONT_MAXCONN = 32

# (model, input, client counts) the naive reference server is measured at: the cells
# the naive figures and the targets compare against.
NAIVE_CELLS = (
    ("digits", "tensor", (1, 32)),
    ("mobilenet-int8", "image", (32,)),
    ("mobilenet-int8", "tensor", (32,)),
)


def say(text: str) -> None:
    """A progress line on stderr, flushed at once (a run takes minutes)."""
    print(text, file=sys.stderr, flush=True)


def run_raw_and_pipeline(args: argparse.Namespace, root: Path, results: dict[str, Any]) -> None:
    """Two interleaved passes (one in --quick); the best figure per arrangement counts.
    Up to two more passes run for a model whose passes were all disturbed by other
    processes ("other CPU" is the least disturbed pass's)."""
    seconds = 0.3 if args.quick else 0.75
    passes = 1 if args.quick else 2
    quietest: dict[str, float] = {}
    for index in range(passes + (0 if args.quick else 2)):
        for name in args.models:
            if index >= passes and quietest[name] <= summary_markdown.DISTURBED_CORES:
                continue
            wait_quiet(30.0)
            model = models.MODELS[name]
            path = model.path(root)
            row = payloads.tensor_row(model, root)
            meter = CpuMeter([])
            if "raw" not in args.skip:
                batches: tuple[int, ...] = (1, 8, 32) if args.quick else (1, 2, 4, 8, 16, 32)
                raw = raw_session_run(path, row, seconds, batches)
                if index:
                    raw = raw_merge(results["raw"][name], raw)
                results["raw"][name] = raw
            if "pipeline" not in args.skip and "image" in args.inputs:
                batches = (1, 8) if args.quick else (1, 4, 8)  # fewer arrangements
                image = payloads.image_for(model.kind)
                pipe = pipeline_limit(path, image, seconds * 1.5, batches)
                if index:
                    pipe = pipeline_merge(results["pipeline"][name], pipe)
                results["pipeline"][name] = pipe
            other = meter.stop().other
            quietest[name] = min(other, quietest.get(name, other))
            results["limits_other_cpu"][name] = quietest[name]
            raw, pipe = results["raw"].get(name), results["pipeline"].get(name)
            say(
                f"pass {index + 1} {name}: "
                + (
                    f"raw b1 p50 {raw['p50_ms']:.3f} ms, b1 {raw['batch1_rps']:.0f}/s, best "
                    f"{raw['best_rps']:.0f}/s ({raw['best_config']}); "
                    if raw
                    else ""
                )
                + (
                    f"pipeline {pipe['throughput_rps']:.0f} img/s ({pipe['best']}); "
                    if pipe
                    else ""
                )
                + f"other CPU {other:.2f}"
            )


def run_gateway_cells(args: argparse.Namespace, root: Path, results: dict[str, Any]) -> None:
    """Every model x input x client count on the real gateway, per (batching, workers)
    configuration (benchmarks/run_options.py); each row carries its ratios to the raw
    and pipeline limits measured before. Peak RSS of a multi-process gateway is the sum
    of its processes' own peaks."""
    if "on" not in args.batching and any(w > 1 for w in args.workers):
        say("note: --workers N > 1 is measured with batching on only; none requested")
    for batching, workers in gateway_configs(args):
        with GatewayProcess(root, gateway_args(args, batching, workers)) as gateway:
            if workers > 1:
                say(f"{workers} gateway workers ready after {gateway.workers_ready_s:.2f} s")
            for name in args.models:
                for kind in args.inputs:
                    if not payloads.applies(kind, models.MODELS[name]):
                        continue
                    payload = payloads.payload(models.MODELS[name], kind, root)
                    for clients in args.concurrency:
                        row = _gateway_cell(args, gateway, payload, clients)
                        row.update(model=name, input=kind, batching=batching)
                        summary_markdown.add_ratios(
                            row, results["raw"].get(name), results["pipeline"].get(name)
                        )
                        results["cells"].append(row)
                        say(
                            f"{name} {kind} batching={batching} workers={workers} "
                            f"c={clients}: {row['throughput_rps']:.0f} req/s "
                            f"p50 {row['p50_ms']:.3f} ms p99 {row['p99_ms']:.3f} ms "
                            f"x raw best {row.get('x_raw_best', math.nan):.2f} "
                            f"gateway CPU {row['cpu']['gateway']:.2f} "
                            f"other CPU {row['cpu']['other']:.2f}"
                            + (f" calls by worker {row['calls_by_worker']}" if workers > 1 else "")
                            + ("" if row["verified"] else f" UNVERIFIED {row['checks']}")
                        )
            peak_key = batching if workers == 1 else f"{batching}, workers {workers}"
            results["gateway_peaks"][peak_key] = gateway.peak_rss_mb()


def _gateway_cell(
    args: argparse.Namespace, gateway: GatewayProcess, payload: payloads.Payload, clients: int
) -> dict[str, Any]:
    """One steady cell; with several workers also the calls each one answered during it
    (all attempts, warm-up included), i.e. how the kernel spread the connections."""
    before = gateway.request_counts(payload.rpc, payload.model, "worker")
    row = steady_cell(args, gateway, payload, clients)
    row["workers"] = gateway.workers
    if gateway.workers > 1:
        after = gateway.request_counts(payload.rpc, payload.model, "worker")
        row["calls_by_worker"] = {
            worker: count - before.get(worker, 0)
            for worker, count in sorted(after.items(), key=lambda item: int(item[0]))
        }
    return row


def run_naive(args: argparse.Namespace, root: Path, results: dict[str, Any]) -> None:
    """The naive reference server (and its no-model echo floor) in the same run."""
    for name, kind, levels in NAIVE_CELLS:
        if name not in args.models or kind not in args.inputs:
            continue
        payload = payloads.payload(models.MODELS[name], kind, root)
        servers = [("naive", False, False)]
        if name == "digits":
            servers += [("echo (no model)", True, False), ("grpc.aio echo", True, True)]
        for label, echo, aio in servers:
            with NaiveProcess(root / name / "1", echo=echo, aio=aio) as server:
                for clients in levels:
                    row = steady_cell(args, server, payload, clients)
                    row.update(model=name, input=kind, server=label)
                    results["naive"].append(row)
                    say(
                        f"{label} server {name} {kind} c={clients}: "
                        f"{row['throughput_rps']:.0f} req/s "
                        f"p50 {row['p50_ms']:.3f} ms other CPU {row['cpu']['other']:.2f}"
                    )


def run_startup(args: argparse.Namespace, root: Path, results: dict[str, Any]) -> None:
    """Cold start and peak RSS per model, then benchmarks/footprint/'s own report."""
    repeats = 1 if args.quick else 3
    for name in ("digits", "mobilenet-int8"):
        if name not in args.models:
            continue
        payload = payloads.payload(models.MODELS[name], "tensor", root)
        row = cold_start(
            name,
            payload,
            repeats,
            [*worker_flags(1), *shlex.split(args.gateway_args)],  # one process's start and RSS
            1.0 if args.quick else 3.0,
            args.out / "scratch",
            args.generator,
        )
        results["startup"].append(row)
        say(
            f"cold start {name}: first answer {row['first_answer_s']:.3f} s, "
            f"peak RSS {row['peak_rss_mb']:.0f} MB"
        )
    footprint = models.REPO / "benchmarks" / "footprint" / "__main__.py"
    if footprint.exists():  # a colleague's module: run it as it is and keep its output
        command = [
            sys.executable,
            "-m",
            "benchmarks.footprint",
            "--out",
            str(args.out / "footprint.json"),
        ]
        if args.quick:
            command.append("--skip-mobilenet")
        started = time.perf_counter()
        done = subprocess.run(
            command, capture_output=True, text=True, cwd=models.REPO, timeout=900, check=False
        )
        say(f"footprint (benchmarks/footprint/): {time.perf_counter() - started:.0f} s")
        results["footprint"] = done.stdout.strip() or done.stderr.strip()[-2000:]


def run_overload_phase(args: argparse.Namespace, root: Path, results: dict[str, Any]) -> None:
    """10x the measured capacity offered to one gateway (benchmarks/overload.py); again
    to a ``--workers 2`` gateway (``results["overload_workers2"]``) when 2 is among
    ``--workers``, its RSS summed over the processes."""
    name = "mobilenet-int8" if "mobilenet-int8" in args.models else args.models[0]
    payload = payloads.payload(models.MODELS[name], "image", root)
    runs = [("overload", 1, 0)] + ([("overload_workers2", 2, 0)] if 2 in args.workers else [])
    if haproxy_front.available():  # the HAProxy front of deploy/haproxy/, one gateway process
        runs.append(("overload_front", 1, FRONT_MAXCONN))
    for key, workers, front_maxconn in runs:
        over = run_overload(
            root,
            payload,
            args.overload_seconds,
            10.0,
            [*worker_flags(workers), *shlex.split(args.gateway_args)],
            args.out / "scratch",
            args.generator,
            comma_list(args.overload_patches),
            front_maxconn,
        )
        results[key] = over
        say(
            f"overload {name} workers={workers} front={front_maxconn or 'none'}: "
            f"met={over['met']} alive={over['alive']} "
            f"codes={over['gateway_codes']} refusal max {over['probe_refused_max_ms']:.2f} ms, "
            f"RSS growth {over['rss_growth_mb']:+.1f} MB"
        )


def run_profiles(args: argparse.Namespace, root: Path, results: dict[str, Any]) -> None:
    """py-spy profiles of the cells behind missed targets (every target's cell with
    ``--profile all-targets``); needs ``results["targets"]``, so it runs last."""
    for target in results["targets"]:
        if target.get("workers", 1) > 1:
            continue  # py-spy follows one process: the workers=1 cells are profiled
        if target["cell"] and (target["met"] is False or args.profile == "all-targets"):
            cell: tuple[str, str, str, int] = tuple(target["cell"])
            say(f"profiling {cell} with py-spy...")
            results["profiles"][" / ".join(map(str, cell))] = profile_cell(
                root,
                cell,
                gateway_args(args, cell[2]),
                max(args.duration, 3.0),  # enough samples even after short cells
                args.out,
                args.generator,
            )

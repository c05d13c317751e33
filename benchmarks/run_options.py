"""The command line of `python -m benchmarks.run` and the run's recorded setup.

``parse_args`` turns the flags into a complete plan (the ``--quick`` defaults filled
in, V2 dropped when its stubs are missing, the load generator chosen), so the phases
never guess; ``meta`` records the machine and the settings beside the figures, so a
results.json explains itself.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

from benchmarks import h2load, models, payloads

RESULTS = models.REPO / "bench-results"


def comma_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``: the form of every list-valued flag."""
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="gateway benchmark (make bench)")
    parser.add_argument("--quick", action="store_true", help="short cells, a subset: smoke run")
    parser.add_argument("--models", help="comma-separated (default: all four; quick: 2)")
    parser.add_argument("--inputs", help="image,tensor,v2 (default: all)")
    parser.add_argument("--concurrency", help="client counts (default 1,8,32,128)")
    parser.add_argument("--batching", help="on,off (default: both; quick: on)")
    parser.add_argument(
        "--workers",
        help="gateway processes (--workers N), e.g. 1,2 (default 1,2; quick 1); "
        "N > 1 is measured with batching on only",
    )
    parser.add_argument("--duration", type=float, help="seconds per cell (default 3; quick 1.5)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per cell (default 1)")
    parser.add_argument("--generator", choices=("auto", "h2load", "aio"), default="auto")
    parser.add_argument("--gateway-args", default="", help="extra edge-server flags, quoted")
    parser.add_argument("--overload-seconds", type=float, help="default 30; quick 5")
    parser.add_argument(
        "--overload-patches",
        default="",
        help="benchmarks.patched_gateway patches for the overload gateway, e.g. pending=4:16",
    )
    parser.add_argument(
        "--skip",
        default="",
        help="phases to skip: raw,pipeline,gateway,naive,startup,overload,profile",
    )
    parser.add_argument("--profile", choices=("misses", "none", "all-targets"), default="misses")
    parser.add_argument(
        "--retries",
        type=int,
        default=None,
        help="re-runs of a cell disturbed by other processes (default 1; quick 0)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=120.0,
        help="wait up to this many seconds for a quiet machine before starting",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    quick = args.quick
    args.models = comma_list(
        args.models or ("digits,mobilenet-int8" if quick else ",".join(models.MODELS))
    )
    args.inputs = comma_list(args.inputs or ",".join(payloads.KINDS))
    if not payloads.v2_available():
        args.inputs = [kind for kind in args.inputs if not kind.startswith("v2")]
    args.concurrency = [
        int(c) for c in comma_list(args.concurrency or ("1,32" if quick else "1,8,32,128"))
    ]
    args.batching = comma_list(args.batching or ("on" if quick else "on,off"))
    args.workers = [int(w) for w in comma_list(args.workers or ("1" if quick else "1,2"))]
    args.duration = args.duration or (1.5 if quick else 3.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if quick else 1.0)
    args.overload_seconds = args.overload_seconds or (5.0 if quick else 30.0)
    args.skip = set(comma_list(args.skip))
    args.retries = args.retries if args.retries is not None else (0 if quick else 1)
    args.retry_budget = 0.0 if quick else 240.0  # seconds all re-runs may take together
    if args.generator == "auto":
        args.generator = "h2load" if h2load.binary() else "aio"
    return args


def gateway_configs(args: argparse.Namespace) -> list[tuple[str, int]]:
    """(batching, workers) of each gateway the cells run on: every batching setting
    with one process, then each worker count > 1 with batching on only (to bound the
    run time; batching is the default)."""
    configs = [(batching, 1) for batching in args.batching if 1 in args.workers]
    if "on" in args.batching:
        configs += [("on", workers) for workers in args.workers if workers > 1]
    return configs


def gateway_args(args: argparse.Namespace, batching: str, workers: int = 1) -> list[str]:
    """edge-server flags for one batching setting ("on"/"off") and process count, plus
    ``--gateway-args``."""
    return [
        "--batching",
        "true" if batching == "on" else "false",
        *worker_flags(workers),
        *shlex.split(args.gateway_args),
    ]


def worker_flags(workers: int) -> list[str]:
    """The edge-server flags for ``workers`` processes on the shared gRPC port, named
    even for 1: the gateway's default (0) is one per core."""
    return ["--workers", str(workers)]


def meta(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    """The machine, the library versions and the settings the figures were taken with."""
    # Imported here: only the parent's record needs them, not the argument parsing.
    import grpc
    import onnxruntime

    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    command = "python -m benchmarks.run " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    return {
        "command": command.strip(),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpu_model": cpu_model,
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "grpcio": grpc.__version__,
        "generator": args.generator,
        "gateway_args": shlex.split(args.gateway_args),
        "duration": args.duration,
        "warmup": args.warmup,
        "workers": args.workers,
        "quick": args.quick,
    }

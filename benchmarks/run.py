"""`make bench`: the gateway next to raw ONNX Runtime and the in-process limit, one run.

Phases (all in this process's run, so the ratios compare like with like):
1. raw ``session.run`` per model at batch 1 and the best batch (benchmarks/raw_session_run.py);
2. the in-process pipeline limit for image input (benchmarks/pipeline_limit.py);
3. the real ``edge-server``, batching on and off, and with batching on as ``--workers 2``
   processes sharing the port, driven by h2load (grpc.aio fallback) with image bytes, a
   tensor and V2 ModelInfer at 1, 8, 32 and 128 clients, every cell verified against the
   gateway's status counters (benchmarks/verified_cell.py);
4. cold start and peak RSS (benchmarks/cold_start_and_rss.py), 10x overload
   (benchmarks/overload.py), on one process and on ``--workers 2``;
5. the issue's targets for both configurations (benchmarks/target_verdicts.py), with py-spy
   profiles of the one-process cells that miss (benchmarks/py_spy_profiles.py).

Writes bench-results/results.json (everything), one JSON per phase and
bench-results/summary.md, and prints the summary. ``--quick`` is a smoke run.
The flags are in benchmarks/run_options.py, the phases in benchmarks/run_phases.py;
this module runs them in order and writes the results.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import models, payloads, run_phases, summary_markdown, target_verdicts
from benchmarks.noise_reruns import wait_quiet
from benchmarks.run_options import meta, parse_args
from benchmarks.run_phases import say


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "meta": meta(args, argv),
        "raw": {},
        "pipeline": {},
        "cells": [],
        "gateway_peaks": {},
        "startup": [],
        "profiles": {},
        "limits_other_cpu": {},
        "naive": [],
    }
    started = time.perf_counter()
    results["meta"]["background_cores"] = wait_quiet(args.wait_quiet)
    if results["meta"]["background_cores"] > summary_markdown.DISTURBED_CORES:
        say(
            f"warning: {results['meta']['background_cores']:.2f} cores busy before the run; "
            "other processes will disturb the figures (see the 'other CPU' column)"
        )
    say(f"load generator: {args.generator}")
    root = models.model_root()
    try:
        run_phases.run_raw_and_pipeline(args, root, results)
        if "gateway" not in args.skip:
            run_phases.run_gateway_cells(args, root, results)
        if "naive" not in args.skip:
            run_phases.run_naive(args, root, results)
        if "startup" not in args.skip:
            run_phases.run_startup(args, root, results)
        if "overload" not in args.skip:
            run_phases.run_overload_phase(args, root, results)
        results["targets"] = target_verdicts.evaluate_targets(results)
        if "profile" not in args.skip and args.profile != "none":
            run_phases.run_profiles(args, root, results)
    finally:
        payloads.remove_shared_objects()
    results["meta"]["runtime_s"] = time.perf_counter() - started
    _write(args.out, results)
    print(summary_markdown.markdown(results))
    say(f"wrote {args.out}/summary.md and results.json in {results['meta']['runtime_s']:.0f} s")
    return 0


def _write(out: Path, results: dict[str, Any]) -> None:
    """results.json (everything), one JSON per phase, and summary.md."""

    def dump(name: str, data: Any) -> None:
        (out / name).write_text(json.dumps(data, indent=2, default=str) + "\n")

    dump("results.json", results)
    dump("raw.json", {"raw": results["raw"], "pipeline": results["pipeline"]})
    dump("gateway.json", {"cells": results["cells"], "peaks": results["gateway_peaks"]})
    if results.get("startup"):
        dump("startup.json", results["startup"])
    for key in ("overload", "overload_workers2", "overload_front"):
        if results.get(key):
            dump(f"{key}.json", results[key])
    dump("targets.json", {"targets": results["targets"], "profiles": results["profiles"]})
    (out / "summary.md").write_text(summary_markdown.markdown(results))


if __name__ == "__main__":
    sys.exit(main())

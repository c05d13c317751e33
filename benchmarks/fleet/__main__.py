"""``python -m benchmarks.fleet [--quick] [--backends sqlite,postgresql] [--source DIR]``:
the fleet-scale run; writes bench-results/fleet.json and bench-results/fleet.md."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.fleet.ceiling import measure, measure_assign
from benchmarks.fleet.report import markdown, verdicts
from benchmarks.fleet.scenario import Config, run_backend

QUICK = Config(
    sizes=(50, 200),
    fetchers=40,
    idle_seconds=5.0,
    heartbeat_seconds=3.0,
    ramp_seconds=1.0,
    subscribe_timeout=30.0,
    assign_timeout=15.0,
    fetch_timeout=30.0,
    results_timeout=20.0,
    rollout_timeout=60.0,
)


def _source_label(source: Path | None) -> str:
    if source is not None:
        return str(source)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "cloud_orchestrator"], capture_output=True, text=True
    ).stdout.strip()
    return (
        f"working tree at {head.stdout.strip()}{' (cloud_orchestrator modified)' if dirty else ''}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet", allow_abbrev=False)
    parser.add_argument("--quick", action="store_true", help="smoke run: 50 and 200 gateways")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--sizes", default="", help="gateway counts, such as 500,2000,10000")
    parser.add_argument(
        "--source",
        type=Path,
        default=None,
        help="run the orchestrator from this source tree (a git archive)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument(
        "--no-ceiling", action="store_true", help="skip the simulator-alone measurement"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="py-spy each orchestrator while idle at the largest size and during the assign; "
        "collapsed stacks go to this folder, the folded shares into the report",
    )
    parser.add_argument(
        "--skip",
        default="",
        help="phases to leave out, comma-separated: fetch, results, failover, rollout",
    )
    parser.add_argument(
        "--sim-processes",
        type=int,
        default=Config.sim_processes,
        help="simulator processes the fleet is split over (benchmarks/fleet/shards.py)",
    )
    args, _ = parser.parse_known_args(argv)  # BENCH_ARGS may carry benchmarks.run options
    cfg = QUICK if args.quick else Config()
    if args.sizes:
        cfg = dataclasses.replace(cfg, sizes=tuple(int(s) for s in args.sizes.split(",")))
    cfg = dataclasses.replace(
        cfg,
        source=args.source.resolve() if args.source else None,
        profile=args.profile.resolve() if args.profile else None,
        skip=tuple(filter(None, args.skip.split(","))),
        sim_processes=args.sim_processes,
    )
    document: dict[str, Any] = {
        "quick": args.quick,
        "source": _source_label(cfg.source),
        "sizes": list(cfg.sizes),
        "heartbeat_seconds": cfg.heartbeat_seconds,
        "simulator_processes": cfg.sim_processes,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "backends": {},
        "verdicts": {},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    for backend in args.backends.split(","):
        name = "sqlite (1 orchestrator)" if backend == "sqlite" else "postgresql (2 replicas)"
        try:
            run = run_backend(backend, cfg, keep_logs=args.out / "fleet-logs")
        except Exception as err:  # record it; the other backend still runs
            run = {"error": f"{type(err).__name__}: {err}"[:2000]}
        document["backends"][name] = run
        document["verdicts"][name] = verdicts(run, cfg.sizes[-1]) if "subscribe" in run else []
        (args.out / "fleet.json").write_text(json.dumps(document, indent=2))
    if not args.quick and not args.no_ceiling:
        document["simulator_ceiling"] = measure(cfg.sizes[-1], cfg.channels, ramp=cfg.ramp_seconds)
        (args.out / "fleet.json").write_text(json.dumps(document, indent=2))
        document["assign_floor"] = measure_assign(
            cfg.sizes[-1], cfg.channels, ramp=cfg.ramp_seconds, processes=cfg.sim_processes
        )
        (args.out / "fleet.json").write_text(json.dumps(document, indent=2))
    (args.out / "fleet.md").write_text(markdown(document))
    sys.stdout.write(markdown(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())

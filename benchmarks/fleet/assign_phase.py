"""The assign phase: one ``edge-orchestrator assign`` to every gateway (what an operator
does, a CLI call on the shared database); the clock starts when the CLI prints, after
its commit, and stops for each gateway when its simulated stream receives the version.

Beside the latencies it records who had the cores while the assign went out (from the
CLI's start until every gateway saw it): the simulator receives on the same two cores,
so its share says whether it, rather than the orchestrator, paced the fan-out.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.fleet.processes import (
    Orchestrator,
    OrchestratorCommand,
    machine_busy_seconds,
    proc_cpu_seconds,
)
from benchmarks.fleet.profiling import PhaseProfiler
from benchmarks.fleet.shards import SimulatorShards

__all__ = ["run_assign"]


def _cpu(pid: int) -> float:
    try:
        return proc_cpu_seconds(pid)
    except OSError:  # gone (the phase's result says why)
        return 0.0


def run_assign(
    command: OrchestratorCommand,
    sim: SimulatorShards,
    orchestrators: list[Orchestrator],
    profiler: PhaseProfiler,
    store: tuple[str, Path],
    fleet: int,
    timeout: float,
) -> dict[str, Any]:
    db, artifacts = store
    pids = [o.pid for o in orchestrators]
    began = time.time()
    orchestrator_cpu = [_cpu(pid) for pid in pids]
    simulator_cpu, busy = sim.cpu_seconds(), machine_busy_seconds()
    with profiler.during("assign", pids, 15.0, gil_only=True):
        since = command.run_timed(
            "assign",
            "fleet-small",
            "--gateways",
            "all",
            "--version",
            "2",
            db=db,
            artifacts=artifacts,
        )
        assign = sim.call(
            timeout + 30,
            cmd="seen",
            model="fleet-small",
            version="2",
            since=since,
            timeout=timeout,
            cohort=None,
        )
    window = time.time() - began
    assign.update(
        gateways=fleet,
        cli_seconds=round(since - began, 2),
        window_seconds=round(window, 2),
        orchestrator_cpu_seconds=[
            round(_cpu(pid) - before, 2) for pid, before in zip(pids, orchestrator_cpu, strict=True)
        ],
        simulator_cpu_seconds=round(sim.cpu_seconds() - simulator_cpu, 2),
        machine_busy_cores=round((machine_busy_seconds() - busy) / window, 3),
        # py-spy --gil stops the orchestrator for each of its samples: latencies of a
        # profiled run are not the ones to judge the target by.
        profiled=profiler.enabled,
        peak_rss_mb=[o.take_peak_rss_mb() for o in orchestrators],
    )
    return assign

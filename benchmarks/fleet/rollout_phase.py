"""A rollout to the whole simulated fleet, run by the orchestrator(s) (``deploy
--detach``), while an operator's commands are timed: ``rollouts`` and ``rollout ID``
must stay responsive with 10,000 targets (the issue's "progress and rollouts stay
responsive"). Waves 1 %, 10 %, 100 %, at most 2,000 gateways at once."""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.fleet.processes import OrchestratorCommand

__all__ = ["run_rollout"]

TERMINAL = {"SUCCEEDED", "HALTED", "FAILED", "CANCELLED", "ROLLED_BACK"}


def _timed(command: OrchestratorCommand, *args: str, db: str, artifacts: Path) -> tuple[float, Any]:
    began = time.monotonic()
    printed = command.run(*args, "--json", db=db, artifacts=artifacts)
    return time.monotonic() - began, json.loads(printed)


def _summary(seconds: list[float]) -> dict[str, float | int | None]:
    if not seconds:
        return {"count": 0, "median": None, "max": None}
    return {
        "count": len(seconds),
        "median": round(statistics.median(seconds), 3),
        "max": round(max(seconds), 3),
    }


def run_rollout(
    command: OrchestratorCommand, db: str, artifacts: Path, version: str, timeout: float
) -> dict[str, Any]:
    deploy = command.run(
        "deploy",
        "fleet-small",
        version,
        "--gateways",
        "all",
        "--strategy",
        "waves:1%,10%,100%",
        "--max-parallel",
        "2000",
        "--watch-seconds",
        "1",
        "--max-failures",
        "1%",
        "--detach",
        "--json",
        db=db,
        artifacts=artifacts,
    )
    rollout_id = str(json.loads(deploy)["id"])
    began = time.monotonic()
    listing: list[float] = []
    showing: list[float] = []
    baseline: list[float] = []  # `models`: a command's start-up cost on this machine now
    state: str = ""
    counts: dict[str, int] = {}
    while time.monotonic() - began < timeout:
        baseline.append(_timed(command, "models", db=db, artifacts=artifacts)[0])
        spent, _ = _timed(command, "rollouts", db=db, artifacts=artifacts)
        listing.append(spent)
        spent, shown = _timed(command, "rollout", rollout_id, db=db, artifacts=artifacts)
        showing.append(spent)
        state = str(shown.get("state", ""))
        counts = dict(Counter(str(t.get("state")) for t in shown.get("targets", [])))
        if state in TERMINAL:
            break
        time.sleep(1.0)
    return {
        "rollout": rollout_id,
        "state": state,
        "seconds": round(time.monotonic() - began, 1),
        "targets": counts,
        "rollouts_cli_seconds": _summary(listing),
        "rollout_cli_seconds": _summary(showing),
        "models_cli_seconds": _summary(baseline),
    }

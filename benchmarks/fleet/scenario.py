"""One backend's run: orchestrator(s), published bundles, then the phases in order, each
bounded by a timeout: subscribe N (several sizes), idle CPU and RSS, assign to every
gateway, a 4 MB bundle fetched with resume, feedback batches."""

from __future__ import annotations

import json
import secrets
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.fleet.assign_phase import run_assign
from benchmarks.fleet.bundles import Publisher
from benchmarks.fleet.postgres import ThrowawayPostgres, database_bytes, gateways_with_event
from benchmarks.fleet.processes import Orchestrator, OrchestratorCommand, machine_busy_seconds
from benchmarks.fleet.profiling import PhaseProfiler
from benchmarks.fleet.rollout_phase import run_rollout
from benchmarks.fleet.shards import SimulatorShards

__all__ = ["Config", "run_backend"]


@dataclass(frozen=True)
class Config:
    sizes: tuple[int, ...] = (500, 2_000, 10_000)
    fetchers: int = 1_000
    bundle_bytes: int = 4 << 20
    interrupt_fraction: float = 0.2
    batches_per_gateway: int = 2
    idle_seconds: float = 20.0
    ramp_seconds: float = 10.0
    channels: int = 4
    heartbeat_seconds: float = 10.0
    subscribe_timeout: float = 180.0
    assign_timeout: float = 60.0
    fetch_timeout: float = 180.0
    results_timeout: float = 120.0
    failover_timeout: float = 120.0
    rollout_timeout: float = 240.0
    source: Path | None = None
    profile: Path | None = None  # py-spy folder: idle at the largest size, and the assign
    skip: tuple[str, ...] = ()  # left out: "fetch", "results", "failover", "rollout"
    # Simulator processes the fleet is split over (benchmarks/fleet/shards.py: why 2).
    sim_processes: int = 2


def _idle(
    orchestrators: list[Orchestrator], sim: SimulatorShards, seconds: float
) -> dict[str, Any]:
    found: list[dict[str, float]] = [{} for _ in orchestrators]

    def measure(i: int) -> None:
        found[i] = orchestrators[i].idle_usage(seconds)

    sim_before, busy_before = sim.cpu_seconds(), machine_busy_seconds()
    threads = [threading.Thread(target=measure, args=(i,)) for i in range(len(orchestrators))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 10)
    return {
        "replicas": found,
        "cores": round(sum(f.get("cores", 0.0) for f in found), 3),
        "max_replica_cores": max(f.get("cores", 0.0) for f in found),
        "max_replica_rss_mb": max(f.get("rss_mb", 0.0) for f in found),
        "simulator_cores": round((sim.cpu_seconds() - sim_before) / seconds, 3),
        "machine_busy_cores": round((machine_busy_seconds() - busy_before) / seconds, 3),
    }


def _progress(phase: str, result: dict[str, Any]) -> None:
    brief = {k: v for k, v in result.items() if not isinstance(v, list | dict) or k == "latency"}
    print(f"fleet: {phase}: {json.dumps(brief)}", file=sys.stderr, flush=True)


def _fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def _subscribe(
    cfg: Config,
    sim: SimulatorShards,
    size: int,
    orchestrators: list[Orchestrator],
    running: dict[str, list[str]],
) -> dict[str, Any]:
    stopped = sim.call(90, cmd="stop")
    for orchestrator in orchestrators:
        orchestrator.take_peak_rss_mb()
    timeout = min(cfg.subscribe_timeout, 30.0 + size * 0.012)
    before = sim.cpu_seconds()
    began = time.monotonic()
    answer = sim.call(
        timeout + 60,
        cmd="start",
        count=size,
        ramp=cfg.ramp_seconds,
        cohort_a=cfg.fetchers,
        running=running,
        timeout=timeout,
    )
    spent = time.monotonic() - began
    answer["timeout"] = timeout
    answer["previous_stop"] = stopped
    answer["simulator_cores"] = round((sim.cpu_seconds() - before) / spent, 3)
    answer["server_fds"] = [_fds(o.pid) for o in orchestrators if o.alive()]
    answer["peak_rss_mb"] = [o.take_peak_rss_mb() for o in orchestrators]
    return answer


def _phases(
    cfg: Config,
    db: str,
    artifacts: Path,
    orchestrators: list[Orchestrator],
    command: OrchestratorCommand,
    sim: SimulatorShards,
    small: dict[str, str],
    out: dict[str, Any],
) -> None:
    """Fills ``out`` phase by phase, so a failure keeps what was measured before it."""
    out.update(subscribe={}, idle={})
    profiler = PhaseProfiler(cfg.profile)
    pids = [o.pid for o in orchestrators]
    running = {"fleet-small": ["1", small["1"]]}
    reached = 0
    for size in cfg.sizes:
        result = out["subscribe"][str(size)] = _subscribe(cfg, sim, size, orchestrators, running)
        _progress(f"subscribe {size}", result)
        largest = size == cfg.sizes[-1]  # profiled: the idle cost the targets are about
        with profiler.during(f"idle-{size}", pids if largest else [], cfg.idle_seconds):
            out["idle"][str(size)] = _idle(orchestrators, sim, cfg.idle_seconds)
        _progress(f"idle at {size}", out["idle"][str(size)])
        if not result.get("complete"):
            break
        reached = size
    if reached != cfg.sizes[-1] and reached:
        # Later phases on the largest fleet that subscribed in full (the record says so).
        _subscribe(cfg, sim, reached, orchestrators, running)
    fleet = reached or cfg.sizes[0]
    out["work_fleet"] = fleet

    out["assign"] = run_assign(
        command, sim, orchestrators, profiler, (db, artifacts), fleet, cfg.assign_timeout
    )
    _progress("assign", out["assign"])

    if "fetch" not in cfg.skip:
        _fetch(cfg, db, artifacts, orchestrators, command, sim, out)
    if "results" not in cfg.skip:
        _results(cfg, db, orchestrators, sim, out)
    if "failover" not in cfg.skip and len(orchestrators) == 2 and db.startswith("postgresql"):
        _failover(cfg, db, artifacts, orchestrators, command, sim, out)
    if "rollout" not in cfg.skip:
        # After the failover: a rollout's pins outrank the standing assignment it uses.
        out["rollout"] = run_rollout(command, db, artifacts, "3", cfg.rollout_timeout)
        _progress("rollout", out["rollout"])
    if profiler.results:
        out["profiles"] = profiler.results


def _fetch(
    cfg: Config,
    db: str,
    artifacts: Path,
    orchestrators: list[Orchestrator],
    command: OrchestratorCommand,
    sim: SimulatorShards,
    out: dict[str, Any],
) -> None:
    sim.call(
        30, cmd="policy", fetch_models=["fleet-big"], interrupt_fraction=cfg.interrupt_fraction
    )
    since = command.run_timed(
        "assign",
        "fleet-big",
        "--gateways",
        "cohort=a",
        "--version",
        "1",
        db=db,
        artifacts=artifacts,
    )
    fetch = sim.call(
        cfg.fetch_timeout + 30,
        cmd="fetched",
        model="fleet-big",
        version="1",
        since=since,
        timeout=cfg.fetch_timeout,
        cohort="a",
    )
    fetch["bundle_bytes"] = cfg.bundle_bytes
    fetch["peak_rss_mb"] = [o.take_peak_rss_mb() for o in orchestrators]
    out["fetch"] = fetch
    _progress("fetch", fetch)


def _results(
    cfg: Config,
    db: str,
    orchestrators: list[Orchestrator],
    sim: SimulatorShards,
    out: dict[str, Any],
) -> None:
    size_before = database_bytes(db)
    results = sim.call(
        cfg.results_timeout + 30,
        cmd="results",
        batches=cfg.batches_per_gateway,
        timeout=cfg.results_timeout,
    )
    time.sleep(1.0)
    results["db_bytes_before"], results["db_bytes_after"] = size_before, database_bytes(db)
    results["db_growth_per_batch"] = (
        round((results["db_bytes_after"] - size_before) / results["acked"])
        if results.get("acked")
        else None
    )
    results["peak_rss_mb"] = [o.take_peak_rss_mb() for o in orchestrators]
    out["results"] = results
    _progress("results", results)


def _failover(
    cfg: Config,
    db: str,
    artifacts: Path,
    orchestrators: list[Orchestrator],
    command: OrchestratorCommand,
    sim: SimulatorShards,
    out: dict[str, Any],
) -> None:
    """Replica 2 dies (SIGKILL) right after an assign: its gateways move to replica 1 and
    every gateway's ACTIVATED event for the assigned version is stored exactly as often
    as the simulator saw it acknowledged (none lost), read back from the database."""
    placement = sim.call(30, cmd="placement")
    since = command.run_timed(
        "assign", "fleet-small", "--gateways", "all", "--version", "1", db=db, artifacts=artifacts
    )
    killed_at = time.time()
    orchestrators[1].kill()
    moved = sim.call(
        cfg.failover_timeout + 30,
        cmd="moved",
        target=1,
        since=killed_at,
        timeout=cfg.failover_timeout,
    )
    reported = sim.call(
        cfg.failover_timeout + 30,
        cmd="reported",
        model="fleet-small",
        version="1",
        timeout=cfg.failover_timeout,
    )
    stored = gateways_with_event(db, "fleet-small", "1", "ACTIVATED", since - 1.0)
    result = {
        "placement_before": placement.get("per_target"),
        "killed_after_assign_s": round(killed_at - since, 2),
        "moved": moved,
        "reported": reported,
        "gateways_with_event_stored": stored,
        "lost_events": max(0, int(reported.get("acknowledged", 0)) - stored),
        "survivor_alive": orchestrators[0].alive(),
    }
    out["failover"] = result
    _progress("failover", {**result, "moved": moved.get("latency")})


def run_backend(backend: str, cfg: Config, keep_logs: Path | None = None) -> dict[str, Any]:
    """``sqlite`` (one orchestrator) or ``postgresql`` (two replicas sharing one database)."""
    work = Path(tempfile.mkdtemp(prefix=f"edge-fleet-{backend}-"))
    command = OrchestratorCommand(cfg.source)
    postgres: ThrowawayPostgres | None = None
    orchestrators: list[Orchestrator] = []
    sim: SimulatorShards | None = None
    started = time.monotonic()
    try:
        if backend == "postgresql":
            postgres = ThrowawayPostgres()
            db = postgres.fresh_database()
        else:
            db = f"sqlite:///{work / 'orchestrator.db'}"
        serve_help = command.serve_help()
        artifacts = work / "artifacts"
        if backend == "postgresql" and "DIR|postgresql" in serve_help:
            artifacts = Path("postgresql")  # replicas share bundles through the database
        publisher = Publisher(work / "keys")
        small: dict[str, str] = {}
        for name, version, size in (
            ("fleet-small", "1", 64 << 10),
            ("fleet-small", "2", 64 << 10),
            ("fleet-small", "3", 64 << 10),  # what the rollout phase deploys
            ("fleet-big", "1", cfg.bundle_bytes),
        ):
            bundle = publisher.bundle(name, version, size)
            command.run(
                "publish",
                str(bundle),
                "--trusted-keys",
                str(publisher.public_key),
                db=db,
                artifacts=artifacts,
            )
            if name == "fleet-small":
                import hashlib

                small[version] = hashlib.sha256(bundle.read_bytes()).hexdigest()
        command.run(
            "assign",
            "fleet-small",
            "--gateways",
            "all",
            "--version",
            "1",
            db=db,
            artifacts=artifacts,
        )
        token = secrets.token_urlsafe(24)
        token_file = work / "fleet.token"
        token_file.write_text(token + "\n")
        serve: tuple[str, ...] = ("--heartbeat-seconds", str(cfg.heartbeat_seconds))
        # Per-gateway identity (Enroll) where the tree has it: the fleet token is then an
        # enrollment token, and enrollment is not what this run measures (rate unbounded).
        enrolls = "--enroll-rate-per-second" in serve_help
        if enrolls:
            serve += ("--enroll-rate-per-second", "1000000", "--enroll-burst", "1000000")
        for _ in range(2 if backend == "postgresql" else 1):
            orchestrators.append(Orchestrator(command, db, artifacts, token_file, *serve))
        auth = f"enroll:{token}" if enrolls else f"token:{token}"
        sim = SimulatorShards(
            [o.target for o in orchestrators], auth, cfg.channels, cfg.sim_processes
        )
        result: dict[str, Any] = {
            "replicas": len(orchestrators),
            "auth": auth.split(":")[0],
            "artifacts": "database" if str(artifacts) == "postgresql" else "folder",
        }
        try:
            if enrolls:
                result["enroll"] = sim.call(
                    cfg.subscribe_timeout + 30,
                    cmd="enroll",
                    count=max(cfg.sizes),
                    timeout=cfg.subscribe_timeout,
                )
                _progress("enroll", result["enroll"])
            _phases(cfg, db, artifacts, orchestrators, command, sim, small, result)
        except Exception as err:  # what was measured stays in the record
            result["error"] = f"{type(err).__name__}: {err}"[:2000]
        result["orchestrator_alive"] = [o.alive() for o in orchestrators]
        result["simulator_alive"] = sim.alive()
        return result
    finally:
        if sim is not None:
            sim.stop()
        for orchestrator in orchestrators:
            orchestrator.stop()
            if keep_logs is not None:
                keep_logs.mkdir(parents=True, exist_ok=True)
                log = keep_logs / f"fleet-{backend}-orchestrator-{orchestrator.pid}.log"
                log.write_text("".join(orchestrator.log[-200:]))
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(work, ignore_errors=True)
        print(f"fleet: {backend} done in {time.monotonic() - started:.0f} s", flush=True)

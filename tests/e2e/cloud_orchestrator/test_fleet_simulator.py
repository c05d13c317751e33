"""The fleet simulator (benchmarks/fleet/, `make bench-fleet`) kept honest: 50 simulated
gateways against a real `edge-orchestrator serve` on SQLite for a few seconds, and the
report's numbers checked against what must hold (every gateway subscribed, an assign seen
by all, fetched bundles whole with their sha256, cut fetches resumed from their offset
without taking the bytes again, every result batch acknowledged and stored)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.fleet.report import verdicts
from benchmarks.fleet.scenario import Config, run_backend

GATEWAYS = 50
FETCHERS = 20
BUNDLE = (5 << 20) // 2  # 2.5 MiB: several chunks, so a cut fetch has bytes left to resume


def test_fifty_gateways_subscribe_follow_an_assign_fetch_and_report(tmp_path: Path) -> None:
    config = Config(
        sizes=(GATEWAYS,),
        fetchers=FETCHERS,
        bundle_bytes=BUNDLE,
        interrupt_fraction=0.5,
        batches_per_gateway=2,
        idle_seconds=1.0,
        ramp_seconds=0.5,
        channels=2,
        heartbeat_seconds=1.0,
        subscribe_timeout=30.0,
        assign_timeout=20.0,
        fetch_timeout=30.0,
        results_timeout=20.0,
        rollout_timeout=60.0,
    )
    run = run_backend("sqlite", config, keep_logs=tmp_path / "logs")

    subscribe = run["subscribe"][str(GATEWAYS)]
    assert subscribe["complete"] and subscribe["subscribed"] == GATEWAYS
    assert 0 < subscribe["seconds_all"] < 30
    idle = run["idle"][str(GATEWAYS)]
    assert 0 <= idle["cores"] < 2.5 and 20 < idle["max_replica_rss_mb"] < 2000

    assign = run["assign"]
    assert assign["complete"] and assign["latency"]["count"] == GATEWAYS == assign["expected"]
    assert 0 <= assign["latency"]["p50"] <= assign["latency"]["max"] < 20

    fetch = run["fetch"]
    assert fetch["complete"] and fetch["expected"] == FETCHERS
    assert fetch["fetched"] == fetch["sha256_ok"] == fetch["reported"] == FETCHERS
    assert fetch["sha256_bad"] == 0
    assert fetch["interrupted"] >= 1 and fetch["resumed"] == fetch["interrupted"]
    assert all(0 < offset < BUNDLE for offset in fetch["resumed_offsets"])
    assert fetch["bundle_size"] > BUNDLE  # the payload plus the bundle's manifest
    assert fetch["bytes"] == FETCHERS * fetch["bundle_size"]  # resuming takes no byte twice

    results = run["results"]
    assert results["complete"] and results["acked"] == 2 * GATEWAYS
    assert results["db_bytes_after"] >= results["db_bytes_before"] > 0
    rollout = run["rollout"]  # deploy --detach, run by the serving orchestrator
    assert rollout["state"] == "SUCCEEDED" and rollout["targets"] == {"SUCCEEDED": GATEWAYS}
    assert rollout["rollout_cli_seconds"]["count"] >= 1
    assert run["orchestrator_alive"] == [True] and run["simulator_alive"]
    assert "error" not in run

    judged = verdicts(run, GATEWAYS)
    assert len(judged) == 3 and judged[0]["met"]  # 50 subscribed within 60 s

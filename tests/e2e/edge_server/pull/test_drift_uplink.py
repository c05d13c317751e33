"""Drift and the budgeted uplink with real pull-mode gateways and a real orchestrator.

Two gateways at two sites serve the digits model (its manifest carries a recorded
reference): one held-out digits as drawn, one inverted digits. The orchestrator shows
the second as drifting, per gateway, site and version. The drifting gateway's policy
keeps hard examples on a drift burst, within a small daily budget: examples stop at the
budget while every aggregate arrives; items that outlived the outbox's time-to-live
are dropped and counted; what waited in the outbox crosses a gateway restart.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from cloud_orchestrator.feedback.drift import count_drifting, drift_summary
from cloud_orchestrator.feedback.store import FeedbackStore
from cloud_orchestrator.storage.db import Database
from tests.support.drift_traffic import (
    as_drawn,
    digits_root,
    inverted,
    metrics_page,
    predict_all,
    traffic_pngs,
)
from tests.support.metrics_text import sample
from tests.support.orchestrator import OrchestratorProcess, cli, cli_json, free_port, until
from tests.support.processes import ServerProcess

BUDGET = 4000  # bytes of hard examples per model and day: a few 28x28 PNGs
POLICY = {
    "policy": "hard_examples",
    "triggers": ["drift_burst"],
    "max_examples_per_hour": 1000,
    "max_example_bytes": 65536,
}


def gateway_args(
    root: Path, orchestrator: str, gateway_id: str, site: str, *extra: str
) -> list[str]:
    return [
        *("--model-root", str(root), "--orchestrator", orchestrator),
        *("--gateway-id", gateway_id, "--gateway-labels", f"site={site}"),
        *("--feedback-bucket-seconds", "1", "--feedback-db", str(root.parent / f"{gateway_id}.db")),
        *("--drift-window", "100", "--drift-min-samples", "20"),
        *("--inference-workers", "1", "--preprocess-workers", "1"),
        *extra,
    ]


def outbox_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM batches").fetchone()[0])


def predictions(store: FeedbackStore, gateway_id: str) -> int:
    found = [g for g in store.summarize("digits").gateways if g.gateway_id == gateway_id]
    return found[0].predictions if found else 0


@pytest.mark.slow
def test_drift_and_budgeted_uplink_reach_the_orchestrator(tmp_path: Path) -> None:
    drifting_root = digits_root(tmp_path / "field", feedback=POLICY)
    steady_root = digits_root(tmp_path / "lab")
    db = f"sqlite:///{tmp_path / 'orchestrator.db'}"
    artifacts = tmp_path / "artifacts"
    port = free_port()  # nothing listens yet: the cloud is down
    cloud = f"127.0.0.1:{port}"
    budget = ("--uplink-budget-bytes-per-day", str(BUDGET))

    # 1. Cloud down, a 1 s time-to-live: what waits expires and is counted.
    gateway = ServerProcess(
        gateway_args(drifting_root, cloud, "edge-field", "field", "--outbox-ttl", "1", *budget)
    )
    try:
        gateway.wait_serving()
        predict_all(gateway.target, "digits", traffic_pngs(as_drawn, 20))
        until(
            lambda: sample(
                metrics_page(gateway.http_port),
                "edge_outbox_dropped_total",
                model="digits",
                reason="expired",
            ),
            timeout=30,
        )
    finally:
        assert gateway.terminate() == 0
    time.sleep(1.2)  # what the last flush wrote has expired too

    # 2. Cloud still down, inverted digits: a drift burst of hard examples over the budget.
    args = gateway_args(drifting_root, cloud, "edge-field", "field", *budget)
    gateway = ServerProcess(args)
    try:
        gateway.wait_serving()
        predict_all(gateway.target, "digits", traffic_pngs(inverted, 60))
        page = metrics_page(gateway.http_port)
        assert sample(page, "edge_model_drifting", model="digits", version="1") == 1
    finally:
        assert gateway.terminate() == 0  # the open bucket is flushed on the way out
    waiting = outbox_rows(tmp_path / "edge-field.db")
    assert waiting >= 2  # aggregates and examples crossed the restart in the outbox

    # 3. Restarted, then the cloud comes up; a second gateway serves digits as drawn.
    gateway = ServerProcess(args)
    steady = ServerProcess(gateway_args(steady_root, cloud, "edge-lab", "lab"))
    orchestrator = None
    orch_db = Database(db)
    store = FeedbackStore(orch_db)
    try:
        gateway.wait_serving()
        steady.wait_serving()
        orchestrator = OrchestratorProcess(db, artifacts, "--heartbeat-seconds", "1", port=port)
        predict_all(steady.target, "digits", traffic_pngs(as_drawn, 60))
        until(lambda: predictions(store, "edge-field") == 60, timeout=40)
        until(lambda: predictions(store, "edge-lab") == 60, timeout=30)
        until(lambda: outbox_rows(tmp_path / "edge-field.db") == 0, timeout=30)
        until(lambda: len(drift_summary(orch_db, "digits").gateways) == 2, timeout=20)
        assert count_drifting(orch_db, "digits") == 1 and count_drifting(orch_db) == 1
        budget_drops = sample(
            metrics_page(gateway.http_port), "edge_outbox_dropped_total", model="digits"
        )
        assert budget_drops == 0  # this process lost nothing: earlier runs did
    finally:
        orch_db.dispose()
        assert gateway.terminate() == 0
        assert steady.terminate() == 0
        if orchestrator is not None:
            orchestrator.terminate()

    result = cli_json("drift", "digits", db=db, artifacts=artifacts)
    rows = {g["gateway_id"]: g for g in result["gateways"]}
    field, lab = rows["edge-field"], rows["edge-lab"]
    assert field["drifting"] and field["score"] > 0.3 and field["site"] == "field"
    assert not lab["drifting"] and lab["score"] < 0.3 and lab["site"] == "lab"
    assert result["drifting"] == 1
    assert result["sites"]["field"]["drifting"] == 1 and result["sites"]["lab"]["drifting"] == 0
    assert result["versions"]["1"] == {
        "gateways": 2,
        "drifting": 1,
        "max_score": pytest.approx(field["score"], abs=1e-6),
        "mean_score": pytest.approx((field["score"] + lab["score"]) / 2, abs=1e-6),
    }
    # Hard examples stopped at the budget; the refused ones were counted, as were the
    # expired items of the first run.
    examples = cli_json("feedback", "digits", db=db, artifacts=artifacts)
    kept = {g["gateway_id"]: g["hard_examples"] for g in examples["gateways"]}
    assert kept["edge-lab"] == 0 and 1 <= kept["edge-field"] <= 10
    assert field["dropped"]["budget"] >= 10 and field["dropped"]["expired"] >= 1
    text = cli("drift", "digits", db=db, artifacts=artifacts).stdout
    assert "edge-field *" in text and "1 drifting gateways" in text and "SITE" in text
    lower = cli_json("drift", "digits", "--threshold", "0.1", db=db, artifacts=artifacts)
    assert lower["drifting"] == 2  # the operator's threshold instead of the gateways'

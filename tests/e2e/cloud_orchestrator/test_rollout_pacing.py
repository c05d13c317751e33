"""Rollout pacing at scale, through the real CLI against real gateways: `--rate` spaces
the starts of gateways evenly, `deploy --retry-failed` runs a finished rollout again for
the gateways that failed, and `rollouts` counts targets in the database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloud_orchestrator.app import Orchestrator
from edge_server.app import Gateway
from edge_server.settings import Settings
from tests.e2e.cloud_orchestrator.test_rollout import publish, register
from tests.support.model_factory import linear_classifier
from tests.support.orchestrator import (  # noqa: F401
    GRAY_MANIFEST,
    Publisher,
    acli,
    cli,
    cli_json,
    db_url,
    deploy,
    free_port,
    fresh_database,
    postgres_server,
    publisher,
    running_fleet,
)

pytestmark = pytest.mark.slow


def push_times(db: str, artifacts: Path, rollout_id: str) -> dict[str, float]:
    orch = Orchestrator(db, artifacts)
    try:
        events = orch.rollouts.events(rollout_id)
    finally:
        orch.close()
    return {e["gateway_id"]: e["at"] for e in events if e["kind"] == "PUSH"}


async def test_a_rate_spaces_the_starts_of_gateways(
    db_url: str, publisher: Publisher, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    ids = ["gw-1", "gw-2", "gw-3"]
    publish(publisher, db_url, artifacts, "2")
    async with running_fleet(tmp_path / "fleet", ids, publisher.public_key) as fleet:
        register(fleet, db_url, artifacts)
        code, record = await deploy(
            db_url, artifacts, "2", "--gateways", "all", "--max-parallel", "3",
            "--rate", "120/min", "--watch-seconds", "0",
        )  # fmt: skip
        assert code == 0 and record["state"] == "SUCCEEDED", record
        assert record["rate_per_minute"] == 120
        starts = sorted(push_times(db_url, artifacts, record["id"]).values())
        # 120/min: one start every 0.5 s although --max-parallel would start all three.
        assert len(starts) == 3 and starts[2] - starts[0] >= 0.9, starts
        shown = cli("rollout", record["id"], db=db_url, artifacts=artifacts).stdout
        assert "rate 120/min" in shown


async def test_retry_failed_runs_a_finished_rollout_again_for_its_failed_gateways(
    db_url: str, publisher: Publisher, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    publish(publisher, db_url, artifacts, "2")
    port = free_port()  # nothing listens there yet: the push to gw-late fails
    async with running_fleet(tmp_path / "fleet", ["gw-1"], publisher.public_key) as fleet:
        register(fleet, db_url, artifacts)
        cli(
            "gateways", "register", "gw-late", "--address", f"127.0.0.1:{port}",
            "--labels", "site=berlin", db=db_url, artifacts=artifacts,
        )  # fmt: skip
        _, first = await deploy(
            db_url, artifacts, "2", "--gateways", "all", "--max-failures", "1",
            "--watch-seconds", "0",
        )  # fmt: skip
        states = {t["gateway_id"]: t["state"] for t in first["targets"]}
        assert states == {"gw-1": "SUCCEEDED", "gw-late": "FAILED"}, first
        listed = {r["id"]: r for r in cli_json("rollouts", db=db_url, artifacts=artifacts)}
        assert listed[first["id"]]["targets_by_state"] == {"SUCCEEDED": 1, "FAILED": 1}

        root = tmp_path / "late"
        linear_classifier(root / "gray" / "1" / "model.onnx", seed=10)
        (root / "gray" / "1" / "manifest.json").write_text(
            json.dumps({"name": "gray", "version": "1", **GRAY_MANIFEST})
        )
        late = Gateway(
            Settings.from_values(
                model_root=root, grpc_port=port, http_port=0, gateway_id="gw-late",
                default_model="gray", trusted_keys=(publisher.public_key,),
                rollback_window_seconds=0, inference_workers=1, preprocess_workers=1,
                intra_op_threads=1, shutdown_grace_seconds=1.0,
            )
        )  # fmt: skip
        await late.start()
        try:
            await late.wait_for_models()
            result = await acli(
                "deploy", "--retry-failed", first["id"], "--json", db=db_url, artifacts=artifacts
            )
            again = json.loads(result.stdout)
            assert result.returncode == 0 and again["id"] == first["id"], result.stderr
            assert {t["gateway_id"]: t["state"] for t in again["targets"]} == dict.fromkeys(
                ["gw-1", "gw-late"], "SUCCEEDED"
            )
            slot = late.models.slot("gray")
            assert slot is not None and slot.active is not None and slot.active.version == "2"
        finally:
            await late.stop()
        refused = await acli(
            "deploy", "--retry-failed", first["id"], db=db_url, artifacts=artifacts
        )
        assert refused.returncode == 1
        assert refused.stderr.strip().endswith("has no failed gateway to retry")
        wrong = await acli(
            "deploy", "gray", "--retry-failed", first["id"], db=db_url, artifacts=artifacts
        )
        assert wrong.returncode == 2
        assert "--retry-failed ROLLOUT_ID takes no NAME, VERSION or --gateways" in wrong.stderr

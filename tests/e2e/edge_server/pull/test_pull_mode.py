"""Pull mode with real processes: an `edge-server --orchestrator` gateway started before
a version is published converges to it, keeps serving while the orchestrator is down,
and converges again when it returns; the inventory shows drift meanwhile."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.orchestrator import (  # noqa: F401
    GRAY_MANIFEST,
    OrchestratorProcess,
    Publisher,
    cli,
    cli_json,
    free_port,
    gray_png,
    publisher,
    until,
)
from tests.support.pull_gateway import gray_root, serving_version, start_pull_gateway

pytestmark = pytest.mark.slow


def test_pull_gateway_converges_and_survives_the_orchestrator(
    publisher: Publisher, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'orchestrator.db'}"
    artifacts = tmp_path / "artifacts"
    port = free_port()
    serve_args = ("--heartbeat-seconds", "1", "--desired-poll-seconds", "0.2")
    orchestrator = OrchestratorProcess(db, artifacts, *serve_args, port=port)
    gateway = None
    try:
        cli(
            "assign",
            "gray",
            "--gateways",
            "site=lab",
            "--version",
            "latest",
            db=db,
            artifacts=artifacts,
        )
        gateway = start_pull_gateway(gray_root(tmp_path / "models"), orchestrator.target, publisher)

        def inventory() -> dict[str, Any]:
            return {g["id"]: g for g in cli_json("gateways", db=db, artifacts=artifacts)}

        def subscribed() -> dict[str, Any] | None:
            # Enroll creates the row; its labels and models arrive with Subscribe.
            found = inventory().get("edge-7")
            return found if found and found["models"] else None

        seen = until(subscribed)
        assert seen["mode"] == "pull" and seen["labels"] == {"site": "lab", "hardware": "x86"}
        assert seen["models"] == [{"model": "gray", "desired": "", "running": "1", "drift": False}]
        assert serving_version(gateway.target) == "1"  # nothing published: nothing changes

        cli(
            "publish",
            str(publisher.gray_bundle("3")),
            "--trusted-keys",
            str(publisher.public_key),
            db=db,
            artifacts=artifacts,
        )
        until(lambda: serving_version(gateway.target) == "3", timeout=60)
        until(lambda: inventory()["edge-7"]["models"][0]["running"] == "3", timeout=30)
        assert not inventory()["edge-7"]["drift"]

        # The cloud goes away: the gateway keeps answering from its local store.
        orchestrator.kill()
        for _ in range(10):
            assert serving_version(gateway.target) == "3"
            time.sleep(0.2)
        gateway.wait_serving(timeout=5)
        cli(
            "publish",
            str(publisher.gray_bundle("4")),
            "--trusted-keys",
            str(publisher.public_key),
            db=db,
            artifacts=artifacts,
        )
        drifting = inventory()["edge-7"]
        assert drifting["drift"] and drifting["models"][0]["desired"] == "4"
        text = cli("gateways", db=db, artifacts=artifacts).stdout
        assert "gray=3 (want 4) DRIFT" in text
        assert serving_version(gateway.target) == "3"

        # Back on the same address: the gateway reconnects (backoff) and converges.
        orchestrator = OrchestratorProcess(db, artifacts, *serve_args, port=port)
        until(lambda: serving_version(gateway.target) == "4", timeout=60)
        until(lambda: not inventory()["edge-7"]["drift"], timeout=30)
        assert (tmp_path / "models" / "gray" / "ACTIVE").read_text().strip() == "4"
        ledger = json.loads((tmp_path / "models" / "gray" / "versions.json").read_text())
        assert ledger["versions"]["4"]["source"] == f"orchestrator {orchestrator.target}"
        assert any("orchestrator" in line and "unreachable" in line for line in gateway.log)

        # A rollout reaches pull gateways too: it pins the version and watches the reports
        # (here a step back to 3, which the gateway still holds and activates from disk).
        result = cli(
            "deploy",
            "gray",
            "3",
            "--gateways",
            "id=edge-7",
            "--watch-seconds",
            "0.5",
            "--json",
            db=db,
            artifacts=artifacts,
            check=False,
        )
        record = json.loads(result.stdout)
        assert result.returncode == 0 and record["state"] == "SUCCEEDED", result.stderr
        assert record["targets"][0]["previous_version"] == "4"
        assert serving_version(gateway.target) == "3"
        assert inventory()["edge-7"]["models"][0]["desired"] == "3"
    finally:
        if gateway is not None:
            assert gateway.terminate() == 0
        orchestrator.terminate()

"""Deploying a version a gateway already holds but does not serve (rolled back, or pushed
with --stage or --shadow) activates the copy on the gateway: the rollout succeeds instead
of halting on "already on the gateway" (push), or of never being tried again (pull).
Real gateways, real `edge-client`, real `edge-orchestrator`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.orchestrator import (  # noqa: F401
    OrchestratorProcess,
    Publisher,
    cli,
    cli_json,
    deploy,
    publisher,
    running_fleet,
    until,
)
from tests.support.pull_gateway import gray_root, serving_version, start_pull_gateway

pytestmark = pytest.mark.slow

CLIENT = str(Path(sys.executable).parent / "edge-client")


async def edge_client(target: str, *args: str) -> None:
    result = await asyncio.to_thread(
        subprocess.run,
        [CLIENT, "--target", target, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def ledger_state(fleet_root: Path, version: str) -> str:
    ledger = json.loads((fleet_root / "gw-1" / "gray" / "versions.json").read_text())
    return str(ledger["versions"][version]["state"])


@pytest.mark.parametrize("held_as", ["ROLLED_BACK", "STAGED", "SHADOW"])
async def test_redeploying_a_version_the_gateway_holds_activates_it(
    held_as: str, publisher: Publisher, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'orchestrator.db'}"
    artifacts = tmp_path / "artifacts"
    bundle = publisher.gray_bundle("2", golden=False)
    keys = str(publisher.public_key)
    cli("publish", str(bundle), "--trusted-keys", keys, db=db, artifacts=artifacts)
    fleet_root = tmp_path / "fleet"
    async with running_fleet(fleet_root, ["gw-1"], publisher.public_key) as fleet:
        address = fleet.address("gw-1")
        cli("gateways", "register", "gw-1", "--address", address, db=db, artifacts=artifacts)
        if held_as == "ROLLED_BACK":  # pushed and activated by a rollout, then rolled back
            code, first = await deploy(db, artifacts, "2", "--gateways", "all")
            assert code == 0 and first["state"] == "SUCCEEDED", first
            await edge_client(address, "rollback", "gray", "--reason", "operator")
        else:  # pushed by hand without activating it
            await edge_client(
                address,
                "push",
                str(bundle),
                {"STAGED": "--stage", "SHADOW": "--shadow"}[held_as],
                "--quiet",
            )
        assert ledger_state(fleet_root, "2") == held_as
        assert await fleet.serving_version("gw-1") == "1"

        code, record = await deploy(
            db, artifacts, "2", "--gateways", "all", "--watch-seconds", "0.3"
        )

        [target] = record["targets"]
        assert code == 0 and record["state"] == "SUCCEEDED", target["reason"]
        assert (target["state"], target["previous_version"]) == ("SUCCEEDED", "1")
        assert target["bytes_sent"] == 0  # activated where it was, not sent again
        shown = cli("rollout", record["id"], "--events", db=db, artifacts=artifacts).stdout
        # ModelUpdate answers SHADOW for a held shadow, else STAGED for any inactive state.
        stage = "SHADOW" if held_as == "SHADOW" else "STAGED"
        assert f"ACTIVATE gw-1 the gateway holds version 2 already ({stage})" in shown
        assert await fleet.serving_version("gw-1") == "2"
        assert ledger_state(fleet_root, "2") == "ACTIVE"


def test_a_pull_gateway_runs_a_version_it_rolled_back_when_it_is_deployed_again(
    publisher: Publisher, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'orchestrator.db'}"
    artifacts = tmp_path / "artifacts"
    keys = str(publisher.public_key)
    cli(
        "publish",
        str(publisher.gray_bundle("2")),
        "--trusted-keys",
        keys,
        db=db,
        artifacts=artifacts,
    )
    fast = ("--heartbeat-seconds", "1", "--desired-poll-seconds", "0.2", "--poll-seconds", "0.2")
    orchestrator = OrchestratorProcess(db, artifacts, *fast)
    gateway = None
    try:
        gateway = start_pull_gateway(gray_root(tmp_path / "models"), orchestrator.target, publisher)
        until(
            lambda: any(
                g["id"] == "edge-7" for g in cli_json("gateways", db=db, artifacts=artifacts)
            )
        )

        def rollout_of_2() -> str:
            detached = cli_json(
                "deploy", "gray", "2", "--gateways", "id=edge-7", "--watch-seconds", "0.5",
                "--detach", db=db, artifacts=artifacts,
            )  # fmt: skip
            return str(detached["id"])

        def state(rollout_id: str) -> str:
            return str(cli_json("rollout", rollout_id, db=db, artifacts=artifacts)["state"])

        first = rollout_of_2()
        until(lambda: state(first) == "SUCCEEDED", timeout=60)
        assert serving_version(gateway.target) == "2"
        rollback = subprocess.run(
            [CLIENT, "--target", gateway.target, "rollback", "gray", "--reason", "operator"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert rollback.returncode == 0, rollback.stderr
        assert serving_version(gateway.target) == "1"
        time.sleep(2)  # the gateway reported the rollback; it does not undo it on its own
        assert serving_version(gateway.target) == "1"

        again = rollout_of_2()

        until(lambda: serving_version(gateway.target) == "2", timeout=30)
        until(lambda: state(again) == "SUCCEEDED", timeout=30)
    finally:
        if gateway is not None:
            gateway.terminate()
        orchestrator.terminate()

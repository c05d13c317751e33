"""Deploying a version a gateway already holds but does not serve (rolled back, or pushed
with --stage) activates the copy on the gateway: the rollout succeeds instead of halting
on "already on the gateway". Real gateway, real `edge-client`, real `edge-orchestrator`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from orchestrator_fixtures import Publisher, cli, publisher, running_fleet  # noqa: F401
from test_orchestrator_rollout import deploy

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
            await edge_client(address, "push", str(bundle), f"--{held_as.lower()}", "--quiet")
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

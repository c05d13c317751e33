"""The [cloud] virtualenv's `edge-orchestrator` against the running gateway, as
docs/orchestrator.md runs it: publish a demo bundle, register the gateway (address and
token file), deploy the version, read the finished rollout back, and ask the gateway
which version it serves. The registry is the default SQLite file in the neutral folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.installed.commands import call, expect, failed, ok, ok_json, parse_json
from tests.installed.scenario_gateway import version_states
from tests.installed.workspace import GATEWAY_ID, Workspace

DEFAULT_DB = Path("orchestrator.db")  # sqlite:///orchestrator.db, relative to the folder
DEPLOY_TIMEOUT = 300.0
WATCH_SECONDS = "2"  # healthy time the gateway must serve the version before SUCCEEDED


def orchestrator(ws: Workspace, *args: str) -> list[str]:
    return [ws.venvs["cloud"].script("edge-orchestrator"), *args]


def publish(ws: Workspace) -> str:
    assert ws.digits_2 is not None
    out = ok(orchestrator(ws, "publish", str(ws.digits_2), "--trusted-keys", "keys"))
    versions = ok_json(orchestrator(ws, "versions", "digits", "--json"))
    published = [str(row.get("version")) for row in versions]
    expect("2" in published, f"`versions digits` lists {published} after publishing")
    expect(DEFAULT_DB.is_file(), f"no default registry {DEFAULT_DB} in the working folder")
    return f"{out.strip()}; registry {DEFAULT_DB} in the working folder"


def register(ws: Workspace) -> str:
    out = ok(orchestrator(ws, "gateways", "register", GATEWAY_ID, "--address", ws.target,
                          "--token-file", "token"))  # fmt: skip
    return out.strip()


def deploy(ws: Workspace) -> str:
    """`deploy` runs the rollout in the foreground: exit 0 only when it SUCCEEDED."""
    command = orchestrator(ws, "deploy", "digits", "2", "--gateways", f"id={GATEWAY_ID}",
                           "--watch-seconds", WATCH_SECONDS, "--no-progress", "--json")  # fmt: skip
    result = call(command, DEPLOY_TIMEOUT)
    if result.returncode != 0:
        raise failed(result, "expected the rollout to succeed")
    record: dict[str, Any] = parse_json(result.stdout, command)
    ws.rollout_id = str(record["id"])
    expect(record["state"] == "SUCCEEDED", f"deploy printed state {record['state']}")
    return f"rollout {ws.rollout_id}: {record['state']}"


def rollout_done(ws: Workspace) -> str:
    """`rollouts` lists it finished; `rollout ID --json` has the gateway SUCCEEDED."""
    listed = {row["id"]: row for row in ok_json(orchestrator(ws, "rollouts", "--json"))}
    expect(ws.rollout_id in listed, f"`rollouts` lists {sorted(listed)}, not {ws.rollout_id}")
    expect(listed[ws.rollout_id]["state"] == "SUCCEEDED", f"rollouts: {listed[ws.rollout_id]}")
    record = ok_json(orchestrator(ws, "rollout", ws.rollout_id, "--json"))
    targets = {t["gateway_id"]: t["state"] for t in record["targets"]}
    expect(targets == {GATEWAY_ID: "SUCCEEDED"}, f"rollout {ws.rollout_id} targets: {targets}")
    return f"rollouts: SUCCEEDED; rollout {ws.rollout_id}: {targets}"


def active_on_gateway(ws: Workspace) -> str:
    active, states = version_states(ws, "digits")
    expect(active == "2", f"the gateway serves digits {active} after the rollout: {states}")
    return f"edge-client models: digits active 2 ({states})"

"""Fleet rollouts through the real CLI against real gateways on loopback, on SQLite and
PostgreSQL: canary then waves, a failing wave halts and is rolled back, a killed
orchestrator is resumed by another process, and two orchestrators sharing one
PostgreSQL never push the same rollout twice."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from cloud_orchestrator.app import Orchestrator
from tests.support.orchestrator import (  # noqa: F401
    Fleet,
    OrchestratorProcess,
    Publisher,
    acli,
    cli,
    cli_json,
    db_url,
    deploy,
    fresh_database,
    postgres_server,
    publisher,
    running_fleet,
    wait_for,
)

pytestmark = pytest.mark.slow


def register(fleet: Fleet, db: str, artifacts: Path, labels: dict[str, str] | None = None) -> None:
    for index, gateway_id in enumerate(sorted(fleet.gateways)):
        site = (labels or {}).get(gateway_id, "berlin" if index % 2 == 0 else "paris")
        cli(
            "gateways",
            "register",
            gateway_id,
            "--address",
            fleet.address(gateway_id),
            "--labels",
            f"site={site},hardware=rpi4",
            db=db,
            artifacts=artifacts,
        )


def publish(publisher: Publisher, db: str, artifacts: Path, *versions: str) -> None:
    # No golden samples here: several gateways in one process would load them in parallel
    # threads, and np.load's ast.literal_eval is not thread-safe on CPython 3.11 < 3.11.8
    # ("AST constructor recursion depth mismatch", python/cpython#106905). A real gateway
    # hits it only when two of its models validate at the same moment.
    for version in versions:
        cli(
            "publish",
            str(publisher.gray_bundle(version, golden=False)),
            "--trusted-keys",
            str(publisher.public_key),
            db=db,
            artifacts=artifacts,
        )


def waves_of(record: dict[str, Any]) -> list[list[str]]:
    waves: dict[int, list[str]] = {}
    for target in record["targets"]:
        waves.setdefault(target["wave"], []).append(target["gateway_id"])
    return [sorted(waves[k]) for k in sorted(waves)]


async def test_canary_then_waves_to_six_gateways(
    db_url: str, publisher: Publisher, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    ids = [f"gw-{i}" for i in range(1, 7)]
    publish(publisher, db_url, artifacts, "2", "3")
    async with running_fleet(tmp_path / "fleet", ids, publisher.public_key) as fleet:
        register(fleet, db_url, artifacts)
        code, canary = await deploy(
            db_url,
            artifacts,
            "2",
            "--gateways",
            "hardware=rpi4",
            "--strategy",
            "canary:1",
            "--max-parallel",
            "3",
            "--watch-seconds",
            "0.3",
        )
        assert code == 0, canary
        assert canary["state"] == "SUCCEEDED"
        assert waves_of(canary) == [["gw-1"], ids[1:]]
        assert {t["state"] for t in canary["targets"]} == {"SUCCEEDED"}
        assert {t["previous_version"] for t in canary["targets"]} == {"1"}
        for gateway_id in ids:
            assert await fleet.serving_version(gateway_id) == "2"

        code, waves = await deploy(
            db_url,
            artifacts,
            "3",
            "--gateways",
            "all",
            "--strategy",
            "waves:1,50%,100%",
            "--max-parallel",
            "2",
            "--watch-seconds",
            "0.3",
        )
        assert code == 0 and waves["state"] == "SUCCEEDED", waves
        assert waves_of(waves) == [["gw-1"], ["gw-2", "gw-3"], ["gw-4", "gw-5", "gw-6"]]
        for gateway_id in ids:
            assert await fleet.serving_version(gateway_id) == "3"
        assert all(count == 2 for count in fleet.sessions.values()), fleet.sessions

        # Wave by wave: no gateway of a wave was started before the previous wave ended.
        orch = Orchestrator(db_url, artifacts)
        try:
            events = orch.rollouts.events(waves["id"])
        finally:
            orch.close()
        order = [(e["kind"], e["gateway_id"], e["detail"]) for e in events]
        done = [i for i, (kind, _, _) in enumerate(order) if kind == "WAVE_DONE"]
        pushes = {g: i for i, (kind, g, _) in enumerate(order) if kind == "PUSH"}
        assert pushes["gw-1"] < done[0] < pushes["gw-2"] and pushes["gw-3"] < done[1]
        assert done[1] < min(pushes["gw-4"], pushes["gw-5"], pushes["gw-6"])

        listed = cli_json("rollouts", db=db_url, artifacts=artifacts)
        assert [r["state"] for r in listed] == ["SUCCEEDED", "SUCCEEDED"]
        shown = cli("rollout", waves["id"], db=db_url, artifacts=artifacts).stdout
        assert "SUCCEEDED" in shown and "gw-6" in shown
        inventory = cli_json("gateways", db=db_url, artifacts=artifacts)
        assert {g["id"]: g["models"][0]["running"] for g in inventory} == dict.fromkeys(ids, "3")
        assert not any(g["drift"] for g in inventory)


async def test_failing_gateway_halts_and_rolls_the_wave_back(
    db_url: str, publisher: Publisher, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    ids = ["gw-a", "gw-b", "gw-c", "gw-d", "gw-e"]
    publish(publisher, db_url, artifacts, "2")
    # gw-d trusts no signing key: it rejects every bundle (the active version keeps serving).
    async with running_fleet(
        tmp_path / "fleet", ids, publisher.public_key, untrusting=("gw-d",)
    ) as fleet:
        register(fleet, db_url, artifacts)
        code, record = await deploy(
            db_url,
            artifacts,
            "2",
            "--gateways",
            "all",
            "--strategy",
            "waves:2,100%",
            "--max-parallel",
            "3",
            "--max-failures",
            "0",
            "--watch-seconds",
            "0.2",
        )
        assert code == 1
        assert record["state"] == "HALTED"
        assert "wave 2 of 2" in record["reason"] and "gw-d" in record["reason"]
        states = {t["gateway_id"]: t["state"] for t in record["targets"]}
        assert states["gw-a"] == states["gw-b"] == "SUCCEEDED"  # wave 1 stays
        assert states["gw-d"] == "FAILED"
        assert "REJECTED" in next(
            t["reason"] for t in record["targets"] if t["gateway_id"] == "gw-d"
        )
        assert states["gw-c"] == states["gw-e"] == "ROLLED_BACK"
        assert await fleet.serving_version("gw-a") == "2"
        assert await fleet.serving_version("gw-b") == "2"
        for gateway_id in ("gw-c", "gw-d", "gw-e"):
            assert await fleet.serving_version(gateway_id) == "1"
        ledger = json.loads((tmp_path / "fleet" / "gw-c" / "gray" / "versions.json").read_text())
        assert ledger["versions"]["2"]["state"] == "ROLLED_BACK"
        assert "halted" in ledger["versions"]["2"]["reason"]
        inventory = {g["id"]: g for g in cli_json("gateways", db=db_url, artifacts=artifacts)}
        assert inventory["gw-c"]["models"][0] == {
            "model": "gray",
            "desired": "1",
            "running": "1",
            "drift": False,
        }


async def test_killed_orchestrator_is_resumed_by_another(
    db_url: str, publisher: Publisher, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    ids = [f"gw-{i}" for i in range(1, 6)]
    publish(publisher, db_url, artifacts, "2")
    async with running_fleet(tmp_path / "fleet", ids, publisher.public_key) as fleet:
        register(fleet, db_url, artifacts)
        detached = cli_json(
            "deploy",
            "gray",
            "2",
            "--gateways",
            "all",
            "--strategy",
            "waves:1,2,3,4,5",
            "--max-parallel",
            "1",
            "--watch-seconds",
            "1",
            "--detach",
            db=db_url,
            artifacts=artifacts,
        )
        rollout_id = detached["id"]
        first = OrchestratorProcess(
            db_url, artifacts, "--lease-seconds", "2", "--poll-seconds", "0.2"
        )
        orch = Orchestrator(db_url, artifacts)
        try:

            def succeeded() -> int:
                return sum(t.state == "SUCCEEDED" for t in orch.rollouts.get(rollout_id).targets)

            await wait_for(lambda: succeeded() >= 2, timeout=60, interval=0.05)
            first.kill()  # SIGKILL mid-rollout: no clean hand-over
            done_before = {
                t.gateway_id
                for t in orch.rollouts.get(rollout_id).targets
                if t.state == "SUCCEEDED"
            }
            assert orch.rollouts.get(rollout_id).state == "RUNNING"
            killed_at = time.monotonic()
            second = OrchestratorProcess(
                db_url, artifacts, "--lease-seconds", "2", "--poll-seconds", "0.2"
            )
            try:
                await wait_for(
                    lambda: orch.rollouts.get(rollout_id).state == "SUCCEEDED", timeout=90
                )
            finally:
                second.terminate()
            assert time.monotonic() - killed_at >= 1.0  # the old lease had to run out
            record = orch.rollouts.get(rollout_id)
            events = orch.rollouts.events(rollout_id)
        finally:
            orch.close()
        assert {t.state for t in record.targets} == {"SUCCEEDED"}
        for gateway_id in ids:
            assert await fleet.serving_version(gateway_id) == "2"
        # Finished gateways were not pushed again; the rest by the new owner only.
        for gateway_id in done_before:
            assert fleet.sessions[gateway_id] == 1
            assert next(t for t in record.targets if t.gateway_id == gateway_id).pushed_by == (
                first.instance
            )
        claims = [e for e in events if e["kind"] == "CLAIMED"]
        assert claims[0]["owner"] == first.instance and claims[-1]["owner"] == second.instance
        assert any(
            c["owner"] == second.instance and f"taken over from {first.instance}" in c["detail"]
            for c in claims
        )
        pushed_after = [t for t in record.targets if t.gateway_id not in done_before]
        assert pushed_after and all(t.pushed_by == second.instance for t in pushed_after)


async def test_two_orchestrators_on_one_postgres_never_push_twice(
    postgres_server: str, publisher: Publisher, tmp_path: Path
) -> None:
    db = fresh_database(postgres_server)
    artifacts = tmp_path / "artifacts"
    ids = [f"gw-{i}" for i in range(1, 7)]
    publish(publisher, db, artifacts, "2")
    async with running_fleet(tmp_path / "fleet", ids, publisher.public_key) as fleet:
        register(fleet, db, artifacts)
        rollouts = [
            cli_json(
                "deploy",
                "gray",
                "2",
                "--gateways",
                f"id={a}|{b}",
                "--strategy",
                "all",
                "--max-parallel",
                "1",
                "--watch-seconds",
                "0.5",
                "--detach",
                db=db,
                artifacts=artifacts,
            )["id"]
            for a, b in (("gw-1", "gw-2"), ("gw-3", "gw-4"), ("gw-5", "gw-6"))
        ]
        common = ("--lease-seconds", "5", "--poll-seconds", "0.05")
        one = OrchestratorProcess(db, artifacts, *common)
        two = OrchestratorProcess(db, artifacts, *common)
        orch = Orchestrator(db, artifacts)
        try:
            await wait_for(
                lambda: all(orch.rollouts.get(r).state == "SUCCEEDED" for r in rollouts),
                timeout=90,
            )
            events = {r: orch.rollouts.events(r) for r in rollouts}
        finally:
            orch.close()
            await asyncio.to_thread(one.terminate)
            await asyncio.to_thread(two.terminate)
        assert fleet.sessions == dict.fromkeys(ids, 1), fleet.sessions
        owners = set()
        for rollout_id, log in events.items():
            claims = {e["owner"] for e in log if e["kind"] == "CLAIMED"}
            pushers = {e["owner"] for e in log if e["kind"] == "PUSH"}
            assert len(claims) == 1, (rollout_id, claims)  # one owner from start to end
            assert pushers == claims
            assert sum(e["kind"] == "PUSH" for e in log) == 2
            owners |= claims
        assert owners <= {one.instance, two.instance}

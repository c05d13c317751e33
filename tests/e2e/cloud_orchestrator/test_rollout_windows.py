"""Maintenance windows (`deploy --window HH:MM-HH:MM`) in each gateway's local time, with
real gateway processes whose clocks (TZ) put them a few seconds before 02:00: a push-mode
gateway (the orchestrator reads its UTC offset) and a pull-mode gateway (it decides
itself) both download and stage at once, keep serving the old version outside the
window, and activate when it opens, not before."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from cloud_orchestrator.app import Orchestrator
from edge_contracts.proto.edge.v1 import model_pb2, model_pb2_grpc, types_pb2
from tests.e2e.cloud_orchestrator.test_rollout_gates import active_model, publish_model
from tests.support.orchestrator import (  # noqa: F401
    OrchestratorProcess,
    Publisher,
    cli,
    cli_json,
    publisher,
    until,
)
from tests.support.processes import ServerProcess
from tests.support.pull_gateway import gray_root, serving_version, start_pull_gateway

pytestmark = pytest.mark.slow

FAST = ("--heartbeat-seconds", "1", "--desired-poll-seconds", "0.2", "--poll-seconds", "0.2")
LEAD_SECONDS = 16  # from now until the window opens: enough to stage on a busy machine


def tz_opening_at(moment: int, clock: int = 2 * 3600) -> str:
    """A POSIX TZ whose local time is ``clock`` seconds after midnight at ``moment``."""
    offset = (clock - moment) % 86_400
    if offset > 43_200:
        offset -= 86_400
    sign = "-" if offset >= 0 else "+"  # POSIX: the offset west of UTC
    hours, rest = divmod(abs(offset), 3600)
    return f"EVW{sign}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def version_entry(target: str, version: str) -> tuple[str, Any]:
    with grpc.insecure_channel(target) as channel:
        reply = model_pb2_grpc.ModelServiceStub(channel).ListModels(
            model_pb2.ListModelsRequest(model_name="gray"), timeout=10
        )
    [info] = reply.models
    return info.active_version, next(v for v in info.versions if v.version == version)


def test_a_window_stages_at_once_and_activates_when_it_opens(
    publisher: Publisher, tmp_path: Path
) -> None:
    db, artifacts = f"sqlite:///{tmp_path / 'o.db'}", tmp_path / "artifacts"
    publish_model(publisher, db, artifacts, "2", active_model(tmp_path))
    orchestrator = OrchestratorProcess(db, artifacts, *FAST)
    opens = math.ceil(time.time()) + LEAD_SECONDS
    tz = {"TZ": tz_opening_at(opens)}
    processes: list[ServerProcess] = []
    try:
        push = ServerProcess(
            ["--model-root", str(gray_root(tmp_path / "push-models")), "--gateway-id", "edge-3",
             "--trusted-keys", str(publisher.public_key), "--rollback-window-seconds", "0",
             "--inference-workers", "1", "--preprocess-workers", "1"],
            env=tz,
        )  # fmt: skip
        processes.append(push)
        push.wait_serving()
        pull = start_pull_gateway(
            gray_root(tmp_path / "pull-models"), orchestrator.target, publisher, env=tz
        )
        processes.append(pull)
        orch = Orchestrator(db, artifacts)
        try:
            orch.fleet.register("edge-3", push.target, {"site": "lab"})
        finally:
            orch.close()
        until(lambda: "edge-7" in cli("gateways", db=db, artifacts=artifacts).stdout)

        record = cli_json(
            "deploy", "gray", "2", "--gateways", "all", "--window", "02:00-04:00",
            "--watch-seconds", "0.3", "--detach", db=db, artifacts=artifacts,
        )  # fmt: skip
        assert record["windows"] == [["all", "02:00-04:00"]]

        def targets() -> dict[str, Any]:
            shown = cli_json("rollout", record["id"], db=db, artifacts=artifacts)
            return {t["gateway_id"]: t for t in shown["targets"]}

        # Downloaded and staged everywhere, still serving version 1 outside the window.
        waited: set[str] = set()

        def staged_everywhere() -> bool:
            waited.update(g for g, t in targets().items() if t["state"] == "WINDOW_WAIT")
            return waited == {"edge-3", "edge-7"} or time.time() >= opens

        until(staged_everywhere, timeout=LEAD_SECONDS + 30)
        assert waited == {"edge-3", "edge-7"} and time.time() < opens, (
            f"only {sorted(waited)} staged before the window opened: the machine is slower "
            "than LEAD_SECONDS allows for"
        )
        for gateway in (push, pull):
            active, staged = version_entry(gateway.target, "2")
            assert active == "1" and staged.state == types_pb2.MODEL_STATE_STAGED
            assert serving_version(gateway.target) == "1"

        # Entering the window activates, on both, and not before it opened.
        until(lambda: {t["state"] for t in targets().values()} == {"SUCCEEDED"}, timeout=60)
        for gateway in (push, pull):
            active, entry = version_entry(gateway.target, "2")
            assert active == "2" and serving_version(gateway.target) == "2"
            assert entry.activated_at.ToMicroseconds() / 1e6 >= opens
        events = cli_json("rollout", record["id"], "--events", db=db, artifacts=artifacts)
        assert any(
            e["kind"] == "WINDOW_WAIT" and e["gateway_id"] == "edge-3" for e in events["events"]
        )
    finally:
        for process in processes:
            process.terminate()
        orchestrator.terminate()

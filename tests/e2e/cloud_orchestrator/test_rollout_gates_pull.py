"""Evidence gates in pull mode: a real `edge-server --orchestrator` gateway shadows the
candidate its desired state names, reports the evidence in ReportStatus, and the
rollout judges it. A candidate with two classes swapped halts and never serves (the
gateway ends the shadow itself when the desired state stops asking for it); a
re-quantized twin then passes and activates. A maintenance window in the gateway's local
time holds the activation back until it opens."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from edge_contracts.proto.edge.v1 import (
    inference_pb2,
    inference_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
    types_pb2,
)
from tests.e2e.cloud_orchestrator.test_rollout_gates import GRAYS, active_model, publish_model
from tests.support.model_factory import edited_linear, requantized, swap_classes
from tests.support.orchestrator import (  # noqa: F401
    OrchestratorProcess,
    Publisher,
    cli,
    gray_png,
    publisher,
    until,
)
from tests.support.processes import ServerProcess
from tests.support.pull_gateway import gray_root, start_pull_gateway

pytestmark = pytest.mark.slow

FAST = ("--heartbeat-seconds", "1", "--desired-poll-seconds", "0.2", "--poll-seconds", "0.2")


@contextlib.contextmanager
def traffic(target: str) -> Iterator[set[str]]:
    """Predict requests in a thread until the block ends; yields the versions that answered."""
    answered: set[str] = set()
    stop = threading.Event()

    def send() -> None:
        with grpc.insecure_channel(target) as channel:
            stub = inference_pb2_grpc.InferenceServiceStub(channel)
            index = 0
            while not stop.is_set():
                image = gray_png(GRAYS[index % len(GRAYS)])
                reply = stub.Predict(
                    inference_pb2.PredictRequest(model_name="gray", image=image), timeout=10
                )
                answered.add(reply.model_version)
                index += 1
                time.sleep(0.005)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    try:
        yield answered
    finally:
        stop.set()
        thread.join(30)


def gray_info(target: str) -> model_pb2.ModelInfo:
    with grpc.insecure_channel(target) as channel:
        reply = model_pb2_grpc.ModelServiceStub(channel).ListModels(
            model_pb2.ListModelsRequest(model_name="gray"), timeout=10
        )
    return reply.models[0]


def deploy(db: str, artifacts: Path, version: str, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli(
        "deploy", "gray", version, "--gateways", "id=edge-7", "--gate", "shadow",
        "--evidence-requests", "10", "--watch-seconds", "0.3", "--latency-floor-ms", "50",
        *args, "--json",
        db=db, artifacts=artifacts, check=False,
    )  # fmt: skip
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


@contextlib.contextmanager
def pull_gateway(
    tmp_path: Path, publisher: Publisher, db: str, artifacts: Path, env: dict[str, str]
) -> Iterator[tuple[OrchestratorProcess, ServerProcess]]:
    orchestrator = OrchestratorProcess(db, artifacts, *FAST)
    gateway = None
    try:
        gateway = start_pull_gateway(
            gray_root(tmp_path / "models"), orchestrator.target, publisher,
            "--shadow-sample-rate", "1", env=env,
        )  # fmt: skip
        until(lambda: "edge-7" in cli("gateways", db=db, artifacts=artifacts).stdout)
        yield orchestrator, gateway
    finally:
        if gateway is not None:
            gateway.terminate()
        orchestrator.terminate()


def test_pull_gates_halt_a_swapped_candidate_then_activate_a_twin(
    publisher: Publisher, tmp_path: Path
) -> None:
    db, artifacts = f"sqlite:///{tmp_path / 'o.db'}", tmp_path / "artifacts"
    source = active_model(tmp_path)
    twin = edited_linear(source, tmp_path / "src-2" / "model.onnx", requantized)
    publish_model(publisher, db, artifacts, "2", twin)
    with pull_gateway(tmp_path, publisher, db, artifacts, {}) as (_, gateway):
        with grpc.insecure_channel(gateway.target) as channel:
            stub = inference_pb2_grpc.InferenceServiceStub(channel)
            predicted = [
                stub.Predict(
                    inference_pb2.PredictRequest(model_name="gray", image=gray_png(v)), timeout=10
                ).top_k[0].class_id
                for v in GRAYS
            ]  # fmt: skip
        common = max(set(predicted), key=predicted.count)
        other = next(c for c in range(10) if c not in predicted)
        swapped = edited_linear(
            source, tmp_path / "src-3" / "model.onnx", swap_classes(common, other)
        )
        publish_model(publisher, db, artifacts, "3", swapped)

        with traffic(gateway.target) as answered:
            code, halted = deploy(db, artifacts, "3")
            assert code == 1 and halted["state"] == "HALTED", halted
            [target] = halted["targets"]
            assert target["state"] == "GATE_FAILED"
            verdict = target["evidence"]["verdict"]
            assert verdict["agreement"] < 0.97 and verdict["requests"] >= 10
            # The desired state names version 1 again: the gateway ends the shadow.
            until(lambda: gray_info(gateway.target).shadow_version == "", timeout=30)
            code, passed = deploy(db, artifacts, "2")
        assert code == 0 and passed["state"] == "SUCCEEDED", passed["reason"]
        assert passed["targets"][0]["evidence"]["verdict"]["passed"]
        assert "3" not in answered and {"1", "2"} <= answered
        info = gray_info(gateway.target)
        assert info.active_version == "2"
        [candidate] = [v for v in info.versions if v.version == "3"]
        assert candidate.state == types_pb2.MODEL_STATE_STAGED
        assert not candidate.HasField("activated_at")

"""A pull-mode gateway (`edge-server --orchestrator`) as a real process, and what it serves."""

from __future__ import annotations

import json
from pathlib import Path

import grpc

from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc
from tests.support.model_factory import linear_classifier
from tests.support.orchestrator import GRAY_MANIFEST, Publisher, gray_png
from tests.support.processes import ServerProcess


def serving_version(target: str) -> str:
    with grpc.insecure_channel(target) as channel:
        reply = inference_pb2_grpc.InferenceServiceStub(channel).Predict(
            inference_pb2.PredictRequest(model_name="gray", image=gray_png()), timeout=5
        )
    return str(reply.model_version)


def gray_root(root: Path) -> Path:
    linear_classifier(root / "gray" / "1" / "model.onnx", seed=10)
    (root / "gray" / "1" / "manifest.json").write_text(
        json.dumps({"name": "gray", "version": "1", **GRAY_MANIFEST})
    )
    return root


def start_pull_gateway(
    model_root: Path,
    orchestrator: str,
    publisher: Publisher,
    *extra: str,
    env: dict[str, str] | None = None,
) -> ServerProcess:
    gateway = ServerProcess(
        [
            "--model-root",
            str(model_root),
            "--orchestrator",
            orchestrator,
            "--gateway-id",
            "edge-7",
            "--gateway-labels",
            "site=lab,hardware=x86",
            "--trusted-keys",
            str(publisher.public_key),
            "--rollback-window-seconds",
            "0",
            "--inference-workers",
            "1",
            "--preprocess-workers",
            "1",
            *extra,
        ],
        env=env,
    )
    gateway.wait_serving()
    return gateway

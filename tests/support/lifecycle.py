"""Shared pieces for the model lifecycle tests."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc, model_pb2_grpc
from edge_server.app import Gateway
from tests.support.bundles import build_bundle, golden_for, make_keys
from tests.support.gateways import gateway_settings
from tests.support.model_factory import GRAY_PREPROCESSING, linear_classifier

GRAY_MANIFEST: dict[str, Any] = {
    "preprocessing": GRAY_PREPROCESSING,
    "output_kind": "logits",
    "labels": [f"class-{i}" for i in range(10)],
}


def gray_png(value: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), value).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class Harness:
    gateway: Gateway
    channel: grpc.aio.Channel
    models: Any
    inference: Any
    key: Ed25519PrivateKey
    public_key: Path
    workdir: Path

    def gray_bundle(
        self, version: str, seed: int | None = None, golden: bool = True, **manifest: Any
    ) -> Path:
        model = linear_classifier(
            self.workdir / f"src-{version}" / "model.onnx", seed=seed or int(version) * 10
        )
        return build_bundle(
            self.workdir / f"gray-{version}.edgebundle",
            model,
            "gray",
            version,
            self.key,
            {**GRAY_MANIFEST, **manifest},
            golden_for(model) if golden else None,
        )

    async def predict_version(self) -> str:
        reply = await self.inference.Predict(inference_pb2.PredictRequest(image=gray_png()))
        return str(reply.model_version)


async def start_harness(model_root: Path, workdir: Path, **settings: Any) -> Harness:
    key, public = make_keys(workdir / "keys")
    values: dict[str, Any] = {"trusted_keys": (public,), "rollback_window_seconds": 0}
    values.update(settings)
    gateway = Gateway(gateway_settings(model_root, **values))
    await gateway.start()
    await gateway.wait_for_models()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}")
    return Harness(
        gateway,
        channel,
        model_pb2_grpc.ModelServiceStub(channel),
        inference_pb2_grpc.InferenceServiceStub(channel),
        key,
        public,
        workdir,
    )


async def stop_harness(harness: Harness) -> None:
    await harness.channel.close()
    await harness.gateway.stop()


@pytest.fixture
async def harness(model_root: Path, tmp_path: Path) -> AsyncIterator[Harness]:
    running = await start_harness(model_root, tmp_path / "work")
    yield running
    await stop_harness(running)

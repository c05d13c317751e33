"""kill -9 during a push and during activation: after a restart the gateway serves the
old version (or the fully activated new one), with no cloud reachable."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from edge_contracts.proto.edge.v1 import (
    inference_pb2,
    inference_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
)
from tests.support.bundles import build_bundle, make_keys, push
from tests.support.lifecycle import GRAY_MANIFEST, gray_png
from tests.support.model_factory import build_model_root, linear_classifier, slow_classifier
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.slow


def start(root: Path, public_key: Path) -> ServerProcess:
    server = ServerProcess(
        ["--model-root", str(root), "--trusted-keys", str(public_key), "--default-model", "gray",
         "--rollback-window-seconds", "0"]
    )  # fmt: skip
    server.wait_serving()
    return server


async def serving_version(target: str) -> str:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        reply = await stub.Predict(inference_pb2.PredictRequest(image=gray_png()), timeout=10)
        return str(reply.model_version)


async def test_kill_during_push_then_resume(tmp_path: Path) -> None:
    root = build_model_root(tmp_path / "models")
    key, public = make_keys(tmp_path / "keys")
    model = linear_classifier(tmp_path / "src" / "model.onnx", seed=33)
    bundle = build_bundle(tmp_path / "g3.edgebundle", model, "gray", "3", key, GRAY_MANIFEST)
    server = start(root, public)
    try:
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = model_pb2_grpc.ModelServiceStub(channel)
            task = asyncio.ensure_future(push(stub, bundle, chunk_size=1024))
            while not list((root / ".incoming").glob("*.part")) or (
                next((root / ".incoming").glob("*.part")).stat().st_size < 4096
            ):
                await asyncio.sleep(0.005)
            server.proc.kill()  # SIGKILL mid-transfer
            server.proc.wait(10)
            with pytest.raises(grpc.aio.AioRpcError):
                await task
    finally:
        server.kill()
    stored = next((root / ".incoming").glob("*.part")).stat().st_size
    server = start(root, public)
    try:
        assert await serving_version(server.target) == "2"
        async with grpc.aio.insecure_channel(server.target) as channel:
            responses, sent = await push(model_pb2_grpc.ModelServiceStub(channel), bundle)
        assert responses[0].resume_offset == stored
        assert sent == bundle.stat().st_size - stored
        assert responses[-1].stage == model_pb2.UPDATE_STAGE_ACTIVE
        assert await serving_version(server.target) == "3"
    finally:
        server.kill()


@pytest.mark.parametrize("kill_at", ["WARMING_UP", "ACTIVE"])
async def test_kill_during_activation(tmp_path: Path, kill_at: str) -> None:
    root = build_model_root(tmp_path / "models")
    key, public = make_keys(tmp_path / "keys")
    model = slow_classifier(tmp_path / "src" / "model.onnx", rows=8192)  # ~0.3 s warm-up
    bundle = build_bundle(tmp_path / "g3.edgebundle", model, "gray", "3", key, GRAY_MANIFEST)
    server = start(root, public)
    seen: list[str] = []
    try:
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = model_pb2_grpc.ModelServiceStub(channel)
            data = bundle.read_bytes()
            import hashlib

            call = stub.ModelUpdate()
            await call.write(
                model_pb2.ModelUpdateRequest(
                    header=model_pb2.ModelUpdateHeader(
                        model_name="gray",
                        model_version="3",
                        bundle_size=len(data),
                        bundle_sha256=hashlib.sha256(data).hexdigest(),
                    )
                )
            )
            await call.read()
            await call.write(
                model_pb2.ModelUpdateRequest(chunk=model_pb2.ModelUpdateChunk(offset=0, data=data))
            )
            await call.read()
            await call.write(model_pb2.ModelUpdateRequest(commit=model_pb2.ModelUpdateCommit()))
            while True:
                reply = await call.read()
                stage = model_pb2.UpdateStage.Name(reply.stage).removeprefix("UPDATE_STAGE_")
                seen.append(stage)
                if stage == kill_at:
                    server.proc.kill()
                    server.proc.wait(10)
                    break
    finally:
        server.kill()
    assert seen[-1] == kill_at
    leftovers = [p.name for p in (root / "gray").iterdir() if p.name.startswith(".staging")]
    server = start(root, public)
    try:
        expected = "3" if kill_at == "ACTIVE" else "2"
        assert await serving_version(server.target) == expected
        if kill_at != "ACTIVE":
            assert leftovers  # the crash really interrupted an extraction...
            assert not [p for p in (root / "gray").iterdir() if p.name.startswith(".staging")]
            assert not (root / "gray" / "3").exists()  # ...and nothing half-done survives
    finally:
        server.kill()

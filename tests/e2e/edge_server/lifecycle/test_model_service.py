"""ModelService over the wire: listing and activating versions on disk."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import grpc
import pytest
from PIL import Image

from edge_contracts.proto.edge.v1 import (
    inference_pb2,
    inference_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
    types_pb2,
)


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 30).save(buffer, "PNG")
    return buffer.getvalue()


async def test_list_models_describes_versions(channel: grpc.aio.Channel, model_root: Path) -> None:
    stub = model_pb2_grpc.ModelServiceStub(channel)
    listed = await stub.ListModels(model_pb2.ListModelsRequest())
    by_name = {m.name: m for m in listed.models}
    gray = by_name["gray"]
    assert gray.is_default and gray.active_version == "2" and gray.label_count == 10
    assert [v.version for v in gray.versions] == ["1", "2"]
    active = gray.versions[1]
    model_file = model_root / "gray" / "2" / "model.onnx"
    assert active.sha256 == hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert active.state == types_pb2.MODEL_STATE_READY
    assert gray.versions[0].state == types_pb2.MODEL_STATE_UNLOADED
    assert active.size_bytes > model_file.stat().st_size  # model + manifest
    assert [(s.name, list(s.shape)) for s in gray.inputs] == [("input", [-1, 1, 8, 8])]
    assert gray.inputs[0].dtype == types_pb2.DATA_TYPE_FLOAT32
    only = await stub.ListModels(model_pb2.ListModelsRequest(model_name="rgb"))
    assert [m.name for m in only.models] == ["rgb"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListModels(model_pb2.ListModelsRequest(model_name="nope"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_activate_switches_the_answering_version(channel: grpc.aio.Channel) -> None:
    models = model_pb2_grpc.ModelServiceStub(channel)
    inference = inference_pb2_grpc.InferenceServiceStub(channel)
    before = await inference.Predict(inference_pb2.PredictRequest(image=png()))
    assert before.model_version == "2"
    activated = await models.ActivateModel(
        model_pb2.ActivateModelRequest(model_name="gray", model_version="1")
    )
    assert activated.model.active_version == "1"
    after = await inference.Predict(
        inference_pb2.PredictRequest(
            tensor=types_pb2.Tensor(
                dtype=types_pb2.DATA_TYPE_FLOAT32, shape=[1, 1, 8, 8], data=b"\x00" * 256
            )
        )
    )
    assert after.model_version == "1"
    # Version 1 has no manifest: it takes tensors only, and says so.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await inference.Predict(inference_pb2.PredictRequest(image=png()))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no preprocessing section" in (caught.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await models.ActivateModel(
            model_pb2.ActivateModelRequest(model_name="gray", model_version="42")
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND

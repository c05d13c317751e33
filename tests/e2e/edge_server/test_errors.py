"""Every bad input gets its gRPC status and an actionable message; the gateway stays healthy."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc, types_pb2
from edge_server.app import Gateway
from tests.support.gateways import gateway_settings
from tests.support.model_factory import slow_model

Code = grpc.StatusCode


def tensor(array: np.ndarray, dtype: int = types_pb2.DATA_TYPE_FLOAT32) -> types_pb2.Tensor:
    return types_pb2.Tensor(dtype=dtype, shape=list(array.shape), data=array.tobytes())


def png(width: int, height: int, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


GOOD_IMAGE = png(8, 8)
_noise = io.BytesIO()
Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)).save(_noise, "PNG")
NOISE_PNG = _noise.getvalue()
CASES = [
    pytest.param(
        inference_pb2.PredictRequest(image=b"definitely not an image"),
        Code.INVALID_ARGUMENT, "not a decodable", id="corrupt-image"),
    pytest.param(
        inference_pb2.PredictRequest(image=NOISE_PNG[: len(NOISE_PNG) // 2]),
        Code.INVALID_ARGUMENT, "corrupt or truncated", id="truncated-png"),
    pytest.param(
        inference_pb2.PredictRequest(image=b""), Code.INVALID_ARGUMENT, "image is empty",
        id="empty-image"),
    pytest.param(inference_pb2.PredictRequest(), Code.INVALID_ARGUMENT, "no input", id="no-input"),
    pytest.param(
        inference_pb2.PredictRequest(
            model_name="tensoronly", tensor=tensor(np.zeros((1, 2, 4, 5), np.float32))),
        Code.INVALID_ARGUMENT, "does not fit input input: float32[?, 2, 4, 4]", id="wrong-shape"),
    pytest.param(
        inference_pb2.PredictRequest(
            model_name="tensoronly",
            tensor=tensor(np.zeros((1, 2, 4, 4), np.int32), types_pb2.DATA_TYPE_INT32)),
        Code.INVALID_ARGUMENT, "dtype int32 does not match", id="wrong-dtype"),
    pytest.param(
        inference_pb2.PredictRequest(
            model_name="tensoronly",
            tensor=types_pb2.Tensor(dtype=types_pb2.DATA_TYPE_FLOAT32, shape=[1, 2, 4, 4],
                                    data=b"\x00" * 10)),
        Code.INVALID_ARGUMENT, "needs 128", id="short-data"),
    pytest.param(
        inference_pb2.PredictRequest(
            model_name="tensoronly",
            tensor=types_pb2.Tensor(shape=[1], data=b"\x00" * 4)),
        Code.INVALID_ARGUMENT, "dtype 0 is not supported", id="unspecified-dtype"),
    pytest.param(
        inference_pb2.PredictRequest(
            model_name="tensoronly",
            tensor=types_pb2.Tensor(dtype=types_pb2.DATA_TYPE_FLOAT32, shape=[-1, 2], data=b"")),
        Code.INVALID_ARGUMENT, "negative dimension", id="negative-dim"),
    pytest.param(
        inference_pb2.PredictRequest(
            model_name="tensoronly",
            tensor=types_pb2.Tensor(dtype=types_pb2.DATA_TYPE_FLOAT32, shape=[1, 2, 4, 4],
                                    data=b"\x00" * 128, name="pixels")),
        Code.INVALID_ARGUMENT, "tensor name 'pixels' is not an input", id="wrong-input-name"),
    pytest.param(
        inference_pb2.PredictRequest(model_name="tensoronly", image=GOOD_IMAGE),
        Code.INVALID_ARGUMENT, "cannot take images", id="image-to-tensor-only-model"),
    pytest.param(
        inference_pb2.PredictRequest(image=GOOD_IMAGE, top_k=5000),
        Code.INVALID_ARGUMENT, "top_k 5000", id="top-k-too-large"),
    pytest.param(
        inference_pb2.PredictRequest(model_name="nope", image=GOOD_IMAGE),
        Code.NOT_FOUND, "model 'nope' is not served here (models: gray, rgb, tensoronly)",
        id="unknown-model"),
    pytest.param(
        inference_pb2.PredictRequest(model_version="9", image=GOOD_IMAGE),
        Code.NOT_FOUND, "has no version '9' (on disk: 1, 2)", id="unknown-version"),
    pytest.param(
        inference_pb2.PredictRequest(model_version="1", image=GOOD_IMAGE),
        Code.FAILED_PRECONDITION, "version '1' is on disk but not active", id="inactive-version"),
]  # fmt: skip


@pytest.mark.parametrize(("request_message", "code", "fragment"), CASES)
async def test_bad_input_gets_its_status(
    channel: grpc.aio.Channel,
    request_message: inference_pb2.PredictRequest,
    code: grpc.StatusCode,
    fragment: str,
) -> None:
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Predict(request_message)
    assert caught.value.code() == code
    assert fragment in (caught.value.details() or "")
    # The gateway is still healthy and answers a good request.
    ok = await stub.Predict(inference_pb2.PredictRequest(image=GOOD_IMAGE))
    assert ok.model_name == "gray"


async def test_decompression_bomb_is_refused(model_root: Path) -> None:
    gw = Gateway(gateway_settings(model_root, max_image_pixels=1_000_000))
    await gw.start()
    await gw.wait_for_models()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
            stub = inference_pb2_grpc.InferenceServiceStub(ch)
            bomb = png(4000, 4000)  # 16 M pixels in a few kB
            assert len(bomb) < 100_000
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Predict(inference_pb2.PredictRequest(image=bomb))
            assert caught.value.code() == Code.INVALID_ARGUMENT
            assert "over the gateway's limit of 1000000" in (caught.value.details() or "")
    finally:
        await gw.stop()


async def test_message_over_the_limit_is_resource_exhausted(model_root: Path) -> None:
    gw = Gateway(gateway_settings(model_root, max_message_bytes=64 * 1024))
    await gw.start()
    await gw.wait_for_models()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
            stub = inference_pb2_grpc.InferenceServiceStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Predict(inference_pb2.PredictRequest(image=b"\xff" * 100_000))
            assert caught.value.code() == Code.RESOURCE_EXHAUSTED
            ok = await stub.Predict(inference_pb2.PredictRequest(image=GOOD_IMAGE))
            assert ok.model_name == "gray"
    finally:
        await gw.stop()


async def test_loading_model_is_unavailable_then_serves(tmp_path: Path) -> None:
    slow_model(tmp_path / "slow" / "1" / "model.onnx")
    gw = Gateway(gateway_settings(tmp_path, default_model="slow"))
    await gw.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
            stub = inference_pb2_grpc.InferenceServiceStub(ch)
            request = inference_pb2.PredictRequest(tensor=tensor(np.ones((1, 1024), np.float32)))
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Predict(request)
            assert caught.value.code() == Code.UNAVAILABLE
            assert "still loading" in (caught.value.details() or "")
            await gw.wait_for_models()
            assert (await stub.Predict(request)).model_name == "slow"
    finally:
        await gw.stop()


async def test_broken_model_file_fails_alone(model_root: Path) -> None:
    broken = model_root / "broken" / "1"
    broken.mkdir(parents=True)
    (broken / "model.onnx").write_bytes(b"this is not an onnx file")
    gw = Gateway(gateway_settings(model_root))
    await gw.start()
    await gw.wait_for_models()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
            stub = inference_pb2_grpc.InferenceServiceStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Predict(
                    inference_pb2.PredictRequest(model_name="broken", image=GOOD_IMAGE)
                )
            assert caught.value.code() == Code.UNAVAILABLE
            assert "failed to load" in (caught.value.details() or "")
            health = await stub.Health(inference_pb2.HealthRequest())
            broken_health = next(m for m in health.models if m.name == "broken")
            assert broken_health.state == types_pb2.MODEL_STATE_FAILED
            assert "cannot load" in broken_health.last_error
            assert health.status == inference_pb2.SERVING_STATUS_SERVING  # others still serve
    finally:
        await gw.stop()


async def test_full_queue_is_resource_exhausted_with_retry_hint(tmp_path: Path) -> None:
    slow_model(tmp_path / "slow" / "1" / "model.onnx")
    gw = Gateway(gateway_settings(tmp_path, default_model="slow", max_queue_size=1))
    await gw.start()
    await gw.wait_for_models()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
            stub = inference_pb2_grpc.InferenceServiceStub(ch)
            request = inference_pb2.PredictRequest(tensor=tensor(np.ones((1, 1024), np.float32)))
            first = asyncio.ensure_future(stub.Predict(request))
            await asyncio.sleep(0.15)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Predict(request)
            assert caught.value.code() == Code.RESOURCE_EXHAUSTED
            trailers = dict(caught.value.trailing_metadata() or ())
            assert int(trailers["retry-after-ms"]) > 0
            assert (await first).model_name == "slow"
    finally:
        await gw.stop()

"""Predict over a real gRPC server equals onnxruntime run directly on the same input."""

from __future__ import annotations

import io
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc, types_pb2
from edge_server.app import Gateway


def reference_gray(image: Image.Image, size: int = 8) -> np.ndarray:
    """Independent re-statement of the manifest recipe: L, resize, /255, (x-0.5)/0.5."""
    pixels = np.asarray(image.convert("L").resize((size, size), Image.Resampling.BILINEAR))
    x = (pixels.astype(np.float64) / 255.0 - 0.5) / 0.5
    return x.astype(np.float32)[np.newaxis, np.newaxis]


def run_onnx(path: Path, batch: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: batch})[0]


def softmax(v: np.ndarray) -> np.ndarray:
    e = np.exp(v - v.max())
    return e / e.sum()


def png_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def gradient_image(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = 3 if mode == "RGB" else 1
    pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels.squeeze() if channels == 1 else pixels, mode)


async def test_image_predict_matches_onnxruntime(
    channel: grpc.aio.Channel, model_root: Path
) -> None:
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    image = gradient_image(32, 24, "L", seed=3)
    response = await stub.Predict(
        inference_pb2.PredictRequest(image=png_bytes(image), top_k=3, request_id="r-1")
    )
    expected = softmax(run_onnx(model_root / "gray" / "2" / "model.onnx", reference_gray(image))[0])
    assert response.model_name == "gray"
    assert response.model_version == "2"
    assert response.request_id == "r-1"
    assert response.class_id == int(np.argmax(expected))
    assert response.label == f"class-{response.class_id}"
    assert response.confidence == pytest.approx(float(expected.max()), abs=1e-4)
    assert [e.class_id for e in response.top_k] == list(np.argsort(-expected)[:3])
    assert [e.score for e in response.top_k] == pytest.approx(sorted(expected)[::-1][:3], abs=1e-4)
    assert response.timings.total_us >= response.timings.inference_us > 0


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP", "WEBP", "GIF"])
async def test_every_image_format_decodes(channel: grpc.aio.Channel, fmt: str) -> None:
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    image = gradient_image(40, 40, "RGB", seed=5)
    response = await stub.Predict(
        inference_pb2.PredictRequest(model_name="rgb", image=png_bytes(image, fmt))
    )
    assert response.model_name == "rgb"
    assert 0.0 < response.confidence <= 1.0
    assert response.label in {"r", "g", "b", "k"}


async def test_rgb_model_with_dynamic_size_uses_manifest_size(
    channel: grpc.aio.Channel, model_root: Path
) -> None:
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    image = gradient_image(50, 30, "RGB", seed=7)
    response = await stub.Predict(
        inference_pb2.PredictRequest(model_name="rgb", image=png_bytes(image), top_k=4)
    )
    pixels = np.asarray(image.resize((16, 16), Image.Resampling.BILINEAR)).astype(np.float32) / 255
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    batch = ((pixels - mean) / std).transpose(2, 0, 1)[np.newaxis].astype(np.float32)
    expected = softmax(run_onnx(model_root / "rgb" / "1" / "model.onnx", batch)[0])
    assert response.class_id == int(np.argmax(expected))
    assert [e.score for e in response.top_k] == pytest.approx(sorted(expected)[::-1], abs=1e-4)


async def test_tensor_predict_with_raw_output(channel: grpc.aio.Channel, model_root: Path) -> None:
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    batch = np.random.default_rng(1).normal(size=(3, 2, 4, 4)).astype(np.float32)
    response = await stub.Predict(
        inference_pb2.PredictRequest(
            model_name="tensoronly",
            tensor=types_pb2.Tensor(
                dtype=types_pb2.DATA_TYPE_FLOAT32, shape=list(batch.shape), data=batch.tobytes()
            ),
            return_raw_output=True,
        )
    )
    expected = run_onnx(model_root / "tensoronly" / "7" / "model.onnx", batch)
    raw = np.frombuffer(response.raw_output.data, dtype="<f4").reshape(response.raw_output.shape)
    np.testing.assert_allclose(raw, expected, rtol=1e-5, atol=1e-5)
    assert response.raw_output.dtype == types_pb2.DATA_TYPE_FLOAT32
    assert response.model_version == "7"
    assert response.class_id == int(np.argmax(expected[0]))
    assert response.label == ""  # no manifest, no labels
    assert len(response.top_k) == 3  # capped at the number of classes


async def test_predict_stream_survives_a_bad_frame(channel: grpc.aio.Channel) -> None:
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    good = png_bytes(gradient_image(8, 8, "L", seed=1))

    def frame(i: int, data: bytes) -> inference_pb2.PredictStreamRequest:
        return inference_pb2.PredictStreamRequest(
            request=inference_pb2.PredictRequest(image=data, request_id=f"f{i}")
        )

    frames = [frame(i, good) for i in range(5)]
    frames[2] = frame(2, b"not an image at all")
    call = stub.PredictStream(iter(frames))
    answers = [answer async for answer in call]
    assert [a.request_id for a in answers] == [f"f{i}" for i in range(5)]
    assert [a.WhichOneof("result") for a in answers] == [
        "response",
        "response",
        "error",
        "response",
        "response",
    ]
    assert answers[2].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "not a decodable" in answers[2].error.message
    assert await call.code() == grpc.StatusCode.OK


async def test_health_reports_models(channel: grpc.aio.Channel, gateway: Gateway) -> None:
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    health = await stub.Health(inference_pb2.HealthRequest())
    assert health.status == inference_pb2.SERVING_STATUS_SERVING
    assert health.default_model == "gray"
    assert health.uptime_seconds > 0
    by_name = {m.name: m for m in health.models}
    assert set(by_name) == {"gray", "rgb", "tensoronly"}
    assert by_name["gray"].active_version == "2"
    assert list(by_name["gray"].versions_on_disk) == ["1", "2"]
    assert by_name["gray"].state == types_pb2.MODEL_STATE_READY
    assert by_name["gray"].loaded_at.seconds > 0

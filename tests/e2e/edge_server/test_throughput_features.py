"""Dynamic batching, uint8 pixel input, deadlines in the queue and overload accounting."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc, types_pb2
from edge_server.app import Gateway
from edge_server.scheduling.inline_policy import MIN_SAMPLES
from tests.support.gateways import gateway_settings
from tests.support.metrics_text import sample
from tests.support.model_factory import GRAY_PREPROCESSING, slow_classifier, write_manifest


def tensor(array: np.ndarray) -> types_pb2.Tensor:
    codes = {
        np.dtype(np.float32): types_pb2.DATA_TYPE_FLOAT32,
        np.dtype(np.uint8): types_pb2.DATA_TYPE_UINT8,
    }
    return types_pb2.Tensor(dtype=codes[array.dtype], shape=list(array.shape), data=array.tobytes())


async def start(root: Path, **overrides: object) -> Gateway:
    gw = Gateway(gateway_settings(root, **overrides))
    await gw.start()
    await gw.wait_for_models()
    return gw


async def test_concurrent_requests_share_batches_and_get_their_own_rows(model_root: Path) -> None:
    gw = await start(
        model_root,
        max_queue_delay_us=20_000,
        inference_workers=1,
        max_batch_size=8,
        inline_threshold_us=0,
    )
    session = ort.InferenceSession(str(model_root / "tensoronly" / "7" / "model.onnx"))
    rng = np.random.default_rng(3)
    runs = rows_sent = requests_sent = 0
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
            stub = inference_pb2_grpc.InferenceServiceStub(ch)
            # Up to 3 bursts: on a loaded machine the calls of one burst can reach the
            # gateway so far apart that each runs alone; sharing must show in one of them.
            for _ in range(3):
                inputs = [rng.normal(size=(1 + i % 2, 2, 4, 4)).astype(np.float32)
                          for i in range(24)]  # fmt: skip
                replies = await asyncio.gather(*(
                    stub.Predict(inference_pb2.PredictRequest(
                        model_name="tensoronly", tensor=tensor(x), return_raw_output=True))
                    for x in inputs
                ))  # fmt: skip
                for x, reply in zip(inputs, replies, strict=True):
                    raw = np.frombuffer(reply.raw_output.data, "<f4")
                    expected = session.run(None, {"input": x})[0]
                    np.testing.assert_allclose(
                        raw.reshape(reply.raw_output.shape), expected, rtol=1e-5, atol=1e-5
                    )
                text = gw.metrics.render().decode()
                before = runs
                runs = int(sample(text, "edge_batch_size_count", model="tensoronly"))
                rows_sent += sum(x.shape[0] for x in inputs)
                requests_sent += len(inputs)
                assert sample(text, "edge_batch_size_sum", model="tensoronly") == rows_sent
                if runs - before < len(inputs):
                    break
    finally:
        await gw.stop()
    assert runs < requests_sent  # requests really shared runs


async def test_different_shapes_never_share_a_batch(model_root: Path) -> None:
    gw = await start(model_root, max_queue_delay_us=20_000, inference_workers=1)
    session = ort.InferenceSession(str(model_root / "rgb" / "1" / "model.onnx"))
    rng = np.random.default_rng(4)
    inputs = [rng.normal(size=(1, 3, 8 + 4 * (i % 3), 8)).astype(np.float32) for i in range(12)]
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
            stub = inference_pb2_grpc.InferenceServiceStub(ch)
            replies = await asyncio.gather(*(
                stub.Predict(inference_pb2.PredictRequest(
                    model_name="rgb", tensor=tensor(x), return_raw_output=True))
                for x in inputs
            ))  # fmt: skip
    finally:
        await gw.stop()
    for x, reply in zip(inputs, replies, strict=True):
        raw = np.frombuffer(reply.raw_output.data, "<f4").reshape(reply.raw_output.shape)
        np.testing.assert_allclose(raw, session.run(None, {"input": x})[0], rtol=1e-5, atol=1e-5)


async def test_uint8_pixels_skip_encoding(channel: grpc.aio.Channel) -> None:
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    pixels = np.random.default_rng(5).integers(0, 256, (24, 32), dtype=np.uint8)
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, "PNG")
    by_image = await stub.Predict(inference_pb2.PredictRequest(image=png.getvalue(), top_k=3))
    by_pixels = await stub.Predict(inference_pb2.PredictRequest(tensor=tensor(pixels), top_k=3))
    assert by_pixels.class_id == by_image.class_id
    assert [e.score for e in by_pixels.top_k] == pytest.approx([e.score for e in by_image.top_k])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Predict(
            inference_pb2.PredictRequest(tensor=tensor(np.zeros((2, 3, 4, 5), np.uint8)))
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_expired_request_is_dropped_before_inference(tmp_path: Path) -> None:
    slow_classifier(tmp_path / "slow" / "1" / "model.onnx", rows=16384)  # ~0.3 s per run
    gw = await start(tmp_path, default_model="slow", inference_workers=1)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
            stub = inference_pb2_grpc.InferenceServiceStub(ch)
            request = inference_pb2.PredictRequest(
                tensor=tensor(np.zeros((1, 1, 8, 8), np.float32))
            )
            first = asyncio.ensure_future(stub.Predict(request, timeout=10))
            await asyncio.sleep(0.05)
            with pytest.raises(grpc.aio.AioRpcError) as late:
                await stub.Predict(request, timeout=0.1)
            assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            await first
            await asyncio.sleep(0.4)
        stats = gw.predictor.statistics.snapshot("slow")[("slow", "1")]
        assert stats.execution_count == 1  # the expired request never reached session.run
        assert stats.fail.count == 1
    finally:
        await gw.stop()


async def test_tiny_model_runs_inline_once_measured(model_root: Path) -> None:
    gw = await start(model_root, inline_threshold_us=50_000)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
            stub = inference_pb2_grpc.InferenceServiceStub(ch)
            x = np.zeros((1, 2, 4, 4), np.float32)
            request = inference_pb2.PredictRequest(model_name="tensoronly", tensor=tensor(x))
            assert not gw.predictor.runner.inline_policy.inline("tensoronly", "7", False)
            for _ in range(20):
                await stub.Predict(request)
            assert gw.predictor.runner.inline_policy.inline("tensoronly", "7", False)
            reply = await stub.Predict(request)
            assert reply.timings.queue_us < 1000  # no pool hop
            health = await stub.Health(inference_pb2.HealthRequest())
            assert health.status == inference_pb2.SERVING_STATUS_SERVING
    finally:
        await gw.stop()


async def test_overload_beyond_the_core_cap_is_refused_in_grpc(tmp_path: Path) -> None:
    """Past max_concurrent_rpcs the gRPC core refuses calls itself; admitted ones finish."""
    slow_classifier(tmp_path / "slow" / "1" / "model.onnx", rows=4096)
    gw = await start(
        tmp_path, default_model="slow", inference_workers=1, max_queue_size=100,
        max_concurrent_rpcs=6,
    )  # fmt: skip
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
            stub = inference_pb2_grpc.InferenceServiceStub(ch)
            request = inference_pb2.PredictRequest(
                tensor=tensor(np.zeros((1, 1, 8, 8), np.float32))
            )
            calls = [stub.Predict(request, timeout=30) for _ in range(30)]
            results = await asyncio.gather(*calls, return_exceptions=True)
            codes = [r.code() if isinstance(r, grpc.aio.AioRpcError) else "OK" for r in results]
            assert codes.count("OK") >= 1
            assert set(codes) <= {"OK", grpc.StatusCode.RESOURCE_EXHAUSTED}
            assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 24
            details = {r.details() for r in results if isinstance(r, grpc.aio.AioRpcError)}
            assert details == {"Concurrent RPC limit exceeded!"}  # refused by the core
            health = await stub.Health(inference_pb2.HealthRequest())
            assert health.status == inference_pb2.SERVING_STATUS_SERVING
    finally:
        await gw.stop()


def gray_png(seed: int = 5) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (8, 8), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "L").save(out, "PNG")
    return out.getvalue()


async def batched_runs_of_a_burst(tmp_path: Path, **manifest: object) -> tuple[float, bool]:
    """A model with a few ms of CPU per row behind grayscale preprocessing: measured on
    sequential calls, then 8 concurrent ones; (batched runs during the burst, whether
    every answer matched the first)."""
    version = tmp_path / "heavy" / "1"
    slow_classifier(version / "model.onnx", rows=256)
    write_manifest(version, preprocessing=GRAY_PREPROCESSING, **manifest)
    gw = await start(tmp_path, max_queue_delay_us=20_000, max_batch_size=8, inline_threshold_us=0)
    request = inference_pb2.PredictRequest(model_name="heavy", image=gray_png(), top_k=3)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
            stub = inference_pb2_grpc.InferenceServiceStub(ch)
            first = await stub.Predict(request)  # through the decode pool and the batcher
            for _ in range(MIN_SAMPLES):
                await stub.Predict(request)
            before = sample(gw.metrics.render().decode(), "edge_batch_size_count", model="heavy")
            replies = await asyncio.gather(*(stub.Predict(request) for _ in range(8)))
            after = sample(gw.metrics.render().decode(), "edge_batch_size_count", model="heavy")
    finally:
        await gw.stop()
    same = all(
        reply.class_id == first.class_id
        and [t.class_id for t in reply.top_k] == [t.class_id for t in first.top_k]
        and reply.confidence == pytest.approx(first.confidence, abs=1e-5)
        for reply in replies
    )
    return after - before, same


async def test_an_expensive_image_model_decodes_and_runs_in_one_thread(tmp_path: Path) -> None:
    """Past 1 ms of CPU per row, batching saves only per-call overhead on a CPU: the
    gateway decodes and runs each call in one inference thread, off the batcher."""
    batched, same = await batched_runs_of_a_burst(tmp_path)
    assert batched == 0
    assert same


async def test_a_manifest_that_asks_for_batching_keeps_it(tmp_path: Path) -> None:
    batched, same = await batched_runs_of_a_burst(
        tmp_path, batching={"enabled": True, "max_batch_size": 8, "max_queue_delay_us": 20_000}
    )
    assert batched >= 1
    assert same

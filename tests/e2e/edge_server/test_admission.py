"""Deadline-aware admission: a call whose deadline is shorter than the measured work
ahead of it is refused at once (RESOURCE_EXHAUSTED + retry hint), not left to expire
in the queue; a call that can make it is admitted."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc, types_pb2
from edge_server.app import Gateway
from edge_server.scheduling.admission import MAX_HINT_MS, MIN_SAMPLES, DrainEstimator
from tests.support.gateways import gateway_settings
from tests.support.model_factory import slow_classifier


def test_drain_estimate_follows_busy_intervals() -> None:
    drain = DrainEstimator()
    assert drain.wait_s("m", 10) is None  # unmeasured: never refuse on a guess
    assert drain.retry_hint_ms("m", 10) == 50
    for i in range(1, MIN_SAMPLES + 1):  # a busy queue: one completion every 10 ms
        drain.completed("m", received=0.0, now=i * 0.010)
    wait = drain.wait_s("m", 20)
    assert wait == pytest.approx(0.200, rel=0.01)
    assert drain.retry_hint_ms("m", 20) == pytest.approx(100, abs=2)
    assert drain.retry_hint_ms("m", 10**7) == MAX_HINT_MS
    # After an idle minute, a lone request's own time counts, not the idle gap.
    drain.completed("m", received=60.0, now=60.010)
    assert drain.wait_s("m", 1) == pytest.approx(0.010, rel=0.05)


async def test_a_call_that_cannot_meet_its_deadline_is_refused_at_once(tmp_path: Path) -> None:
    slow_classifier(tmp_path / "slow" / "1" / "model.onnx", rows=1024)
    settings = gateway_settings(
        tmp_path, default_model="slow", inference_workers=1, batching=False, inline_threshold_us=0
    )
    gw = Gateway(settings)
    await gw.start()
    await gw.wait_for_models()
    data = np.ones((1, 1, 8, 8), np.float32)
    request = inference_pb2.PredictRequest(
        tensor=types_pb2.Tensor(dtype=types_pb2.DATA_TYPE_FLOAT32, shape=[1, 1, 8, 8],
                                data=data.tobytes())
    )  # fmt: skip
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
            stub = inference_pb2_grpc.InferenceServiceStub(ch)
            started = time.perf_counter()
            for _ in range(MIN_SAMPLES + 4):  # let the gateway measure the model's pace
                await stub.Predict(request, timeout=30)
            per_call = (time.perf_counter() - started) / (MIN_SAMPLES + 4)
            ahead = max(8, int(0.4 / per_call))  # at least ~0.4 s of queued work
            backlog = [
                asyncio.ensure_future(stub.Predict(request, timeout=60)) for _ in range(ahead)
            ]
            while gw.predictor.queue_depth("slow") < ahead:
                await asyncio.sleep(0.005)
            asked = time.perf_counter()
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Predict(request, timeout=0.15)
            waited = time.perf_counter() - asked
            assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "before its deadline" in (refused.value.details() or "")
            assert waited < 0.1, f"refused after {waited * 1000:.0f} ms, not at once"
            trailers = dict(refused.value.trailing_metadata() or ())
            assert int(trailers["retry-after-ms"]) >= 10
            # Enough time for the work ahead: admitted and answered.
            reply = await stub.Predict(request, timeout=60)
            assert reply.model_name == "slow"
            assert all(r.model_name == "slow" for r in await asyncio.gather(*backlog))
    finally:
        await gw.stop()

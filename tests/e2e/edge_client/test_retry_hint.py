"""A real gateway refusing with RESOURCE_EXHAUSTED (its model's queue is full) sends the
retry hint twice over the wire: ``retry-after-ms`` and gRPC's rich error model
(``grpc-status-details-bin``: google.rpc.Status + RetryInfo), on both the edge API and
KServe V2. A plain grpc stub can decode it; edge_client's ResourceExhausted reads it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

from edge_client import AsyncEdgeClient, ResourceExhausted
from edge_client.errors import from_rpc_error
from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc, types_pb2
from edge_contracts.proto.inference import grpc_service_pb2 as v2
from edge_contracts.proto.inference import grpc_service_pb2_grpc as v2_grpc
from edge_server.app import Gateway
from tests.support.gateways import gateway_settings
from tests.support.model_factory import slow_model

DETAILS_KEY = "grpc-status-details-bin"
ROW = np.ones((1, 1024), np.float32)
PREDICT = inference_pb2.PredictRequest(
    tensor=types_pb2.Tensor(dtype=types_pb2.DATA_TYPE_FLOAT32, shape=[1, 1024], data=ROW.tobytes())
)
MODEL_INFER = v2.ModelInferRequest(
    model_name="slow",
    inputs=[v2.ModelInferRequest.InferInputTensor(name="input", datatype="FP32", shape=[1, 1024])],
    raw_input_contents=[ROW.tobytes()],
)


@pytest.fixture
async def full_gateway(tmp_path: Path) -> AsyncIterator[tuple[Gateway, grpc.aio.Channel]]:
    # One admitted call fills the queue (queued or running count): the next is refused.
    slow_model(tmp_path / "slow" / "1" / "model.onnx", repeats=24)
    gw = Gateway(gateway_settings(tmp_path, default_model="slow", max_queue_size=1))
    await gw.start()
    await gw.wait_for_models()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as channel:
            yield gw, channel
    finally:
        await gw.stop()


async def refusal(
    gw: Gateway, channel: grpc.aio.Channel, call: Callable[[], Awaitable[Any]]
) -> BaseException:
    """What ``call`` raises while another call holds the model's only queue slot."""
    holder = asyncio.ensure_future(
        inference_pb2_grpc.InferenceServiceStub(channel).Predict(PREDICT)
    )
    try:
        while gw.predictor.queue_depth("slow") < 1:
            await asyncio.sleep(0.005)
        with pytest.raises(Exception) as caught:
            await call()
        return caught.value
    finally:
        await holder


def retry_info_ms(err: grpc.aio.AioRpcError) -> int:
    """The RetryInfo delay of ``err``, decoded as any gRPC client would (the google.rpc
    messages only; no code of this project), after grpcio-status's consistency checks."""
    details = dict(err.trailing_metadata() or ())[DETAILS_KEY]
    assert isinstance(details, bytes)
    rich = status_pb2.Status.FromString(details)
    assert rich.code == err.code().value[0] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert rich.message == err.details()
    infos = [d for d in rich.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    assert len(infos) == 1
    retry_info = error_details_pb2.RetryInfo()
    infos[0].Unpack(retry_info)
    delay_ms: int = retry_info.retry_delay.ToMilliseconds()
    return delay_ms


def plain_hint_ms(err: grpc.aio.AioRpcError) -> int:
    return int(dict(err.trailing_metadata() or ())["retry-after-ms"])


async def test_a_plain_stub_sees_retry_info_equal_to_retry_after_ms(
    full_gateway: tuple[Gateway, grpc.aio.Channel],
) -> None:
    gw, channel = full_gateway
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    refused = await refusal(gw, channel, lambda: stub.Predict(PREDICT))
    assert isinstance(refused, grpc.aio.AioRpcError)
    assert refused.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert retry_info_ms(refused) == plain_hint_ms(refused) > 0

    # edge_client reads the standard form alone (an old key stripped off the same bytes).
    standard_only = grpc.aio.AioRpcError(
        refused.code(),
        grpc.aio.Metadata(),
        grpc.aio.Metadata((DETAILS_KEY, dict(refused.trailing_metadata() or ())[DETAILS_KEY])),
        refused.details(),
    )
    typed = from_rpc_error(standard_only)
    assert isinstance(typed, ResourceExhausted)
    assert typed.retry_after_ms == retry_info_ms(refused)


async def test_edge_client_reports_the_hint(
    full_gateway: tuple[Gateway, grpc.aio.Channel],
) -> None:
    gw, channel = full_gateway
    async with AsyncEdgeClient(f"127.0.0.1:{gw.grpc_port}") as client:
        refused = await refusal(gw, channel, lambda: client.predict_tensor(ROW))
    assert isinstance(refused, ResourceExhausted)
    assert refused.retry_after_ms is not None and refused.retry_after_ms > 0
    assert ("retry-after-ms", str(refused.retry_after_ms)) in refused.trailing_metadata
    assert DETAILS_KEY in dict(refused.trailing_metadata)


async def test_a_v2_refusal_carries_the_same_hint(
    full_gateway: tuple[Gateway, grpc.aio.Channel],
) -> None:
    gw, channel = full_gateway
    stub = v2_grpc.GRPCInferenceServiceStub(channel)
    refused = await refusal(gw, channel, lambda: stub.ModelInfer(MODEL_INFER))
    assert isinstance(refused, grpc.aio.AioRpcError)
    assert refused.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert retry_info_ms(refused) == plain_hint_ms(refused) > 0

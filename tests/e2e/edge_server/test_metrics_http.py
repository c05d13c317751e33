"""/metrics counters move after real calls; /healthz follows readiness."""

from __future__ import annotations

import asyncio
import contextlib
import io
import urllib.error
import urllib.request

import grpc
from PIL import Image

from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc
from edge_server.app import Gateway
from tests.support.metrics_text import sample


def fetch(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buffer, "PNG")
    return buffer.getvalue()


async def test_metrics_move_after_calls(gateway: Gateway, channel: grpc.aio.Channel) -> None:
    port = gateway.http.port
    status, before = await asyncio.to_thread(fetch, port, "/metrics")
    assert status == 200
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    for _ in range(3):
        await stub.Predict(inference_pb2.PredictRequest(image=png()))
    for bad_model in ("nope", "also-nope"):
        with contextlib.suppress(grpc.aio.AioRpcError):
            await stub.Predict(inference_pb2.PredictRequest(model_name=bad_model, image=png()))
    _, after = await asyncio.to_thread(fetch, port, "/metrics")
    ok = dict(method="Predict", model="gray", version="2", code="OK")
    assert (
        sample(after, "edge_requests_total", **ok) - sample(before, "edge_requests_total", **ok)
        == 3
    )
    missing = dict(method="Predict", model="_unknown", version="", code="NOT_FOUND")
    assert sample(after, "edge_requests_total", **missing) == 2  # one series for any unknown name
    assert sample(after, "edge_stage_latency_seconds_count", model="gray", stage="inference") >= 3
    assert sample(after, "edge_request_latency_seconds_count", method="Predict", model="gray") >= 3
    assert sample(after, "edge_model_info", model="gray", version="2") == 1
    assert sample(after, "edge_model_ready", model="rgb") == 1
    assert sample(after, "edge_model_loads_total", model="gray", result="success") == 1
    assert sample(after, "edge_in_flight_requests", method="Predict") == 0
    assert "nope" not in after


async def test_healthz_and_unknown_paths(gateway: Gateway) -> None:
    port = gateway.http.port
    assert await asyncio.to_thread(fetch, port, "/healthz") == (200, "ok\n")
    status, body = await asyncio.to_thread(fetch, port, "/nothing-here")
    assert status == 404 and "/metrics" in body

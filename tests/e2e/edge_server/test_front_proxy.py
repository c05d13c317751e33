"""deploy/haproxy/edge-gateway.cfg in front of a real gateway: inference calls beyond
EDGE_FRONT_MAXCONN are refused by HAProxy at once with a well-formed gRPC
RESOURCE_EXHAUSTED (+ retry-after-ms), admitted ones are answered, and health and
management calls pass while inference is saturated."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edge_contracts import retry_hint
from edge_contracts.proto.edge.v1 import (
    inference_pb2,
    inference_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
    types_pb2,
)
from edge_server.app import Gateway
from tests.support.gateways import gateway_settings
from tests.support.model_factory import slow_classifier
from tests.support.orchestrator import free_port
from tests.support.paths import REPO

DEPLOY = REPO / "deploy" / "haproxy"
MAXCONN = 2

pytestmark = pytest.mark.skipif(
    shutil.which("haproxy") is None, reason="haproxy is installed by `make test` (apt)"
)


@pytest.fixture
async def fronted(tmp_path: Path) -> AsyncIterator[tuple[str, Gateway]]:
    slow_classifier(tmp_path / "slow" / "1" / "model.onnx", rows=4096)  # ~80 ms per run
    gw = Gateway(
        gateway_settings(tmp_path, default_model="slow", inference_workers=1, batching=False,
                         inline_threshold_us=0)
    )  # fmt: skip
    await gw.start()
    await gw.wait_for_models()
    front = free_port()
    env = {
        **os.environ,
        "EDGE_FRONT_DIR": str(DEPLOY),
        "EDGE_FRONT_BIND": f"127.0.0.1:{front}",
        "EDGE_GATEWAY_ADDR": f"127.0.0.1:{gw.grpc_port}",
        "EDGE_FRONT_MAXCONN": str(MAXCONN),
    }
    proxy = subprocess.Popen(  # noqa: ASYNC220 - a daemon started once, not awaited
        ["haproxy", "-f", str(DEPLOY / "edge-gateway.cfg"), "-db"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proxy.poll() is None, proxy.communicate()[1]
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", front)) == 0:
                    break
            assert time.monotonic() < deadline, "haproxy never listened"
            await asyncio.sleep(0.05)
        yield f"127.0.0.1:{front}", gw
    finally:
        proxy.kill()
        proxy.wait()
        await gw.stop()


def request() -> inference_pb2.PredictRequest:
    data = np.ones((1, 1, 8, 8), np.float32).tobytes()
    return inference_pb2.PredictRequest(
        tensor=types_pb2.Tensor(dtype=types_pb2.DATA_TYPE_FLOAT32, shape=[1, 1, 8, 8], data=data)
    )


async def test_front_refuses_beyond_its_limit_and_passes_the_rest(
    fronted: tuple[str, Gateway],
) -> None:
    target, gw = fronted
    async with grpc.aio.insecure_channel(target) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        assert (await stub.Predict(request(), timeout=30)).model_name == "slow"

        async def one() -> tuple[str, float, dict[str, str | bytes], str]:
            started = time.perf_counter()
            try:
                await stub.Predict(request(), timeout=30)
                return "OK", 0.0, {}, ""
            except grpc.aio.AioRpcError as exc:
                trailers = dict(exc.trailing_metadata() or ())
                elapsed = time.perf_counter() - started
                return exc.code().name, elapsed, trailers, exc.details() or ""

        calls = [asyncio.ensure_future(one()) for _ in range(12)]
        while gw.predictor.queue_depth("slow") < MAXCONN:
            await asyncio.sleep(0.005)
        # Saturated: health and management still go through the front.
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        models = await model_pb2_grpc.ModelServiceStub(channel).ListModels(
            model_pb2.ListModelsRequest(), timeout=5
        )
        assert [m.name for m in models.models] == ["slow"]
        results = await asyncio.gather(*calls)
    refused = [r for r in results if r[0] != "OK"]
    assert refused, "the front admitted everything"
    assert len(results) - len(refused) >= MAXCONN
    for code, seconds, trailers, details in refused:
        assert code == "RESOURCE_EXHAUSTED"
        assert trailers.get("retry-after-ms") == "50"
        # The standard form too: google.rpc.Status with RetryInfo, read first by clients.
        rich = trailers[retry_hint.STATUS_DETAILS_KEY]
        assert retry_hint.retry_after_ms([(retry_hint.STATUS_DETAILS_KEY, rich)]) == 50
        assert "gateway is busy" in details
        assert seconds < 0.5, f"refused after {seconds * 1000:.0f} ms"
    assert gw.predictor.queue_depth("slow") == 0

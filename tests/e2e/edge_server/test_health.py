"""grpc.health.v1 and edge.v1.Health follow the models: NOT_SERVING -> SERVING -> NOT_SERVING."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc
from edge_server.app import Gateway
from tests.support.gateways import gateway_settings
from tests.support.model_factory import slow_model

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def test_watch_goes_not_serving_then_serving_then_not_serving(tmp_path: Path) -> None:
    slow_model(tmp_path / "slow" / "1" / "model.onnx")  # warm-up keeps it LOADING ~0.5 s
    gw = Gateway(gateway_settings(tmp_path, default_model="slow"))
    await gw.start()
    stopped = False
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
            health = health_pb2_grpc.HealthStub(ch)
            edge = inference_pb2_grpc.InferenceServiceStub(ch)
            first = await health.Check(health_pb2.HealthCheckRequest(service=""))
            assert first.status == NOT_SERVING
            model_check = await health.Check(health_pb2.HealthCheckRequest(service="models/slow"))
            assert model_check.status == NOT_SERVING
            report = await edge.Health(inference_pb2.HealthRequest())
            assert report.status == inference_pb2.SERVING_STATUS_NOT_SERVING

            watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
            seen = [(await watch.read()).status]
            while seen[-1] != SERVING:
                seen.append((await asyncio.wait_for(watch.read(), 10)).status)
            assert seen[0] == NOT_SERVING
            for service in ("models/slow", "edge.v1.InferenceService", "edge.v1.ModelService"):
                check = await health.Check(health_pb2.HealthCheckRequest(service=service))
                assert check.status == SERVING, service
            report = await edge.Health(inference_pb2.HealthRequest())
            assert report.status == inference_pb2.SERVING_STATUS_SERVING

            stop = asyncio.ensure_future(gw.stop())
            stopped = True
            after = await asyncio.wait_for(watch.read(), 5)
            assert after.status == NOT_SERVING
            await stop
    finally:
        if not stopped:
            await gw.stop()


async def test_unknown_service_is_not_found(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    try:
        await health.Check(health_pb2.HealthCheckRequest(service="models/nope"))
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.NOT_FOUND
    else:
        raise AssertionError("expected NOT_FOUND")

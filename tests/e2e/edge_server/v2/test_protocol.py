"""V2 service with the gateway's own generated stubs (grpc.aio, in process): readiness
against grpc.health.v1 and edge.v1 Health, streaming details, index filter, reflection."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc
from edge_contracts.proto.inference import grpc_service_pb2 as pb
from edge_contracts.proto.inference import grpc_service_pb2_grpc as pb_grpc
from edge_server.app import Gateway
from tests.support.gateways import gateway_settings
from tests.support.model_factory import slow_model

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
V2 = "inference.GRPCInferenceService"


async def readiness(channel: grpc.aio.Channel, model: str) -> tuple[bool, bool, int, int, int]:
    """ServerReady, ModelReady, and the health answers that must agree with them."""
    v2 = pb_grpc.GRPCInferenceServiceStub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    edge = inference_pb2_grpc.InferenceServiceStub(channel)
    server = (await v2.ServerReady(pb.ServerReadyRequest())).ready
    model_ready = (await v2.ModelReady(pb.ModelReadyRequest(name=model))).ready
    overall = (await health.Check(health_pb2.HealthCheckRequest(service=""))).status
    service = (await health.Check(health_pb2.HealthCheckRequest(service=V2))).status
    report = (await edge.Health(inference_pb2.HealthRequest())).status
    return server, model_ready, overall, service, report


async def settled(
    channel: grpc.aio.Channel, model: str, expected: tuple[bool, bool, int, int, int]
) -> tuple[bool, bool, int, int, int]:
    """readiness() once it equals ``expected`` (health follows model changes in a task)."""
    for _ in range(100):
        seen = await readiness(channel, model)
        if seen == expected:
            break
        await asyncio.sleep(0.02)
    return seen


async def test_readiness_follows_loading_and_shutdown(tmp_path: Path) -> None:
    slow_model(tmp_path / "slow" / "1" / "model.onnx")  # warm-up keeps it LOADING ~0.5 s
    gw = Gateway(gateway_settings(tmp_path, default_model="slow"))
    await gw.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
            v2 = pb_grpc.GRPCInferenceServiceStub(ch)
            assert (await v2.ServerLive(pb.ServerLiveRequest())).live
            loading = await readiness(ch, "slow")
            assert loading == (
                False,
                False,
                NOT_SERVING,
                NOT_SERVING,
                inference_pb2.SERVING_STATUS_NOT_SERVING,
            )
            await gw.wait_for_models()
            expected = (True, True, SERVING, SERVING, inference_pb2.SERVING_STATUS_SERVING)
            assert await settled(ch, "slow", expected) == expected
            # The first step of Gateway.stop(), with the server still answering:
            gw.info.shutting_down = True
            await gw.health.shutting_down()
            draining = await readiness(ch, "slow")
            assert draining == (
                False,
                False,
                NOT_SERVING,
                NOT_SERVING,
                inference_pb2.SERVING_STATUS_NOT_SERVING,
            )
            assert (await v2.ServerLive(pb.ServerLiveRequest())).live
    finally:
        await gw.stop()


async def test_unload_all_turns_health_not_serving(channel: grpc.aio.Channel) -> None:
    v2 = pb_grpc.GRPCInferenceServiceStub(channel)
    for name in ("gray", "rgb", "tensoronly"):
        await v2.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name=name))
    down = (False, False, NOT_SERVING, NOT_SERVING, inference_pb2.SERVING_STATUS_NOT_SERVING)
    assert await settled(channel, "gray", down) == down
    await v2.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="gray"))
    up = (True, True, SERVING, SERVING, inference_pb2.SERVING_STATUS_SERVING)
    assert await settled(channel, "gray", up) == up


async def test_index_ready_filter_and_load_by_version_parameter(channel: grpc.aio.Channel) -> None:
    v2 = pb_grpc.GRPCInferenceServiceStub(channel)
    ready = await v2.RepositoryIndex(pb.RepositoryIndexRequest(ready=True))
    assert [(m.name, m.version, m.state) for m in ready.models] == [
        ("gray", "2", "READY"),
        ("rgb", "1", "READY"),
        ("tensoronly", "7", "READY"),
    ]
    await v2.RepositoryModelLoad(
        pb.RepositoryModelLoadRequest(
            model_name="gray", parameters={"version": pb.ModelRepositoryParameter(string_param="1")}
        )
    )
    assert (await v2.ModelReady(pb.ModelReadyRequest(name="gray", version="1"))).ready
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await v2.RepositoryModelUnload(
            pb.RepositoryModelUnloadRequest(
                model_name="gray",
                parameters={"force": pb.ModelRepositoryParameter(bool_param=True)},
            )
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def infer_request(request_id: str, shape: tuple[int, ...]) -> pb.ModelInferRequest:
    x = np.ones(shape, np.float32)
    return pb.ModelInferRequest(
        model_name="tensoronly",
        id=request_id,
        inputs=[pb.ModelInferRequest.InferInputTensor(name="input", datatype="FP32", shape=shape)],
        raw_input_contents=[x.tobytes()],
    )


async def test_stream_error_keeps_the_id_and_the_stream_open(
    channel: grpc.aio.Channel, gateway: Gateway
) -> None:
    v2 = pb_grpc.GRPCInferenceServiceStub(channel)
    requests = [
        infer_request("a", (1, 2, 4, 4)),
        infer_request("b", (1, 3, 4, 4)),
        infer_request("c", (2, 2, 4, 4)),
    ]
    call = v2.ModelStreamInfer(iter(requests))
    answers = [answer async for answer in call]
    assert [a.infer_response.id for a in answers] == ["a", "b", "c"]
    assert [bool(a.error_message) for a in answers] == [False, True, False]
    assert answers[1].error_message.startswith("INVALID_ARGUMENT: input 'input' has shape")
    assert answers[2].infer_response.outputs[0].shape == [2, 3]
    assert len(answers[2].infer_response.raw_output_contents) == 1
    assert await call.code() == grpc.StatusCode.OK
    metrics = gateway.metrics.render().decode()
    assert (
        'edge_requests_total{code="OK",method="ModelStreamInfer",model="tensoronly",version="7"}'
        " 2.0" in metrics
    )


async def test_statistics_filters(channel: grpc.aio.Channel) -> None:
    v2 = pb_grpc.GRPCInferenceServiceStub(channel)
    await v2.ModelInfer(infer_request("x", (1, 2, 4, 4)))
    one = await v2.ModelStatistics(pb.ModelStatisticsRequest(name="tensoronly", version="7"))
    assert [(s.name, s.version, s.inference_count) for s in one.model_stats] == [
        ("tensoronly", "7", 1)
    ]
    idle = await v2.ModelStatistics(pb.ModelStatisticsRequest(name="gray", version="1"))
    assert [(s.version, s.execution_count) for s in idle.model_stats] == [("1", 0)]
    for name, version in (("nope", ""), ("gray", "9")):
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await v2.ModelStatistics(pb.ModelStatisticsRequest(name=name, version=version))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_describes_the_v2_service(channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def ask(
        request: reflection_pb2.ServerReflectionRequest,
    ) -> reflection_pb2.ServerReflectionResponse:
        call = stub.ServerReflectionInfo(iter([request]))
        return await call.read()  # type: ignore[no-any-return]

    listed = await ask(reflection_pb2.ServerReflectionRequest(list_services=""))
    assert V2 in {s.name for s in listed.list_services_response.service}
    found = await ask(reflection_pb2.ServerReflectionRequest(file_containing_symbol=V2))
    from google.protobuf import descriptor_pb2

    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in found.file_descriptor_response.file_descriptor_proto
    ]
    names = {f.name for f in files}
    assert {"inference/grpc_service.proto", "inference/model_config.proto"} <= names
    service = next(s for f in files for s in f.service if s.name == "GRPCInferenceService")
    assert [m.name for m in service.method] == [
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
        "ModelStreamInfer",
        "ModelConfig",
        "ModelStatistics",
        "RepositoryIndex",
        "RepositoryModelLoad",
        "RepositoryModelUnload",
        "SystemSharedMemoryStatus",
        "SystemSharedMemoryRegister",
        "SystemSharedMemoryUnregister",
    ]

"""Server reflection answers as both grpc.reflection.v1alpha and grpc.reflection.v1."""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

EXPECTED_SERVICES = {
    "edge.v1.InferenceService",
    "edge.v1.ModelService",
    "grpc.health.v1.Health",
    "inference.GRPCInferenceService",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
}


def test_v1alpha_lists_and_describes(gateway_sync_target: str) -> None:
    with grpc.insecure_channel(gateway_sync_target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        assert set(database.get_services()) == EXPECTED_SERVICES
        file_proto = database.FindFileContainingSymbol("edge.v1.InferenceService")
        service = next(s for s in file_proto.service if s.name == "InferenceService")
        assert [m.name for m in service.method] == ["Predict", "PredictStream", "Health"]


def _v1_call(
    target: str, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    """Call the v1 method path with v1alpha messages: the two are wire-identical."""
    with grpc.insecure_channel(target) as channel:
        call = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        return next(iter(call(iter([request]), timeout=5)))


def test_v1_lists_services_and_resolves_symbols(gateway_sync_target: str) -> None:
    listed = _v1_call(gateway_sync_target, reflection_pb2.ServerReflectionRequest(list_services=""))
    assert {s.name for s in listed.list_services_response.service} == EXPECTED_SERVICES
    found = _v1_call(
        gateway_sync_target,
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="edge.v1.PredictRequest"),
    )
    names = set()
    for raw in found.file_descriptor_response.file_descriptor_proto:
        proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
        names.add(proto.name)
    assert "edge/v1/inference.proto" in names
    v1_self = _v1_call(
        gateway_sync_target,
        reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="grpc.reflection.v1.ServerReflection"
        ),
    )
    proto = descriptor_pb2.FileDescriptorProto.FromString(
        v1_self.file_descriptor_response.file_descriptor_proto[0]
    )
    assert proto.package == "grpc.reflection.v1"


def test_reflection_v1alpha_stub_works(gateway_sync_target: str) -> None:
    with grpc.insecure_channel(gateway_sync_target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        assert "edge.v1.ModelService" in {
            s.name for s in next(iter(responses)).list_services_response.service
        }

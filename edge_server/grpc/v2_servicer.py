"""inference.GRPCInferenceService: the Open Inference Protocol (KServe V2) over the domain.

Conversions live in v2_tensors (tensors) and v2_converters (everything else); errors
leave through the error boundary (edge_contracts/rpc_boundary.py), as for edge.v1. ModelInfer and
ModelStreamInfer record the same request metrics as Predict.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from edge_contracts.proto.inference import grpc_service_pb2 as pb
from edge_contracts.proto.inference import grpc_service_pb2_grpc as pb_grpc
from edge_contracts.rpc_boundary import rpc_boundary
from edge_contracts.status import status_for
from edge_server.errors import NotEnabled
from edge_server.grpc import v2_converters, v2_tensors
from edge_server.grpc.inference_servicer import STREAM_WINDOW, GatewayInfo
from edge_server.grpc.ordered_stream import answer_in_order
from edge_server.grpc.shared_memory_access import SharedMemoryAccess
from edge_server.inference.request_metrics import observed
from edge_server.metrics import GatewayMetrics
from edge_server.v2.model_repository import ModelRepository
from edge_server.v2.tensor_inference import TensorInference


class V2Servicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(
        self,
        inference: TensorInference,
        repository: ModelRepository,
        metrics: GatewayMetrics,
        info: GatewayInfo,
        server_ready: Callable[[], bool],
        shared_memory: SharedMemoryAccess,
        repository_writes: bool = True,
    ) -> None:
        self._inference = inference
        self._repository = repository
        self._metrics = metrics
        self._info = info
        self._server_ready = server_ready
        self._repository_writes = repository_writes
        self._shared_memory = shared_memory

    async def _infer(
        self, method: str, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        """One inference with its metrics (as Predict's); a failure is raised."""
        model = self._metrics.model_label(
            request.model_name or self._repository.default_model,
            self._repository.served_names(),
        )
        time_remaining = context.time_remaining()
        regions = self._shared_memory.for_caller(context)
        result = await observed(
            self._metrics,
            method,
            model,
            time_remaining,
            lambda: self._inference.infer(
                v2_tensors.decode_request(request, time_remaining, regions)
            ),
        )
        raw = v2_tensors.wants_raw_outputs(request)
        refs = v2_tensors.output_refs(request)
        return v2_tensors.encode_response(result, request.id, raw, refs, regions)

    def _check_writes(self, method: str) -> None:
        """With a separate management port, repository changes are served there only."""
        if not self._repository_writes:
            raise NotEnabled(
                f"{method} is served on the gateway's management port (--management-port), "
                "not on the inference port",
            )

    @rpc_boundary
    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @rpc_boundary
    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._server_ready())

    @rpc_boundary
    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(
            ready=self._repository.model_ready(request.name, request.version)
        )

    @rpc_boundary
    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(
            name=v2_converters.SERVER_NAME,
            version=self._info.software_version,
            extensions=[*v2_converters.EXTENSIONS, *self._shared_memory.extensions],
        )

    @rpc_boundary
    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        model = self._repository.serving(request.name, request.version)
        versions = self._repository.versions(model.name)
        return v2_converters.to_model_metadata(model, versions)

    @rpc_boundary
    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        return await self._infer("ModelInfer", request, context)

    @rpc_boundary
    async def ModelStreamInfer(
        self,
        request_iterator: AsyncIterator[pb.ModelInferRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        async def answer(request: pb.ModelInferRequest) -> pb.ModelStreamInferResponse:
            try:
                result = await self._infer("ModelStreamInfer", request, context)
            except Exception as exc:
                # A request's failure is reported inside the stream, which goes on (by design).
                status = status_for(exc)
                return pb.ModelStreamInferResponse(
                    error_message=f"{status.code.name}: {status.message}",
                    infer_response=pb.ModelInferResponse(
                        model_name=request.model_name,
                        model_version=request.model_version,
                        id=request.id,
                    ),
                )
            return pb.ModelStreamInferResponse(infer_response=result)

        async for response in answer_in_order(request_iterator, answer, STREAM_WINDOW):
            yield response

    @rpc_boundary
    async def ModelConfig(
        self, request: pb.ModelConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelConfigResponse:
        model = self._repository.serving(request.name, request.version)
        return pb.ModelConfigResponse(config=v2_converters.to_model_config(model))

    @rpc_boundary
    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelStatisticsResponse:
        entries = self._repository.statistics(request.name, request.version)
        return pb.ModelStatisticsResponse(
            model_stats=[v2_converters.to_model_statistics(*entry) for entry in entries]
        )

    @rpc_boundary
    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryIndexResponse:
        return v2_converters.to_index(self._repository.index(ready_only=request.ready))

    @rpc_boundary
    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryModelLoadResponse:
        self._check_writes("RepositoryModelLoad")
        version = v2_converters.load_version(request.parameters)
        await self._repository.load(request.model_name, version)
        return pb.RepositoryModelLoadResponse()

    @rpc_boundary
    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryModelUnloadResponse:
        self._check_writes("RepositoryModelUnload")
        v2_converters.check_unload_parameters(request.parameters)
        self._repository.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()

    @rpc_boundary
    async def SystemSharedMemoryStatus(
        self, request: pb.SystemSharedMemoryStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.SystemSharedMemoryStatusResponse:
        regions = self._shared_memory.for_caller(context)().status(request.name)
        return v2_converters.to_shared_memory_status(regions)

    @rpc_boundary
    async def SystemSharedMemoryRegister(
        self, request: pb.SystemSharedMemoryRegisterRequest, context: grpc.aio.ServicerContext
    ) -> pb.SystemSharedMemoryRegisterResponse:
        # Runs on the loop: an open, an fstat and a small locked file rename.
        self._shared_memory.for_caller(context)().register(
            request.name, request.key, request.offset, request.byte_size
        )
        return pb.SystemSharedMemoryRegisterResponse()

    @rpc_boundary
    async def SystemSharedMemoryUnregister(
        self, request: pb.SystemSharedMemoryUnregisterRequest, context: grpc.aio.ServicerContext
    ) -> pb.SystemSharedMemoryUnregisterResponse:
        self._shared_memory.for_caller(context)().unregister(request.name)
        return pb.SystemSharedMemoryUnregisterResponse()


def repository_handler(servicer: V2Servicer) -> grpc.GenericRpcHandler:
    """The repository RPCs alone, for a management port apart from inference."""

    def unary(method: Any, request: Any) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(
            method,
            request_deserializer=request.FromString,
            response_serializer=lambda response: response.SerializeToString(),
        )

    handlers = {
        "RepositoryIndex": unary(servicer.RepositoryIndex, pb.RepositoryIndexRequest),
        "RepositoryModelLoad": unary(servicer.RepositoryModelLoad, pb.RepositoryModelLoadRequest),
        "RepositoryModelUnload": unary(
            servicer.RepositoryModelUnload, pb.RepositoryModelUnloadRequest
        ),
    }
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
    return grpc.method_handlers_generic_handler(service, handlers)

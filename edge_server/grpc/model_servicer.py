"""edge.v1.ModelService: the management plane (listing and activation)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from edge.v1 import model_pb2, model_pb2_grpc, types_pb2
from edge_server.domain.model_manager import ModelManager, ModelSlot
from edge_server.domain.model_store import VersionOnDisk
from edge_server.errors import ModelNotFound
from edge_server.grpc import converters
from edge_server.grpc.status_mapping import abort_with, status_for


def _version_info(slot: ModelSlot, found: VersionOnDisk) -> model_pb2.ModelVersionInfo:
    active = slot.active
    is_active = active is not None and active.version == found.version
    info = model_pb2.ModelVersionInfo(
        version=found.version,
        state=types_pb2.MODEL_STATE_READY if is_active else types_pb2.MODEL_STATE_UNLOADED,
        sha256=found.sha256(),
        size_bytes=found.size_bytes(),
        source="disk",
    )
    if active is not None and is_active:
        info.activated_at.CopyFrom(converters.timestamp(active.loaded_at))
    return info


class ModelServicer(model_pb2_grpc.ModelServiceServicer):
    def __init__(self, models: ModelManager) -> None:
        self._models = models

    def _model_info(self, slot: ModelSlot) -> model_pb2.ModelInfo:
        versions = [_version_info(slot, v) for v in self._models.store.versions(slot.name)]
        return converters.to_model_info(
            slot, versions, is_default=slot.name == self._models.default_model
        )

    async def ListModels(
        self, request: model_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> model_pb2.ListModelsResponse:
        slots = self._models.slots()
        if request.model_name:
            slots = [s for s in slots if s.name == request.model_name]
            if not slots:
                await abort_with(
                    context,
                    status_for(ModelNotFound(f"model {request.model_name!r} is not served")),
                )
        return model_pb2.ListModelsResponse(models=[self._model_info(s) for s in slots])

    async def ActivateModel(
        self, request: model_pb2.ActivateModelRequest, context: grpc.aio.ServicerContext
    ) -> model_pb2.ActivateModelResponse:
        found = self._models.store.find(request.model_name, request.model_version)
        try:
            if found is None:
                raise ModelNotFound(
                    f"model {request.model_name!r} has no version {request.model_version!r} on disk"
                )
            await self._models.activate(found)
        except Exception as exc:
            await abort_with(context, status_for(exc))
        slot = self._models.slot(request.model_name)
        assert slot is not None
        return model_pb2.ActivateModelResponse(model=self._model_info(slot))

    async def RollbackModel(
        self, request: model_pb2.RollbackModelRequest, context: grpc.aio.ServicerContext
    ) -> model_pb2.RollbackModelResponse:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "RollbackModel arrives with the model lifecycle work; use ActivateModel with the "
            "previous version meanwhile",
        )
        raise AssertionError("unreachable")

    async def ModelUpdate(
        self,
        request_iterator: AsyncIterator[model_pb2.ModelUpdateRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[model_pb2.ModelUpdateResponse]:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "ModelUpdate (bundle push) arrives with the model lifecycle work; copy the model "
            "folder into the model root and call ActivateModel meanwhile",
        )
        yield model_pb2.ModelUpdateResponse()  # pragma: no cover - makes this a generator

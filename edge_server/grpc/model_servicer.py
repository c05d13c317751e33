"""edge.v1.ModelService: the management plane (push, list, activate, roll back)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from edge_contracts.proto.edge.v1 import model_pb2, model_pb2_grpc
from edge_contracts.rpc_boundary import rpc_boundary
from edge_server.catalogue.serving import ModelSlot, ServingCatalogue
from edge_server.errors import DeadlineExpired, InvalidInput, ModelNotFound
from edge_server.grpc.lifecycle_converters import (
    to_model_info_full,
    to_update_header,
    to_update_response,
    utc_offset_seconds,
)
from edge_server.inference.shadow import ShadowRunner
from edge_server.lifecycle.activation import VersionActivator
from edge_server.lifecycle.ledger import Ledger
from edge_server.lifecycle.updater import Mode, ModelUpdater, Progress, Stage


class ModelServicer(model_pb2_grpc.ModelServiceServicer):
    def __init__(
        self,
        models: ServingCatalogue,
        activator: VersionActivator,
        updater: ModelUpdater,
        ledger: Ledger,
        shadow: ShadowRunner | None,
        idle_timeout_seconds: float,
    ) -> None:
        self._models = models
        self._activator = activator
        self._updater = updater
        self._ledger = ledger
        self._shadow = shadow
        self._idle_timeout = idle_timeout_seconds

    def _info(self, name: str) -> model_pb2.ModelInfo:
        slot = self._models.slot(name)
        if slot is None:
            if not self._ledger.has(name):
                known = ", ".join(self._known_names()) or "none"
                raise ModelNotFound(f"model {name!r} is not on this gateway (models: {known})")
            # Received but never served (e.g. every push of it was rejected): nothing is
            # loaded, its versions and their reasons come from the ledger.
            slot = ModelSlot(name)
        return to_model_info_full(slot, self._models, self._ledger, self._shadow)

    def _known_names(self) -> list[str]:
        served = {s.name for s in self._models.slots()}
        return sorted(served.union(self._ledger.model_names()))

    @rpc_boundary
    async def ListModels(
        self, request: model_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> model_pb2.ListModelsResponse:
        names = [request.model_name] if request.model_name else self._known_names()
        return model_pb2.ListModelsResponse(
            models=[self._info(n) for n in names], utc_offset_seconds=utc_offset_seconds()
        )

    @rpc_boundary
    async def ActivateModel(
        self, request: model_pb2.ActivateModelRequest, context: grpc.aio.ServicerContext
    ) -> model_pb2.ActivateModelResponse:
        await self._activator.activate_on_disk(request.model_name, request.model_version)
        return model_pb2.ActivateModelResponse(model=self._info(request.model_name))

    @rpc_boundary
    async def RollbackModel(
        self, request: model_pb2.RollbackModelRequest, context: grpc.aio.ServicerContext
    ) -> model_pb2.RollbackModelResponse:
        await self._activator.rollback(
            request.model_name, request.reason or "manual rollback (RollbackModel)"
        )
        return model_pb2.RollbackModelResponse(model=self._info(request.model_name))

    @rpc_boundary
    async def EndShadow(
        self, request: model_pb2.EndShadowRequest, context: grpc.aio.ServicerContext
    ) -> model_pb2.EndShadowResponse:
        self._activator.end_shadow(
            request.model_name, request.model_version, request.reason or "shadow ended (EndShadow)"
        )
        return model_pb2.EndShadowResponse(model=self._info(request.model_name))

    @rpc_boundary
    async def ModelUpdate(
        self,
        request_iterator: AsyncIterator[model_pb2.ModelUpdateRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[model_pb2.ModelUpdateResponse]:
        messages = request_iterator.__aiter__()

        async def receive() -> model_pb2.ModelUpdateRequest | None:
            try:
                return await asyncio.wait_for(messages.__anext__(), self._idle_timeout)
            except StopAsyncIteration:
                return None
            except TimeoutError:
                raise DeadlineExpired(
                    f"no ModelUpdate message for {self._idle_timeout:g} s; the bytes received "
                    "so far are kept: push again to resume"
                ) from None

        first = await receive()
        if first is None or first.WhichOneof("message") != "header":
            raise InvalidInput("a ModelUpdate stream must start with a header message")
        header = to_update_header(first.header)
        with self._updater.session(header) as session:
            known = session.existing_outcome()
            if known is not None:
                if known.stage is Stage.STAGED and header.mode is Mode.SHADOW:
                    # Held verified but inert (a gate that failed, a stage-only rollout):
                    # shadow the copy on disk instead of asking for the bytes again.
                    await self._activator.shadow_on_disk(header.name, header.version)
                    known = Progress(Stage.SHADOW, header.size, "already on the gateway; shadowing")
                yield to_update_response(known, header, header.size)
                return
            yield to_update_response(
                Progress(Stage.RECEIVING, session.resume_offset), header, session.resume_offset
            )
            while (message := await receive()) is not None:
                kind = message.WhichOneof("message")
                if kind == "chunk":
                    offset = session.append(message.chunk.offset, message.chunk.data)
                    yield to_update_response(Progress(Stage.RECEIVING, offset), header, offset)
                elif kind == "commit":
                    async for progress in session.commit():
                        yield to_update_response(progress, header, session.resume_offset)
                    return
                else:
                    raise InvalidInput("only chunks and one commit may follow the header")

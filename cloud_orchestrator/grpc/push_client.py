"""A gateway's management plane (edge.v1.ModelService) as the rollout runner sees it.

``push`` streams a bundle over ModelUpdate: header, chunks of at most 1 MiB from the
offset the gateway already holds for this exact bundle, commit; then it reads the
stages until a verdict. A broken stream (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED
while another update runs...) is retried with exponential backoff and jitter, and
only the missing bytes are sent again. Every call has a deadline; failures become
``GatewayError`` with the gateway's own message.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import grpc

from cloud_orchestrator.errors import GatewayError
from cloud_orchestrator.fleet import GatewayInfo
from cloud_orchestrator.gateway_control import BundleRef, BytesCallback, ModelStatus, PushOutcome
from edge_contracts.proto.edge.v1 import model_pb2, model_pb2_grpc, types_pb2

__all__ = ["CHUNK_BYTES", "GrpcGatewayControl", "connect"]

CHUNK_BYTES = 1 << 20
_FINAL = {
    model_pb2.UPDATE_STAGE_ACTIVE: "ACTIVE",
    model_pb2.UPDATE_STAGE_STAGED: "STAGED",
    model_pb2.UPDATE_STAGE_SHADOW: "SHADOW",
    model_pb2.UPDATE_STAGE_REJECTED: "REJECTED",
}
_RESUMABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.INTERNAL,
}


def _version_state(state: types_pb2.ModelState.ValueType) -> str:
    return str(types_pb2.ModelState.Name(state)).removeprefix("MODEL_STATE_")


class GrpcGatewayControl:
    def __init__(
        self,
        address: str,
        token: str = "",
        ca_pem: str = "",
        *,
        call_timeout: float = 15.0,
        push_timeout: float = 900.0,
        max_attempts: int = 6,
        backoff_seconds: float = 0.25,
    ) -> None:
        self.address = address
        options = [
            ("grpc.max_send_message_length", 4 * CHUNK_BYTES),
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            ("grpc.keepalive_time_ms", 20_000),
        ]
        if ca_pem:
            credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem.encode())
            self._channel = grpc.aio.secure_channel(address, credentials, options=options)
        else:
            self._channel = grpc.aio.insecure_channel(address, options=options)
        self._stub = model_pb2_grpc.ModelServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        self._call_timeout = call_timeout
        self._push_timeout = push_timeout
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds

    def _error(self, what: str, err: grpc.aio.AioRpcError) -> GatewayError:
        return GatewayError(f"gateway {self.address}: {what}: {err.code().name}: {err.details()}")

    async def model_status(self, model: str, version: str = "") -> ModelStatus | None:
        try:
            reply = await self._stub.ListModels(
                model_pb2.ListModelsRequest(model_name=model),
                timeout=self._call_timeout,
                metadata=self._metadata,
            )
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise self._error("ListModels", err) from None
        if not reply.models:
            return None
        info = reply.models[0]
        state, reason = "", ""
        for entry in info.versions:
            if entry.version == version:
                state, reason = _version_state(entry.state), entry.reason
        return ModelStatus(
            active_version=info.active_version,
            ready=info.state == types_pb2.MODEL_STATE_READY,
            version_state=state,
            version_reason=reason,
        )

    async def push(
        self, bundle: BundleRef, source: str, on_bytes: BytesCallback | None = None
    ) -> PushOutcome:
        header = model_pb2.ModelUpdateHeader(
            model_name=bundle.model,
            model_version=bundle.version,
            bundle_size=bundle.size,
            bundle_sha256=bundle.sha256,
            activation_mode=model_pb2.ACTIVATION_MODE_ACTIVATE,
            source=source,
        )
        sent = [0]
        for attempt in range(1, self._max_attempts + 1):
            try:
                stage, reason = await self._push_once(header, bundle, sent, on_bytes)
                return PushOutcome(stage, reason, sent[0], attempt)
            except grpc.aio.AioRpcError as err:
                if err.code() not in _RESUMABLE or attempt == self._max_attempts:
                    raise self._error(f"ModelUpdate (attempt {attempt})", err) from None
                delay = min(10.0, self._backoff * 2 ** (attempt - 1))
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
        raise AssertionError("unreachable")

    async def _push_once(
        self,
        header: model_pb2.ModelUpdateHeader,
        bundle: BundleRef,
        sent: list[int],
        on_bytes: BytesCallback | None,
    ) -> tuple[str, str]:
        call: Any = self._stub.ModelUpdate(metadata=self._metadata, timeout=self._push_timeout)
        try:
            await call.write(model_pb2.ModelUpdateRequest(header=header))
            first = await call.read()
            if first is grpc.aio.EOF:
                raise GatewayError(f"gateway {self.address} closed ModelUpdate without answering")
            if first.stage in _FINAL:
                await call.done_writing()
                return _FINAL[first.stage], first.reason
            offset = int(first.resume_offset)
            if on_bytes is not None:
                on_bytes(offset, bundle.size)
            with bundle.path.open("rb") as handle:
                handle.seek(offset)
                while block := handle.read(CHUNK_BYTES):
                    chunk = model_pb2.ModelUpdateChunk(offset=offset, data=block)
                    await call.write(model_pb2.ModelUpdateRequest(chunk=chunk))
                    offset += len(block)
                    sent[0] += len(block)
                    reply = await call.read()
                    if on_bytes is not None and reply is not grpc.aio.EOF:
                        on_bytes(int(reply.resume_offset), bundle.size)
            await call.write(model_pb2.ModelUpdateRequest(commit=model_pb2.ModelUpdateCommit()))
            await call.done_writing()
            while (reply := await call.read()) is not grpc.aio.EOF:
                if reply.stage in _FINAL:
                    return _FINAL[reply.stage], reply.reason
            raise GatewayError(f"gateway {self.address} ended ModelUpdate without a verdict")
        finally:
            call.cancel()

    async def rollback(self, model: str, reason: str) -> str:
        try:
            reply = await self._stub.RollbackModel(
                model_pb2.RollbackModelRequest(model_name=model, reason=reason),
                timeout=self._call_timeout,
                metadata=self._metadata,
            )
        except grpc.aio.AioRpcError as err:
            raise self._error("RollbackModel", err) from None
        return str(reply.model.active_version)

    async def activate(self, model: str, version: str) -> None:
        try:
            await self._stub.ActivateModel(
                model_pb2.ActivateModelRequest(model_name=model, model_version=version),
                timeout=self._call_timeout,
                metadata=self._metadata,
            )
        except grpc.aio.AioRpcError as err:
            raise self._error("ActivateModel", err) from None

    async def close(self) -> None:
        await self._channel.close()


def connect(gateway: GatewayInfo) -> GrpcGatewayControl:
    """The ``Connect`` function the rollout runner uses in production."""
    return GrpcGatewayControl(gateway.address, gateway.token, gateway.ca_pem)

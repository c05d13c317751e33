"""A gateway's management plane (edge.v1.ModelService) as the rollout runner sees it.

``push`` is ``edge_client.aio_push.push_bundle_async`` (the one resumable ModelUpdate
client: 1 MiB chunks from the gateway's resume offset, retries with backoff and
jitter) on this gateway's channel, TLS when the fleet record has a CA. Every call has
a deadline; failures become ``GatewayError`` with the gateway's own message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from cloud_orchestrator.errors import GatewayError
from cloud_orchestrator.fleet.store import GatewayInfo
from cloud_orchestrator.registry.artifacts import ArtifactCorrupt
from cloud_orchestrator.rollouts.gateway_control import (
    BlockSource,
    BundleRef,
    BytesCallback,
    ModelStatus,
    PushOutcome,
)
from edge_client.aio_push import push_bundle_async
from edge_client.push_protocol import CHUNK_BYTES, BundleFile
from edge_contracts.proto.edge.v1 import model_pb2, model_pb2_grpc, types_pb2
from edge_contracts.shadow_evidence import evidence_from_proto

__all__ = ["CHUNK_BYTES", "GrpcGatewayControl", "connect"]

log = logging.getLogger(__name__)


def _code_name(err: grpc.RpcError) -> str:
    code = err.code() if callable(getattr(err, "code", None)) else None
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


def _details(err: grpc.RpcError) -> str:
    details = err.details() if callable(getattr(err, "details", None)) else None
    return details if isinstance(details, str) else str(err)


def _version_state(state: types_pb2.ModelState.ValueType) -> str:
    return str(types_pb2.ModelState.Name(state)).removeprefix("MODEL_STATE_")


@dataclass(frozen=True)
class _StoredBundle(BundleFile):
    """A bundle read from the artifact store (a folder or the database) instead of a
    file: the same header and verdicts, chunks from ``source`` (``path`` is unused)."""

    source: BlockSource

    def chunks(
        self, offset: int, chunk_bytes: int, sent: list[int]
    ) -> Iterator[model_pb2.ModelUpdateRequest]:
        # Store blocks (256 KiB) regrouped into chunks of ``size``: the gateway answers
        # each chunk before the next goes, so fewer chunks are fewer round trips.
        size = max(1, min(chunk_bytes, CHUNK_BYTES))
        pending = bytearray()
        for block in self.source(offset):
            pending += block
            while len(pending) >= size:
                yield self._chunk(offset, bytes(pending[:size]), sent)
                offset += size
                del pending[:size]
        if pending:
            yield self._chunk(offset, bytes(pending), sent)
        yield model_pb2.ModelUpdateRequest(commit=model_pb2.ModelUpdateCommit())

    @staticmethod
    def _chunk(offset: int, data: bytes, sent: list[int]) -> model_pb2.ModelUpdateRequest:
        sent[0] += len(data)
        return model_pb2.ModelUpdateRequest(
            chunk=model_pb2.ModelUpdateChunk(offset=offset, data=data)
        )


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
        self._token = token
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        self._call_timeout = call_timeout
        self._push_timeout = push_timeout
        self._max_attempts = max_attempts

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
        state, reason, evidence = "", "", None
        for entry in info.versions:
            if entry.version == version:
                state, reason = _version_state(entry.state), entry.reason
                if entry.HasField("shadow_evidence"):
                    evidence = evidence_from_proto(entry.shadow_evidence)
        return ModelStatus(
            active_version=info.active_version,
            ready=info.state == types_pb2.MODEL_STATE_READY,
            version_state=state,
            version_reason=reason,
            evidence=evidence,
            utc_offset_seconds=reply.utc_offset_seconds,
        )

    async def push(
        self,
        bundle: BundleRef,
        source: str,
        on_bytes: BytesCallback | None = None,
        mode: str = "activate",
    ) -> PushOutcome:
        attempts = [1]

        def on_retry(attempt: int, err: grpc.RpcError, delay: float) -> None:
            attempts[0] = attempt + 1
            log.info("gateway %s: ModelUpdate attempt %d failed (%s); again in %.2f s",
                     self.address, attempt, _code_name(err), delay)  # fmt: skip

        def progress(stage: str, stored: int, total: int) -> None:
            # The rollout's bytes bookkeeping (and tqdm bar) follows the upload only.
            if on_bytes is not None and stage == "RECEIVING":
                on_bytes(stored, total)

        pushed = _StoredBundle(
            Path(bundle.sha256), bundle.model, bundle.version, bundle.size, bundle.sha256,
            bundle.blocks,
        )  # fmt: skip
        try:
            result = await push_bundle_async(
                self._channel,
                pushed,
                token=self._token,
                source=source,
                mode=mode,
                progress=progress,
                max_attempts=self._max_attempts,
                timeout=self._push_timeout,
                on_retry=on_retry,
            )
        except grpc.RpcError as err:
            raise GatewayError(
                f"gateway {self.address}: ModelUpdate (attempt {attempts[0]}): "
                f"{_code_name(err)}: {_details(err)}"
            ) from None
        except ArtifactCorrupt as exc:  # the target fails with the reason; nothing wrong sent
            raise GatewayError(f"gateway {self.address}: bundle not sent: {exc}") from None
        return PushOutcome(result.stage, result.reason, result.bytes_sent, result.attempts)

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

    async def end_shadow(self, model: str, version: str, reason: str) -> None:
        try:
            await self._stub.EndShadow(
                model_pb2.EndShadowRequest(model_name=model, model_version=version, reason=reason),
                timeout=self._call_timeout,
                metadata=self._metadata,
            )
        except grpc.aio.AioRpcError as err:
            raise self._error("EndShadow", err) from None

    async def close(self) -> None:
        await self._channel.close()


def connect(gateway: GatewayInfo) -> GrpcGatewayControl:
    """The ``Connect`` function the rollout runner uses in production."""
    return GrpcGatewayControl(gateway.address, gateway.token, gateway.ca_pem)

"""Push a model bundle to a gateway over ModelUpdate with a ``grpc.aio`` channel,
resuming after broken streams (the protocol: ``edge_client.push_protocol``).

The orchestrator's rollouts push through this; so can any asyncio application.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc

from edge_client.push_protocol import (
    CHUNK_BYTES,
    BundleFile,
    IncompletePush,
    Progress,
    PushResult,
    RetryHook,
    Retrying,
    metadata_for,
)
from edge_contracts.proto.edge.v1 import model_pb2, model_pb2_grpc

__all__ = ["push_bundle_async"]


async def push_bundle_async(
    channel: grpc.aio.Channel,
    path: Path | BundleFile,
    mode: str = "activate",
    *,
    token: str | None = None,
    metadata: tuple[tuple[str, str], ...] = (),
    source: str = "edge-client",
    progress: Progress | None = None,
    max_attempts: int = 5,
    timeout: float = 600.0,
    chunk_bytes: int = CHUNK_BYTES,
    on_retry: RetryHook | None = None,
    allow_older: bool = False,
) -> PushResult:
    """``edge_client.push.push_bundle`` for asyncio: the same arguments and result;
    raises ``grpc.RpcError`` (``grpc.aio.AioRpcError`` from the gateway) when final."""
    bundle = (
        path if isinstance(path, BundleFile) else await asyncio.to_thread(BundleFile.read, path)
    )
    header = bundle.header(mode, source, allow_older)
    stub = model_pb2_grpc.ModelServiceStub(channel)
    call_metadata = metadata_for(token, metadata)
    retrying = Retrying(max_attempts, on_retry=on_retry)
    sent = [0]
    attempt = 0
    while True:
        attempt += 1
        call: Any = stub.ModelUpdate(metadata=call_metadata, timeout=timeout)
        try:
            verdict = await _push_once(call, bundle, header, sent, progress, chunk_bytes)
            return bundle.result(verdict, sent[0], attempt)
        except grpc.RpcError as err:
            delay = retrying.delay(attempt, err)
            if delay is None:
                raise
            await asyncio.sleep(delay)
        finally:
            call.cancel()  # a no-op after a verdict; frees the stream after a failure


async def _push_once(
    call: Any,
    bundle: BundleFile,
    header: model_pb2.ModelUpdateRequest,
    sent: list[int],
    progress: Progress | None,
    chunk_bytes: int,
) -> tuple[str, str]:
    # One reply per chunk, read before the next chunk goes out: the gateway's pace
    # (disk writes) bounds what is in flight, and progress follows what it stored.
    await _write(call, header)
    first = await call.read()
    if first is grpc.aio.EOF:
        raise IncompletePush("the gateway closed ModelUpdate without answering")
    verdict = bundle.verdict(first, progress)
    if verdict is not None:  # it holds these exact bytes already
        await call.done_writing()
        return verdict
    for request in bundle.chunks(int(first.resume_offset), chunk_bytes, sent):
        await _write(call, request)
        if request.WhichOneof("message") != "chunk":
            break
        reply = await call.read()
        if reply is grpc.aio.EOF:
            raise IncompletePush("the gateway ended ModelUpdate in the middle of the chunks")
        if (verdict := bundle.verdict(reply, progress)) is not None:
            return verdict
    await call.done_writing()
    while (reply := await call.read()) is not grpc.aio.EOF:
        if (verdict := bundle.verdict(reply, progress)) is not None:
            return verdict
    raise IncompletePush("the gateway ended the stream without a verdict")


async def _write(call: Any, request: model_pb2.ModelUpdateRequest) -> None:
    try:
        await call.write(request)
    except asyncio.InvalidStateError:
        # The gateway ended the stream before this write (it found the stream idle, it
        # is stopping): raise its status, as a read would, so the retry policy sees it.
        # (A write racing with that status fails as INTERNAL, retried too.)
        code = await call.code()
        if code == grpc.StatusCode.OK:
            raise IncompletePush("the gateway ended the stream without a verdict") from None
        raise grpc.aio.AioRpcError(
            code,
            await call.initial_metadata(),
            await call.trailing_metadata(),
            await call.details(),
        ) from None

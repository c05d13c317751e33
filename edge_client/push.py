"""Push a model bundle to a gateway over ModelUpdate with a sync channel, resuming
after broken streams (the protocol: ``edge_client.push_protocol``; asyncio:
``edge_client.aio_push``)."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path

import grpc

from edge_client.push_protocol import (
    CHUNK_BYTES,
    FINAL_STAGES,
    MODES,
    RETRYABLE_CODES,
    BundleFile,
    IncompletePush,
    Progress,
    PushResult,
    RetryHook,
    Retrying,
    bundle_identity,
    file_sha256,
    metadata_for,
)
from edge_contracts.proto.edge.v1 import model_pb2, model_pb2_grpc

__all__ = [
    "CHUNK_BYTES",
    "FINAL_STAGES",
    "MODES",
    "RETRYABLE_CODES",
    "BundleFile",
    "IncompletePush",
    "Progress",
    "PushResult",
    "bundle_identity",
    "file_sha256",
    "push_bundle",
]


def _requests(
    bundle: BundleFile,
    header: model_pb2.ModelUpdateRequest,
    start: queue.Queue[int | None],
    sent: list[int],
    chunk_bytes: int,
) -> Iterator[model_pb2.ModelUpdateRequest]:
    # gRPC drains this generator on its own thread: it waits for the reader to hand over
    # the gateway's resume offset (None: a verdict came first, nothing more to send).
    yield header
    offset = start.get()
    if offset is not None:
        yield from bundle.chunks(offset, chunk_bytes, sent)


def push_bundle(
    channel: grpc.Channel,
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
    """Upload ``path`` and wait for the gateway's verdict; raises grpc.RpcError when final.

    ``timeout`` is the deadline of one attempt; ``progress`` sees every stage the
    gateway reports; ``on_retry`` sees each retryable failure before its backoff.
    ``allow_older`` installs a bundle whose signed sequence is below the gateway's
    highest (a deliberate rollback on a ``--trust-root`` gateway, docs/security.md).
    """
    bundle = path if isinstance(path, BundleFile) else BundleFile.read(path)
    header = bundle.header(mode, source, allow_older)
    stub = model_pb2_grpc.ModelServiceStub(channel)
    call_metadata = metadata_for(token, metadata)
    retrying = Retrying(max_attempts, on_retry=on_retry)
    sent = [0]
    attempt = 0
    while True:
        attempt += 1
        start: queue.Queue[int | None] = queue.Queue(maxsize=1)
        try:
            responses = stub.ModelUpdate(
                _requests(bundle, header, start, sent, chunk_bytes),
                metadata=call_metadata,
                timeout=timeout,
            )
            for response in responses:
                if start.empty() and response.stage == model_pb2.UPDATE_STAGE_RECEIVING:
                    start.put_nowait(response.resume_offset)
                verdict = bundle.verdict(response, progress)
                if verdict is not None:
                    return bundle.result(verdict, sent[0], attempt)
            raise IncompletePush("the gateway ended the stream without a verdict")
        except grpc.RpcError as err:
            delay = retrying.delay(attempt, err)
            if delay is None:
                raise
            time.sleep(delay)
        finally:
            if start.empty():
                start.put_nowait(None)  # unblock the request generator

"""Push a model bundle to a gateway over ModelUpdate, resuming after broken streams.

The gateway answers the header with the offset it already holds for this exact
bundle (sha256), so a retry sends only the remainder.
"""

from __future__ import annotations

import hashlib
import json
import queue
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from edge_contracts.proto.edge.v1 import model_pb2, model_pb2_grpc

CHUNK_BYTES = 1 << 20
FINAL_STAGES = {
    model_pb2.UPDATE_STAGE_ACTIVE: "ACTIVE",
    model_pb2.UPDATE_STAGE_STAGED: "STAGED",
    model_pb2.UPDATE_STAGE_SHADOW: "SHADOW",
    model_pb2.UPDATE_STAGE_REJECTED: "REJECTED",
}
MODES = {
    "activate": model_pb2.ACTIVATION_MODE_ACTIVATE,
    "stage": model_pb2.ACTIVATION_MODE_STAGE,
    "shadow": model_pb2.ACTIVATION_MODE_SHADOW,
}
# A broken link or a restarting gateway: worth resuming. Anything else is final.
RESUMABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.ABORTED,
}

Progress = Callable[[str, int, int], None]  # stage name, bytes stored, bundle size


@dataclass(frozen=True)
class PushResult:
    model_name: str
    model_version: str
    stage: str  # ACTIVE, STAGED, SHADOW or REJECTED
    reason: str
    bundle_bytes: int
    bytes_sent: int
    attempts: int

    @property
    def accepted(self) -> bool:
        return self.stage != "REJECTED"

    def to_dict(self) -> dict[str, object]:
        return {**self.__dict__, "accepted": self.accepted}


def bundle_identity(path: Path) -> tuple[str, str]:
    """(model name, version) from the bundle's manifest.json."""
    try:
        with tarfile.open(path, mode="r:") as tar:
            member = tar.extractfile("manifest.json")
            if member is None:
                raise ValueError("manifest.json is not a file")
            document = json.loads(member.read(1 << 20))
        return str(document["name"]), str(document["version"])
    except (KeyError, ValueError, tarfile.TarError) as exc:  # an unreadable file: OSError
        raise ValueError(f"{path} is not a model bundle: {exc}") from None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def _requests(
    header: model_pb2.ModelUpdateHeader,
    path: Path,
    start: queue.Queue[int | None],
    sent: list[int],
    chunk_bytes: int,
) -> Iterator[model_pb2.ModelUpdateRequest]:
    yield model_pb2.ModelUpdateRequest(header=header)
    offset = start.get()  # the gateway's resume offset, or None when nothing is needed
    if offset is None:
        return
    with path.open("rb") as handle:
        handle.seek(offset)
        while block := handle.read(chunk_bytes):
            yield model_pb2.ModelUpdateRequest(
                chunk=model_pb2.ModelUpdateChunk(offset=offset, data=block)
            )
            offset += len(block)
            sent[0] += len(block)
    yield model_pb2.ModelUpdateRequest(commit=model_pb2.ModelUpdateCommit())


def push_bundle(
    channel: grpc.Channel,
    path: Path,
    mode: str = "activate",
    *,
    token: str | None = None,
    source: str = "edge-client",
    progress: Progress | None = None,
    max_attempts: int = 5,
    timeout: float = 600.0,
    chunk_bytes: int = CHUNK_BYTES,
) -> PushResult:
    """Upload ``path`` and wait for the gateway's verdict; raises grpc.RpcError when final."""
    name, version = bundle_identity(path)
    size = path.stat().st_size
    header = model_pb2.ModelUpdateHeader(
        model_name=name,
        model_version=version,
        bundle_size=size,
        bundle_sha256=file_sha256(path),
        activation_mode=MODES[mode],
        source=source,
    )
    stub = model_pb2_grpc.ModelServiceStub(channel)
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    sent = [0]
    for attempt in range(1, max_attempts + 1):
        start: queue.Queue[int | None] = queue.Queue(maxsize=1)
        try:
            responses = stub.ModelUpdate(
                _requests(header, path, start, sent, min(chunk_bytes, CHUNK_BYTES)),
                metadata=metadata,
                timeout=timeout,
            )
            for response in responses:
                if response.stage in FINAL_STAGES:
                    return PushResult(
                        name, version, FINAL_STAGES[response.stage], response.reason, size,
                        sent[0], attempt,
                    )  # fmt: skip
                if start.empty() and response.stage == model_pb2.UPDATE_STAGE_RECEIVING:
                    start.put_nowait(response.resume_offset)
                if progress is not None:
                    stage = model_pb2.UpdateStage.Name(response.stage).removeprefix("UPDATE_STAGE_")
                    progress(stage, response.bytes_received, size)
            raise grpc.RpcError("the gateway ended the stream without a verdict")
        except grpc.RpcError as err:
            code = err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN
            if code not in RESUMABLE or attempt == max_attempts:
                raise
            time.sleep(min(5.0, 0.2 * 2 ** (attempt - 1)))
        finally:
            if start.empty():
                start.put_nowait(None)  # unblock the request generator
    raise AssertionError("unreachable")

"""The resumable ModelUpdate push, independent of sync or asyncio gRPC.

The stream is: a header naming the bundle (size, sha256), the gateway's first answer
with the offset it already holds for these exact bytes (``resume_offset``), chunks of
at most 1 MiB from there, a commit, then stages until a verdict. A broken stream is
pushed again; the gateway keeps what it received, so only the remainder travels.
``edge_client.push`` (sync) and ``edge_client.aio_push`` (asyncio) drive this protocol.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from edge_contracts import retry_hint
from edge_contracts.backoff import Backoff
from edge_contracts.proto.edge.v1 import model_pb2

__all__ = [
    "CHUNK_BYTES",
    "FINAL_STAGES",
    "MODES",
    "RETRYABLE_CODES",
    "BundleFile",
    "IncompletePush",
    "Progress",
    "PushResult",
    "RetryHook",
    "Retrying",
    "bundle_identity",
    "file_sha256",
    "metadata_for",
]

# The gateway refuses larger chunks; the sync and async clients both cap at it.
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
# A broken link, a restarting gateway (UNAVAILABLE, CANCELLED, INTERNAL from a torn
# connection), a stream the gateway found idle or a deadline (DEADLINE_EXCEEDED), another
# update of the model under way (ABORTED): pushing again resumes. grpc.aio also reports
# a write that races with the gateway's final status as INTERNAL ("Internal error from
# Core"), losing that status: the next attempt learns it. RESOURCE_EXHAUSTED is retried
# only with a retry hint (the gateway saying when it will have room, as for inference,
# edge_contracts/retry_hint.py): without one it is a quota or a bundle too large, which
# stays so. Anything else (a refused token, an invalid header...) would fail the same way
# again.
RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.INTERNAL,
    }
)

Progress = Callable[[str, int, int], None]  # stage name, bytes stored, bundle size
RetryHook = Callable[[int, grpc.RpcError, float], None]  # failed attempt, its error, delay


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


class IncompletePush(grpc.RpcError):  # type: ignore[misc]  # grpc has no stubs
    """The gateway closed the stream cleanly without a verdict (not retried: a gateway
    that does this once would do it again). Has ``code()``/``details()`` like a call, so
    ``edge_client.errors.from_rpc_error`` maps it to ``Unknown``."""

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self._details = details

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNKNOWN

    def details(self) -> str:
        return self._details


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


@dataclass(frozen=True)
class BundleFile:
    """A bundle on disk and what the header declares about it. The orchestrator builds
    it from its registry (size and sha256 known); ``read`` computes them from the file."""

    path: Path
    model: str
    version: str
    size: int
    sha256: str

    @classmethod
    def read(cls, path: Path) -> BundleFile:
        model, version = bundle_identity(path)
        return cls(path, model, version, path.stat().st_size, file_sha256(path))

    def header(
        self, mode: str, source: str, allow_older: bool = False
    ) -> model_pb2.ModelUpdateRequest:
        return model_pb2.ModelUpdateRequest(
            header=model_pb2.ModelUpdateHeader(
                model_name=self.model,
                model_version=self.version,
                bundle_size=self.size,
                bundle_sha256=self.sha256,
                activation_mode=MODES[mode],
                source=source,
                allow_older=allow_older,
            )
        )

    def chunks(
        self, offset: int, chunk_bytes: int, sent: list[int]
    ) -> Iterator[model_pb2.ModelUpdateRequest]:
        """Chunk requests from ``offset`` to the end, then the commit; ``sent[0]`` counts
        the bytes handed to gRPC (what ``PushResult.bytes_sent`` reports)."""
        size = max(1, min(chunk_bytes, CHUNK_BYTES))
        with self.path.open("rb") as handle:
            handle.seek(offset)
            while block := handle.read(size):
                yield model_pb2.ModelUpdateRequest(
                    chunk=model_pb2.ModelUpdateChunk(offset=offset, data=block)
                )
                offset += len(block)
                sent[0] += len(block)
        yield model_pb2.ModelUpdateRequest(commit=model_pb2.ModelUpdateCommit())

    def verdict(
        self, response: model_pb2.ModelUpdateResponse, progress: Progress | None
    ) -> tuple[str, str] | None:
        """(stage, reason) when ``response`` is final; otherwise reports progress."""
        if response.stage in FINAL_STAGES:
            return FINAL_STAGES[response.stage], response.reason
        if progress is not None:
            stage = model_pb2.UpdateStage.Name(response.stage).removeprefix("UPDATE_STAGE_")
            progress(stage, response.bytes_received, self.size)
        return None

    def result(self, verdict: tuple[str, str], sent: int, attempts: int) -> PushResult:
        stage, reason = verdict
        return PushResult(self.model, self.version, stage, reason, self.size, sent, attempts)


class Retrying:
    """Which failures are pushed again, and after how long (``edge_contracts.backoff``)."""

    def __init__(
        self,
        max_attempts: int,
        initial_backoff: float = 0.25,
        max_backoff: float = 10.0,
        on_retry: RetryHook | None = None,
    ) -> None:
        self.max_attempts = max(1, max_attempts)
        self._backoff = Backoff(initial_backoff, max_backoff)
        self._on_retry = on_retry

    def delay(self, attempt: int, err: grpc.RpcError) -> float | None:
        """Seconds to wait before the next attempt, or None when ``err`` is final. Never
        less than the retry hint ``err`` carries."""
        code = err.code() if callable(getattr(err, "code", None)) else None
        hint_ms = retry_hint.retry_after_ms(_trailing_metadata(err))
        retryable = code in RETRYABLE_CODES or (
            code is grpc.StatusCode.RESOURCE_EXHAUSTED and hint_ms is not None
        )
        if not retryable or attempt >= self.max_attempts:
            return None
        # At least the hint; the backoff when it is longer (after repeated failures).
        delay = max(self._backoff.next(), (hint_ms or 0) / 1000.0)
        if self._on_retry is not None:
            self._on_retry(attempt, err, delay)
        return delay


def _trailing_metadata(err: grpc.RpcError) -> Any:
    # IncompletePush has none, and a half-built error must not hide the failure itself.
    accessor = getattr(err, "trailing_metadata", None)
    if not callable(accessor):
        return None
    try:
        return accessor()
    except Exception:
        return None


def metadata_for(
    token: str | None, metadata: tuple[tuple[str, str], ...] = ()
) -> tuple[tuple[str, str], ...] | None:
    """The call metadata: ``metadata`` plus the bearer token of ModelService calls."""
    pairs = metadata + ((("authorization", f"Bearer {token}"),) if token else ())
    return pairs or None

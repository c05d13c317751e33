"""What the rollout runner needs from a gateway's management plane, without gRPC.

``cloud_orchestrator.grpc.push_client`` implements it over edge.v1.ModelService.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from edge_contracts.shadow_evidence import ShadowEvidence

__all__ = ["BlockSource", "BundleRef", "GatewayControl", "ModelStatus", "PushOutcome"]

BytesCallback = Callable[[int, int], None]  # bytes stored on the gateway, bundle size
# The bundle's bytes from an offset, in blocks of at most 1 MiB, read from the artifact
# store (cloud_orchestrator/registry/artifacts.py) as they are sent.
BlockSource = Callable[[int], Iterator[bytes]]


@dataclass(frozen=True)
class BundleRef:
    blocks: BlockSource
    model: str
    version: str
    sha256: str
    size: int


@dataclass(frozen=True)
class PushOutcome:
    stage: str  # ACTIVE STAGED SHADOW REJECTED
    reason: str
    bytes_sent: int
    attempts: int


@dataclass(frozen=True)
class ModelStatus:
    active_version: str
    ready: bool
    version_state: str  # state of the version asked about: READY, ROLLED_BACK, ... or ""
    version_reason: str
    # What the version asked about did in shadow (None: never shadowed on this gateway).
    evidence: ShadowEvidence | None = None
    utc_offset_seconds: int = 0  # the gateway's local time = UTC + this


class GatewayControl(Protocol):
    async def model_status(self, model: str, version: str = "") -> ModelStatus | None:
        """The model's state (None when the gateway does not serve it)."""
        ...

    async def push(
        self,
        bundle: BundleRef,
        source: str,
        on_bytes: BytesCallback | None = None,
        mode: str = "activate",
    ) -> PushOutcome:
        """Stream the bundle (resuming after broken streams) and wait for the verdict;
        ``mode``: activate, stage or shadow once verified."""
        ...

    async def rollback(self, model: str, reason: str) -> str:
        """RollbackModel; returns the version active afterwards."""
        ...

    async def activate(self, model: str, version: str) -> None: ...

    async def end_shadow(self, model: str, version: str, reason: str) -> None:
        """Stop running a version in shadow (it stays on the gateway, staged)."""
        ...

    async def close(self) -> None: ...

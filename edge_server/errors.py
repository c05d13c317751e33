"""Domain exceptions. Only edge_server.grpc.status_mapping turns them into gRPC codes.

The errors every tier shares (``EdgeError``, ``ManifestError``, ``BundleError``,
``IntegrityError``, ``StartupError``) are defined in edge_contracts/errors.py; this module
adds the gateway's own and names them all in one place for the status mapping.

Each message is written for the person who will read it: what was wrong and, where
it is not obvious, what to do instead.
"""

from __future__ import annotations

from edge_contracts.errors import (
    BundleError,
    EdgeError,
    IntegrityError,
    ManifestError,
    StartupError,
)

__all__ = [
    "AccessDenied",
    "BundleError",
    "CloudUnavailable",
    "DeadlineExpired",
    "EdgeError",
    "InferenceFailed",
    "IntegrityError",
    "InvalidInput",
    "ManifestError",
    "ModelLoadError",
    "ModelNotFound",
    "ModelNotReady",
    "NotEnabled",
    "Overloaded",
    "QuotaExceeded",
    "RegionExists",
    "RegionNotFound",
    "ShuttingDown",
    "StartupError",
    "UpdateInProgress",
    "UpdateRejected",
    "VersionNotActive",
]


class InvalidInput(EdgeError):
    """The caller sent something the model cannot take (not retryable)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class ModelNotFound(EdgeError):
    """No such model, or no such version of it."""


class ModelNotReady(EdgeError):
    """The model exists but cannot answer now (loading, failed, swapping): retry later."""


class VersionNotActive(EdgeError):
    """The version exists on disk but is not the one serving (not retryable)."""


class Overloaded(EdgeError):
    """A bounded queue is full; the caller should back off and retry."""

    def __init__(self, message: str, retry_after_ms: int = 50) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


class QuotaExceeded(EdgeError):
    """A size limit or disk quota would be exceeded; nothing was written."""


class UpdateInProgress(EdgeError):
    """Another update of the same model is running."""


class UpdateRejected(EdgeError):
    """A pushed version failed verification; the active version keeps serving."""


class RegionNotFound(EdgeError):
    """A shared-memory region (or the object behind it) does not exist."""


class RegionExists(EdgeError):
    """A shared-memory region of that name is already registered."""


class AccessDenied(EdgeError):
    """The caller may not do this (e.g. shared memory from another machine)."""


class NotEnabled(EdgeError):
    """A feature this gateway was started without (e.g. --shared-memory off)."""


class DeadlineExpired(EdgeError):
    """The caller's deadline passed before the work could start."""


class InferenceFailed(EdgeError):
    """ONNX Runtime failed while running a request: the model's fault, not the caller's."""


class ModelLoadError(EdgeError):
    """ONNX Runtime could not load or run a model file."""


class ShuttingDown(EdgeError):
    """The gateway is draining and takes no new work."""


class CloudUnavailable(EdgeError):
    """The orchestrator cannot be reached or refused the call; try again later."""

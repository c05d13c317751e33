"""Domain exceptions and, at the end, the gRPC code of each (entered into the one
status table, edge_contracts/status.py).

The errors every tier shares (``EdgeError``, ``ManifestError``, ``BundleError``,
``IntegrityError``, ``StartupError``) are defined in edge_contracts/errors.py; this module
adds the gateway's own and names them all in one place.

Each message is written for the person who will read it: what was wrong and, where
it is not obvious, what to do instead.
"""

from __future__ import annotations

import grpc

from edge_contracts import status
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
    "Unauthenticated",
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


class Unauthenticated(EdgeError):
    """The call needs a credential and carries none (e.g. shared-memory registration)."""


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


# The gateway's rows of the status table. BundleError and ManifestError (with
# IntegrityError) are contract errors and entered by edge_contracts/status.py itself;
# CloudUnavailable and StartupError never reach a caller: unmapped, they would be INTERNAL.
status.register(
    {
        InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
        ModelNotFound: grpc.StatusCode.NOT_FOUND,
        ModelNotReady: grpc.StatusCode.UNAVAILABLE,
        ShuttingDown: grpc.StatusCode.UNAVAILABLE,
        VersionNotActive: grpc.StatusCode.FAILED_PRECONDITION,
        Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,  # + retry-after-ms metadata
        DeadlineExpired: grpc.StatusCode.DEADLINE_EXCEEDED,
        QuotaExceeded: grpc.StatusCode.RESOURCE_EXHAUSTED,
        UpdateInProgress: grpc.StatusCode.ABORTED,
        UpdateRejected: grpc.StatusCode.FAILED_PRECONDITION,
        InferenceFailed: grpc.StatusCode.INTERNAL,
        ModelLoadError: grpc.StatusCode.FAILED_PRECONDITION,
        RegionNotFound: grpc.StatusCode.NOT_FOUND,
        RegionExists: grpc.StatusCode.ALREADY_EXISTS,
        AccessDenied: grpc.StatusCode.PERMISSION_DENIED,
        Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
        NotEnabled: grpc.StatusCode.UNIMPLEMENTED,
    }
)

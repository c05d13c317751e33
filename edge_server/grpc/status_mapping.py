"""The one place where domain exceptions become gRPC status codes (STYLE rule 1).

Messages of our own exceptions are written for callers and pass through; anything
unexpected becomes a generic INTERNAL while its traceback goes to the log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc

from edge_server import errors

logger = logging.getLogger(__name__)

_CODES: tuple[tuple[type[errors.EdgeError], grpc.StatusCode], ...] = (
    (errors.InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.ModelNotFound, grpc.StatusCode.NOT_FOUND),
    (errors.ModelNotReady, grpc.StatusCode.UNAVAILABLE),
    (errors.ShuttingDown, grpc.StatusCode.UNAVAILABLE),
    (errors.VersionNotActive, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.DeadlineExpired, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.QuotaExceeded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.UpdateInProgress, grpc.StatusCode.ABORTED),
    (errors.UpdateRejected, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.BundleError, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.InferenceFailed, grpc.StatusCode.INTERNAL),
    (errors.ManifestError, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.ModelLoadError, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.RegionNotFound, grpc.StatusCode.NOT_FOUND),
    (errors.RegionExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.AccessDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.NotEnabled, grpc.StatusCode.UNIMPLEMENTED),
)

GENERIC_INTERNAL = "internal error in the gateway; it has been logged"


@dataclass(frozen=True)
class RpcStatus:
    code: grpc.StatusCode
    message: str
    trailing_metadata: tuple[tuple[str, str], ...] = ()


def status_for(exc: BaseException) -> RpcStatus:
    """Map an exception to the status a caller sees."""
    for kind, code in _CODES:
        if isinstance(exc, kind):
            metadata: tuple[tuple[str, str], ...] = ()
            if isinstance(exc, errors.Overloaded):
                metadata = (("retry-after-ms", str(exc.retry_after_ms)),)
            return RpcStatus(code, str(exc), metadata)
    logger.error("unexpected error while handling a request", exc_info=exc)
    return RpcStatus(grpc.StatusCode.INTERNAL, GENERIC_INTERNAL)


async def abort_with(context: grpc.aio.ServicerContext, status: RpcStatus) -> None:
    """End the call with ``status`` (raises, as ServicerContext.abort does)."""
    if status.trailing_metadata:
        context.set_trailing_metadata(status.trailing_metadata)
    await context.abort(status.code, status.message)

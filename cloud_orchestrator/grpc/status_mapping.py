"""The one place where orchestrator exceptions become gRPC status codes."""

from __future__ import annotations

import logging

import grpc

from cloud_orchestrator import errors

logger = logging.getLogger(__name__)

_CODES: tuple[tuple[type[errors.OrchestratorError], grpc.StatusCode], ...] = (
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.Conflict, grpc.StatusCode.ALREADY_EXISTS),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.BundleRefused, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.GatewayError, grpc.StatusCode.UNAVAILABLE),
)

GENERIC_INTERNAL = "internal error in the orchestrator; it has been logged"


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code, str(exc)
    logger.error("unexpected error while handling a call", exc_info=exc)
    return grpc.StatusCode.INTERNAL, GENERIC_INTERNAL


async def abort_with(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    code, message = status_for(exc)
    await context.abort(code, message)

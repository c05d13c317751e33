"""Management-plane authentication: a bearer token on management RPCs.

Inference stays open on its interface; every method listed in
``MANAGEMENT_METHOD_PREFIXES`` needs ``authorization: Bearer <token>`` metadata
when a token is configured. Failures are answered before the servicer runs.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

logger = logging.getLogger(__name__)

# Full method names ("/package.Service/Method") or service prefixes ("/package.Service/").
MANAGEMENT_METHOD_PREFIXES: tuple[str, ...] = (
    "/edge.v1.ModelService/",
    "/inference.GRPCInferenceService/RepositoryModelLoad",
    "/inference.GRPCInferenceService/RepositoryModelUnload",
)


def is_management_method(method: str) -> bool:
    return method.startswith(MANAGEMENT_METHOD_PREFIXES)


def _denying_handler(
    original: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str
) -> grpc.RpcMethodHandler:
    async def deny_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    async def deny_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)
        yield  # pragma: no cover - makes this an async generator

    kwargs = {
        "request_deserializer": original.request_deserializer,
        "response_serializer": original.response_serializer,
    }
    if original.unary_unary:
        return grpc.unary_unary_rpc_method_handler(deny_unary, **kwargs)
    if original.unary_stream:
        return grpc.unary_stream_rpc_method_handler(deny_stream, **kwargs)
    if original.stream_unary:
        return grpc.stream_unary_rpc_method_handler(deny_unary, **kwargs)
    return grpc.stream_stream_rpc_method_handler(deny_stream, **kwargs)


class ManagementAuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuses management calls without the configured bearer token."""

    def __init__(self, token: str, on_failure: Callable[[str, str], None] | None = None) -> None:
        self._expected = f"Bearer {token}".encode()
        self._on_failure = on_failure

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not is_management_method(method):
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())
        presented = metadata.get("authorization")
        if presented is None:
            reason, code = "missing", grpc.StatusCode.UNAUTHENTICATED
            message = (
                f"{method} is a management call: send metadata 'authorization: Bearer <token>'"
            )
        elif not hmac.compare_digest(str(presented).encode(), self._expected):
            reason, code = "invalid", grpc.StatusCode.PERMISSION_DENIED
            message = f"{method}: the bearer token is not valid for this gateway"
        else:
            return handler
        logger.warning("management call %s refused: %s token", method, reason)
        if self._on_failure is not None:
            self._on_failure(method, reason)
        return _denying_handler(handler, code, message)

"""Bearer-token authentication for gRPC servers, shared by every tier that serves gRPC.

``BearerTokenInterceptor`` answers protected calls that lack ``authorization: Bearer
<token>`` metadata (UNAUTHENTICATED) or carry another token (PERMISSION_DENIED)
before the servicer runs. The gateway's management token
(edge_server/grpc/auth.py) and the orchestrator's fleet token
(cloud_orchestrator/grpc/auth.py) are both built on it.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

__all__ = ["REFUSAL_CODES", "BearerTokenInterceptor", "MethodMessage"]

# Why a call was refused ("missing" or "invalid" token) and the status it gets.
REFUSAL_CODES: dict[str, grpc.StatusCode] = {
    "missing": grpc.StatusCode.UNAUTHENTICATED,
    "invalid": grpc.StatusCode.PERMISSION_DENIED,
}

MethodMessage = Callable[[str], str]  # full method name -> what the caller is told


def _denying_handler(
    original: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str
) -> grpc.RpcMethodHandler:
    async def deny_unary(_request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    async def deny_stream(_request: Any, context: grpc.aio.ServicerContext) -> Any:
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


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses the methods ``protects`` selects unless they carry the bearer token.

    ``missing_message`` and ``invalid_message`` word the refusal for a method;
    ``on_failure(method, reason)`` hears of each one (reason: a key of ``REFUSAL_CODES``).
    """

    def __init__(
        self,
        token: str,
        protects: Callable[[str], bool],
        missing_message: MethodMessage,
        invalid_message: MethodMessage,
        on_failure: Callable[[str, str], None] | None = None,
    ) -> None:
        self._expected = f"Bearer {token}".encode()
        self._protects = protects
        self._messages = {"missing": missing_message, "invalid": invalid_message}
        self._on_failure = on_failure

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method or ""
        if handler is None or not self._protects(method):
            return handler
        presented = dict(handler_call_details.invocation_metadata or ()).get("authorization")
        if presented is None:
            reason = "missing"
        elif not hmac.compare_digest(str(presented).encode(), self._expected):
            reason = "invalid"
        else:
            return handler
        if self._on_failure is not None:
            self._on_failure(method, reason)
        return _denying_handler(handler, REFUSAL_CODES[reason], self._messages[reason](method))

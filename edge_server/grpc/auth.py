"""Bearer-token authentication for gRPC servers, and the gateway's management plane.

``BearerTokenInterceptor`` answers protected calls that lack ``authorization: Bearer
<token>`` metadata (UNAUTHENTICATED) or carry another token (PERMISSION_DENIED)
before the servicer runs; the orchestrator's fleet token uses it too.

On a gateway, inference stays open on its interface; every method listed in
``MANAGEMENT_METHOD_PREFIXES`` needs the management token when one is configured.
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

# Why a call was refused ("missing" or "invalid" token) and the status it gets.
REFUSAL_CODES: dict[str, grpc.StatusCode] = {
    "missing": grpc.StatusCode.UNAUTHENTICATED,
    "invalid": grpc.StatusCode.PERMISSION_DENIED,
}

MethodMessage = Callable[[str], str]  # full method name -> what the caller is told


def is_management_method(method: str) -> bool:
    return method.startswith(MANAGEMENT_METHOD_PREFIXES)


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


class ManagementAuthInterceptor(BearerTokenInterceptor):
    """Refuses management calls without the configured bearer token."""

    def __init__(self, token: str, on_failure: Callable[[str, str], None] | None = None) -> None:
        def refused(method: str, reason: str) -> None:
            logger.warning("management call %s refused: %s token", method, reason)
            if on_failure is not None:
                on_failure(method, reason)

        super().__init__(
            token,
            protects=is_management_method,
            missing_message=lambda method: (
                f"{method} is a management call and needs the gateway's management token: "
                "pass it with `edge-client --token TOKEN` (or --token-file FILE, or set "
                "EDGE_TOKEN), or send gRPC metadata 'authorization: Bearer <token>'"
            ),
            invalid_message=lambda method: (
                f"{method}: the bearer token is not valid for this gateway"
            ),
            on_failure=refused,
        )

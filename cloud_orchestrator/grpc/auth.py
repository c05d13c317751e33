"""Fleet token on OrchestratorService: ``authorization: Bearer <token>`` metadata.

Without a configured token the service is open (a warning is logged at start-up);
answers are given before the servicer runs.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

logger = logging.getLogger(__name__)

_PREFIX = "/edge.v1.OrchestratorService/"


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


class FleetTokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses OrchestratorService calls without the fleet's bearer token."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method or ""
        if handler is None or not method.startswith(_PREFIX):
            return handler
        presented = dict(details.invocation_metadata or ()).get("authorization")
        if presented is None:
            code, message = (
                grpc.StatusCode.UNAUTHENTICATED,
                (
                    f"{method}: send metadata 'authorization: Bearer <fleet token>' "
                    "(edge-server --orchestrator-token)"
                ),
            )
        elif not hmac.compare_digest(str(presented).encode(), self._expected):
            code, message = grpc.StatusCode.PERMISSION_DENIED, f"{method}: wrong fleet token"
        else:
            return handler
        logger.warning("refused %s: %s", method, code.name)
        return _denying_handler(handler, code, message)

"""The primary answers a management call once every replica has followed it.

With several workers, the next call of the same client may reach another process (a
new connection, another CLI run): if a push answered ACTIVE before the replicas had
loaded the version, that call could still see the old one. So on the primary, a
management call ends only after ``WorkerSupervisor.wait_followed`` (the replicas
report each event they applied over the control pipe): a unary answer waits for it, a
stream's answers flow as they come and its end (the status) waits. Failed calls need no
wait: they changed nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from edge_server.grpc.auth import is_management_method

Wait = Callable[[], Awaitable[None]]


async def _then_wait(answers: AsyncIterator[Any], wait: Wait) -> AsyncIterator[Any]:
    """``answers`` as they come (a push is a dialogue: none may be held back), then
    ``wait`` before the call ends: its status comes once the replicas followed."""
    async for answer in answers:
        yield answer
    await wait()


def held(handler: grpc.RpcMethodHandler, wait: Wait) -> grpc.RpcMethodHandler:
    """``handler`` (async, any cardinality) ending only after ``wait``."""
    codec = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None or handler.stream_unary is not None:
        streaming = handler.stream_unary is not None
        behaviour = handler.stream_unary if streaming else handler.unary_unary

        async def single(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            answer = await behaviour(request, context)
            await wait()
            return answer

        make = (
            grpc.stream_unary_rpc_method_handler
            if streaming
            else grpc.unary_unary_rpc_method_handler
        )
        return make(single, **codec)
    streaming = handler.stream_stream is not None
    source = handler.stream_stream if streaming else handler.unary_stream

    async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        async for answer in _then_wait(source(request, context), wait):
            yield answer

    make = (
        grpc.stream_stream_rpc_method_handler if streaming else grpc.unary_stream_rpc_method_handler
    )
    return make(stream, **codec)


class FollowBarrier(grpc.aio.ServerInterceptor):
    """The primary's interceptor: management answers wait for the replicas to follow."""

    def __init__(self, wait: Wait) -> None:
        self._wait = wait

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or not is_management_method(handler_call_details.method):
            return handler
        return held(handler, self._wait)

"""Management on the shared port: a replica relays management calls to the primary.

With ``--workers N`` the kernel hands each new connection to any process listening on
the port, but only the primary owns the model lifecycle. So, when management shares the
public port (no ``--management-port``), the primary also listens on a private unix
socket (``management.sock`` in its private folder, private_folder.py) that serves
ModelService and V2's repository load/unload, and every replica relays the management
calls it receives there, bytes in and bytes out: the caller cannot tell which process it reached.

One relay handler serves every cardinality: on the wire a unary call is a stream of
one message each way, so a stream-stream handler with no (de)serializers forwards
unary, server-streaming and client-streaming calls (a resumable bundle push) alike.
The caller's metadata goes along (the management token is checked by the primary too),
the deadline is kept, and a failure comes back with its code, message and details.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from edge_server.grpc.auth import is_management_method

# Metadata the relay must not copy: gRPC sets these itself on the outgoing call.
_HOP_BY_HOP = ("user-agent", "grpc-", ":")
# Trailers gRPC writes itself (the rich details, grpc-status-details-bin, do go back).
_STATUS_TRAILERS = ("grpc-status", "grpc-message", ":")


def forwarded_metadata(
    metadata: Any, dropped: tuple[str, ...] = _HOP_BY_HOP
) -> tuple[tuple[str, str | bytes], ...]:
    """The caller's own metadata (authorization, request ids), without gRPC's headers."""
    return tuple(
        (key, value) for key, value in (metadata or ()) if not key.lower().startswith(dropped)
    )


class ManagementRelay(grpc.aio.ServerInterceptor):
    """A replica's interceptor: management methods go to the primary, the rest stay."""

    def __init__(self, address: str, max_message_bytes: int) -> None:
        self._channel = grpc.aio.insecure_channel(
            address,
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
            ],
        )

    async def close(self) -> None:
        await self._channel.close()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        if not is_management_method(method):
            return await continuation(handler_call_details)
        return grpc.stream_stream_rpc_method_handler(self._relay_for(method))

    def _relay_for(
        self, method: str
    ) -> Callable[[AsyncIterator[bytes], grpc.aio.ServicerContext[bytes, bytes]], Any]:
        async def relay(
            requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]
        ) -> AsyncIterator[bytes]:
            call = self._channel.stream_stream(method)(
                requests,
                metadata=forwarded_metadata(context.invocation_metadata()),
                timeout=context.time_remaining(),
            )
            try:
                async for answer in call:
                    yield answer
            except grpc.aio.AioRpcError as exc:
                with contextlib.suppress(Exception):  # trailers are a courtesy
                    context.set_trailing_metadata(
                        forwarded_metadata(exc.trailing_metadata(), _STATUS_TRAILERS)
                    )
                await context.abort(exc.code(), exc.details() or "")

        return relay

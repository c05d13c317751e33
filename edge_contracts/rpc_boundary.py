"""The one error boundary of every servicer method (gateway and orchestrator alike).

``@rpc_boundary`` wraps an async servicer method of any of the four shapes: a coroutine
(unary or client-streaming response) or an async generator (server-streaming or bidi
response); grpc.aio tells them apart by the function's own flags, so the wrapper keeps
the shape of what it wraps. A known domain error aborts with its code and message (and
trailing metadata such as the retry hint of edge_contracts/retry_hint.py), an unexpected
one with INTERNAL and a correlation id that the log shares (edge_contracts/status.py); an
abort or RpcError already raised passes through untouched. A write that fails because the
call is already over (its client cancelled or went away, as a gateway does when it cuts a
FetchModel download to resume it later) ends the method as a cancelled call: nobody is
left to answer, and it is no error of the server's.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, NoReturn, TypeVar, cast

import grpc
import grpc.aio
from grpc._cython import cygrpc

from edge_contracts.status import status_for

__all__ = ["MARKER", "rpc_boundary"]

Method = TypeVar("Method", bound=Callable[..., Any])

# Set on every wrapped method, so a test can check that no servicer method lacks it.
MARKER = "__rpc_boundary__"

# What leaves the boundary unchanged: an abort already decided, or a status from a call
# the servicer made itself (re-raised as its caller expects).
_PASS_THROUGH = (grpc.aio.AbortError, grpc.RpcError)

# What grpc.aio raises from ServicerContext.write/read when the call has ended under the
# method (grpc's own handler then ignores it if it saw the client close, and logs it as
# unexpected if it had not yet). Not public API: a grpcio without it names nothing here.
_CALL_OVER: tuple[type[BaseException], ...] = tuple(
    kind for kind in (getattr(cygrpc, "ExecuteBatchError", None),) if isinstance(kind, type)
)

logger = logging.getLogger(__name__)


def _end_as_cancelled(exc: BaseException) -> NoReturn:
    logger.debug("call ended under the method (%s): %s", type(exc).__name__, exc)
    raise asyncio.CancelledError from None


async def _abort(context: grpc.aio.ServicerContext, exc: Exception) -> NoReturn:
    status = status_for(exc)
    # Non-empty trailing_metadata replaces what the method set; an empty one keeps it.
    await context.abort(status.code, status.message, status.trailing_metadata)
    raise AssertionError("ServicerContext.abort returned")  # pragma: no cover


def rpc_boundary(method: Method) -> Method:
    """Give ``method`` (self, request or request_iterator, context) the error boundary."""
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def streaming(
            self: Any, request: Any, context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            responses = method(self, request, context)
            try:
                async for response in responses:
                    yield response
            except _PASS_THROUGH:
                raise
            except _CALL_OVER as exc:
                _end_as_cancelled(exc)
            except Exception as exc:
                await _abort(context, exc)
            finally:
                # Close the inner generator now (its finally blocks run while the call
                # is still known), not whenever the garbage collector gets to it.
                await responses.aclose()

        wrapped: Callable[..., Any] = streaming
    elif inspect.iscoroutinefunction(method):
        call = cast(Callable[..., Coroutine[Any, Any, Any]], method)

        @functools.wraps(method)
        async def unary(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await call(self, request, context)
            except _PASS_THROUGH:
                raise
            except _CALL_OVER as exc:
                _end_as_cancelled(exc)
            except Exception as exc:
                await _abort(context, exc)

        wrapped = unary
    else:
        raise TypeError(f"{method.__qualname__} must be an async def (coroutine or generator)")
    setattr(wrapped, MARKER, True)
    return cast(Method, wrapped)

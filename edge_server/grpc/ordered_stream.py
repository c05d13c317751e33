"""Bidirectional streams answered in order, with a bounded window of work in progress.

Request N+1 starts while request N is still running (decode overlaps inference),
but at most ``window`` requests are in progress, so a fast client cannot pile up
unbounded work, and answers leave in the order the requests came.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

Request = TypeVar("Request")
Response = TypeVar("Response")


async def answer_in_order(
    requests: AsyncIterator[Request],
    handle: Callable[[Request], Awaitable[Response]],
    window: int,
) -> AsyncIterator[Response]:
    """Yield ``handle(request)`` for each request, in request order."""
    pending: asyncio.Queue[asyncio.Future[Response] | None] = asyncio.Queue(maxsize=window)

    async def read() -> None:
        try:
            async for request in requests:
                await pending.put(asyncio.ensure_future(handle(request)))
        finally:
            await pending.put(None)

    reader = asyncio.ensure_future(read())
    try:
        while (task := await pending.get()) is not None:
            yield await task
        await reader  # surfaces a broken request stream
    finally:
        reader.cancel()
        while not pending.empty():
            leftover = pending.get_nowait()
            if leftover is not None:
                leftover.cancel()

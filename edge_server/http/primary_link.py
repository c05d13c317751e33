"""A replica's HTTP link to the primary: the routes whose answer only the primary has.

With ``--workers N`` every process serves the public HTTP port and the kernel picks one
for each new connection. Two kinds of route must answer the same whichever it picked,
and only the primary can answer them: ``/metrics`` (the merged page of every worker:
the merge is the primary's, edge_server/workers/metrics_merge.py) and V2 REST
load/unload (the model lifecycle is the primary's). A replica sends those to the
primary's private HTTP endpoint (a unix socket in its 0700 folder,
edge_server/workers/private_folder.py), which serves them with the primary's own route
handlers, and answers with what came back: status, body and the headers that matter.
The management token was checked here first; it goes along and the primary checks it
again, as the gRPC relay does.
"""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
from aiohttp import web

from edge_server.http.bodies import read_body
from edge_server.http.errors import HttpRefusal

logger = logging.getLogger(__name__)

METRICS_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0
# What the caller sent that the primary's handler reads (aiohttp sets the rest).
_FORWARDED_REQUEST = ("Authorization", "Content-Type", "Accept")
# What the primary answered that the caller should see (aiohttp sets framing itself).
_FORWARDED_ANSWER = ("Content-Type", "Retry-After", "retry-after-ms")


class PrimaryLink:
    """HTTP over the primary's private socket; one connection pool for the process."""

    def __init__(self, socket: Path) -> None:
        self._socket = socket
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, on the running loop (aiohttp binds a session to its loop).
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(self._socket)),
                timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S),
                auto_decompress=False,
            )
        return self._session

    async def metrics(self) -> bytes:
        """The primary's merged /metrics page."""
        try:
            async with self._client().get(
                "http://primary/metrics", timeout=aiohttp.ClientTimeout(total=METRICS_TIMEOUT_S)
            ) as answer:
                body = await answer.read()
                if answer.status != 200:
                    raise aiohttp.ClientResponseError(
                        answer.request_info, (), status=answer.status, message=answer.reason or ""
                    )
                return body
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unreachable(exc) from None

    async def forward(self, request: web.Request) -> web.Response:
        """``request`` answered by the primary (a management route: no deadline, a load
        may take as long as the model does)."""
        body = await read_body(request) if request.can_read_body else b""
        headers = {k: v for k in _FORWARDED_REQUEST if (v := request.headers.get(k)) is not None}
        try:
            async with self._client().request(
                request.method, f"http://primary{request.path_qs}", data=body, headers=headers
            ) as answer:
                content = await answer.read()
                kept = {k: v for k in _FORWARDED_ANSWER if (v := answer.headers.get(k)) is not None}
                return web.Response(status=answer.status, body=content, headers=kept)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unreachable(exc) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _unreachable(exc: BaseException) -> HttpRefusal:
    logger.warning("the primary process did not answer over its private socket: %r", exc)
    return HttpRefusal(
        503,
        "UNAVAILABLE",
        "this route is answered by the gateway's primary process, which did not answer "
        "(it may be restarting or stopping); retry shortly",
    )

"""A tiny asyncio HTTP/1.1 endpoint: Prometheus ``/metrics`` and ``/healthz``.

No web framework: two read-only routes do not justify a dependency on a small
board, and running on the gateway's event loop means no extra thread.

Connections are capped (``max_connections``): beyond the cap a new connection gets an
immediate ``503`` with ``Retry-After`` and is closed without reading, so idle or slow
HTTP clients hold at most that many descriptors and the rest stay for gRPC. A
connection's request head must arrive within ``READ_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST

logger = logging.getLogger(__name__)

MAX_REQUEST_HEAD = 8192
_TEXT = "text/plain; charset=utf-8"
READ_TIMEOUT_S = 5.0


class HttpEndpoint:
    """Serves metrics and liveness/readiness on its own port."""

    def __init__(
        self,
        render_metrics: Callable[[], Awaitable[bytes]],
        is_ready: Callable[[], bool],
        max_connections: int = 64,
        on_refused: Callable[[], None] | None = None,
    ) -> None:
        self._render_metrics = render_metrics
        self._is_ready = is_ready
        self._server: asyncio.Server | None = None
        self.max_connections = max_connections
        self.connections = 0
        self._on_refused = on_refused

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self, host: str, port: int) -> None:
        # limit: the request head may not exceed MAX_REQUEST_HEAD (LimitOverrunError).
        self._server = await asyncio.start_server(self._handle, host, port, limit=MAX_REQUEST_HEAD)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def _route(self, method: str, path: str) -> tuple[int, str, bytes]:
        path = path.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return 405, _TEXT, b"only GET and HEAD are allowed\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, await self._render_metrics()
        if path in ("/healthz", "/readyz"):
            if self._is_ready():
                return 200, _TEXT, b"ok\n"
            return 503, _TEXT, b"not ready: no model is serving\n"
        if path == "/livez":
            return 200, _TEXT, b"ok\n"
        return 404, _TEXT, b"not found: try /metrics or /healthz\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.connections >= self.max_connections:
            await self._refuse(writer)
            return
        self.connections += 1
        try:
            await self._answer(reader, writer)
        finally:
            self.connections -= 1

    async def _refuse(self, writer: asyncio.StreamWriter) -> None:
        """Over the cap: say so at once and give the descriptor back."""
        if self._on_refused is not None:
            self._on_refused()
        body = b"too many HTTP connections; retry shortly\n"
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                _write(writer, 503, _TEXT, body, head_only=False, extra="Retry-After: 1\r\n"),
                1.0,
            )
        writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            except asyncio.LimitOverrunError:
                body = f"the request head is larger than {MAX_REQUEST_HEAD} bytes\n".encode()
                await _write(writer, 431, _TEXT, body, head_only=False)
                return
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = request_line.split()
            if len(parts) != 3:
                status, ctype, body = 400, _TEXT, b"bad request\n"
                method = "GET"
            else:
                method, path, _ = parts
                status, ctype, body = await self._route(method, path)
            await _write(writer, status, ctype, body, head_only=method == "HEAD")
        except (TimeoutError, asyncio.IncompleteReadError):
            pass
        except ConnectionError:
            pass
        except Exception:
            logger.exception("HTTP endpoint failed to answer")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


async def _write(
    writer: asyncio.StreamWriter,
    status: int,
    ctype: str,
    body: bytes,
    head_only: bool,
    extra: str = "",
) -> None:
    """One whole answer; ``extra``: more header lines, each ending in CRLF."""
    header = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {ctype}\r\n{extra}"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode("latin-1")
    writer.write(header if head_only else header + body)
    await writer.drain()

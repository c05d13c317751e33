"""The gateway's HTTP port: aiohttp on the gateway's own event loop.

aiohttp was measured against Starlette on uvicorn (benchmarks/http_library.py, numbers
in docs/architecture.md). It runs on the loop grpc.aio runs on: no thread, no second
loop. The routes are a table (edge_server/http/routes.py); this module serves them and
guards the port:

* Connections are capped (``max_connections``): beyond the cap a new connection gets an
  immediate ``503`` with ``Retry-After`` and is closed without reading, so idle or slow
  HTTP clients hold at most that many descriptors and the rest stay for gRPC.
* A request head must arrive within ``READ_TIMEOUT_S`` of the connection opening (or of
  the previous answer): aiohttp's keep-alive timer, which runs from the start of a
  connection, closes it otherwise. A body must arrive within
  edge_server/http/bodies.py's ``BODY_TIMEOUT_S`` (408).
* A request line or header line over ``MAX_HEAD_LINE`` bytes gets ``431``; more than
  ``MAX_HEADERS`` header lines too. A body over ``max_body_bytes`` gets ``413``.

Every failure leaves through edge_server/http/errors.py (the one status mapping).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestHandler

from edge_server.http.errors import HttpRefusal, error_response, plain_error
from edge_server.http.routes import Route, flavour_of

logger = logging.getLogger(__name__)

READ_TIMEOUT_S = 5.0
SHUTDOWN_GRACE_S = 1.0
MAX_HEAD_LINE = 8190  # aiohttp's own default line limit
MAX_HEADERS = 100
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
)
_REFUSAL_BODY = (
    b'{"error": {"code": "UNAVAILABLE", "message": "too many HTTP connections are open; '
    b'retry shortly"}}'
)


@dataclass(frozen=True)
class HttpLimits:
    max_connections: int = 64
    max_body_bytes: int = 16 * 1024 * 1024


class _Guard:
    """Counts the connections admitted; what a refused one reports to."""

    def __init__(self, limits: HttpLimits, on_refused: Callable[[], None] | None) -> None:
        self.limits = limits
        self.open = 0
        self.on_refused = on_refused


class _Handler(RequestHandler):
    """aiohttp's connection handler, plus the cap and a 431 for an oversized head line.

    The cap is applied in ``connection_made``, once per connection and in accept order,
    so a burst of connections accepted in one loop turn cannot overshoot it.
    """

    __slots__ = ("_admitted", "_guard")

    def __init__(self, guard: _Guard, manager: web.Server, **kwargs: object) -> None:
        super().__init__(manager, **kwargs)  # type: ignore[arg-type]
        self._guard = guard
        self._admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard = self._guard
        if guard.open >= guard.limits.max_connections:
            if guard.on_refused is not None:
                guard.on_refused()
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(_REFUSAL % (len(_REFUSAL_BODY), _REFUSAL_BODY))
            transport.close()
            return
        guard.open += 1
        self._admitted = True
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self._guard.open -= 1
        super().connection_lost(exc)

    def eof_received(self) -> bool:  # type: ignore[override]  # asyncio's allows bool
        """The client half-closed: answer what it sent, then close (aiohttp would close at
        once, answering nothing); with nothing to answer, close now."""
        waiting = self._waiter is not None and not self._waiter.done()
        if waiting:
            return False
        self.close()
        return True

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Requests aiohttp could not parse: 431 for a line over the limit, else its own
        answer (400), as JSON."""
        if isinstance(exc, LineTooLong):
            status, message = 431, f"a request head line is longer than {MAX_HEAD_LINE} bytes"
        elif status == 400 and exc is not None:
            message = f"malformed HTTP request: {getattr(exc, 'message', '') or exc}"
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        code = "INVALID_ARGUMENT"
        response = plain_error(status, code, message or "bad request")
        response.force_close()
        return response


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One exit for every failure of a route: the status mapping, in the route's flavour."""
    flavour = flavour_of(request.path)
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:  # routing (404, 405) and aiohttp's own 413
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "RESOURCE_EXHAUSTED"}
        message = _http_message(request, exc)
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
        return plain_error(
            exc.status, code.get(exc.status, "INVALID_ARGUMENT"), message, flavour, **headers
        )
    except HttpRefusal as exc:
        response = plain_error(exc.status, exc.code, str(exc), flavour)
        if exc.status in (408, 411, 413):  # the rest of the body is not worth reading
            response.force_close()
        return response
    except Exception as exc:
        return error_response(exc, flavour)


def _http_message(request: web.Request, exc: web.HTTPException) -> str:
    if exc.status == 404:
        return (
            f"no route for {request.path}: try /metrics, /healthz or /predict; every route "
            "is listed at /openapi.json"
        )
    if exc.status == 405:
        allowed = exc.headers.get("Allow", "")
        return f"{request.method} is not allowed on {request.path}; use {allowed}"
    if exc.status == 413:
        return f"the request body is larger than the limit of {request.client_max_size} bytes"
    return exc.text or exc.reason


class HttpEndpoint:
    """Serves the route table on one port, on the running loop."""

    def __init__(
        self,
        routes: Sequence[Route],
        limits: HttpLimits,
        on_refused: Callable[[], None] | None = None,
    ) -> None:
        self.routes = tuple(routes)
        self._guard = _Guard(limits, on_refused)
        self.app = web.Application(middlewares=[_errors], client_max_size=limits.max_body_bytes)
        for route in self.routes:
            if route.method == "GET":  # and HEAD, as every GET route answered before
                self.app.router.add_get(route.path, route.handler)
            else:
                self.app.router.add_route(route.method, route.path, route.handler)
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None

    @property
    def max_connections(self) -> int:
        return self._guard.limits.max_connections

    @property
    def connections(self) -> int:
        return self._guard.open

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(
        self, host: str, port: int, tls: ssl.SSLContext | None = None, reuse_port: bool = False
    ) -> None:
        """Listen on ``host:port``; ``reuse_port``: with SO_REUSEPORT, the port every
        worker process of the gateway listens on (the kernel spreads connections)."""
        loop = asyncio.get_running_loop()
        await self._serve(
            lambda accept: loop.create_server(accept, host, port, ssl=tls, reuse_port=reuse_port)
        )

    async def start_unix(self, path: Path) -> None:
        """Listen on a unix socket (the workers' private endpoints)."""
        loop = asyncio.get_running_loop()
        await self._serve(lambda accept: loop.create_unix_server(accept, str(path)))

    async def _serve(
        self, listen: Callable[[Callable[[], _Handler]], Awaitable[asyncio.Server]]
    ) -> None:
        # Shutdown: requests in flight get SHUTDOWN_GRACE_S, then their connections close
        # (gRPC's drain has already run by then: edge_server/app.py's stop sequence).
        runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_S
        )
        await runner.setup()
        self._runner = runner
        manager = runner.server
        assert manager is not None
        loop = asyncio.get_running_loop()

        def accept() -> _Handler:
            return _Handler(
                self._guard,
                manager,
                loop=loop,
                access_log=None,
                keepalive_timeout=READ_TIMEOUT_S,
                max_line_size=MAX_HEAD_LINE,
                max_field_size=MAX_HEAD_LINE,
                max_headers=MAX_HEADERS,
                lingering_time=1.0,
            )

        try:
            self._server = await listen(accept)
        except OSError:
            await runner.cleanup()
            raise

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()  # no new connections
        if self._runner is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._runner.cleanup(), 2 * SHUTDOWN_GRACE_S + 1)

"""Operations routes: Prometheus ``/metrics`` and the probes ``/healthz``, ``/readyz``,
``/livez`` (plain text, for load balancers and kubelets)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST

from edge_server.http.routes import Route

_TEXT = "text/plain"
_TEXT_BODY = {"text/plain": {"type": "string"}}


def ops_routes(
    render_metrics: Callable[[], Awaitable[bytes]], is_ready: Callable[[], bool]
) -> list[Route]:
    async def metrics(_request: web.Request) -> web.Response:
        body = await render_metrics()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def ready(_request: web.Request) -> web.Response:
        if is_ready():
            return web.Response(text="ok\n", content_type=_TEXT)
        return web.Response(status=503, text="not ready: no model is serving\n", content_type=_TEXT)

    async def live(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n", content_type=_TEXT)

    def probe(path: str, handler: Handler, summary: str) -> Route:
        return Route("GET", path, handler, summary, "operations", response=_TEXT_BODY)

    return [
        probe("/metrics", metrics, "Prometheus metrics (all worker processes, labelled)"),
        probe("/healthz", ready, "200 once a model serves and the gateway is not draining"),
        probe("/readyz", ready, "the same as /healthz"),
        probe("/livez", live, "200 while the process answers"),
    ]

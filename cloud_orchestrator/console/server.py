"""Build the console's aiohttp application and run it beside the gRPC server.

Without operator authentication the console only starts on a loopback address, and says
so in the log (``cli/serve.py`` refuses ``--console-no-auth`` elsewhere).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from cloud_orchestrator.console.api import feedback, fleet, rollouts, session
from cloud_orchestrator.console.auth import auth_middleware
from cloud_orchestrator.console.errors import error_middleware, error_response
from cloud_orchestrator.console.keys import (
    METRICS,
    OPERATORS,
    OPTIONS,
    ORCHESTRATOR,
    OWNER,
    ConsoleOptions,
    RenderMetrics,
)
from cloud_orchestrator.console.operators import Operators
from cloud_orchestrator.console.pages import routes as page_routes
from cloud_orchestrator.errors import InvalidRequest

if TYPE_CHECKING:
    from cloud_orchestrator.app import Orchestrator

__all__ = ["ConsoleServer", "build_app", "is_loopback"]

logger = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus' text format


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _metrics(request: web.Request) -> web.Response:
    """Prometheus' page, without auth (like the gateway's); 404 when this build has no
    orchestrator metrics to mount (the ``metrics`` hook of build_app)."""
    render = request.app[METRICS]
    if render is None:
        return error_response(404, "not_found", "this orchestrator exports no metrics")
    body = await asyncio.to_thread(render)  # one database query per scrape
    return web.Response(body=body, headers={"Content-Type": METRICS_TYPE})


def build_app(
    orch: Orchestrator,
    options: ConsoleOptions,
    owner: str,
    metrics: RenderMetrics | None = None,
) -> web.Application:
    if options.no_auth and not is_loopback(options.host):
        raise InvalidRequest(
            f"the console serves without operator tokens only on a loopback address, not "
            f"{options.host!r}: drop --console-no-auth or use --http-host 127.0.0.1"
        )
    app = web.Application(middlewares=[error_middleware, auth_middleware], client_max_size=1 << 20)
    app[ORCHESTRATOR] = orch
    app[OPERATORS] = Operators(orch.db)
    app[OPTIONS] = options
    app[OWNER] = owner
    app[METRICS] = metrics
    for table in (session.routes, fleet.routes, rollouts.routes, feedback.routes, page_routes):
        app.router.add_routes(table)
    app.router.add_get("/metrics", _metrics)
    app.router.add_static("/static/", STATIC, append_version=False)
    return app


class ConsoleServer:
    def __init__(
        self,
        orch: Orchestrator,
        options: ConsoleOptions,
        owner: str,
        metrics: RenderMetrics | None = None,
    ) -> None:
        self.options = options
        app = build_app(orch, options, owner, metrics)
        self._runner = web.AppRunner(app, access_log=None)
        self.port = 0

    async def start(self) -> None:
        context = None
        if self.options.tls_cert is not None and self.options.tls_key is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.options.tls_cert, self.options.tls_key)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.options.host, self.options.port, ssl_context=context)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else self.options.port
        scheme = "https" if context else "http"
        logger.info(
            "console listening: %s://%s:%d/ (%s)",
            scheme,
            self.options.host,
            self.port,
            "NO AUTHENTICATION: loopback only, every request is the admin 'local'"
            if self.options.no_auth
            else "operator tokens",
        )
        if self.options.no_auth:
            logger.warning(
                "console on %s:%d has no authentication (--console-no-auth)",
                self.options.host,
                self.port,
            )

    async def stop(self) -> None:
        await self._runner.cleanup()

"""``edge-orchestrator serve --metrics-port``: ``GET /metrics`` and nothing else, on a port
of its own, as Prometheus setups usually want it (no authentication: bind it where only
Prometheus reaches it).

prometheus_client's threaded WSGI server runs it: a scrape's database query then runs in
that server's thread, never on the orchestrator's event loop. Connections are capped
(``max_connections``; beyond it a new one is closed at once) and a request must arrive
within ``READ_TIMEOUT_S``, so idle or slow clients cannot pile up threads.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app

from cloud_orchestrator.errors import InvalidRequest
from cloud_orchestrator.metrics import OrchestratorMetrics
from edge_contracts.cli.ports import listen_error, probe_bind

__all__ = ["MetricsListener"]

logger = logging.getLogger(__name__)

PATH = "/metrics"
READ_TIMEOUT_S = 10.0
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _Quiet(WSGIRequestHandler):
    timeout = READ_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:
        """A scrape every few seconds is not news."""


class _CappedServer(ThreadingWSGIServer):
    """One thread per connection, at most ``max_connections`` at once."""

    max_connections = 16

    def server_activate(self) -> None:
        self._slots = threading.BoundedSemaphore(self.max_connections)
        super().server_activate()

    def verify_request(self, request: Any, client_address: Any) -> bool:
        return self._slots.acquire(blocking=False)  # False: closed without an answer

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away or stayed silent: not worth the default traceback.
        logger.debug("metrics request from %s failed", client_address, exc_info=True)


def _only_metrics(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    def serve(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [f"not found: this port serves only GET {PATH}\n".encode()]
        return app(environ, start_response)

    return serve


def _cannot_listen(host: str, port: int, code: int | None) -> InvalidRequest:
    return InvalidRequest(str(listen_error(host, port, "--metrics-port", "--host", code)))


class MetricsListener:
    """Started at construction (port 0: any free one), stopped by ``close``."""

    def __init__(
        self, metrics: OrchestratorMetrics, host: str, port: int, max_connections: int = 16
    ) -> None:
        refused = probe_bind(host, port) if port else None
        if refused is not None:
            raise _cannot_listen(host, port, refused)
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        server_class = type(
            "MetricsServer",
            (_CappedServer,),
            {"address_family": family, "max_connections": max_connections},
        )
        app = _only_metrics(make_wsgi_app(metrics.registry))
        try:
            self._server: WSGIServer = make_server(
                host, port, app, server_class, handler_class=_Quiet
            )
        except OSError as exc:
            raise _cannot_listen(host, port, exc.errno) from None
        self.host = host
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{PATH}"

    def close(self) -> None:
        """Blocking (up to the server's half-second poll): call it from a thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

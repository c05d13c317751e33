"""A gateway process's HTTP endpoints: the public port, and its workers' private ones.

- public (every process): the whole route table on --http-port, HTTPS with --tls-*.
  With several workers the primary and every replica listen on it with SO_REUSEPORT
  and the kernel spreads new connections over them, as for gRPC; a replica joins once
  its models serve. ``--http-max-connections`` caps each process's connections.
- private, with several workers (a unix socket in the primary's 0700 folder,
  edge_server/workers/private_folder.py): the primary's serves the routes a replica
  relays to it (the merged ``/metrics``, V2 REST load/unload: the same handlers as its
  public port); a replica's serves its own ``/metrics`` page, which the primary reads
  to merge.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from edge_contracts.cli.ports import listen_error, probe_bind
from edge_server.http.ops_routes import ops_routes
from edge_server.http.routes import Route
from edge_server.http.server import HttpEndpoint, HttpLimits
from edge_server.http.tls import server_ssl_context
from edge_server.settings import Settings
from edge_server.workers.private_folder import PrivateFolder

# The private endpoints' callers are this gateway's own processes: a few at a time.
PRIVATE_MAX_CONNECTIONS = 64
METRICS_PATH = "/metrics"


class HttpListeners:
    def __init__(
        self,
        settings: Settings,
        routes: Sequence[Route],
        on_refused: Callable[[], None],
        worker_index: int,
    ) -> None:
        self._settings = settings
        self._index = worker_index
        self._limits = HttpLimits(
            settings.server.http_max_connections, settings.server.max_message_bytes
        )
        self.public = HttpEndpoint(routes, self._limits, on_refused)
        self.private: HttpEndpoint | None = None

    async def start_public(self) -> None:
        s = self._settings.server
        shared = self._settings.effective_workers > 1
        host, port = s.host, s.http_port
        # The primary asks first, without SO_REUSEPORT: a port some other program holds
        # (even one that allows sharing it) is refused, never silently shared.
        refused = probe_bind(host, port) if shared and self._index == 0 else None
        if refused is not None:
            raise listen_error(host, port, "--http-port", "--host", refused)
        try:
            await self.public.start(host, port, server_ssl_context(self._settings), shared)
        except OSError as exc:
            raise listen_error(host, port, "--http-port", "--host", exc.errno) from None

    async def start_primary_private(self, folder: PrivateFolder) -> None:
        """The routes replicas relay here: /metrics and the management routes, with the
        same handlers (token check, follow barrier) as the public port."""
        relayed = [r for r in self.public.routes if r.path == METRICS_PATH or r.management]
        await self._start_private(relayed, folder.http)

    async def start_replica_private(
        self, folder: PrivateFolder, own_metrics: Callable[[], Awaitable[bytes]]
    ) -> None:
        """This replica's own /metrics page, for the primary to merge."""
        own = [r for r in ops_routes(own_metrics, lambda: True) if r.path == METRICS_PATH]
        await self._start_private(own, folder.worker(self._index))

    async def _start_private(self, routes: list[Route], socket: Path) -> None:
        limits = HttpLimits(PRIVATE_MAX_CONNECTIONS, self._limits.max_body_bytes)
        self.private = HttpEndpoint(routes, limits)
        await self.private.start_unix(socket)

    async def stop(self) -> None:
        await self.public.stop()
        if self.private is not None:
            await self.private.stop()

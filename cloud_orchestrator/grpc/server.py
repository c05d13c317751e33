"""The orchestrator's gRPC server: OrchestratorService + grpc.health.v1."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from cloud_orchestrator.errors import InvalidRequest
from cloud_orchestrator.grpc.servicer import OrchestratorServicer
from edge_contracts.cli.ports import listen_error, probe_bind
from edge_contracts.proto.edge.v1 import orchestrator_pb2, orchestrator_pb2_grpc

logger = logging.getLogger(__name__)

SERVICE_NAME = orchestrator_pb2.DESCRIPTOR.services_by_name["OrchestratorService"].full_name


def _cannot_listen(host: str, port: int, code: int | None) -> InvalidRequest:
    return InvalidRequest(str(listen_error(host, port, "--port", "--host", code)))


SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", 8 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.so_reuseport", 0),
    # A fleet reconnecting at once queues its calls until this loop asks for them; past
    # gRPC's default 1,000 queued they were CANCELLED (~1,800 streams was the most one
    # orchestrator could take in one burst).
    ("grpc.server.max_pending_requests", 20_000),
    ("grpc.server.max_pending_requests_hard_limit", 40_000),
]


class _Recorder:
    """Takes the generated registration's handlers instead of a server."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, _handlers: object) -> None:
        pass

    def add_registered_method_handlers(
        self, _service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        self.handlers = dict(handlers)


def _bytes_as_they_are(serialize: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    def encode(message: Any) -> bytes:
        return message if isinstance(message, bytes) else serialize(message)

    return encode


def register(servicer: OrchestratorServicer, server: grpc.aio.Server) -> None:
    """The generated registration (orchestrator_pb2_grpc), with one change: Subscribe may
    yield a SubscribeResponse already encoded. Most of a fleet shares one desired state;
    encoding it once for all of them instead of once per stream is a share of an assign's
    fan-out to 10,000 streams that the event loop no longer spends (grpc/servicer.py)."""
    recorder = _Recorder()
    orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(servicer, recorder)
    handlers = dict(recorder.handlers)
    subscribe = handlers["Subscribe"]
    handlers["Subscribe"] = subscribe._replace(
        response_serializer=_bytes_as_they_are(subscribe.response_serializer)
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


class OrchestratorServer:
    def __init__(
        self,
        servicer: OrchestratorServicer,
        host: str,
        port: int,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
    ) -> None:
        # Ask first: a failed bind also makes the gRPC core print its own error line.
        refused = probe_bind(host, port) if port else None
        if refused is not None:
            raise _cannot_listen(host, port, refused)
        # No interceptor: each method checks its caller's own credential first
        # (cloud_orchestrator/grpc/auth.py), since the gateway id is in the request.
        self._server = grpc.aio.server(options=SERVER_OPTIONS)
        register(servicer, self._server)
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        self.port = self._bind(host, port, tls_cert, tls_key)

    def _bind(self, host: str, port: int, tls_cert: Path | None, tls_key: Path | None) -> int:
        address = f"{host}:{port}"
        try:
            if tls_cert is not None and tls_key is not None:
                credentials = grpc.ssl_server_credentials(
                    [(tls_key.read_bytes(), tls_cert.read_bytes())]
                )
                return int(self._server.add_secure_port(address, credentials))
            return int(self._server.add_insecure_port(address))
        except RuntimeError:  # gRPC's "Failed to bind to address" says nothing more
            raise _cannot_listen(host, port, probe_bind(host, port)) from None

    async def start(self) -> None:
        await self._server.start()
        for name in ("", SERVICE_NAME):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float) -> None:
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace)

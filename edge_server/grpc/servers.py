"""A grpc.aio server configured from settings, and binding it with a clear refusal.

Both gRPC listeners of a gateway (inference and, when separate, management) are made here,
so message limits, the concurrency cap, SO_REUSEPORT and TLS are the same on both.
"""

from __future__ import annotations

import grpc

from edge_contracts.cli.ports import listen_error, probe_bind
from edge_server.settings import Settings


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    server = settings.server
    if server.tls_cert is None or server.tls_key is None:
        return None
    client_ca = server.tls_client_ca.read_bytes() if server.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(server.tls_key.read_bytes(), server.tls_cert.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def new_server(
    settings: Settings, interceptors: list[grpc.aio.ServerInterceptor]
) -> grpc.aio.Server:
    return grpc.aio.server(
        interceptors=interceptors,
        # Under overload the gRPC core refuses calls beyond this in C, immediately:
        # no per-call Python task, no request bytes buffered for a backlog.
        maximum_concurrent_rpcs=settings.effective_max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", settings.server.max_message_bytes),
            ("grpc.max_send_message_length", settings.server.max_message_bytes),
            # Several workers share the port; a lone gateway must not share it by accident.
            ("grpc.so_reuseport", 1 if settings.effective_workers > 1 else 0),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ],
    )


def bind(
    server: grpc.aio.Server,
    settings: Settings,
    address: tuple[str, int],
    flags: tuple[str, str],
    shared_port: bool,
) -> int:
    """Listen on ``address``; ``flags`` (port flag, host flag) name what to change when
    that fails. ``shared_port``: a replica joins a port the primary already holds."""
    host, port = address
    credentials = server_credentials(settings)
    target = f"{host}:{port}"
    # Ask first: a failed bind also makes the gRPC core print its own error line.
    refused = None if shared_port else probe_bind(host, port)
    if refused is not None:
        raise listen_error(host, port, *flags, refused)
    try:
        if credentials is None:
            return int(server.add_insecure_port(target))
        return int(server.add_secure_port(target, credentials))
    except RuntimeError:  # gRPC's "Failed to bind to address" says nothing more
        raise listen_error(host, port, *flags, probe_bind(host, port)) from None

"""TLS for the HTTP port from the gRPC side's settings: --tls-cert and --tls-key turn it
into HTTPS, and --tls-client-ca requires a client certificate signed by that CA (mTLS),
exactly as on the gRPC ports."""

from __future__ import annotations

import ssl

from edge_server.settings import Settings


def server_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    server = settings.server
    if server.tls_cert is None or server.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(server.tls_cert, server.tls_key)
    if server.tls_client_ca is not None:
        context.load_verify_locations(cafile=str(server.tls_client_ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context

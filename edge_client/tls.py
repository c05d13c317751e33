"""TLS and mutual-TLS channel credentials from PEM files."""

from __future__ import annotations

import os
from pathlib import Path

import grpc

__all__ = ["SSL_TARGET_NAME_OVERRIDE", "channel_credentials"]

# Channel option: the name to verify the server certificate against, when it differs
# from the host in the target (e.g. connecting by IP to a certificate for a DNS name).
SSL_TARGET_NAME_OVERRIDE = "grpc.ssl_target_name_override"

PathArg = str | os.PathLike[str]


def channel_credentials(
    ca_cert: PathArg | None = None,
    client_cert: PathArg | None = None,
    client_key: PathArg | None = None,
) -> grpc.ChannelCredentials:
    """TLS credentials: trust ``ca_cert`` (system roots when None); mTLS with cert and key.

    Raises ValueError when only one of ``client_cert`` and ``client_key`` is given,
    OSError when a file cannot be read.
    """
    if (client_cert is None) != (client_key is None):
        raise ValueError("mutual TLS needs both a client certificate and its key")
    root = Path(ca_cert).read_bytes() if ca_cert is not None else None
    chain = Path(client_cert).read_bytes() if client_cert is not None else None
    key = Path(client_key).read_bytes() if client_key is not None else None
    return grpc.ssl_channel_credentials(
        root_certificates=root, private_key=key, certificate_chain=chain
    )

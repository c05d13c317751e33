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

    Raises ValueError when only one of ``client_cert`` and ``client_key`` is given or a
    file holds no PEM block of its kind, OSError when a file cannot be read.
    """
    if (client_cert is None) != (client_key is None):
        raise ValueError("mutual TLS needs both a client certificate and its key")
    root = _read_pem(ca_cert, b"CERTIFICATE", "certificate")
    chain = _read_pem(client_cert, b"CERTIFICATE", "certificate")
    key = _read_pem(client_key, b"PRIVATE KEY", "private key")
    return grpc.ssl_channel_credentials(
        root_certificates=root, private_key=key, certificate_chain=chain
    )


def _read_pem(path: PathArg | None, label: bytes, what: str) -> bytes | None:
    """The file's bytes; ValueError when it holds no PEM block of that kind (gRPC would
    only fail later, at the handshake, with a less helpful message)."""
    if path is None:
        return None
    data = Path(path).read_bytes()
    if b"-----BEGIN " not in data or label + b"-----" not in data:
        raise ValueError(f"{os.fspath(path)}: not a PEM {what} (-----BEGIN ...{what.upper()}-----)")
    return data

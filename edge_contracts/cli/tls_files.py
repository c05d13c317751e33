"""TLS files (certificates, private keys) an operator gives a server, checked before it
starts: a wrong file must end as one line naming the flag and what to do, not as gRPC's
"Failed to bind". cryptography is imported only when a file is checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edge_contracts.cli.user_files import read_user_file

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

__all__ = ["check_tls_pair", "load_certificates", "load_private_key"]


def load_certificates(flag: str, path: Path) -> list[x509.Certificate]:
    from cryptography import x509

    data = read_user_file(flag, path)
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError(
            f"{flag} {path}: not a PEM certificate (-----BEGIN CERTIFICATE-----)"
        ) from None


def load_private_key(flag: str, path: Path) -> PrivateKeyTypes:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    data = read_user_file(flag, path)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError(f"{flag} {path}: not an unencrypted PEM private key") from None


def check_tls_pair(cert_path: Path, key_path: Path) -> None:
    """The certificate and key load, and the key is the one the certificate was issued for
    (else gRPC refuses to listen with no reason but "Failed to bind")."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    certificate = load_certificates("--tls-cert", cert_path)[0]
    key = load_private_key("--tls-key", key_path)
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if certificate.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise ValueError(
            f"--tls-key {key_path}: does not match the certificate in --tls-cert {cert_path}; "
            "give the key that certificate was issued for"
        )

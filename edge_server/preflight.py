"""Check the folders and files edge-server is pointed at, before anything starts.

A wrong path or a file of the wrong kind is the operator's mistake: it must end as
one line naming the flag and what to do (printed by edge_server.cli), not as a
traceback from deep inside start-up, a gRPC core log line, or, for an empty token
file, a management plane silently left open.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edge_contracts.errors import BundleError
from edge_server.lifecycle.assembly import trusted_key_files
from edge_server.settings import Settings
from edge_server.user_files import read_user_file

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


def check_settings_files(settings: Settings) -> None:
    """Raise ValueError naming the flag of the first path that cannot serve its purpose."""
    check_model_root(settings.model_root)
    check_trusted_keys(settings.trusted_keys)
    for flag, token_file in (
        ("--management-token-file", settings.management_token_file),
        ("--orchestrator-token-file", settings.orchestrator_token_file),
    ):
        if token_file is not None:
            check_token_file(flag, token_file)
    if settings.tls_cert is not None and settings.tls_key is not None:
        check_tls_pair(settings.tls_cert, settings.tls_key)
    for flag, ca in (
        ("--tls-client-ca", settings.tls_client_ca),
        ("--orchestrator-ca", settings.orchestrator_ca),
    ):
        if ca is not None:
            load_certificates(flag, ca)


def check_model_root(root: Path) -> None:
    if root.is_dir():
        return
    problem = "not a folder" if root.exists() else "no such folder; create it"
    raise ValueError(
        f"--model-root {root}: {problem}, or point --model-root at the folder holding "
        "<model>/<version>/model.onnx"
    )


def check_trusted_keys(paths: tuple[Path, ...]) -> None:
    if not paths:
        return
    from edge_contracts.bundle.signing import load_public_key  # costs ~8 MiB: only when asked

    for path in paths:
        if not path.exists():
            raise ValueError(f"--trusted-keys {path}: no such file or folder")
    for key_file in trusted_key_files(paths):
        try:
            load_public_key(key_file)
        except BundleError as exc:
            raise ValueError(
                f"--trusted-keys: {exc}; give the publisher's public key (the .pub file "
                "`model-tools keygen` wrote)"
            ) from None


def check_token_file(flag: str, path: Path) -> None:
    try:
        token = read_user_file(flag, path).decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError(f"{flag} {path}: not a text file holding a token") from None
    if not token:  # an empty token would leave the calls it guards open to anyone
        raise ValueError(f"{flag} {path}: is empty; write the token into it")


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

"""A throwaway certificate authority for TLS and mTLS tests."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_client_cert: Path
    other_ca_client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _issue(
    subject: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer_name: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    *,
    is_ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not is_ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM

    def ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        return key, _issue(name, key, _name(name), key, is_ca=True)

    ca_key, ca_cert = ca("edge-test-ca")
    other_key, other_cert = ca("someone-else-ca")
    (folder / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    paths = {}
    for label, signer_key, signer_cert, server in (
        ("server", ca_key, ca_cert, True),
        ("client", ca_key, ca_cert, False),
        ("other-client", other_key, other_cert, False),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(label, signer_key, signer_cert.subject, key, server=server)
        (folder / f"{label}.pem").write_bytes(cert.public_bytes(pem))
        _write_key(key, folder / f"{label}.key")
        paths[label] = (folder / f"{label}.pem", folder / f"{label}.key")
    return Pki(
        ca_cert=folder / "ca.pem",
        server_cert=paths["server"][0],
        server_key=paths["server"][1],
        client_cert=paths["client"][0],
        client_key=paths["client"][1],
        other_ca_client_cert=paths["other-client"][0],
        other_ca_client_key=paths["other-client"][1],
    )

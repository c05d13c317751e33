"""Root keys, keyrings and bundles with signed targets metadata for the trust tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_contracts.bundle.writer import Payload, build_manifest_bytes, write_bundle
from edge_contracts.trust.canonical import key_id_of_raw, raw_public_key
from edge_contracts.trust.keyring import KeyEntry, keyring_document, sign_keyring
from edge_contracts.trust.targets import sign_with_targets
from tests.support.bundles import GOLDEN_PATH

LATER = datetime.now(UTC) + timedelta(days=30)


def entry(
    key: Ed25519PrivateKey, models: tuple[str, ...] = ("*",), expires: datetime = LATER
) -> KeyEntry:
    raw = raw_public_key(key)
    return KeyEntry(key_id_of_raw(raw), raw, models, expires)


def keyring(
    root: Ed25519PrivateKey, version: int, *keys: KeyEntry, expires: datetime = LATER
) -> dict[str, Any]:
    """A root-signed keyring envelope certifying ``keys``."""
    return sign_keyring(keyring_document(version, expires, keys), root)


@dataclass(frozen=True)
class Release:
    """What a publisher puts in one bundle's signed metadata."""

    key: Ed25519PrivateKey
    sequence: int
    keyring: dict[str, Any] | None = None
    expires: datetime = LATER


def build_trusted_bundle(
    destination: Path,
    model_file: Path | bytes,
    name: str,
    version: str,
    release: Release,
    manifest: dict[str, Any] | None = None,
    golden: tuple[bytes, dict[str, Any]] | None = None,
) -> Path:
    document: dict[str, Any] = {"name": name, "version": version, **(manifest or {})}
    payloads: dict[str, Payload] = {"model.onnx": model_file}
    if golden is not None:
        payloads[GOLDEN_PATH] = golden[0]
        document["golden"] = golden[1]
    manifest_bytes = build_manifest_bytes(document, payloads)
    signature = sign_with_targets(
        manifest_bytes,
        release.key,
        name=name,
        version=version,
        sequence=release.sequence,
        expires=release.expires,
        keyring=release.keyring,
    )
    return write_bundle(destination, manifest_bytes, payloads, signature)

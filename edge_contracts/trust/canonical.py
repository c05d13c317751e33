"""Canonical JSON, UTC times and Ed25519 primitives shared by the keyring and targets.

What is signed is always ``canonical_bytes(document)``: sorted keys, no spaces, UTF-8,
and only strings, integers, booleans, lists and objects (no floats, whose text form
differs between writers). A verifier re-serializes the parsed document, so a signature
never depends on how the file happened to be formatted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from edge_contracts.errors import BundleError, IntegrityError

__all__ = [
    "b64decode",
    "b64encode",
    "canonical_bytes",
    "ed25519_sign",
    "ed25519_verify",
    "format_utc",
    "key_id_of_raw",
    "parse_utc",
    "raw_public_key",
]


def _check_plain(value: Any, where: str) -> None:
    if isinstance(value, bool | int | str) or value is None:
        return
    if isinstance(value, list):
        for item in value:
            _check_plain(item, where)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise BundleError(f"{where}: object keys must be strings")
            _check_plain(item, where)
        return
    raise BundleError(f"{where}: {type(value).__name__} values cannot be signed canonically")


def canonical_bytes(document: dict[str, Any], where: str = "signed metadata") -> bytes:
    """The exact bytes a signature covers."""
    _check_plain(document, where)
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def format_utc(moment: datetime) -> str:
    """``2026-12-06T05:00:00Z``: whole seconds, always UTC."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_utc(text: object, where: str) -> datetime:
    """An ISO 8601 UTC time ending in ``Z`` (or ``+00:00``)."""
    if not isinstance(text, str) or not (text.endswith("Z") or text.endswith("+00:00")):
        raise BundleError(f"{where} must be an ISO 8601 UTC time like 2027-01-31T00:00:00Z")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BundleError(f"{where} {text!r} is not an ISO 8601 time") from None
    return moment.astimezone(UTC)


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: object, size: int, where: str) -> bytes:
    """Strict base64 of exactly ``size`` bytes; anything else is tampering or a bad writer."""
    try:
        data = base64.b64decode(str(text), validate=True) if isinstance(text, str) else b""
    except (binascii.Error, ValueError):
        data = b""
    if len(data) != size:
        raise IntegrityError(f"{where} is not base64 of {size} bytes")
    return data


def key_id_of_raw(raw_public: bytes) -> str:
    """Same key id as edge_contracts/bundle/signing.py: 16 hex digits of sha256(raw key)."""
    return hashlib.sha256(raw_public).hexdigest()[:16]


def raw_public_key(key: Any) -> bytes:
    """The 32 raw bytes of an Ed25519 public or private key object."""
    from cryptography.hazmat.primitives import serialization

    public = key.public_key() if hasattr(key, "public_key") else key
    raw: bytes = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw


def ed25519_sign(private_key: Any, data: bytes) -> bytes:
    signature: bytes = private_key.sign(data)
    return signature


def ed25519_verify(raw_public: bytes, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` by the raw public key covers ``data``."""
    # Imported here: only code that verifies pays for cryptography
    # (tests/unit/test_import_boundaries.py).
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(raw_public).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True

"""The keyring: which signing keys may sign which models, certified by the offline root.

A keyring travels as an envelope (a file ``keyring.json``, or inside a bundle's
``signature`` member)::

    {"signed": {"type": "keyring", "version": 3, "expires": "2027-06-01T00:00:00Z",
                "threshold": 1,
                "keys": [{"key_id": "ff00f7f2c49847b9", "public_key": "<base64 32 bytes>",
                          "models": ["*"], "expires": "2027-06-01T00:00:00Z"}]},
     "signatures": [{"key_id": "<root key id>", "signature": "<base64 64 bytes>"}]}

The root signs ``canonical_bytes(signed)``. A verifier accepts a keyring only if it
is signed by the root it trusts and not expired; which version wins (never a lower
one) is the holder's decision (edge_server/lifecycle/freshness.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edge_contracts.errors import BundleError, IntegrityError
from edge_contracts.json_limits import check_json_depth
from edge_contracts.trust.canonical import (
    b64decode,
    b64encode,
    canonical_bytes,
    ed25519_sign,
    ed25519_verify,
    format_utc,
    key_id_of_raw,
    parse_utc,
    raw_public_key,
)

__all__ = [
    "ANY_MODEL",
    "MAX_KEYRING_BYTES",
    "KeyEntry",
    "Keyring",
    "keyring_document",
    "parse_envelope",
    "sign_keyring",
    "verify_keyring",
]

ANY_MODEL = "*"
MAX_KEYRING_BYTES = 64 * 1024


@dataclass(frozen=True)
class KeyEntry:
    key_id: str
    public_key: bytes
    models: tuple[str, ...]
    expires: datetime

    def allows(self, model: str) -> bool:
        return ANY_MODEL in self.models or model in self.models

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "public_key": b64encode(self.public_key),
            "models": list(self.models),
            "expires": format_utc(self.expires),
        }


@dataclass(frozen=True)
class Keyring:
    """A verified keyring; ``envelope`` is what was signed plus the signatures, as received."""

    version: int
    expires: datetime
    keys: tuple[KeyEntry, ...]
    envelope: Mapping[str, Any]

    def signing_key(self, kid: str, model: str, now: datetime) -> KeyEntry:
        """The certified key ``kid`` if it may sign ``model`` now, else IntegrityError."""
        entry = next((k for k in self.keys if k.key_id == kid), None)
        if entry is None:
            raise IntegrityError(
                f"signed by key {kid}, which keyring version {self.version} does not certify "
                "(revoked or never added); sign with a key the current keyring lists"
            )
        if entry.expires <= now:
            raise IntegrityError(
                f"signing key {kid} expired at {format_utc(entry.expires)} (keyring version "
                f"{self.version}); certify a new key with model-tools keyring"
            )
        if not entry.allows(model):
            raise IntegrityError(
                f"signing key {kid} may sign only {', '.join(entry.models)}, not model {model!r}"
            )
        return entry


def keyring_document(version: int, expires: datetime, keys: Iterable[KeyEntry]) -> dict[str, Any]:
    """The ``signed`` part of a keyring."""
    if version < 1:
        raise BundleError("keyring version must be >= 1")
    return {
        "type": "keyring",
        "version": version,
        "expires": format_utc(expires),
        "threshold": 1,
        "keys": [k.to_json() for k in sorted(keys, key=lambda k: k.key_id)],
    }


def sign_keyring(signed: dict[str, Any], root_private_key: Any) -> dict[str, Any]:
    """The envelope: ``signed`` plus the root's signature over its canonical bytes."""
    raw = raw_public_key(root_private_key)
    signature = ed25519_sign(root_private_key, canonical_bytes(signed, "keyring"))
    return {
        "signed": signed,
        "signatures": [{"key_id": key_id_of_raw(raw), "signature": b64encode(signature)}],
    }


def parse_envelope(data: bytes, where: str = "keyring") -> dict[str, Any]:
    """The envelope from JSON bytes (a keyring.json file)."""
    if len(data) > MAX_KEYRING_BYTES:
        raise BundleError(f"{where} is {len(data)} bytes; a keyring is at most 64 KiB")
    check_json_depth(data, where, BundleError)  # before json.loads recurses
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BundleError(f"{where} is not JSON") from None
    if not isinstance(document, dict):
        raise BundleError(f"{where} is not a keyring envelope (a JSON object)")
    return document


def _entry(raw: Any, number: int) -> KeyEntry:
    where = f"keyring key #{number}"
    if not isinstance(raw, dict):
        raise IntegrityError(f"{where} is not an object")
    public = b64decode(raw.get("public_key"), 32, f"{where} public_key")
    kid = raw.get("key_id")
    if kid != key_id_of_raw(public):
        raise IntegrityError(f"{where}: key_id {kid!r} does not match its public key")
    models = raw.get("models")
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise IntegrityError(f"{where}: models must be a non-empty list of names or '*'")
    return KeyEntry(kid, public, tuple(models), parse_utc(raw.get("expires"), f"{where} expires"))


def _root_signed(envelope: Mapping[str, Any], signed_bytes: bytes, root_public: bytes) -> bool:
    root_id = key_id_of_raw(root_public)
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list):
        raise IntegrityError("keyring has no signatures list")
    by_root = [s for s in signatures if isinstance(s, dict) and s.get("key_id") == root_id]
    if not by_root:
        found = sorted(str(s.get("key_id")) for s in signatures if isinstance(s, dict))
        raise IntegrityError(
            f"keyring is signed by {', '.join(found) or 'nobody'}, not by the trusted root "
            f"key {root_id}"
        )
    return any(
        ed25519_verify(
            root_public, b64decode(s.get("signature"), 64, "keyring signature"), signed_bytes
        )
        for s in by_root
    )


def verify_keyring(
    envelope: Mapping[str, Any], root_public: bytes, now: datetime, *, allow_expired: bool = False
) -> Keyring:
    """Check the root's signature, the fields and the expiry; return the keyring."""
    signed = envelope.get("signed")
    if not isinstance(signed, dict) or signed.get("type") != "keyring":
        raise IntegrityError("not a keyring: 'signed' with type 'keyring' is missing")
    if not _root_signed(envelope, canonical_bytes(signed, "keyring"), root_public):
        raise IntegrityError(
            "keyring signature by the root key does not match: the keyring was modified"
        )
    version = signed.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise IntegrityError("keyring version must be an integer >= 1")
    if signed.get("threshold") != 1:
        raise IntegrityError("keyring threshold must be 1 (one root key)")
    expires = parse_utc(signed.get("expires"), "keyring expires")
    if expires <= now and not allow_expired:
        raise IntegrityError(
            f"keyring version {version} expired at {format_utc(expires)}; sign a fresh one "
            "with model-tools keyring --bump"
        )
    raw_keys = signed.get("keys")
    if not isinstance(raw_keys, list):
        raise IntegrityError("keyring keys must be a list")
    keys = tuple(_entry(raw, number) for number, raw in enumerate(raw_keys, 1))
    return Keyring(version, expires, keys, dict(envelope))

"""Per-bundle signed metadata ("targets") inside the bundle's ``signature`` member.

The member keeps the three legacy fields (a signature over the manifest bytes, which
gateways without ``--trust-root`` check) and adds::

    "targets": {"type": "targets", "name": "gray", "version": "3", "sequence": 3,
                "expires": "2027-01-05T00:00:00Z", "manifest_sha256": "<64 hex>"},
    "targets_signature": "<base64 Ed25519 by key_id over canonical_bytes(targets)>",
    "keyring": {<keyring envelope, optional; see keyring.py>}

``sequence`` is a per-model integer the publisher increases with every release; the
gateway refuses one that is not above the highest it installed (replay, rollback).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
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
from edge_contracts.trust.keyring import Keyring

__all__ = [
    "MAX_SIGNATURE_MEMBER_BYTES",
    "SignedTargets",
    "Targets",
    "decode_signed_targets",
    "sign_with_targets",
    "verify_targets",
]

# Same limit as edge_contracts/bundle/format.py MAX_SIGNATURE_BYTES: a reader refuses more.
MAX_SIGNATURE_MEMBER_BYTES = 4096


@dataclass(frozen=True)
class Targets:
    name: str
    version: str
    sequence: int
    expires: datetime
    manifest_sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "targets",
            "name": self.name,
            "version": self.version,
            "sequence": self.sequence,
            "expires": format_utc(self.expires),
            "manifest_sha256": self.manifest_sha256,
        }


@dataclass(frozen=True)
class SignedTargets:
    """The parsed trust part of a ``signature`` member (not yet verified)."""

    key_id: str
    targets: Mapping[str, Any]
    signature: bytes
    keyring: Mapping[str, Any] | None


def sign_with_targets(
    manifest_bytes: bytes,
    private_key: Any,
    *,
    name: str,
    version: str,
    sequence: int,
    expires: datetime,
    keyring: Mapping[str, Any] | None = None,
) -> bytes:
    """The ``signature`` member: legacy signature, signed targets and (optionally) the keyring."""
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 1:
        raise BundleError("sequence must be an integer >= 1")
    targets = Targets(
        name, version, sequence, expires, hashlib.sha256(manifest_bytes).hexdigest()
    ).to_json()
    document: dict[str, Any] = {
        "algorithm": "ed25519",
        "key_id": key_id_of_raw(raw_public_key(private_key)),
        "signature": b64encode(ed25519_sign(private_key, manifest_bytes)),
        "targets": targets,
        "targets_signature": b64encode(ed25519_sign(private_key, canonical_bytes(targets))),
    }
    if keyring is not None:
        document["keyring"] = dict(keyring)
    encoded = (json.dumps(document, sort_keys=True) + "\n").encode()
    if len(encoded) > MAX_SIGNATURE_MEMBER_BYTES:
        raise BundleError(
            f"the signature member would be {len(encoded)} bytes, over the "
            f"{MAX_SIGNATURE_MEMBER_BYTES}-byte limit; ship a keyring with fewer keys"
        )
    return encoded


def decode_signed_targets(data: bytes) -> SignedTargets | None:
    """The trust part of a ``signature`` member; None for a legacy member without targets."""
    check_json_depth(data, "bundle signature", IntegrityError)  # before json.loads recurses
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise IntegrityError("signature file is malformed") from None
    if not isinstance(document, dict) or "targets" not in document:
        return None
    targets, keyring, kid = document["targets"], document.get("keyring"), document.get("key_id")
    if not isinstance(targets, dict) or not isinstance(kid, str):
        raise IntegrityError("signature file has malformed targets")
    if keyring is not None and not isinstance(keyring, dict):
        raise IntegrityError("signature file has a malformed keyring")
    signature = b64decode(document.get("targets_signature"), 64, "targets_signature")
    return SignedTargets(kid, targets, signature, keyring)


def _parse(targets: Mapping[str, Any]) -> Targets:
    if targets.get("type") != "targets":
        raise IntegrityError("targets metadata has no type 'targets'")
    name, version = targets.get("name"), targets.get("version")
    sequence, digest = targets.get("sequence"), targets.get("manifest_sha256")
    if not isinstance(name, str) or not isinstance(version, str):
        raise IntegrityError("targets metadata lacks the model name or version")
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 1:
        raise IntegrityError("targets sequence must be an integer >= 1")
    if not isinstance(digest, str) or len(digest) != 64:
        raise IntegrityError("targets manifest_sha256 must be 64 hex digits")
    return Targets(
        name, version, sequence, parse_utc(targets.get("expires"), "targets expires"), digest
    )


def verify_targets(
    signed: SignedTargets, manifest_bytes: bytes, keyring: Keyring, now: datetime
) -> Targets:
    """Certified key, signature, manifest digest and expiry; IntegrityError on any failure."""
    targets = _parse(signed.targets)
    entry = keyring.signing_key(signed.key_id, targets.name, now)
    if not ed25519_verify(
        entry.public_key, signed.signature, canonical_bytes(dict(signed.targets))
    ):
        raise IntegrityError(
            f"targets signature by key {signed.key_id} does not match: the metadata was modified"
        )
    if hashlib.sha256(manifest_bytes).hexdigest() != targets.manifest_sha256:
        raise IntegrityError(
            "the manifest's sha256 differs from the signed targets: the bundle was modified"
        )
    if targets.expires <= now:
        raise IntegrityError(
            f"bundle metadata expired at {format_utc(targets.expires)}; the publisher must "
            "re-package it with a new sequence and expiry"
        )
    return targets

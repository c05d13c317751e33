"""Keyrings and signed targets for publishers (format: docs/security.md).

Needs no package of the tools extra, like model_tools/bundle_keys.py: a release
machine that only certifies keys and signs bundles gets by with the base install.
The root key signs keyrings only; it should live offline and come out for that.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edge_contracts.atomic_files import PUBLIC_FILE, write_bytes_atomic
from edge_contracts.bundle.archive import open_archive
from edge_contracts.bundle.signing import load_private_key, load_public_key
from edge_contracts.bundle.verify import VerifiedBundle, verify_bundle
from edge_contracts.trust.canonical import format_utc, key_id_of_raw, raw_public_key
from edge_contracts.trust.keyring import (
    KeyEntry,
    Keyring,
    keyring_document,
    parse_envelope,
    sign_keyring,
    verify_keyring,
)
from edge_contracts.trust.targets import (
    Targets,
    decode_signed_targets,
    sign_with_targets,
    verify_targets,
)
from model_tools.bundle_keys import legacy_signer, sign_bundle
from model_tools.errors import ToolError, require_file

__all__ = [
    "KeyringResult",
    "TrustedVerification",
    "read_keyring",
    "resign_bundle",
    "targets_signature",
    "update_keyring",
    "verify_trusted",
]


@dataclass(frozen=True)
class KeyringResult:
    path: Path
    keyring: Keyring

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "version": self.keyring.version,
            "expires": format_utc(self.keyring.expires),
            "keys": [k.to_json() for k in self.keyring.keys],
        }


def _days(value: int, what: str) -> datetime:
    if value < 1:
        raise ToolError(f"{what} must be at least 1 day")
    return datetime.now(UTC) + timedelta(days=value)


def read_keyring(path: Path, root_public: bytes | None = None) -> dict[str, Any]:
    """A keyring envelope from a file; checked against the root when it is given."""
    envelope = parse_envelope(require_file(path, "keyring").read_bytes(), str(path))
    if root_public is not None:
        verify_keyring(envelope, root_public, datetime.now(UTC), allow_expired=True)
    return envelope


def _key_ref(text: str) -> str:
    """A key id given as 16 hex digits or as a public key file."""
    if len(text) == 16 and all(c in "0123456789abcdef" for c in text):
        return text
    return key_id_of_raw(raw_public_key(load_public_key(require_file(Path(text), "public key"))))


def update_keyring(
    output: Path,
    root_key: Path,
    *,
    previous: Path | None = None,
    add: Sequence[Path] = (),
    models: Sequence[str] = ("*",),
    remove: Sequence[str] = (),
    version: int | None = None,
    expires_in_days: int = 365,
    key_expires_in_days: int = 365,
) -> KeyringResult:
    """Write a root-signed keyring: the previous one's keys, plus ``add``, minus ``remove``."""
    root = load_private_key(require_file(root_key, "root key"))
    root_public = raw_public_key(root)
    keys: dict[str, KeyEntry] = {}
    last = 0
    if previous is not None:
        now = datetime.now(UTC)
        old = verify_keyring(read_keyring(previous), root_public, now, allow_expired=True)
        keys = {k.key_id: k for k in old.keys}
        last = old.version
    for kid in map(_key_ref, remove):
        if keys.pop(kid, None) is None:
            raise ToolError(f"key {kid} is not in the keyring; nothing to remove")
    names = tuple(m.strip() for m in models if m.strip()) or ("*",)
    for path in add:
        raw = raw_public_key(load_public_key(require_file(path, "public key")))
        if raw == root_public:
            raise ToolError(f"{path} is the root key; certify a separate signing key")
        entry = KeyEntry(key_id_of_raw(raw), raw, names, _days(key_expires_in_days, "key expiry"))
        keys[entry.key_id] = entry
    number = last + 1 if version is None else version
    if number <= last:
        raise ToolError(f"keyring version must be above {last}, the previous one's")
    signed = keyring_document(number, _days(expires_in_days, "--expires-in"), keys.values())
    envelope = sign_keyring(signed, root)
    text = json.dumps(envelope, indent=2, sort_keys=True) + "\n"
    write_bytes_atomic(output, text.encode(), PUBLIC_FILE)
    now = datetime.now(UTC)
    return KeyringResult(output, verify_keyring(envelope, root_public, now))


def targets_signature(
    manifest_bytes: bytes,
    signing_key: Path,
    *,
    name: str,
    version: str,
    sequence: int,
    expires_in_days: int,
    keyring: Path | None,
) -> tuple[str, bytes]:
    """(key id, ``signature`` member) with signed targets and, if given, the keyring."""
    key = load_private_key(signing_key)
    kid = key_id_of_raw(raw_public_key(key))
    envelope = read_keyring(keyring) if keyring is not None else None
    if envelope is not None:
        listed = {k.get("key_id") for k in envelope.get("signed", {}).get("keys", [])}
        if kid not in listed:
            raise ToolError(
                f"signing key {kid} is not in keyring {keyring}; certify it first "
                "(model-tools keyring --add-key)"
            )
    member = sign_with_targets(
        manifest_bytes,
        key,
        name=name,
        version=version,
        sequence=sequence,
        expires=_days(expires_in_days, "--expires-in"),
        keyring=envelope,
    )
    return kid, member


def resign_bundle(
    bundle: Path,
    signing_key: Path,
    output: Path | None = None,
    *,
    sequence: int | None = None,
    expires_in_days: int = 90,
    keyring: Path | None = None,
    legacy: bool = False,
) -> str:
    """Re-sign ``bundle``; returns the key id. With ``sequence`` the new signature carries
    signed targets (and ``keyring`` when given), as ``model-tools package`` writes them.

    A bundle that carries targets is re-signed only with ``keyring`` or, explicitly,
    ``legacy``: a legacy signature alone would drop its sequence and expiry, and
    --trust-root gateways refuse such a bundle (docs/security.md).
    """
    if legacy and (sequence is not None or keyring is not None):
        raise ToolError("--legacy writes a legacy signature only; drop --keyring and --sequence")
    if keyring is None and not legacy:
        existing = open_archive(bundle).signature_bytes
        signed = decode_signed_targets(existing) if existing is not None else None
        if signed is not None:
            raise ToolError(
                f"{bundle} carries signed targets metadata (sequence "
                f"{signed.targets.get('sequence')}); signing it without --keyring FILE "
                "--sequence N would drop that freshness metadata and --trust-root gateways "
                "would refuse the bundle: pass --keyring and --sequence, or --legacy for a "
                "legacy signature only"
            )
    if sequence is None:
        return sign_bundle(bundle, signing_key, output, legacy_signer)

    def with_targets(
        key: Path, manifest_bytes: bytes, name: str, version: str
    ) -> tuple[str, bytes]:
        return targets_signature(
            manifest_bytes,
            key,
            name=name,
            version=version,
            sequence=sequence,
            expires_in_days=expires_in_days,
            keyring=keyring,
        )

    return sign_bundle(bundle, signing_key, output, with_targets)


@dataclass(frozen=True)
class TrustedVerification:
    bundle: VerifiedBundle
    targets: Targets
    keyring: Keyring
    public_key: bytes  # the signer's, as the keyring certifies it


def verify_trusted(bundle: Path, trust_root: Path, keyring: Path | None) -> TrustedVerification:
    """What a --trust-root gateway checks, without its memory of earlier versions."""
    root_public = raw_public_key(load_public_key(require_file(trust_root, "trust root")))
    archive = open_archive(bundle)
    signed = decode_signed_targets(archive.signature_bytes or b"{}")
    if signed is None:
        raise ToolError(
            f"{bundle} has no signed targets metadata (legacy signature or unsigned); a "
            "--trust-root gateway refuses it"
        )
    envelope = read_keyring(keyring) if keyring is not None else signed.keyring
    if envelope is None:
        raise ToolError(f"{bundle} carries no keyring; pass --keyring FILE")
    now = datetime.now(UTC)
    ring = verify_keyring(envelope, root_public, now)
    targets = verify_targets(signed, archive.manifest_bytes, ring, now)
    public = ring.signing_key(signed.key_id, targets.name, now).public_key
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    verified = verify_bundle(bundle, [Ed25519PublicKey.from_public_bytes(public)])
    return TrustedVerification(verified, targets, ring, public)

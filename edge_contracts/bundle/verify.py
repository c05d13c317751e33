"""Verifying a bundle: signature by a trusted key, then every file's size and sha256.

Order matters: the signature is checked over the raw manifest bytes before the
manifest is trusted for anything, then each payload file is hashed against it and
unlisted members are refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_contracts.bundle.archive import (
    DEFAULT_MAX_BUNDLE_BYTES,
    BundleArchive,
    extract_files,
    hash_member,
    open_archive,
)
from edge_contracts.bundle.format import (
    MANIFEST_FILE,
    SIGNATURE_FILE,
    BundleManifest,
    parse_bundle_manifest,
)
from edge_contracts.bundle.signing import decode_signature, verify_signature
from edge_contracts.errors import IntegrityError

__all__ = [
    "VerifiedBundle",
    "check_contents",
    "extract_verified",
    "read_unverified",
    "verify_bundle",
]


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose signature and contents checked out."""

    path: Path
    manifest: BundleManifest
    manifest_bytes: bytes
    signature_bytes: bytes
    key_id: str


def read_unverified(path: Path, max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES) -> BundleManifest:
    """The bundle manifest without any signature check: for display only, never to serve."""
    return parse_bundle_manifest(open_archive(path, max_bytes).manifest_bytes)


def check_contents(archive: BundleArchive, manifest: BundleManifest) -> None:
    """Every listed file present with its size and sha256; nothing unlisted."""
    allowed = {MANIFEST_FILE, SIGNATURE_FILE, *manifest.files}
    unlisted = sorted(set(archive.members) - allowed)
    if unlisted:
        raise IntegrityError(f"bundle holds files its manifest does not list: {unlisted}")
    for name, entry in manifest.files.items():
        if name not in archive.members:
            raise IntegrityError(f"bundle lacks {name!r}, which its manifest lists")
        if archive.members[name] != entry.size:
            raise IntegrityError(
                f"{name} is {archive.members[name]} bytes, the manifest says {entry.size}: "
                "the bundle was modified"
            )
        digest, _ = hash_member(archive.path, name, entry.size)
        if digest != entry.sha256:
            raise IntegrityError(
                f"{name} has sha256 {digest[:16]}.., the manifest says {entry.sha256[:16]}..: "
                "the bundle was modified"
            )


def verify_bundle(
    path: Path,
    trusted_keys: Iterable[Ed25519PublicKey],
    max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
) -> VerifiedBundle:
    """Verify signature and contents; raises IntegrityError or BundleError on any problem."""
    archive = open_archive(path, max_bytes)
    if archive.signature_bytes is None:
        raise IntegrityError(f"{path} is not signed (no {SIGNATURE_FILE!r} member)")
    signature = decode_signature(archive.signature_bytes)
    signer = verify_signature(archive.manifest_bytes, signature, trusted_keys)
    manifest = parse_bundle_manifest(archive.manifest_bytes)
    check_contents(archive, manifest)
    return VerifiedBundle(path, manifest, archive.manifest_bytes, archive.signature_bytes, signer)


def extract_verified(
    path: Path,
    destination: Path,
    trusted_keys: Iterable[Ed25519PublicKey],
    max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
    folder_mode: int = 0o700,
) -> VerifiedBundle:
    """Verify, then extract into ``destination`` (a serving folder: model.onnx + manifest.json).

    Files are hashed again while extracting, so a bundle swapped after verification
    is still caught. The folder gets ``folder_mode`` minus the umask.
    """
    bundle = verify_bundle(path, trusted_keys, max_bytes)
    extract_files(
        path,
        destination,
        bundle.manifest.files,
        {MANIFEST_FILE: bundle.manifest_bytes, SIGNATURE_FILE: bundle.signature_bytes},
        folder_mode,
    )
    return bundle

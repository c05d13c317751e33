"""Signing keys and (re-)signing bundles: needs no package of the tools extra.

A release machine that only signs and verifies bundles (``model-tools keygen``,
``sign``, ``verify``) gets by with the base install: the cryptography and the bundle
format both live in ``edge_contracts.bundle``.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from edge_contracts.bundle.archive import open_archive
from edge_contracts.bundle.format import parse_bundle_manifest
from edge_contracts.bundle.signing import (
    generate_private_key,
    load_private_key,
    save_keypair,
    sign_manifest,
)
from edge_contracts.bundle.verify import check_contents
from edge_contracts.bundle.writer import Payload, write_bundle
from model_tools.errors import ToolError

__all__ = ["Signer", "keygen", "sign_bundle"]

# (private key file, manifest bytes, name, version) -> (key id, ``signature`` member)
Signer = Callable[[Path, bytes, str, str], tuple[str, bytes]]


def legacy_signer(
    signing_key: Path, manifest_bytes: bytes, _name: str, _version: str
) -> tuple[str, bytes]:
    signature = sign_manifest(manifest_bytes, load_private_key(signing_key))
    return signature.key_id, signature.encode()


def keygen(private_path: Path, public_path: Path | None = None, force: bool = False) -> str:
    """Create an Ed25519 key pair (PEM); returns the key id. Refuses to overwrite."""
    public_path = public_path or private_path.with_suffix(".pub")
    for path in (private_path, public_path):
        if path.exists() and not force:
            raise ToolError(f"{path} exists; pass --force to replace it")
    return save_keypair(generate_private_key(), private_path, public_path)


def sign_bundle(
    bundle: Path, signing_key: Path, output: Path | None = None, signer: Signer = legacy_signer
) -> str:
    """(Re-)sign a bundle after checking its files against its manifest; returns the key id.

    ``signer`` writes the new ``signature`` member; the default is a legacy signature
    only (model_tools/trust_tools.py has the one with signed targets).
    """
    archive = open_archive(bundle)
    manifest = parse_bundle_manifest(archive.manifest_bytes)
    check_contents(archive, manifest)
    kid, member = signer(signing_key, archive.manifest_bytes, manifest.name, manifest.version)
    target = output or bundle
    with tempfile.TemporaryDirectory(prefix=".sign-", dir=target.parent) as tmp:
        payloads: dict[str, Payload] = {}
        with tarfile.open(bundle, mode="r:") as tar:
            for name in manifest.files:
                handle = tar.extractfile(name)
                if handle is None:
                    raise ToolError(f"{bundle}: member {name} is not a file")
                local = Path(tmp) / name.replace("/", "__")
                with handle, local.open("wb") as out:
                    shutil.copyfileobj(handle, out)
                payloads[name] = local
        write_bundle(target, archive.manifest_bytes, payloads, member)
    return kid

"""Signed bundles of a chosen size for the fleet benchmark (the bundle writer and Ed25519
signing the tests use, tests/support/bundles.py; the bytes are random, nobody loads them)."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_contracts.bundle.signing import save_keypair, sign_manifest
from edge_contracts.bundle.writer import Payload, build_manifest_bytes, write_bundle

__all__ = ["Publisher"]


class Publisher:
    """A signing key in ``folder`` and bundles of random payloads signed with it."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.key = Ed25519PrivateKey.generate()
        self.public_key = folder / "fleet.pub"
        save_keypair(self.key, folder / "fleet.key", self.public_key)

    def bundle(self, name: str, version: str, size: int) -> Path:
        payloads: dict[str, Payload] = {"model.onnx": os.urandom(size)}
        manifest = build_manifest_bytes({"name": name, "version": version}, payloads)
        signature = sign_manifest(manifest, self.key).encode()
        return write_bundle(
            self.folder / f"{name}-{version}.edgebundle", manifest, payloads, signature
        )

"""Ed25519 keys and detached signatures over a bundle's manifest bytes.

The ``signature`` member is a small JSON document::

    {"algorithm": "ed25519", "key_id": "<16 hex>", "signature": "<base64, 64 bytes>"}

``key_id`` is the first 16 hex digits of sha256 over the raw 32-byte public key,
so a verifier picks the right trusted key without trying them all.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_contracts.bundle.format import MAX_SIGNATURE_BYTES
from edge_contracts.errors import BundleError, IntegrityError
from edge_contracts.json_limits import check_json_depth

__all__ = [
    "ALGORITHM",
    "Signature",
    "decode_signature",
    "generate_private_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "save_keypair",
    "sign_manifest",
    "verify_signature",
]

ALGORITHM = "ed25519"
_MAX_KEY_FILE = 16 * 1024


@dataclass(frozen=True)
class Signature:
    algorithm: str
    key_id: str
    signature: bytes

    def encode(self) -> bytes:
        document = {
            "algorithm": self.algorithm,
            "key_id": self.key_id,
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }
        return (json.dumps(document, sort_keys=True) + "\n").encode("utf-8")


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """First 16 hex digits of sha256 over the raw public key."""
    return hashlib.sha256(_raw_public(key)).hexdigest()[:16]


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file that already exists
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def save_keypair(key: Ed25519PrivateKey, private_path: Path, public_path: Path) -> str:
    """Write the private key (PKCS#8 PEM, mode 0600) and public key (PEM); return the key id."""
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_private(private_path, private_pem)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.write_bytes(public_pem)
    return key_id(key.public_key())


def _read_key_file(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > _MAX_KEY_FILE:
            raise BundleError(f"{path} is {size} bytes; not a key file")
        return path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"key file not found: {path}") from None
    except OSError as exc:
        raise BundleError(f"cannot read key file {path}: {exc.strerror or exc}") from None


def _raw_from_text(data: bytes) -> bytes | None:
    """32 raw key bytes written as 64 hex digits, else None."""
    text = data.strip()
    if len(text) == 64:
        try:
            return binascii.unhexlify(text)
        except binascii.Error:
            return None
    return None


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM (PKCS#8, unencrypted), 32 raw bytes or 64 hex digits."""
    data = _read_key_file(path)
    if b"-----BEGIN" in data:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise BundleError(f"{path}: not an unencrypted PEM private key ({exc})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise BundleError(f"{path}: not an Ed25519 key ({type(key).__name__})")
        return key
    raw = data if len(data) == 32 else _raw_from_text(data)
    if raw is None:
        raise BundleError(f"{path}: not an Ed25519 private key (PEM, 32 raw bytes or 64 hex)")
    return Ed25519PrivateKey.from_private_bytes(raw)


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM, OpenSSH, 32 raw bytes or 64 hex digits."""
    data = _read_key_file(path)
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        elif data.startswith(b"ssh-ed25519 "):
            key = serialization.load_ssh_public_key(data)
        else:
            raw = data if len(data) == 32 else _raw_from_text(data)
            if raw is None:
                raise BundleError(f"{path}: not an Ed25519 public key (PEM, 32 raw bytes or hex)")
            key = Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError) as exc:
        raise BundleError(f"{path}: not a readable public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"{path}: not an Ed25519 public key ({type(key).__name__})")
    return key


def sign_manifest(manifest_bytes: bytes, key: Ed25519PrivateKey) -> Signature:
    """A detached signature over the exact manifest bytes."""
    return Signature(ALGORITHM, key_id(key.public_key()), key.sign(manifest_bytes))


def decode_signature(data: bytes) -> Signature:
    """Parse the ``signature`` member; raises IntegrityError when malformed."""
    if len(data) > MAX_SIGNATURE_BYTES:
        raise IntegrityError("signature file is too large")
    check_json_depth(data, "bundle signature", IntegrityError)  # before json.loads recurses
    try:
        document = json.loads(data.decode("utf-8"))
        algorithm, kid = document["algorithm"], document["key_id"]
        signature = base64.b64decode(document["signature"], validate=True)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, binascii.Error):
        raise IntegrityError("signature file is malformed") from None
    if algorithm != ALGORITHM:
        raise IntegrityError(f"signature algorithm {algorithm!r} is not supported (need ed25519)")
    if not isinstance(kid, str) or len(signature) != 64:
        raise IntegrityError("signature file is malformed")
    return Signature(algorithm, kid, signature)


def verify_signature(
    manifest_bytes: bytes, signature: Signature, trusted: Iterable[Ed25519PublicKey]
) -> str:
    """Check ``signature`` against the trusted keys; return the signer's key id."""
    keys = {key_id(k): k for k in trusted}
    if not keys:
        raise IntegrityError("no trusted public keys configured; cannot verify the bundle")
    key = keys.get(signature.key_id)
    if key is None:
        raise IntegrityError(
            f"bundle is signed by key {signature.key_id}, which is not among the trusted keys "
            f"({', '.join(sorted(keys))})"
        )
    try:
        key.verify(signature.signature, manifest_bytes)
    except InvalidSignature:
        raise IntegrityError(
            f"signature by key {signature.key_id} does not match the manifest: "
            "the manifest was modified or the signature forged"
        ) from None
    return signature.key_id

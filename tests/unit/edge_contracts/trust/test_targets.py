"""Signed targets: bound to the manifest, signed by a certified key, not expired."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_contracts.bundle.signing import decode_signature, verify_signature
from edge_contracts.errors import BundleError, IntegrityError
from edge_contracts.trust.canonical import raw_public_key
from edge_contracts.trust.keyring import Keyring, verify_keyring
from edge_contracts.trust.targets import decode_signed_targets, sign_with_targets, verify_targets
from tests.support.trust import entry, keyring

NOW = datetime.now(UTC)
ROOT = Ed25519PrivateKey.generate()
SIGNER = Ed25519PrivateKey.generate()
MANIFEST = b'{"name": "gray", "version": "3"}\n'


def _member(key: Ed25519PrivateKey = SIGNER, **changes: object) -> bytes:
    values: dict[str, object] = {
        "name": "gray",
        "version": "3",
        "sequence": 3,
        "expires": NOW + timedelta(days=1),
        "keyring": None,
    }
    values.update(changes)
    return sign_with_targets(MANIFEST, key, **values)  # type: ignore[arg-type]


def _ring(*keys: Ed25519PrivateKey) -> Keyring:
    envelope = keyring(ROOT, 1, *(entry(k) for k in keys))
    return verify_keyring(envelope, raw_public_key(ROOT), NOW)


def test_signed_targets_verify_and_keep_the_legacy_signature() -> None:
    member = _member()
    signed = decode_signed_targets(member)
    assert signed is not None
    targets = verify_targets(signed, MANIFEST, _ring(SIGNER), NOW)
    assert (targets.name, targets.version, targets.sequence) == ("gray", "3", 3)
    # A gateway without --trust-root still checks the old signature over the manifest.
    assert verify_signature(MANIFEST, decode_signature(member), [SIGNER.public_key()])


def test_a_legacy_member_has_no_targets() -> None:
    legacy = json.dumps({"algorithm": "ed25519", "key_id": "x", "signature": "y"}).encode()
    assert decode_signed_targets(legacy) is None


def test_tampered_targets_are_refused() -> None:
    document = json.loads(_member())
    document["targets"]["sequence"] = 99
    signed = decode_signed_targets(json.dumps(document).encode())
    assert signed is not None
    with pytest.raises(IntegrityError, match="the metadata was modified"):
        verify_targets(signed, MANIFEST, _ring(SIGNER), NOW)


def test_targets_for_another_manifest_are_refused() -> None:
    signed = decode_signed_targets(_member())
    assert signed is not None
    with pytest.raises(IntegrityError, match="differs from the signed targets"):
        verify_targets(signed, MANIFEST + b" ", _ring(SIGNER), NOW)


def test_expired_targets_are_refused() -> None:
    signed = decode_signed_targets(_member(expires=NOW - timedelta(seconds=1)))
    assert signed is not None
    with pytest.raises(IntegrityError, match="bundle metadata expired at"):
        verify_targets(signed, MANIFEST, _ring(SIGNER), NOW)


def test_targets_by_a_key_the_keyring_does_not_list_are_refused() -> None:
    signed = decode_signed_targets(_member())
    assert signed is not None
    other = Ed25519PrivateKey.generate()
    with pytest.raises(IntegrityError, match=r"does not certify \(revoked or never added\)"):
        verify_targets(signed, MANIFEST, _ring(other), NOW)


def test_a_bad_sequence_or_an_oversized_member_is_refused_when_writing() -> None:
    with pytest.raises(BundleError, match="sequence must be an integer >= 1"):
        _member(sequence=0)
    many = keyring(ROOT, 1, *(entry(Ed25519PrivateKey.generate()) for _ in range(40)))
    with pytest.raises(BundleError, match="over the 4096-byte limit"):
        _member(keyring=many)

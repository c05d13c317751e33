"""The keyring: signed by the root, checked field by field, expiry and revocation."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_contracts.errors import BundleError, IntegrityError
from edge_contracts.trust.canonical import canonical_bytes, raw_public_key
from edge_contracts.trust.keyring import parse_envelope, sign_keyring, verify_keyring
from tests.support.trust import entry, keyring

NOW = datetime.now(UTC)
ROOT = Ed25519PrivateKey.generate()
SIGNER = Ed25519PrivateKey.generate()


def test_a_root_signed_keyring_verifies_and_certifies_its_keys() -> None:
    ring = verify_keyring(keyring(ROOT, 3, entry(SIGNER)), raw_public_key(ROOT), NOW)
    assert ring.version == 3
    assert ring.signing_key(entry(SIGNER).key_id, "gray", NOW).public_key == raw_public_key(SIGNER)


def test_canonical_bytes_ignore_formatting_and_refuse_floats() -> None:
    assert canonical_bytes({"b": 1, "a": [True, "x"]}) == b'{"a":[true,"x"],"b":1}'
    with pytest.raises(BundleError, match="float values cannot be signed"):
        canonical_bytes({"a": 1.5})


def test_a_keyring_signed_by_another_root_is_refused() -> None:
    other = Ed25519PrivateKey.generate()
    with pytest.raises(IntegrityError, match="not by the trusted root key"):
        verify_keyring(keyring(other, 1, entry(SIGNER)), raw_public_key(ROOT), NOW)


def test_a_tampered_keyring_is_refused() -> None:
    envelope = keyring(ROOT, 1, entry(SIGNER))
    forged = copy.deepcopy(envelope)
    forged["signed"]["keys"][0]["models"] = ["other"]
    with pytest.raises(IntegrityError, match="the keyring was modified"):
        verify_keyring(forged, raw_public_key(ROOT), NOW)
    bumped = copy.deepcopy(envelope)
    bumped["signed"]["version"] = 99
    with pytest.raises(IntegrityError, match="the keyring was modified"):
        verify_keyring(bumped, raw_public_key(ROOT), NOW)


def test_an_expired_keyring_is_refused_unless_asked() -> None:
    envelope = keyring(ROOT, 2, entry(SIGNER), expires=NOW - timedelta(seconds=1))
    with pytest.raises(IntegrityError, match="keyring version 2 expired at"):
        verify_keyring(envelope, raw_public_key(ROOT), NOW)
    assert verify_keyring(envelope, raw_public_key(ROOT), NOW, allow_expired=True).version == 2


def test_a_key_missing_from_the_keyring_is_revoked() -> None:
    other = Ed25519PrivateKey.generate()
    ring = verify_keyring(keyring(ROOT, 4, entry(other)), raw_public_key(ROOT), NOW)
    with pytest.raises(IntegrityError, match="keyring version 4 does not certify"):
        ring.signing_key(entry(SIGNER).key_id, "gray", NOW)


def test_a_key_for_other_models_or_expired_is_refused() -> None:
    limited = entry(SIGNER, models=("digits",))
    ring = verify_keyring(keyring(ROOT, 1, limited), raw_public_key(ROOT), NOW)
    assert ring.signing_key(limited.key_id, "digits", NOW)
    with pytest.raises(IntegrityError, match="may sign only digits, not model 'gray'"):
        ring.signing_key(limited.key_id, "gray", NOW)
    stale = entry(SIGNER, expires=NOW - timedelta(days=1))
    ring = verify_keyring(keyring(ROOT, 1, stale), raw_public_key(ROOT), NOW)
    with pytest.raises(IntegrityError, match=f"signing key {stale.key_id} expired at"):
        ring.signing_key(stale.key_id, "gray", NOW)


def test_a_key_id_that_does_not_match_its_key_is_refused() -> None:
    root_raw = raw_public_key(ROOT)
    envelope = keyring(ROOT, 1, entry(SIGNER))
    envelope["signed"]["keys"][0]["key_id"] = "0" * 16
    resigned = sign_keyring(envelope["signed"], ROOT)  # the root signed a wrong key id
    with pytest.raises(IntegrityError, match="does not match its public key"):
        verify_keyring(resigned, root_raw, NOW)


def test_parse_envelope_refuses_what_is_not_a_keyring_file() -> None:
    with pytest.raises(BundleError, match="not JSON"):
        parse_envelope(b"\xff")
    with pytest.raises(BundleError, match="not a keyring envelope"):
        parse_envelope(b"[1]")
    with pytest.raises(IntegrityError, match="not a keyring"):
        verify_keyring(parse_envelope(b"{}"), raw_public_key(ROOT), NOW)

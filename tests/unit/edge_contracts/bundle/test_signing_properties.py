"""Properties of the ``signature`` member decoder (edge_contracts/bundle/signing.py):
any bytes decode or raise IntegrityError; a Signature round-trips through encode."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from edge_contracts.bundle.signing import ALGORITHM, Signature, decode_signature
from edge_contracts.errors import IntegrityError
from tests.support.fuzzing import json_bytes, json_documents, json_values, mutated_bytes

VALID = Signature(ALGORITHM, "0123456789abcdef", bytes(range(64))).encode()


def _decode_or_reject(data: bytes) -> Signature | None:
    try:
        return decode_signature(data)
    except IntegrityError:
        return None


@given(st.binary(max_size=512) | mutated_bytes(VALID))
def test_any_bytes_decode_or_raise_integrity_error(data: bytes) -> None:
    signature = _decode_or_reject(data)
    if signature is not None:
        assert signature.algorithm == ALGORITHM and len(signature.signature) == 64
        assert isinstance(signature.key_id, str)


@given(
    json_documents(
        {
            "algorithm": ALGORITHM,
            "key_id": "0123456789abcdef",
            "signature": base64.b64encode(bytes(64)).decode(),
        }
    )
    | json_values()
)
def test_any_json_decodes_or_raises_integrity_error(document: Any) -> None:
    _decode_or_reject(json_bytes(document))


@given(st.text(max_size=40), st.binary(min_size=64, max_size=64))
def test_signature_round_trips(key_id: str, raw: bytes) -> None:
    signature = Signature(ALGORITHM, key_id, raw)
    assert decode_signature(signature.encode()) == signature


@example(depth=3000)
@given(st.integers(1000, 4090))
def test_deep_nesting_within_the_size_limit_is_an_integrity_error(depth: int) -> None:
    # 4096 bytes (MAX_SIGNATURE_BYTES) of "[" are enough for RecursionError in json.loads.
    with pytest.raises(IntegrityError):
        decode_signature(b"[" * depth)

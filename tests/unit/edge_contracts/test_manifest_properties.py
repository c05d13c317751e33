"""Properties of the serving manifest parser (edge_contracts/manifest.py) on untrusted input:
every document either parses or raises ManifestError, and Manifest.to_dict round-trips."""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from edge_contracts.errors import ManifestError
from edge_contracts.manifest import (
    INPUT_DTYPES,
    RESIZE_FILTERS,
    BatchingConfig,
    Manifest,
    Preprocessing,
    load_manifest,
    parse_batching,
    parse_manifest,
    parse_preprocessing,
)
from tests.support.fuzzing import json_bytes, json_documents, json_values, mutated_bytes

VALID: dict[str, Any] = {
    "name": "digits",
    "version": "3",
    "output_kind": "probabilities",
    "labels": ["zero", "one"],
    "preprocessing": {
        "input_size": [28, 28],
        "color_mode": "L",
        "scale": 0.0039,
        "mean": [0.5],
        "std": [0.25],
        "layout": "NHWC",
        "resize_filter": "box",
        "input_dtype": "float32",
    },
    "batching": {"enabled": True, "max_batch_size": 16, "preferred_batch_sizes": [4, 8]},
}
# An integer JSON allows but a float cannot hold (float() raises OverflowError).
HUGE = 10**400


def _parse_or_reject(document: Any) -> Manifest | None:
    try:
        return parse_manifest(document)
    except ManifestError:
        return None


@given(json_documents(VALID))
def test_mutated_documents_parse_or_raise_manifest_error(document: dict[str, Any]) -> None:
    manifest = _parse_or_reject(document)
    if manifest is not None and manifest.batching is not None:
        assert 1 <= manifest.batching.max_batch_size <= 1024
        assert all(
            1 <= p <= manifest.batching.max_batch_size
            for p in manifest.batching.preferred_batch_sizes
        )


@given(json_values())
def test_any_json_value_parses_or_raises_manifest_error(value: Any) -> None:
    _parse_or_reject(value)


@given(json_values())
def test_preprocessing_and_batching_take_any_json(value: Any) -> None:
    for parse in (parse_preprocessing, parse_batching):
        with contextlib.suppress(ManifestError):
            parse(value)


@example(field="mean", number=HUGE)
@given(st.sampled_from(["mean", "std", "scale"]), st.integers(min_value=2**1024, max_value=HUGE))
def test_huge_integers_in_number_fields_are_manifest_errors(field: str, number: int) -> None:
    with pytest.raises(ManifestError):
        parse_preprocessing({field: number})


def _finite(low: float = -1e6, high: float = 1e6) -> st.SearchStrategy[float]:
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


@st.composite
def manifests(draw: Any) -> Manifest:
    color = draw(st.sampled_from(["RGB", "L"]))
    channels = 1 if color == "L" else 3
    nonzero = _finite().filter(lambda x: x != 0)
    means, stds = draw(st.sampled_from([1, channels])), draw(st.sampled_from([1, channels]))
    preprocessing = Preprocessing(
        input_size=draw(st.none() | st.tuples(st.integers(1, 8192), st.integers(1, 8192))),
        color_mode=color,
        scale=draw(_finite()),
        mean=tuple(draw(st.lists(_finite(), min_size=means, max_size=means))),
        std=tuple(draw(st.lists(nonzero, min_size=stds, max_size=stds))),
        layout=draw(st.sampled_from(["NCHW", "NHWC"])),
        resize_filter=draw(st.sampled_from(RESIZE_FILTERS)),
        input_dtype=draw(st.sampled_from(INPUT_DTYPES)),
    )
    max_batch = draw(st.integers(1, 1024))
    batching = BatchingConfig(
        enabled=draw(st.none() | st.booleans()),
        max_batch_size=max_batch,
        max_queue_delay_us=draw(st.integers(0, 1_000_000)),
        preferred_batch_sizes=tuple(sorted(draw(st.sets(st.integers(1, max_batch), max_size=4)))),
    )
    known = {"name", "version", "preprocessing", "output_kind", "labels", "batching"}
    extra = draw(
        st.dictionaries(
            st.text(max_size=8).filter(lambda k: k not in known), json_values(6), max_size=3
        )
    )
    return Manifest(
        name=draw(st.text(max_size=16)),
        version=draw(st.text(max_size=8)),
        preprocessing=draw(st.none() | st.just(preprocessing)),
        output_kind=draw(st.sampled_from(["logits", "probabilities"])),
        labels=tuple(draw(st.lists(st.text(max_size=10), max_size=5))),
        batching=draw(st.none() | st.just(batching)),
        extra=extra,
    )


@given(manifests())
def test_to_dict_round_trips_through_json(manifest: Manifest) -> None:
    document = json.loads(json.dumps(manifest.to_dict()))
    assert parse_manifest(document) == manifest


def _load_from_bytes(data: bytes) -> Manifest | None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "manifest.json").write_bytes(data)
        try:
            return load_manifest(Path(folder))
        except ManifestError:
            return None


@given(st.binary(max_size=256) | mutated_bytes(json_bytes(VALID)))
def test_manifest_file_bytes_load_or_raise_manifest_error(data: bytes) -> None:
    _load_from_bytes(data)


@example(data=b"[" * 100_000)
@given(st.integers(1000, 50_000).map(lambda n: b'{"labels": ' + b"[" * n))
def test_deep_manifest_file_is_a_manifest_error(data: bytes) -> None:
    _load_from_bytes(data)


@example(data=b'{"x": ' + b"1" * 4301 + b"}")
@given(st.integers(4301, 20_000).map(lambda n: b"[" + b"7" * n + b"]"))
def test_long_integer_literal_is_a_manifest_error(data: bytes) -> None:
    _load_from_bytes(data)

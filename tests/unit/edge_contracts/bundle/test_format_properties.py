"""Properties of the bundle manifest parser and member-path check
(edge_contracts/bundle/format.py) on untrusted bytes: parse or raise BundleError."""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from edge_contracts.bundle.format import (
    MAX_FILES,
    BundleManifest,
    check_member_path,
    parse_bundle_manifest,
)
from edge_contracts.bundle.writer import build_manifest_bytes
from edge_contracts.errors import BundleError
from tests.support.fuzzing import json_bytes, json_documents, json_values, mutated_bytes

DIGEST = "ab" * 32
VALID: dict[str, Any] = {
    "format_version": 1,
    "name": "digits",
    "version": "3",
    "breaking_change": False,
    "created_at": "2026-01-01T00:00:00Z",
    "labels": ["a", "b"],
    "preprocessing": {"color_mode": "L", "mean": 0.5, "std": [0.25]},
    "files": {
        "model.onnx": {"sha256": DIGEST, "size": 10},
        "golden/samples.npz": {"sha256": DIGEST, "size": 3},
    },
    "golden": {"path": "golden/samples.npz", "atol": 0.001},
}


def _parse_or_reject(data: bytes) -> BundleManifest | None:
    try:
        return parse_bundle_manifest(data)
    except BundleError:
        return None


def _unhashable_golden_path(document: Any) -> bool:
    golden = document.get("golden") if isinstance(document, dict) else None
    return isinstance(golden, dict) and isinstance(golden.get("path"), list | dict)


@given(json_documents(VALID))
def test_mutated_documents_parse_or_raise_bundle_error(document: dict[str, Any]) -> None:
    assume(not _unhashable_golden_path(document))  # test_unhashable_golden_path below
    manifest = _parse_or_reject(json_bytes(document))
    if manifest is not None:
        assert manifest.format_version == 1
        assert "model.onnx" in manifest.files and len(manifest.files) <= MAX_FILES
        for path in manifest.files:
            assert check_member_path(path) == path


@given(st.binary(max_size=512) | mutated_bytes(json_bytes(VALID)))
def test_any_bytes_parse_or_raise_bundle_error(data: bytes) -> None:
    _parse_or_reject(data)


@given(json_values())
def test_any_json_value_parses_or_raises_bundle_error(value: Any) -> None:
    assume(not _unhashable_golden_path(value))
    _parse_or_reject(json.dumps(value).encode())


@example(path=[])
@given(st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(max_size=2), st.none()))
def test_unhashable_golden_path_is_a_bundle_error(path: Any) -> None:
    document = {**VALID, "golden": {"path": path}}
    with pytest.raises(BundleError):
        parse_bundle_manifest(json_bytes(document))


@example(digits=4301)
@given(st.integers(4301, 100_000))
def test_long_integer_literal_is_a_bundle_error(digits: int) -> None:
    with pytest.raises(BundleError):
        parse_bundle_manifest(b'{"format_version": ' + b"1" * digits + b"}")


@example(depth=100_000)
@given(st.integers(1000, 200_000))
def test_deep_nesting_is_a_bundle_error(depth: int) -> None:
    with pytest.raises(BundleError):
        parse_bundle_manifest(b'{"x": ' + b"[" * depth)


@given(st.text(max_size=300) | st.from_regex(r"[A-Za-z0-9._/\\-]{0,40}", fullmatch=True))
@example(path="a/../b")
@example(path="./model.onnx")
@example(path="model.onnx\n")
def test_member_paths_are_safe_or_refused(path: str) -> None:
    try:
        checked = check_member_path(path)
    except BundleError:
        return
    pure = PurePosixPath(checked)
    assert checked == path and str(pure) == path and not pure.is_absolute()
    assert ".." not in pure.parts and "." not in pure.parts and "\\" not in path
    assert all(ch.isascii() and (ch.isalnum() or ch in "._-/") for ch in path)


@given(json_values())
def test_member_path_of_any_type_is_checked(value: Any) -> None:
    if isinstance(value, str):
        return
    with pytest.raises(BundleError):
        check_member_path(value)


_SEGMENT = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,10}", fullmatch=True)


@given(
    name=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True),
    version=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,10}", fullmatch=True),
    extra=st.dictionaries(
        st.lists(_SEGMENT, min_size=1, max_size=3).map("/".join),
        st.binary(max_size=64),
        max_size=5,
    ),
    model=st.binary(max_size=64),
    labels=st.lists(st.text(max_size=8), max_size=4),
)
def test_writer_manifest_round_trips(
    name: str, version: str, extra: dict[str, bytes], model: bytes, labels: list[str]
) -> None:
    payloads: dict[str, Any] = {**extra, "model.onnx": model}
    assume("manifest.json" not in payloads and "signature" not in payloads)
    # A path cannot be both a file and a folder in a tar; the writer does not check this.
    assume(not any(p.startswith(q + "/") for p in payloads for q in payloads))
    data = build_manifest_bytes({"name": name, "version": version, "labels": labels}, payloads)
    manifest = parse_bundle_manifest(data)
    assert (manifest.name, manifest.version, manifest.serving.labels) == (
        name,
        version,
        tuple(labels),
    )
    assert {p: f.size for p, f in manifest.files.items()} == {
        p: len(v) for p, v in payloads.items()
    }

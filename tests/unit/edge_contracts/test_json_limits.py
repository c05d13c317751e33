"""JSON from bundles and model folders is depth-limited before json.loads, so deep nesting
is a BundleError/ManifestError, never RecursionError (security review finding 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_contracts.bundle.format import parse_bundle_manifest
from edge_contracts.errors import BundleError, ManifestError
from edge_contracts.json_limits import MAX_JSON_DEPTH, json_depth, loads_limited
from edge_contracts.manifest import load_manifest
from tests.support.bundle_bombs import nested_json


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"1", 0),
        (b'"[[[{"', 0),
        (b'{"a": [1, {"b": "]]] \\" [["}]}', 3),
        (b"[[], [[]], []]", 3),
        (b"[" * 10_000, 10_000),
    ],
)
def test_depth_ignores_brackets_in_strings(text: bytes, depth: int) -> None:
    assert json_depth(text) == depth


def test_the_limit_itself_passes() -> None:
    assert loads_limited(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH, "x", BundleError, 1 << 20)
    with pytest.raises(BundleError, match=f"33 levels deep; the limit is {MAX_JSON_DEPTH}"):
        loads_limited(b"[" * 33 + b"]" * 33, "x", BundleError, 1 << 20)


def test_a_deep_bundle_manifest_is_a_bundle_error() -> None:
    with pytest.raises(BundleError, match="bundle manifest nests arrays/objects 10000 levels"):
        parse_bundle_manifest(nested_json(10_000))


def test_a_deep_serving_manifest_is_a_manifest_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_bytes(b'{"labels": ' + b"[" * 10_000 + b"]" * 10_000 + b"}")
    with pytest.raises(ManifestError, match="nests arrays/objects 10001 levels deep"):
        load_manifest(tmp_path)


def test_size_and_syntax_errors_keep_their_class() -> None:
    with pytest.raises(ManifestError, match="doc is 12 bytes, the limit is 10"):
        loads_limited(b"[1, 2, 3, 4]", "doc", ManifestError, 10)
    with pytest.raises(ManifestError, match="doc is not valid UTF-8 JSON"):
        loads_limited(b"{nope", "doc", ManifestError, 100)

"""Bundle manifest checks on their own: names, member paths and digests are matched whole
(a trailing newline is a different name, not the same one)."""

from __future__ import annotations

import pytest

from edge_contracts.bundle.format import _check_name, check_member_path
from edge_contracts.errors import BundleError


@pytest.mark.parametrize("name", ["digits", "2", "v1.0-rc_1", "a" * 128])
def test_good_names_pass(name: str) -> None:
    assert _check_name(name, "name") == name


@pytest.mark.parametrize("name", ["digits\n", "2\n", "\n2", "", ".hidden", "a" * 129, "a/b", "é"])
def test_names_are_matched_whole(name: str) -> None:
    with pytest.raises(BundleError, match="must be 1-128 characters"):
        _check_name(name, "name")


@pytest.mark.parametrize("path", ["model.onnx", "golden/samples.npz", "labels.txt"])
def test_safe_member_paths_pass(path: str) -> None:
    assert check_member_path(path) == path


@pytest.mark.parametrize(
    "path", ["model.onnx\n", "golden/samples.npz\n", "../x", "/etc/passwd", "a\\b", "a//b", "./a"]
)
def test_member_paths_are_matched_whole(path: str) -> None:
    with pytest.raises(BundleError, match="not a safe relative path"):
        check_member_path(path)

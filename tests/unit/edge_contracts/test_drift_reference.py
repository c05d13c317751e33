"""The drift reference block: built from probabilities, validated as untrusted data, and
refused inside a bundle manifest when unsound."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from edge_contracts.bundle.format import parse_bundle_manifest
from edge_contracts.drift_reference import (
    MAX_REFERENCE_CLASSES,
    confidence_bin,
    parse_reference,
    reference_from_manifest,
    reference_from_probabilities,
)
from edge_contracts.errors import BundleError, ManifestError
from edge_contracts.manifest import parse_manifest


def valid() -> dict[str, Any]:
    return {
        "samples": 4,
        "class_counts": [1, 3],
        "confidence_histogram": [0, 0, 0, 0, 0, 1, 0, 0, 0, 3],
        "low_margin_threshold": 0.2,
        "low_margin_share": 0.25,
    }


def test_reference_from_probabilities_counts_classes_deciles_and_low_margins() -> None:
    rows = [[0.9, 0.1], [0.45, 0.55], [0.0, 1.0], [0.2, 0.8]]
    reference = reference_from_probabilities(rows, 0.2, "held-out.npz", "ab" * 32)
    assert reference.class_counts == (1, 3)
    assert reference.confidence_histogram == (0, 0, 0, 0, 0, 1, 0, 0, 1, 2)
    assert reference.low_margin_share == 0.25  # only 0.55 - 0.45 is below 0.2
    assert parse_reference(reference.to_dict()) == reference


def test_confidence_bins_match_the_feedback_deciles() -> None:
    assert [confidence_bin(c) for c in (0.0, 0.05, 0.1, 0.55, 0.999, 1.0)] == [0, 0, 1, 5, 9, 9]
    assert confidence_bin(float("nan")) == 0


def test_a_manifest_without_reference_has_none() -> None:
    assert reference_from_manifest(parse_manifest({})) is None
    found = reference_from_manifest(parse_manifest({"reference": valid()}))
    assert found is not None and found.samples == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"samples": 0}, "reference.samples must be 1.."),
        ({"samples": True}, "reference.samples must be a non-negative integer"),
        ({"class_counts": [1, 2]}, "reference.class_counts adds up to 3"),
        ({"class_counts": [-1, 5]}, "class_counts entry must be a non-negative integer"),
        ({"class_counts": [0] * (MAX_REFERENCE_CLASSES + 1)}, "list of 1..4096 counts"),
        ({"confidence_histogram": [4]}, "confidence_histogram must be a list of 10 counts"),
        ({"low_margin_share": 1.5}, "reference.low_margin_share must be a number in [0, 1]"),
        ({"low_margin_threshold": "0.2"}, "low_margin_threshold must be a number"),
        ({"dataset": 7}, "reference.dataset must be a string"),
    ],
)
def test_bad_references_are_refused_naming_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError, match=re.escape(message)):
        parse_reference({**valid(), **change})


def test_a_bundle_manifest_with_an_unsound_reference_is_refused() -> None:
    document = {
        "format_version": 1,
        "name": "m",
        "version": "1",
        "files": {"model.onnx": {"sha256": "0" * 64, "size": 1}},
        "reference": valid(),
    }
    assert parse_bundle_manifest(json.dumps(document).encode()).name == "m"
    document["reference"] = {**valid(), "samples": 5}
    with pytest.raises(BundleError, match=r"bundle manifest: reference\.class_counts adds up to 4"):
        parse_bundle_manifest(json.dumps(document).encode())

"""The serving manifest reader: valid documents (the shipped examples among them) parse
to what they say, and every kind of bad value is a ManifestError naming its field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge_contracts.errors import ManifestError
from edge_contracts.manifest import (
    BatchingConfig,
    Manifest,
    Preprocessing,
    load_manifest,
    parse_batching,
    parse_manifest,
    parse_preprocessing,
)
from tests.support.model_factory import GRAY_PREPROCESSING, RGB_PREPROCESSING
from tests.support.paths import REPO

EXAMPLES = sorted((REPO / "examples" / "models").glob("*/*/manifest.json"))


def test_the_examples_are_found() -> None:
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: "/".join(p.parts[-3:-1]))
def test_the_shipped_example_manifests_parse(path: Path) -> None:
    raw = json.loads(path.read_text(encoding="utf-8"))
    manifest = load_manifest(path.parent)
    assert manifest == parse_manifest(raw)
    assert (manifest.name, manifest.version) == (path.parts[-3], path.parts[-2])
    pre = manifest.preprocessing
    assert pre is not None
    assert pre.input_size == (28, 28)
    assert (pre.color_mode, pre.channels, pre.layout) == ("L", 1, "NCHW")
    assert pre.scale == pytest.approx(1 / 255)
    assert (pre.mean, pre.std) == ((0.5,), (0.5,))
    assert manifest.output_kind == "logits"
    assert manifest.labels == tuple(str(i) for i in range(10))
    assert manifest.label_for(3) == "3"
    assert manifest.label_for(10) == manifest.label_for(-1) == ""
    # Keys the gateway does not read (inputs, producer, evaluation, ...) are kept as they are.
    for key in ("inputs", "outputs", "producer", "evaluation"):
        assert manifest.extra[key] == raw[key]
    assert manifest.to_dict() == {k: v for k, v in raw.items() if k != "batching"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: "/".join(p.parts[-3:-1]))
def test_the_shipped_examples_round_trip_through_to_dict(path: Path) -> None:
    manifest = load_manifest(path.parent)
    assert parse_manifest(json.loads(json.dumps(manifest.to_dict()))) == manifest


def test_an_empty_document_takes_the_defaults() -> None:
    manifest = parse_manifest({})
    assert manifest == Manifest()
    assert manifest.preprocessing is None
    assert manifest.batching is None
    assert manifest.output_kind == "logits"
    assert manifest.to_dict() == {"output_kind": "logits", "labels": []}


def test_preprocessing_defaults_and_explicit_values() -> None:
    assert parse_preprocessing({}) == Preprocessing()
    rgb = parse_preprocessing(RGB_PREPROCESSING)
    assert rgb.input_size == (16, 16)
    assert rgb.channels == 3
    assert rgb.mean == (0.485, 0.456, 0.406)
    gray = parse_preprocessing(GRAY_PREPROCESSING)
    assert (gray.input_size, gray.channels, gray.std) == (None, 1, (0.5,))
    square = parse_preprocessing({"input_size": 32, "mean": 0.5, "std": [2], "scale": 1})
    assert (square.input_size, square.mean, square.std, square.scale) == (
        (32, 32),
        (0.5,),
        (2.0,),
        1.0,
    )
    nhwc = parse_preprocessing(
        {"layout": "NHWC", "resize_filter": "lanczos", "input_dtype": "uint8", "color_mode": "L"}
    )
    assert (nhwc.layout, nhwc.resize_filter, nhwc.input_dtype) == ("NHWC", "lanczos", "uint8")


def test_batching_is_parsed_and_preferred_sizes_are_sorted_without_duplicates() -> None:
    assert parse_batching(None) is None
    assert parse_batching({}) == BatchingConfig()
    config = parse_batching(
        {
            "enabled": True,
            "max_batch_size": 16,
            "max_queue_delay_us": 0,
            "preferred_batch_sizes": [8, 4, 8],
        }
    )
    assert config == BatchingConfig(True, 16, 0, (4, 8))
    manifest = parse_manifest({"batching": {"enabled": False}})
    assert manifest.batching == BatchingConfig(enabled=False)


def test_a_full_manifest_round_trips_through_to_dict() -> None:
    manifest = parse_manifest(
        {
            "name": "gray",
            "version": "3",
            "preprocessing": GRAY_PREPROCESSING,
            "output_kind": "probabilities",
            "labels": ["a", "b"],
            "owner": {"team": "vision"},
        }
    )
    data = manifest.to_dict()
    assert data["owner"] == {"team": "vision"}
    assert parse_manifest(json.loads(json.dumps(data))) == manifest


def test_batching_survives_the_round_trip_through_to_dict() -> None:
    manifest = parse_manifest(
        {"batching": {"enabled": True, "max_batch_size": 4, "max_queue_delay_us": 100}}
    )
    assert parse_manifest(manifest.to_dict()) == manifest


def write(version_dir: Path, document: Any) -> Path:
    version_dir.mkdir(parents=True, exist_ok=True)
    text = document if isinstance(document, str) else json.dumps(document)
    (version_dir / "manifest.json").write_text(text, encoding="utf-8")
    return version_dir


def test_a_folder_without_a_manifest_gets_an_empty_one(tmp_path: Path) -> None:
    assert load_manifest(tmp_path) == Manifest()


def test_labels_txt_is_read_when_the_manifest_has_no_labels(tmp_path: Path) -> None:
    write(tmp_path, {"name": "m", "batching": {"max_batch_size": 2}, "extra_key": 1})
    (tmp_path / "labels.txt").write_text("cat\n\n dog \nbird\n", encoding="utf-8")
    manifest = load_manifest(tmp_path)
    assert manifest.labels == ("cat", "dog", "bird")
    assert manifest.name == "m"
    assert manifest.batching == BatchingConfig(max_batch_size=2)
    assert manifest.extra == {"extra_key": 1}


def test_labels_in_the_manifest_win_over_labels_txt(tmp_path: Path) -> None:
    write(tmp_path, {"labels": ["x", "y"]})
    (tmp_path / "labels.txt").write_text("cat\ndog\n", encoding="utf-8")
    assert load_manifest(tmp_path).labels == ("x", "y")


def test_labels_txt_alone_is_enough(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text("cat\ndog\n", encoding="utf-8")
    assert load_manifest(tmp_path) == Manifest(labels=("cat", "dog"))


@pytest.mark.parametrize(
    "content", [b"{not json", b"", b'{"name": "\\xff"}'], ids=["broken", "empty", "not-utf8"]
)
def test_a_manifest_that_is_not_json_names_the_file(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "manifest.json").write_bytes(content)
    with pytest.raises(ManifestError, match=r"manifest\.json: not valid JSON"):
        load_manifest(tmp_path)


def test_a_bad_manifest_file_error_names_the_file_and_the_field(tmp_path: Path) -> None:
    write(tmp_path, {"output_kind": "scores"})
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path)
    message = str(caught.value)
    assert message.startswith(str(tmp_path / "manifest.json") + ": ")
    assert "output_kind must be 'logits' or 'probabilities', got 'scores'" in message


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ([], "manifest must be a JSON object"),
        ("manifest", "manifest must be a JSON object"),
        ({"output_kind": "softmax"}, "output_kind"),
        ({"labels": "a,b"}, "labels"),
        ({"labels": ["a", 2]}, "labels"),
        ({"preprocessing": "RGB"}, "'preprocessing'"),
        ({"preprocessing": []}, "'preprocessing'"),
        ({"batching": True}, "'batching'"),
        ({"batching": [8]}, "'batching'"),
    ],
)
def test_bad_top_level_values_name_their_field(document: Any, field: str) -> None:
    with pytest.raises(ManifestError, match=field):
        parse_manifest(document)


@pytest.mark.parametrize(
    ("preprocessing", "field"),
    [
        ({"input_size": [28]}, "preprocessing.input_size"),
        ({"input_size": [28, 28, 1]}, "preprocessing.input_size"),
        ({"input_size": [0, 28]}, "preprocessing.input_size"),
        ({"input_size": [28, 8193]}, "preprocessing.input_size"),
        ({"input_size": -1}, "preprocessing.input_size"),
        ({"input_size": [28.0, 28]}, "preprocessing.input_size"),
        ({"input_size": "28x28"}, "preprocessing.input_size"),
        ({"color_mode": "BGR"}, "preprocessing.color_mode"),
        ({"color_mode": "rgb"}, "preprocessing.color_mode"),
        ({"layout": "CHW"}, "preprocessing.layout"),
        ({"resize_filter": "cubic"}, "preprocessing.resize_filter"),
        ({"input_dtype": "float64"}, "preprocessing.input_dtype"),
        ({"mean": "zero"}, "preprocessing.mean"),
        ({"mean": []}, "preprocessing.mean"),
        ({"mean": [0.5, None, 0.5]}, "preprocessing.mean"),
        ({"mean": [0.1, 0.2]}, "preprocessing.mean needs 1 or 3 values"),
        ({"color_mode": "L", "mean": [0.1, 0.2, 0.3]}, "preprocessing.mean needs 1 or 1 values"),
        ({"std": [1, 2]}, "preprocessing.std needs 1 or 3 values"),
        ({"std": [1, 0, 1]}, "preprocessing.std must not contain 0"),
        ({"std": 0}, "preprocessing.std must not contain 0"),
        ({"std": "NaN"}, "preprocessing.std must hold finite numbers"),
        ({"mean": [float("inf")]}, "preprocessing.mean must hold finite numbers"),
        ({"scale": "a lot"}, "preprocessing.scale"),
        ({"scale": []}, "preprocessing.scale"),
        ({"scale": {"value": 1}}, "preprocessing.scale"),
    ],
)
def test_bad_preprocessing_values_name_their_field(
    preprocessing: dict[str, Any], field: str
) -> None:
    with pytest.raises(ManifestError, match=field.replace(".", r"\.")):
        parse_preprocessing(preprocessing)
    with pytest.raises(ManifestError, match=field.replace(".", r"\.")):
        parse_manifest({"preprocessing": preprocessing})


@pytest.mark.parametrize(
    ("batching", "field"),
    [
        ({"enabled": "yes"}, "batching.enabled"),
        ({"enabled": 1}, "batching.enabled"),
        ({"max_batch_size": 0}, "batching.max_batch_size"),
        ({"max_batch_size": 1025}, "batching.max_batch_size"),
        ({"max_batch_size": 8.0}, "batching.max_batch_size"),
        ({"max_batch_size": "8"}, "batching.max_batch_size"),
        ({"max_queue_delay_us": -1}, "batching.max_queue_delay_us"),
        ({"max_queue_delay_us": 1_000_001}, "batching.max_queue_delay_us"),
        ({"max_queue_delay_us": 0.5}, "batching.max_queue_delay_us"),
        ({"preferred_batch_sizes": 4}, "batching.preferred_batch_sizes"),
        ({"preferred_batch_sizes": [0]}, "batching.preferred_batch_sizes"),
        ({"max_batch_size": 4, "preferred_batch_sizes": [2, 8]}, "batching.preferred_batch_sizes"),
        ({"preferred_batch_sizes": ["4"]}, "batching.preferred_batch_sizes"),
    ],
)
def test_bad_batching_values_name_their_field(batching: dict[str, Any], field: str) -> None:
    with pytest.raises(ManifestError, match=field.replace(".", r"\.")):
        parse_batching(batching)
    with pytest.raises(ManifestError, match=field.replace(".", r"\.")):
        parse_manifest({"batching": batching})


@pytest.mark.parametrize(
    "document",
    [
        {"preprocessing": {"input_size": [True, 28]}},
        {"batching": {"max_batch_size": True}},
        {"batching": {"max_queue_delay_us": False}},
        {"batching": {"preferred_batch_sizes": [True]}},
    ],
    ids=["input_size", "max_batch_size", "max_queue_delay_us", "preferred_batch_sizes"],
)
def test_booleans_are_not_accepted_as_integers(document: dict[str, Any]) -> None:
    with pytest.raises(ManifestError):
        parse_manifest(document)

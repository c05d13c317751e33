"""DiskCatalogue: which model folders and versions count, in which order, and which
version serves at start-up (pinned > ACTIVE pointer > highest)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from edge_server.catalogue.on_disk import (
    DiskCatalogue,
    VersionOnDisk,
    is_valid_name,
    version_sort_key,
)
from tests.support.model_factory import linear_classifier, write_manifest


def add_version(root: Path, name: str, version: str) -> Path:
    path = linear_classifier(root / name / version / "model.onnx", size=2, classes=2)
    return path.parent


def versions(catalogue: DiskCatalogue, name: str) -> list[str]:
    return [v.version for v in catalogue.versions(name)]


@pytest.mark.parametrize(
    "name", ["m", "digits-int8", "v1.2.3", "A_b-c.d", "7", "a" * 128, "mobilenet_v2"]
)
def test_valid_names(name: str) -> None:
    assert is_valid_name(name)


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", ".hidden", "-m", "_m", "a/b", "..\\x", "a b", "a:b", "é", "a" * 129, "m\x00"],
)
def test_invalid_names(name: str) -> None:
    assert not is_valid_name(name)


def test_a_trailing_newline_is_not_a_valid_name() -> None:
    assert not is_valid_name("2\n")


def test_versions_sort_naturally() -> None:
    shuffled = ["10", "a", "1.10", "2", "1b", "9", "1.9", "1", "1.2.10", "1.2.9"]
    assert sorted(shuffled, key=version_sort_key) == [
        "1",
        "1.2.9",
        "1.2.10",
        "1.9",
        "1.10",
        "1b",
        "2",
        "9",
        "10",
        "a",
    ]
    assert version_sort_key("10") > version_sort_key("9")
    assert version_sort_key("20240101") > version_sort_key("20231231")


def test_versions_are_listed_in_numeric_order(tmp_path: Path) -> None:
    for version in ("10", "9", "2", "1", "100"):
        add_version(tmp_path, "m", version)
    catalogue = DiskCatalogue(tmp_path)
    assert versions(catalogue, "m") == ["1", "2", "9", "10", "100"]
    found = catalogue.versions("m")[-1]
    assert found == VersionOnDisk("m", "100", tmp_path / "m" / "100")
    assert found.model_path == tmp_path / "m" / "100" / "model.onnx"
    assert catalogue.startup_version("m", None) == found  # the highest, not "9"


def test_folders_without_a_model_file_and_invalid_names_are_ignored(tmp_path: Path) -> None:
    add_version(tmp_path, "m", "1")
    add_version(tmp_path, "m", "2")
    (tmp_path / "m" / "3").mkdir()  # half-written: no model.onnx yet
    write_manifest(tmp_path / "m" / "3", name="m", version="3")
    add_version(tmp_path, "m", ".4")  # not a valid version name
    add_version(tmp_path, "m", "5 copy")
    (tmp_path / "m" / "6").write_bytes(b"a file, not a folder")
    (tmp_path / "m" / "7").mkdir()
    (tmp_path / "m" / "7" / "model.onnx").mkdir()  # a folder named like the model file
    catalogue = DiskCatalogue(tmp_path)
    assert versions(catalogue, "m") == ["1", "2"]
    assert catalogue.find("m", "2") == VersionOnDisk("m", "2", tmp_path / "m" / "2")
    assert catalogue.find("m", "3") is None
    assert catalogue.find("m", ".4") is None
    assert catalogue.startup_version("m", None) == catalogue.find("m", "2")


def test_model_names_are_sorted_valid_folders_with_a_version(tmp_path: Path) -> None:
    add_version(tmp_path, "zeta", "1")
    add_version(tmp_path, "alpha", "3")
    add_version(tmp_path, ".trash", "1")  # invalid model name
    (tmp_path / "empty").mkdir()  # no version
    add_version(tmp_path, "unfinished", "1").joinpath("model.onnx").unlink()
    (tmp_path / "README.txt").write_text("not a model", encoding="utf-8")
    catalogue = DiskCatalogue(tmp_path)
    assert catalogue.model_names() == ["alpha", "zeta"]
    assert catalogue.versions(".trash") == []
    assert catalogue.versions("empty") == []
    assert catalogue.versions("absent") == []
    assert catalogue.startup_version("empty", None) is None


def test_names_that_would_leave_the_model_root_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    add_version(root, "m", "1")
    add_version(tmp_path, "outside", "1")  # a sibling of the root
    catalogue = DiskCatalogue(root)
    assert catalogue.versions("../outside") == []
    assert catalogue.versions("..") == []
    assert catalogue.find("../outside", "1") is None


def test_a_missing_root_has_no_models(tmp_path: Path) -> None:
    catalogue = DiskCatalogue(tmp_path / "absent")
    assert catalogue.model_names() == []
    assert catalogue.versions("m") == []


def test_the_active_pointer_names_the_startup_version(tmp_path: Path) -> None:
    for version in ("1", "2", "10"):
        add_version(tmp_path, "m", version)
    catalogue = DiskCatalogue(tmp_path)
    assert catalogue.pointed_version("m") is None
    (tmp_path / "m" / "ACTIVE").write_text("2\n", encoding="utf-8")
    assert catalogue.pointed_version("m") == "2"
    assert catalogue.startup_version("m", None) == catalogue.find("m", "2")
    assert catalogue.model_names() == ["m"]  # the pointer file is not a version
    assert versions(catalogue, "m") == ["1", "2", "10"]


def test_a_pinned_version_wins_over_the_pointer(tmp_path: Path) -> None:
    for version in ("1", "2", "10"):
        add_version(tmp_path, "m", version)
    (tmp_path / "m" / "ACTIVE").write_text("2", encoding="utf-8")
    catalogue = DiskCatalogue(tmp_path)
    assert catalogue.startup_version("m", "1") == catalogue.find("m", "1")
    # A pinned version that is not on disk falls back to the pointer.
    assert catalogue.startup_version("m", "7") == catalogue.find("m", "2")


@pytest.mark.parametrize("pointer", ["7", "../m/1", "", "   \n"])
def test_a_pointer_to_a_missing_or_invalid_version_falls_back_to_the_highest(
    tmp_path: Path, pointer: str
) -> None:
    for version in ("1", "2", "10"):
        add_version(tmp_path, "m", version)
    (tmp_path / "m" / "ACTIVE").write_text(pointer, encoding="utf-8")
    catalogue = DiskCatalogue(tmp_path)
    assert catalogue.startup_version("m", None) == catalogue.find("m", "10")


def test_an_invalid_pointer_is_not_reported(tmp_path: Path) -> None:
    add_version(tmp_path, "m", "1")
    (tmp_path / "m" / "ACTIVE").write_text("../../etc", encoding="utf-8")
    assert DiskCatalogue(tmp_path).pointed_version("m") is None


def test_an_unreadable_pointer_is_ignored(tmp_path: Path) -> None:
    add_version(tmp_path, "m", "1")
    add_version(tmp_path, "m", "2")
    (tmp_path / "m" / "ACTIVE").mkdir()  # reading it fails with IsADirectoryError
    catalogue = DiskCatalogue(tmp_path)
    assert catalogue.pointed_version("m") is None
    assert catalogue.startup_version("m", None) == catalogue.find("m", "2")


def test_a_version_reports_its_size_and_digest(tmp_path: Path) -> None:
    folder = add_version(tmp_path, "m", "1")
    write_manifest(folder, name="m")
    found = DiskCatalogue(tmp_path).versions("m")[0]
    model_bytes = (folder / "model.onnx").read_bytes()
    manifest_size = (folder / "manifest.json").stat().st_size
    assert found.size_bytes() == len(model_bytes) + manifest_size
    assert found.sha256() == hashlib.sha256(model_bytes).hexdigest()

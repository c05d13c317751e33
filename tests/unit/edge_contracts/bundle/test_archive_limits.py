"""Only regular files and folders are bundle members; extraction writes exactly what the
manifest declares (security review finding 2: a sparse member filled the disk)."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import pytest

from edge_contracts.bundle.archive import extract_files, extracted_bytes, open_archive
from edge_contracts.bundle.format import BundleFile
from edge_contracts.errors import BundleError, IntegrityError
from tests.support.bundle_bombs import (
    nested_json,
    pax_sparse_member,
    regular_member,
    sparse_member,
    special_member,
    tar_of,
)

MANIFEST = regular_member("manifest.json", b"{}")


def _bundle(tmp_path: Path, *members: bytes) -> Path:
    path = tmp_path / "b.edgebundle"
    path.write_bytes(tar_of(MANIFEST, *members))
    return path


def test_a_sparse_member_is_refused(tmp_path: Path) -> None:
    path = _bundle(tmp_path, sparse_member("blob.bin", 100 << 20))
    with tarfile.open(path) as tar:  # what made it dangerous: tarfile calls it a regular file
        member = tar.getmember("blob.bin")
        assert member.isfile() and member.size == 100 << 20
    with pytest.raises(
        BundleError, match=r"'blob\.bin' is a sparse file, not a regular file; a bundle holds only"
    ):
        open_archive(path)


def test_a_pax_sparse_member_is_refused(tmp_path: Path) -> None:
    path = _bundle(tmp_path, pax_sparse_member("blob.bin", 100 << 20))
    with pytest.raises(BundleError, match=r"'blob\.bin' is a sparse file"):
        open_archive(path)


@pytest.mark.parametrize(
    ("kind", "what"),
    [
        (tarfile.SYMTYPE, "a symbolic link"),
        (tarfile.LNKTYPE, "a hard link"),
        (tarfile.CHRTYPE, "a character device"),
        (tarfile.BLKTYPE, "a block device"),
        (tarfile.FIFOTYPE, "a fifo"),
    ],
)
def test_links_and_devices_are_refused(tmp_path: Path, kind: bytes, what: str) -> None:
    path = _bundle(tmp_path, special_member("model.onnx", kind, link="manifest.json"))
    with pytest.raises(BundleError, match=f"'model.onnx' is {what}, not a regular file"):
        open_archive(path)


def test_regular_files_and_folders_pass(tmp_path: Path) -> None:
    folder = tarfile.TarInfo("golden")
    folder.type = tarfile.DIRTYPE
    path = _bundle(tmp_path, folder.tobuf(), regular_member("model.onnx", b"onnx"))
    assert dict(open_archive(path).members) == {"manifest.json": 2, "model.onnx": 4}


def _entry(name: str, data: bytes, size: int | None = None) -> BundleFile:
    return BundleFile(name, hashlib.sha256(data).hexdigest(), len(data) if size is None else size)


def test_extraction_writes_exactly_the_declared_bytes(tmp_path: Path) -> None:
    path = _bundle(tmp_path, regular_member("model.onnx", b"onnx bytes"))
    files = {"model.onnx": _entry("model.onnx", b"onnx bytes")}
    extras = {"manifest.json": b"{}"}
    assert extracted_bytes(files, extras) == 12
    out = extract_files(path, tmp_path / "v1", files, extras)
    assert sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) == 12


def test_a_member_larger_than_declared_is_refused_before_copying(tmp_path: Path) -> None:
    path = _bundle(tmp_path, regular_member("model.onnx", b"x" * 5000))
    files = {"model.onnx": _entry("model.onnx", b"x" * 10)}
    with pytest.raises(IntegrityError, match="5000 bytes in the tar, the manifest says 10"):
        extract_files(path, tmp_path / "v1", files, {})
    assert not any(tmp_path.glob("v1*")) and not any(tmp_path.glob(".v1*"))


def test_deeply_nested_manifest_or_signature_is_refused(tmp_path: Path) -> None:
    deep = nested_json(10_000)
    path = tmp_path / "m.edgebundle"
    path.write_bytes(tar_of(regular_member("manifest.json", deep)))
    with pytest.raises(BundleError, match="bundle manifest nests arrays/objects 10000 levels"):
        open_archive(path)
    path.write_bytes(tar_of(MANIFEST, regular_member("signature", b"[" * 4000)))
    with pytest.raises(IntegrityError, match="bundle signature nests arrays/objects 4000"):
        open_archive(path)

"""Properties of the bundle reader (edge_contracts/bundle/archive.py and verify.py) on
untrusted tar bytes: open, verify and extract either succeed or raise BundleError
(IntegrityError included); a bundle that still verifies after mutation extracts exactly
the signed payloads; writer -> reader round-trips."""

from __future__ import annotations

import contextlib
import io
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import assume, example, given
from hypothesis import strategies as st

from edge_contracts.bundle.archive import MAX_MEMBERS, extract_files, open_archive
from edge_contracts.bundle.signing import sign_manifest
from edge_contracts.bundle.verify import verify_bundle
from edge_contracts.bundle.writer import build_manifest_bytes, write_bundle
from edge_contracts.errors import BundleError
from tests.support.fuzzing import bounded_memory, mutated_bytes

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PAYLOADS = {"model.onnx": b"onnx" * 40, "labels.txt": b"a\nb\n"}


def _bundle_bytes(payloads: dict[str, bytes], name: str = "m", version: str = "1") -> bytes:
    manifest = build_manifest_bytes({"name": name, "version": version}, payloads)
    signature = sign_manifest(manifest, KEY).encode()
    with tempfile.TemporaryDirectory() as folder:
        path = write_bundle(Path(folder) / "b.edgebundle", manifest, payloads, signature)
        return path.read_bytes()


VALID = _bundle_bytes(PAYLOADS)


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def _write(folder: Path, data: bytes) -> Path:
    path = folder / "fuzzed.edgebundle"
    path.write_bytes(data)
    return path


def _verify_and_extract(folder: Path, data: bytes) -> dict[str, bytes] | None:
    """The extracted payloads, or None when the reader refused the bundle."""
    path = _write(folder, data)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        try:
            bundle = verify_bundle(path, [KEY.public_key()])
            target = extract_files(path, Path(scratch) / "out", bundle.manifest.files, {})
        except BundleError:
            return None
        return {name: (target / name).read_bytes() for name in bundle.manifest.files}


@given(mutated_bytes(VALID))
def test_mutated_bundle_verifies_to_the_signed_payloads_or_is_refused(
    folder: Path, data: bytes
) -> None:
    with bounded_memory(8 * len(VALID) + (4 << 20)):
        extracted = _verify_and_extract(folder, data)
    if extracted is not None:
        assert extracted == PAYLOADS  # a mutation that verifies changed nothing signed


@given(st.binary(max_size=4096))
def test_any_bytes_open_or_raise_bundle_error(folder: Path, data: bytes) -> None:
    with contextlib.suppress(BundleError):
        open_archive(_write(folder, data))


_SEGMENT = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,10}", fullmatch=True)


@given(
    st.dictionaries(
        st.lists(_SEGMENT, min_size=1, max_size=3).map("/".join),
        st.binary(max_size=300),
        max_size=6,
    ),
    st.binary(max_size=300),
)
def test_written_bundle_round_trips(folder: Path, extra: dict[str, bytes], model: bytes) -> None:
    payloads = {**extra, "model.onnx": model}
    assume("manifest.json" not in payloads and "signature" not in payloads)
    assume(not any(p.startswith(q + "/") for p in payloads for q in payloads))
    assert _verify_and_extract(folder, _bundle_bytes(payloads)) == payloads


# Every member type tarfile knows, with names that are safe, unsafe or odd.
_TYPES = [
    tarfile.REGTYPE,
    tarfile.AREGTYPE,
    tarfile.DIRTYPE,
    tarfile.SYMTYPE,
    tarfile.LNKTYPE,
    tarfile.CHRTYPE,
    tarfile.BLKTYPE,
    tarfile.FIFOTYPE,
    tarfile.CONTTYPE,
]
_NAMES = st.sampled_from(
    ["model.onnx", "manifest.json", "signature", "a/b", "../x", "/etc/x", "a\\b", "", "./m", "d/"]
) | st.text(max_size=20)


@st.composite
def crafted_tars(draw: st.DrawFn) -> bytes:
    buffer = io.BytesIO()
    fmt = draw(st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]))
    with tarfile.open(fileobj=buffer, mode="w:", format=fmt, encoding="utf-8") as tar:
        for _ in range(draw(st.integers(1, 6))):
            info = tarfile.TarInfo(draw(_NAMES))
            info.type = draw(st.sampled_from(_TYPES))
            info.linkname = draw(_NAMES)
            data = draw(st.binary(max_size=64)) if info.type in tarfile.REGULAR_TYPES else b""
            info.size = len(data)
            try:
                tar.addfile(info, io.BytesIO(data))
            except (ValueError, UnicodeEncodeError):
                continue  # the writer itself refuses (e.g. a long name in ustar)
    return buffer.getvalue()


@given(crafted_tars())
def test_member_types_and_names_are_checked(folder: Path, data: bytes) -> None:
    try:
        archive = open_archive(_write(folder, data))
    except BundleError:
        return
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        kinds = {m.name: m.isfile() or m.isdir() for m in tar}
    assert all(kinds.values()), "a link or device member was accepted"
    assert "manifest.json" in archive.members


def _pax_tar(headers: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = 2
        info.pax_headers = headers
        tar.addfile(info, io.BytesIO(b"{}"))
    return buffer.getvalue()


@example(sparse_map="x")
@given(st.text(max_size=12))
def test_gnu_sparse_pax_headers_are_bundle_errors(folder: Path, sparse_map: str) -> None:
    data = _pax_tar({"GNU.sparse.map": sparse_map, "GNU.sparse.size": "2"})
    with contextlib.suppress(BundleError):
        open_archive(_write(folder, data))


def _directories_tar(count: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
        for i in range(count):
            folder = tarfile.TarInfo(f"d{i}")
            folder.type = tarfile.DIRTYPE
            tar.addfile(folder)
    return buffer.getvalue()


@example(count=MAX_MEMBERS)
@given(st.integers(MAX_MEMBERS, 2000))
def test_member_count_is_bounded_whatever_the_type(folder: Path, count: int) -> None:
    with pytest.raises(BundleError):
        open_archive(_write(folder, _directories_tar(count)))

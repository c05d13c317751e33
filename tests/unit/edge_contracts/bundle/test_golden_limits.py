"""Golden samples are read within fixed limits, checked from the zip directory and the
.npy headers before any array is allocated (security review finding 1)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge_contracts.bundle.golden import (
    MAX_GOLDEN_SAMPLES,
    encode_golden,
    golden_batches,
    load_golden,
)
from edge_contracts.errors import BundleError
from tests.support.bundle_bombs import lying_npz, peak_rss_bytes, reset_peak_rss, zeros_npz

_MIB = 1 << 20


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "samples.npz"
    path.write_bytes(data)
    return path


def test_a_deflate_bomb_is_refused_before_it_is_decompressed(tmp_path: Path) -> None:
    path = _write(tmp_path, zeros_npz(1024))  # about 1 MB on disk, 1 GiB of float32 zeros
    assert path.stat().st_size < 2 * _MIB
    reset_peak_rss()
    start = peak_rss_bytes()
    with pytest.raises(BundleError, match="decompresses to 1073741952 bytes, the limit is"):
        load_golden(path, {})
    assert peak_rss_bytes() - start < 50 * _MIB


def test_a_total_over_the_limit_is_refused(tmp_path: Path) -> None:
    arrays = {f"in.x{i}.npy": np.zeros((6, 1 << 20), np.float32) for i in range(3)}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, array)
            archive.writestr(name, member.getvalue())
    path = _write(tmp_path, buffer.getvalue())
    with pytest.raises(BundleError, match=r"golden samples decompress to .* the limit is"):
        load_golden(path, {})


def test_too_many_samples_are_refused_from_the_header(tmp_path: Path) -> None:
    inputs = {"input": np.zeros((MAX_GOLDEN_SAMPLES + 1, 4), np.float32)}
    outputs = {"logits": np.zeros((MAX_GOLDEN_SAMPLES + 1, 2), np.float32)}
    with pytest.raises(BundleError, match=f"the limit is {MAX_GOLDEN_SAMPLES}"):
        encode_golden(inputs, outputs)  # the packager refuses it too
    buffer = io.BytesIO()
    np.savez(buffer, **{"in.input": inputs["input"], "out.logits": outputs["logits"]})
    path = _write(tmp_path, buffer.getvalue())
    with pytest.raises(BundleError, match=f"has 257 samples, the limit is {MAX_GOLDEN_SAMPLES}"):
        load_golden(path, {})


def test_a_lying_npy_header_is_refused_without_allocating(tmp_path: Path) -> None:
    path = _write(tmp_path, lying_npz())  # header: 1 GiB of float32; member: 256 bytes
    reset_peak_rss()
    start = peak_rss_bytes()
    with pytest.raises(BundleError, match=r"header declares 1073741952 bytes .* archive holds"):
        load_golden(path, {})
    assert peak_rss_bytes() - start < 50 * _MIB


def test_object_arrays_are_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        member = io.BytesIO()
        np.lib.format.write_array(member, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        archive.writestr("in.input.npy", member.getvalue())
    with pytest.raises(BundleError, match="must hold numbers"):
        load_golden(_write(tmp_path, buffer.getvalue()), {})


def test_samples_within_the_limits_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    inputs = {"input": rng.normal(size=(20, 1, 8, 8)).astype(np.float32)}
    outputs = {"logits": np.asfortranarray(rng.normal(size=(20, 10)))}
    path = _write(tmp_path, encode_golden(inputs, outputs))
    golden = load_golden(path, {"atol": 0.5})
    np.testing.assert_array_equal(golden.inputs["input"], inputs["input"])
    np.testing.assert_array_equal(golden.outputs["logits"], outputs["logits"])
    assert golden.atol == 0.5
    parts = list(golden_batches(golden, 8))
    assert [start for start, _ in parts] == [0, 8, 16]
    assert [len(part.inputs["input"]) for _, part in parts] == [8, 8, 4]
    np.testing.assert_array_equal(parts[2][1].outputs["logits"], outputs["logits"][16:])


def test_samples_without_a_common_first_dimension_run_whole(tmp_path: Path) -> None:
    inputs = {"input": np.zeros((20, 3), np.float32)}
    outputs = {"logits": np.zeros((3,), np.float32)}
    golden = load_golden(_write(tmp_path, encode_golden(inputs, outputs)), {})
    assert [start for start, _ in golden_batches(golden, 8)] == [0]

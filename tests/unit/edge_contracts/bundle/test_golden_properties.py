"""Properties of the golden-samples reader (edge_contracts/bundle/golden.py) on untrusted
bytes: load or raise BundleError with memory bounded by the file; encode -> load round-trips."""

from __future__ import annotations

import contextlib
import io
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edge_contracts.bundle.golden import encode_golden, load_golden
from edge_contracts.errors import BundleError
from tests.support.fuzzing import bounded_memory, json_values, mutated_bytes

VALID = encode_golden(
    {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}, {"y": np.array([1, 2], np.int64)}
)


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def _load(folder: Path, data: bytes, description: Any = None) -> None:
    path = folder / "samples.npz"
    path.write_bytes(data)
    with bounded_memory(16 * len(data) + (4 << 20)), contextlib.suppress(BundleError):
        load_golden(path, description if description is not None else {})


@given(mutated_bytes(VALID) | st.binary(max_size=1024))
def test_mutated_samples_load_or_raise_bundle_error(folder: Path, data: bytes) -> None:
    _load(folder, data)


def _npz_with_header(header: bytes) -> bytes:
    """A zip holding in.x.npy and out.y.npy whose .npy header is ``header``."""
    npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("in.x.npy", npy)
        archive.writestr("out.y.npy", npy)
    return buffer.getvalue()


@given(
    st.sampled_from(["<f4", "<i8", "|b1", "|O", "<U3", "V8", "|u1", "x", "<f8"]),
    st.lists(st.integers(0, 2**40), max_size=3),
    st.booleans(),
)
def test_small_npy_headers_load_or_raise(
    folder: Path, descr: str, shape: list[int], fortran: bool
) -> None:
    # Shapes whose array fits 1 MiB; test_huge_declared_shape below covers the rest.
    if int(np.prod(shape, dtype=object)) * 8 > 1 << 20:
        shape = [min(d, 16) for d in shape]
    text = f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {tuple(shape)}, }}"
    _load(folder, _npz_with_header(text.encode().ljust(118) + b"\n"))


@example(count=1 << 28)
@given(st.integers(1 << 24, 1 << 30))
def test_huge_declared_shape_is_refused_without_allocating_it(folder: Path, count: int) -> None:
    text = f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({count},), }}"
    _load(folder, _npz_with_header(text.encode().ljust(118) + b"\n"))


@example(tolerance=10**400)
@given(st.integers(2**1024, 10**500))
def test_huge_integer_tolerance_is_a_bundle_error(folder: Path, tolerance: int) -> None:
    path = folder / "samples.npz"
    path.write_bytes(VALID)
    with pytest.raises(BundleError):
        load_golden(path, {"atol": tolerance})


@given(json_values())
def test_any_tolerance_value_loads_or_raises_bundle_error(folder: Path, value: Any) -> None:
    if isinstance(value, int) and abs(value) >= 2**1024:
        return  # test_huge_integer_tolerance_is_a_bundle_error
    path = folder / "samples.npz"
    path.write_bytes(VALID)
    with contextlib.suppress(BundleError):
        load_golden(path, {"atol": value, "rtol": value})


_ARRAYS = hnp.arrays(
    st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_, np.float16]),
    hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
)
_NAMES = st.from_regex(r"[A-Za-z0-9_]{1,8}", fullmatch=True)


@given(
    st.dictionaries(_NAMES, _ARRAYS, min_size=1, max_size=3),
    st.dictionaries(_NAMES, _ARRAYS, min_size=1, max_size=3),
)
def test_encode_load_round_trips(
    folder: Path, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]
) -> None:
    path = folder / "samples.npz"
    path.write_bytes(encode_golden(inputs, outputs))
    golden = load_golden(path, {"atol": 0.5, "rtol": 0.25})
    assert (golden.atol, golden.rtol) == (0.5, 0.25)
    for got, want in ((golden.inputs, inputs), (golden.outputs, outputs)):
        assert set(got) == set(want)
        for name, array in want.items():
            assert got[name].dtype == array.dtype and got[name].shape == array.shape
            np.testing.assert_array_equal(got[name], array)

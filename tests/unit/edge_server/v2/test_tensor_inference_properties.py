"""Properties of the V2 input checks (edge_server/v2/tensor_inference.py) against a real
model: any tensors either match the model's inputs or raise InvalidInput."""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_server.catalogue.on_disk import VersionOnDisk
from edge_server.catalogue.serving import ServingModel, build_serving_model
from edge_server.errors import InvalidInput
from edge_server.runtime.onnx_session import LoadedSession, SessionConfig
from edge_server.v2.tensor_inference import NamedTensor, check_tensor, match_inputs
from tests.support.v2_models import two_heads


@pytest.fixture(scope="module")
def twoheads() -> Iterator[ServingModel]:
    with tempfile.TemporaryDirectory() as folder:
        path = two_heads(Path(folder) / "twoheads" / "1" / "model.onnx")
        factory = functools.partial(LoadedSession, config=SessionConfig())
        yield build_serving_model(VersionOnDisk("twoheads", "1", path.parent), factory)


_DTYPES = ["float32", "float64", "int64", "int32", "uint8", "bool", "float16", "object"]


@given(
    index=st.integers(0, 1),
    dtype=st.sampled_from(_DTYPES),
    shape=st.lists(st.integers(0, 4), max_size=4),
)
def test_check_tensor_accepts_exactly_the_declared_type_and_shape(
    twoheads: ServingModel, index: int, dtype: str, shape: list[int]
) -> None:
    spec = twoheads.inputs[index]
    array = np.zeros(shape, dtype=dtype)
    try:
        check_tensor(twoheads, spec, array)
    except InvalidInput:
        assert array.dtype != np.dtype(spec.dtype) or not spec.accepts_shape(tuple(shape))
        return
    assert array.dtype == np.dtype(spec.dtype) and spec.accepts_shape(tuple(shape))


@given(st.lists(st.sampled_from(["x", "k", "y", "", "x ", "K"]) | st.text(max_size=4), max_size=5))
def test_match_inputs_takes_every_input_once_or_raises(
    twoheads: ServingModel, names: list[str]
) -> None:
    tensors = [NamedTensor(name, np.zeros(1, np.float32)) for name in names]
    try:
        specs = match_inputs(twoheads, tensors)
    except InvalidInput:
        assert sorted(names) != sorted(spec.name for spec in twoheads.inputs)
        return
    assert [spec.name for spec in specs] == names
    assert sorted(names) == sorted(spec.name for spec in twoheads.inputs)

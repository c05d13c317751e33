"""V2 tensor encoding and input checks without a server (wire bytes spelled out)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from edge_contracts.proto.inference import grpc_service_pb2 as pb
from edge_server.catalogue.on_disk import VersionOnDisk
from edge_server.catalogue.serving import ServingModel, build_serving_model
from edge_server.errors import InvalidInput
from edge_server.grpc import v2_tensors
from edge_server.inference.predictor import StageTimings
from edge_server.runtime.onnx_session import LoadedSession, SessionConfig
from edge_server.v2.tensor_inference import (
    NamedTensor,
    TensorResult,
    check_tensor,
    match_inputs,
    select_outputs,
)
from tests.support.v2_models import two_heads


def objects(*elements: bytes) -> np.ndarray:
    array = np.empty(len(elements), dtype=object)
    array[:] = list(elements)
    return array


def test_bytes_elements_are_length_prefixed_little_endian() -> None:
    wire = v2_tensors.encode_raw(objects(b"ab", b"", "é".encode()))
    assert wire == b"\x02\x00\x00\x00ab" + b"\x00\x00\x00\x00" + b"\x02\x00\x00\x00\xc3\xa9"
    decoded = v2_tensors.decode_bytes_elements(wire, 3, "input 'x'")
    assert decoded == [b"ab", b"", "é".encode()]


def test_numbers_are_little_endian_row_major() -> None:
    big_endian = np.array([[1, 2], [3, 258]], dtype=">i2")
    assert v2_tensors.encode_raw(big_endian) == b"\x01\x00\x02\x00\x03\x00\x02\x01"
    request = pb.ModelInferRequest(
        inputs=[pb.ModelInferRequest.InferInputTensor(name="x", datatype="INT16", shape=[2, 2])],
        raw_input_contents=[b"\x01\x00\x02\x00\x03\x00\x02\x01"],
    )
    (decoded,) = v2_tensors.decode_request(request, None).inputs
    np.testing.assert_array_equal(decoded.array, [[1, 2], [3, 258]])
    assert decoded.array.dtype == np.int16


def test_response_mirrors_the_request_form() -> None:
    result = TensorResult(
        "m",
        "1",
        (NamedTensor("y", np.array([1.5, 2.5], np.float32)), NamedTensor("s", objects(b"hi"))),
        StageTimings(0, 0, 0, 0, 0),
    )
    typed = v2_tensors.encode_response(result, "id-1", raw=False)
    assert typed.id == "id-1"
    assert list(typed.outputs[0].contents.fp32_contents) == [1.5, 2.5]
    assert list(typed.outputs[1].contents.bytes_contents) == [b"hi"]
    assert not typed.raw_output_contents
    raw = v2_tensors.encode_response(result, "", raw=True)
    assert list(raw.raw_output_contents) == [
        np.array([1.5, 2.5], "<f4").tobytes(),
        b"\x02\x00\x00\x00hi",
    ]
    assert not raw.outputs[0].HasField("contents")
    typed_in = pb.ModelInferRequest(inputs=[pb.ModelInferRequest.InferInputTensor(name="x")])
    assert v2_tensors.wants_raw_outputs(typed_in) is False
    typed_in.raw_input_contents.append(b"")
    assert v2_tensors.wants_raw_outputs(typed_in) is True


@pytest.fixture
def twoheads(tmp_path: Path) -> ServingModel:
    path = two_heads(tmp_path / "twoheads" / "1" / "model.onnx")
    factory = functools.partial(LoadedSession, config=SessionConfig())
    return build_serving_model(VersionOnDisk("twoheads", "1", path.parent), factory)


def test_inputs_are_matched_and_checked(twoheads: ServingModel) -> None:
    x = NamedTensor("x", np.zeros((2, 3), np.float32))
    k = NamedTensor("k", np.zeros(2, np.int64))
    assert [s.name for s in match_inputs(twoheads, [k, x])] == ["k", "x"]
    with pytest.raises(InvalidInput, match="also needs input"):
        match_inputs(twoheads, [x])
    with pytest.raises(InvalidInput, match="appears twice"):
        match_inputs(twoheads, [x, x, k])
    spec = twoheads.inputs[0]
    with pytest.raises(InvalidInput, match=r"is x: FP32 \[-1, 3\]; the request sent FP64"):
        check_tensor(twoheads, spec, np.zeros((2, 3), np.float64))
    assert select_outputs(twoheads, ["k_next", "doubled"]) == [2, 0]
    assert select_outputs(twoheads, []) == [0, 1, 2]
    with pytest.raises(InvalidInput, match="requested twice"):
        select_outputs(twoheads, ["negated", "negated"])

"""Properties of V2 tensor decoding (edge_server/grpc/v2_tensors.py) on untrusted requests:
decode or raise InvalidInput (NotEnabled for shared memory), and numpy -> wire -> numpy
round-trips in both the raw and the typed encoding."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import assume, example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edge_contracts.proto.inference import grpc_service_pb2 as pb
from edge_server.errors import InvalidInput, NotEnabled
from edge_server.grpc import v2_tensors
from edge_server.inference.predictor import StageTimings
from edge_server.v2.datatypes import V2_TO_NUMPY
from edge_server.v2.tensor_inference import NamedTensor, TensorRequest, TensorResult
from tests.support.fuzzing import mutated_bytes

Tensor = pb.ModelInferRequest.InferInputTensor
DATATYPES = [*V2_TO_NUMPY, "BF16", "FP8", "", "bytes"]


def _decode(request: pb.ModelInferRequest) -> TensorRequest | None:
    try:
        return v2_tensors.decode_request(request, None)
    except (InvalidInput, NotEnabled):
        return None


def _too_big_when_empty(shape: list[int]) -> bool:
    """An empty shape whose other dimensions overflow numpy: test_huge_empty_shape below."""
    # numpy refuses a shape whose nonzero dimensions times the item size (up to 8) pass 2**63.
    return len(shape) > 64 or math.prod(d for d in shape if d) * 8 >= 2**63


_SHAPES = st.lists(st.integers(-2, 6) | st.integers(0, 2**63 - 1), max_size=6)


@given(
    st.sampled_from(DATATYPES),
    _SHAPES,
    st.binary(max_size=96),
)
def test_raw_contents_decode_or_raise_invalid_input(
    datatype: str, shape: list[int], raw: bytes
) -> None:
    assume(not _too_big_when_empty(shape))
    request = pb.ModelInferRequest(
        inputs=[Tensor(name="x", datatype=datatype, shape=shape)], raw_input_contents=[raw]
    )
    decoded = _decode(request)
    if decoded is not None:
        (tensor,) = decoded.inputs
        assert list(tensor.array.shape) == shape
        assert tensor.array.dtype == np.dtype(V2_TO_NUMPY[datatype])


@given(st.binary(max_size=64), st.integers(0, 40))
def test_bytes_elements_split_or_raise_and_re_encode(data: bytes, count: int) -> None:
    try:
        elements = v2_tensors.decode_bytes_elements(data, count, "input 'x'")
    except InvalidInput:
        return
    array = np.empty(len(elements), dtype=object)
    array[:] = elements
    assert v2_tensors.encode_raw(array) == data


_TYPED_FIELDS = sorted(set(v2_tensors.TYPED_FIELD.values()))
_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "bool_contents": st.booleans(),
    "int_contents": st.integers(-(2**31), 2**31 - 1),
    "int64_contents": st.integers(-(2**63), 2**63 - 1),
    "uint_contents": st.integers(0, 2**32 - 1),
    "uint64_contents": st.integers(0, 2**64 - 1),
    "fp32_contents": st.floats(width=32),
    "fp64_contents": st.floats(),
    "bytes_contents": st.binary(max_size=8),
}


@st.composite
def typed_requests(draw: st.DrawFn) -> pb.ModelInferRequest:
    tensor = Tensor(name="x", datatype=draw(st.sampled_from(DATATYPES)), shape=draw(_SHAPES))
    for field in draw(st.lists(st.sampled_from(_TYPED_FIELDS), min_size=1, max_size=2)):
        getattr(tensor.contents, field).extend(draw(st.lists(_VALUES[field], max_size=8)))
    return pb.ModelInferRequest(inputs=[tensor])


@given(typed_requests())
def test_typed_contents_decode_or_raise_invalid_input(request: pb.ModelInferRequest) -> None:
    assume(not _too_big_when_empty(list(request.inputs[0].shape)))
    decoded = _decode(request)
    if decoded is not None:
        (tensor,) = decoded.inputs
        assert tensor.array.dtype == np.dtype(V2_TO_NUMPY[request.inputs[0].datatype])


def _valid_request_bytes() -> bytes:
    request = pb.ModelInferRequest(
        model_name="m",
        inputs=[
            Tensor(name="a", datatype="FP32", shape=[2]),
            Tensor(name="b", datatype="BYTES", shape=[1]),
            Tensor(name="c", datatype="INT8", shape=[1]),
        ],
        raw_input_contents=[np.zeros(2, "<f4").tobytes(), b"\x01\x00\x00\x00z", b"\x05"],
    )
    request.inputs[2].parameters["shared_memory_region"].string_param = "r"
    request.inputs[2].parameters["shared_memory_byte_size"].int64_param = 1
    return request.SerializeToString()


@given(mutated_bytes(_valid_request_bytes()) | st.binary(max_size=200))
def test_wire_bytes_decode_or_raise_invalid_input(data: bytes) -> None:
    try:
        request = pb.ModelInferRequest.FromString(data)
    except DecodeError:
        return  # gRPC refuses these before a servicer sees them
    assume(all(not _too_big_when_empty(list(t.shape)) for t in request.inputs))
    _decode(request)


@example(shape=[1] * 65)
@example(shape=[0, 2**62, 2**62])
@example(shape=[0, 6, 6, 131, 5321495, 91880274])  # found by make fuzz (UINT32)
@given(
    st.lists(st.just(1), min_size=65, max_size=80)
    | st.lists(st.integers(2**32, 2**63 - 1), min_size=2, max_size=3).map(lambda s: [0, *s])
)
def test_huge_or_deep_shape_is_invalid_input(shape: list[int]) -> None:
    for datatype, raw in (("FP32", b""), ("BYTES", b"")):
        request = pb.ModelInferRequest(
            inputs=[Tensor(name="x", datatype=datatype, shape=shape)], raw_input_contents=[raw]
        )
        with pytest.raises(InvalidInput):
            v2_tensors.decode_request(request, None)


_ROUND_TRIP_DTYPES = [
    np.bool_, np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16, np.int32,
    np.int64, np.float16, np.float32, np.float64,
]  # fmt: skip


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))
    if draw(st.integers(0, 5)) == 0:
        elements = draw(
            st.lists(st.binary(max_size=6), min_size=math.prod(shape), max_size=math.prod(shape))
        )
        array = np.empty(len(elements), dtype=object)
        array[:] = elements
        return array.reshape(shape)
    dtype = np.dtype(draw(st.sampled_from(_ROUND_TRIP_DTYPES)))
    return draw(
        hnp.arrays(
            dtype.newbyteorder(draw(st.sampled_from("<>="))) if dtype.itemsize > 1 else dtype, shape
        )
    )


@given(st.lists(arrays(), min_size=1, max_size=3), st.booleans())
def test_arrays_round_trip_through_the_wire(outputs: list[np.ndarray], raw: bool) -> None:
    result = TensorResult(
        "m",
        "1",
        tuple(NamedTensor(f"t{i}", a) for i, a in enumerate(outputs)),
        StageTimings(0, 0, 0, 0, 0),
    )
    response = pb.ModelInferResponse.FromString(
        v2_tensors.encode_response(result, "id", raw=raw).SerializeToString()
    )
    request = pb.ModelInferRequest(raw_input_contents=response.raw_output_contents)
    for output in response.outputs:
        tensor = request.inputs.add(name=output.name, datatype=output.datatype, shape=output.shape)
        if output.HasField("contents"):
            tensor.contents.CopyFrom(output.contents)
    decoded = v2_tensors.decode_request(request, None)
    for sent, got in zip(outputs, decoded.inputs, strict=True):
        assert got.array.shape == sent.shape
        if sent.dtype == object:
            assert got.array.dtype == object and got.array.tolist() == sent.tolist()
        else:
            assert got.array.dtype == sent.dtype.newbyteorder("=")
            np.testing.assert_array_equal(got.array, sent)

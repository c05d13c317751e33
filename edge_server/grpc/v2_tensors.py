"""V2 (Open Inference Protocol) tensors on the wire <-> numpy arrays.

Two encodings: typed ``contents`` (one repeated field per element type) and
``raw_input_contents`` / ``raw_output_contents`` (row-major, little-endian, no
padding; each BYTES element is a 4-byte little-endian length and then its bytes).
A request uses one of them for all its inputs. The response mirrors the request:
raw outputs for raw inputs, typed outputs for typed inputs, except that FP16 has
no typed field, so any FP16 output makes the whole response raw.

With the system shared-memory extension, an input (or a requested output) whose
parameters name a ``shared_memory_region`` (plus ``shared_memory_byte_size`` and an
optional ``shared_memory_offset``) is read from (written to) that region in raw
form; ``raw_input_contents`` then holds only the other inputs, in order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import NamedTuple

import numpy as np

from edge_contracts.proto.inference import grpc_service_pb2 as pb
from edge_server.errors import InvalidInput, NotEnabled
from edge_server.v2.raw_tensors import (
    checked_shape,
    element_bytes,
    encode_raw,
    from_raw,
    numpy_dtype,
    object_array,
    output_datatype,
)
from edge_server.v2.raw_tensors import (
    decode_bytes_elements as decode_bytes_elements,  # re-exported: tests and callers
)
from edge_server.v2.shared_memory import CallerRegions
from edge_server.v2.tensor_inference import NamedTensor, TensorRequest, TensorResult

InputTensor = pb.ModelInferRequest.InferInputTensor
OutputTensor = pb.ModelInferResponse.InferOutputTensor

# Typed contents field of each datatype (FP16 has none: raw only).
TYPED_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
# numpy type the typed field holds, before narrowing to the datatype.
_FIELD_DTYPE = {
    "bool_contents": "bool",
    "int_contents": "int32",
    "int64_contents": "int64",
    "uint_contents": "uint32",
    "uint64_contents": "uint64",
    "fp32_contents": "float32",
    "fp64_contents": "float64",
}

# The caller's view of the registry, once it may use shared memory (raises
# AccessDenied, Unauthenticated or NotEnabled: edge_server/grpc/shared_memory_access.py).
RegionAccess = Callable[[], CallerRegions]


def no_regions() -> CallerRegions:
    raise NotEnabled("shared-memory tensors are not accepted here")


class RegionRef(NamedTuple):
    """Where a tensor lives in shared memory: region name, byte offset, byte size."""

    region: str
    offset: int
    byte_size: int


def _param(parameters: Mapping[str, pb.InferParameter], key: str, kind: str, where: str) -> object:
    value = parameters[key]
    if value.WhichOneof("parameter_choice") != kind:
        raise InvalidInput(f"{where}: parameter {key!r} must be a {kind}", where)
    return getattr(value, kind)


def region_ref(parameters: Mapping[str, pb.InferParameter], where: str) -> RegionRef | None:
    """The shared-memory reference in a tensor's parameters, or None for inline data."""
    if "shared_memory_region" not in parameters:
        return None
    name = _param(parameters, "shared_memory_region", "string_param", where)
    if "shared_memory_byte_size" not in parameters:
        raise InvalidInput(
            f"{where}: shared_memory_region needs shared_memory_byte_size (int64_param)", where
        )
    size = _param(parameters, "shared_memory_byte_size", "int64_param", where)
    offset = (
        _param(parameters, "shared_memory_offset", "int64_param", where)
        if "shared_memory_offset" in parameters
        else 0
    )
    assert isinstance(name, str) and isinstance(size, int) and isinstance(offset, int)
    return RegionRef(name, offset, size)


def _from_typed(tensor: InputTensor, shape: tuple[int, ...], where: str) -> np.ndarray:
    datatype = tensor.datatype
    dtype = numpy_dtype(datatype, where)
    field = TYPED_FIELD.get(datatype)
    if field is None:
        raise InvalidInput(
            f"{where}: {datatype} has no typed contents field; send it in raw_input_contents",
            where,
        )
    contents = tensor.contents
    stray = [f.name for f, _ in contents.ListFields() if f.name != field]
    if stray:
        raise InvalidInput(f"{where}: a {datatype} tensor's values go in {field}, not {stray[0]}")
    values = getattr(contents, field)
    count = math.prod(shape)
    if len(values) != count:
        raise InvalidInput(
            f"{where}: {field} holds {len(values)} values; shape {list(shape)} needs {count}",
            where,
        )
    if datatype == "BYTES":
        return object_array(list(values), shape)
    wide = np.array(values, dtype=_FIELD_DTYPE[field])
    array = wide.astype(dtype)
    if dtype.kind in "iu" and not np.array_equal(array, wide):
        raise InvalidInput(f"{where}: a value in {field} does not fit {datatype}", where)
    return array.reshape(shape)


def decode_request(
    request: pb.ModelInferRequest,
    time_remaining: float | None,
    regions: RegionAccess = no_regions,
) -> TensorRequest:
    raw = request.raw_input_contents
    refs = [region_ref(t.parameters, f"input {t.name!r}") for t in request.inputs]
    if raw:
        typed = [t.name for t in request.inputs if t.HasField("contents")]
        if typed:
            raise InvalidInput(
                f"input {typed[0]!r} has typed contents while the request also carries "
                "raw_input_contents; use one form for every input",
                "raw_input_contents",
            )
        inline = sum(ref is None for ref in refs)
        if len(raw) != inline:
            raise InvalidInput(
                f"raw_input_contents has {len(raw)} entries for {inline} inputs not in "
                "shared memory; send one per such input, in the order of inputs",
                "raw_input_contents",
            )
    inputs = []
    raw_index = 0
    for tensor, ref in zip(request.inputs, refs, strict=True):
        where = f"input {tensor.name!r}"
        shape = checked_shape(tensor.shape, where)
        if ref is not None:
            if tensor.HasField("contents"):
                raise InvalidInput(f"{where} has both contents and a shared_memory_region", where)
            data = regions().read(ref.region, ref.offset, ref.byte_size, where)
            array = from_raw(data, tensor.datatype, shape, where)
        elif raw:
            array = from_raw(raw[raw_index], tensor.datatype, shape, where)
            raw_index += 1
        elif tensor.HasField("contents"):
            array = _from_typed(tensor, shape, where)
        else:
            raise InvalidInput(
                f"{where} has no data: set its contents, raw_input_contents or a "
                "shared_memory_region",
                where,
            )
        inputs.append(NamedTensor(tensor.name, array))
    for output in request.outputs:
        if "classification" in output.parameters:
            raise InvalidInput(
                f"output {output.name!r} asks for classification, an extension this server "
                "does not implement; request the output itself (edge.v1 Predict classifies)",
                "outputs.parameters",
            )
    deadline = time.monotonic() + time_remaining if time_remaining is not None else None
    return TensorRequest(
        model_name=request.model_name,
        model_version=request.model_version,
        inputs=tuple(inputs),
        output_names=tuple(output.name for output in request.outputs),
        deadline=deadline,
    )


def _fill_typed(tensor: OutputTensor, array: np.ndarray) -> None:
    field = TYPED_FIELD[tensor.datatype]
    flat = array.reshape(-1)
    if array.dtype == object:
        tensor.contents.bytes_contents.extend(element_bytes(e) for e in flat)
    else:
        getattr(tensor.contents, field).extend(flat.tolist())


def wants_raw_outputs(request: pb.ModelInferRequest) -> bool:
    """Answer in the form the request used: raw for raw inputs, and when it had no inline
    inputs at all (none, or all in shared memory)."""
    return bool(request.raw_input_contents) or all(
        "shared_memory_region" in tensor.parameters for tensor in request.inputs
    )


def output_refs(request: pb.ModelInferRequest) -> dict[str, RegionRef]:
    """Requested outputs to be written into shared memory, by output name."""
    refs = {}
    for output in request.outputs:
        ref = region_ref(output.parameters, f"output {output.name!r}")
        if ref is not None:
            refs[output.name] = ref
    return refs


def encode_response(
    result: TensorResult,
    request_id: str,
    raw: bool,
    refs: Mapping[str, RegionRef] | None = None,
    regions: RegionAccess | None = None,
) -> pb.ModelInferResponse:
    """The response; outputs named in ``refs`` go into their shared-memory regions
    (their entries carry the region and the bytes written, no contents)."""
    response = pb.ModelInferResponse(
        model_name=result.model_name, model_version=result.model_version, id=request_id
    )
    datatypes = [output_datatype(output.array) for output in result.outputs]
    raw = raw or any(datatype not in TYPED_FIELD for datatype in datatypes)
    for output, datatype in zip(result.outputs, datatypes, strict=True):
        tensor = response.outputs.add(
            name=output.name, datatype=datatype, shape=list(output.array.shape)
        )
        ref = refs.get(output.name) if refs else None
        if ref is not None and regions is not None:
            data = encode_raw(output.array)
            where = f"output {output.name!r}"
            regions().write(ref.region, ref.offset, ref.byte_size, data, where)
            tensor.parameters["shared_memory_region"].string_param = ref.region
            tensor.parameters["shared_memory_byte_size"].int64_param = len(data)
            if ref.offset:
                tensor.parameters["shared_memory_offset"].int64_param = ref.offset
        elif raw:
            response.raw_output_contents.append(encode_raw(output.array))
        else:
            _fill_typed(tensor, output.array)
    return response

"""Open Inference Protocol REST bodies <-> the domain's TensorRequest / TensorResult.

JSON tensors carry ``data`` (flat or nested, row-major; BYTES as UTF-8 strings). With
the binary tensor data extension (Triton's), the body is the JSON header, whose length
is the ``Inference-Header-Content-Length`` header, followed by the binary data of the
inputs whose ``parameters`` give ``binary_data_size``, in input order; the raw form is
the gRPC side's (edge_server/v2/raw_tensors.py), length-prefixed elements for BYTES.
An output is answered in binary when its own ``parameters.binary_data`` says so, else
when the request's ``parameters.binary_data_output`` does; the answer then carries the
same header. Request ``parameters.timeout`` (microseconds, as Triton reads it) bounds
the call.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from edge_contracts.json_limits import loads_limited
from edge_server.errors import InvalidInput
from edge_server.http.bodies import JSON_DEPTH
from edge_server.v2.raw_tensors import (
    checked_shape,
    encode_raw,
    from_raw,
    numpy_dtype,
    object_array,
    output_datatype,
)
from edge_server.v2.tensor_inference import NamedTensor, TensorRequest, TensorResult

HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_TYPE = "application/octet-stream"
_WIDE = {"b": "bool", "i": "int64", "u": "uint64", "f": "float64"}


def split_body(body: bytes, header_length: str | None) -> tuple[Any, bytes]:
    """(the JSON header as parsed, the binary data after it)."""
    size = len(body)
    if header_length is not None:
        try:
            size = int(header_length)
        except ValueError:
            size = -1
        if not 0 <= size <= len(body):
            raise InvalidInput(
                f"{HEADER_LENGTH} is {header_length!r}: it must be the byte length of the "
                f"JSON at the start of the body (0..{len(body)})",
                HEADER_LENGTH,
            )
    header = loads_limited(body[:size], "the inference request", InvalidInput, size, JSON_DEPTH)
    if not isinstance(header, dict):
        raise InvalidInput("the inference request must be a JSON object", "body")
    return header, body[size:]


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} must be a JSON object", where)
    return value


def _flatten(data: Any) -> list[Any]:
    """Nested lists -> one row-major list (no recursion: depth is bounded but cheap)."""
    if not isinstance(data, list):
        return [data]
    flat: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack:
        item = next(stack[-1], stack)
        if item is stack:
            stack.pop()
        elif isinstance(item, list):
            stack.append(iter(item))
        else:
            flat.append(item)
    return flat


def _check_elements(values: list[Any], datatype: str, where: str) -> None:
    if datatype == "BOOL":
        ok = all(isinstance(v, bool) for v in values)
        kind = "true or false"
    elif datatype.startswith(("INT", "UINT")):
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
        kind = "integers"
    else:
        ok = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        kind = "numbers"
    if not ok:
        raise InvalidInput(f"{where}: {datatype} data must hold {kind} only", f"{where}.data")


def _from_json(data: Any, datatype: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    dtype = numpy_dtype(datatype, where)
    values = _flatten(data)
    count = math.prod(shape)
    if len(values) != count:
        raise InvalidInput(
            f"{where}: data holds {len(values)} values; shape {list(shape)} needs {count}",
            f"{where}.data",
        )
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in values):
            raise InvalidInput(
                f"{where}: BYTES data in JSON must be strings; send binary elements (images) "
                "with the binary tensor data extension",
                f"{where}.data",
            )
        return object_array([v.encode("utf-8") for v in values], shape)
    _check_elements(values, datatype, where)
    try:
        wide = np.array(values, dtype=_WIDE[dtype.kind])
    except OverflowError:
        raise InvalidInput(f"{where}: a value does not fit {datatype}", f"{where}.data") from None
    array = wide.astype(dtype)
    if dtype.kind in "iu" and not np.array_equal(array, wide):
        raise InvalidInput(f"{where}: a value does not fit {datatype}", f"{where}.data")
    return array.reshape(shape)


def _input(tensor: Any, index: int, binary: memoryview, offset: int) -> tuple[NamedTensor, int]:
    """One input and the offset of the next binary data."""
    tensor = _object(tensor, f"inputs[{index}]")
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"inputs[{index}] has no name", f"inputs[{index}].name")
    where = f"input {name!r}"
    datatype, dims = tensor.get("datatype"), tensor.get("shape")
    if not isinstance(datatype, str):
        raise InvalidInput(f"{where} has no datatype (FP32, INT64, BYTES...)", f"{where}.datatype")
    if not isinstance(dims, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) for d in dims
    ):
        raise InvalidInput(f"{where}: shape must be a list of integers", f"{where}.shape")
    shape = checked_shape(dims, where)
    size = _object(tensor.get("parameters"), f"{where}.parameters").get("binary_data_size")
    if size is None:
        if "data" not in tensor:
            raise InvalidInput(f"{where} has no data and no binary_data_size", f"{where}.data")
        return NamedTensor(name, _from_json(tensor["data"], datatype, shape, where)), offset
    if not isinstance(size, int) or size < 0 or offset + size > len(binary):
        raise InvalidInput(
            f"{where}: binary_data_size {size!r} goes past the {len(binary)} bytes of binary "
            "data after the JSON header",
            f"{where}.parameters",
        )
    data = bytes(binary[offset : offset + size])
    return NamedTensor(name, from_raw(data, datatype, shape, where)), offset + size


def decode_infer(
    header: Mapping[str, Any], binary: bytes, model: str, version: str
) -> tuple[TensorRequest, dict[str, bool]]:
    """The request, and for each output the client asked for whether it wants binary."""
    inputs_json = header.get("inputs")
    if not isinstance(inputs_json, list):
        raise InvalidInput("the inference request has no 'inputs' list", "inputs")
    view, offset, inputs = memoryview(binary), 0, []
    for index, tensor in enumerate(inputs_json):
        named, offset = _input(tensor, index, view, offset)
        inputs.append(named)
    if offset != len(binary):
        raise InvalidInput(
            f"{len(binary) - offset} bytes of binary data are left over after the inputs' "
            "binary_data_size",
            "binary_data_size",
        )
    parameters = _object(header.get("parameters"), "parameters")
    default_binary = parameters.get("binary_data_output") is True
    binary_outputs: dict[str, bool] = {}
    for index, output in enumerate(header.get("outputs") or []):
        output = _object(output, f"outputs[{index}]")
        name = output.get("name")
        if not isinstance(name, str):
            raise InvalidInput(f"outputs[{index}] has no name", f"outputs[{index}].name")
        output_parameters = _object(output.get("parameters"), f"output {name!r}.parameters")
        if "classification" in output_parameters:
            raise InvalidInput(
                f"output {name!r} asks for classification, an extension this server does not "
                "implement; request the output itself (POST /predict classifies)",
                "outputs.parameters",
            )
        binary_outputs[name] = output_parameters.get("binary_data", default_binary) is True
    timeout_us = parameters.get("timeout")
    deadline = None
    if isinstance(timeout_us, int) and timeout_us > 0:
        deadline = time.monotonic() + timeout_us / 1e6
    request = TensorRequest(
        model_name=model,
        model_version=version,
        inputs=tuple(inputs),
        output_names=tuple(binary_outputs),
        deadline=deadline,
    )
    return request, {"": default_binary, **binary_outputs}


def _json_data(array: np.ndarray) -> list[Any]:
    flat = array.reshape(-1)
    if array.dtype == object:
        return [e.decode("utf-8", "replace") if isinstance(e, bytes) else str(e) for e in flat]
    listed: list[Any] = flat.tolist()
    return listed


def encode_infer(
    result: TensorResult, request_id: str, binary: Mapping[str, bool]
) -> tuple[bytes, int | None]:
    """The answer's body, and the JSON header's length when binary data follows it."""
    outputs: list[dict[str, Any]] = []
    tail: list[bytes] = []
    for output in result.outputs:
        entry: dict[str, Any] = {
            "name": output.name,
            "datatype": output_datatype(output.array),
            "shape": list(output.array.shape),
        }
        if binary.get(output.name, binary.get("", False)):
            data = encode_raw(output.array)
            entry["parameters"] = {"binary_data_size": len(data)}
            tail.append(data)
        else:
            entry["data"] = _json_data(output.array)
        outputs.append(entry)
    header: dict[str, Any] = {
        "model_name": result.model_name,
        "model_version": result.model_version,
        "outputs": outputs,
    }
    if request_id:
        header["id"] = request_id
    text = _dumps(header)
    if not tail:
        return text, None
    return text + b"".join(tail), len(text)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()

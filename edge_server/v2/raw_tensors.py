"""Raw V2 tensor bytes <-> numpy arrays, shared by the gRPC and HTTP faces.

Raw form (the Open Inference Protocol's ``raw_input_contents`` / ``raw_output_contents``
in gRPC, and the binary tensor data extension over HTTP): row-major, little-endian, no
padding; each BYTES element is a 4-byte little-endian length and then its bytes.
Also the checks every decoded tensor passes whatever its encoding: a datatype the
gateway serves and a shape numpy can hold.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence

import numpy as np

from edge_server.errors import InvalidInput
from edge_server.v2.datatypes import NUMPY_TO_V2, V2_TO_NUMPY

_LENGTH = struct.Struct("<I")


def numpy_dtype(datatype: str, where: str) -> np.dtype[np.generic]:
    if datatype == "BF16":
        raise InvalidInput(
            f"{where}: BF16 is not served (ONNX Runtime's Python API takes no bfloat16 "
            "arrays); send FP32 or FP16",
            f"{where}.datatype",
        )
    name = V2_TO_NUMPY.get(datatype)
    if name is None:
        raise InvalidInput(
            f"{where}: {datatype!r} is not a V2 datatype; use one of {', '.join(V2_TO_NUMPY)}",
            f"{where}.datatype",
        )
    return np.dtype(name)


# A shape numpy can represent (it allows 64 dimensions and sizes below 2**63 bytes); far
# beyond any model the gateway serves, but refused here as bad input, not as numpy's error.
MAX_RANK = 32
MAX_ELEMENTS = 1 << 40


def checked_shape(dims: Iterable[int], where: str) -> tuple[int, ...]:
    """A tensor's shape as sent, refused when negative or beyond what numpy can hold."""
    shape = tuple(int(d) for d in dims)
    if any(d < 0 for d in shape):
        raise InvalidInput(f"{where}: shape {list(shape)} has a negative dimension", where)
    if len(shape) > MAX_RANK:
        raise InvalidInput(f"{where}: shape has {len(shape)} dimensions, at most {MAX_RANK}", where)
    # Zero-sized dimensions included as 1: numpy refuses [0, 2**62, 2**62] as too big too.
    if math.prod(max(d, 1) for d in shape) > MAX_ELEMENTS:
        raise InvalidInput(f"{where}: shape {list(shape)} is larger than any tensor served", where)
    return shape


def decode_bytes_elements(data: bytes, count: int, where: str) -> list[bytes]:
    """Split raw BYTES data (length-prefixed elements) into ``count`` elements."""
    elements: list[bytes] = []
    offset = 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise InvalidInput(f"{where}: a BYTES length prefix is cut short at byte {offset}")
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += 4
        if offset + length > len(data):
            raise InvalidInput(
                f"{where}: BYTES element {len(elements)} claims {length} bytes but only "
                f"{len(data) - offset} remain (each element is a 4-byte little-endian length "
                "and then its bytes)"
            )
        elements.append(bytes(data[offset : offset + length]))
        offset += length
    if len(elements) != count:
        raise InvalidInput(
            f"{where}: holds {len(elements)} BYTES elements; the shape needs {count}"
        )
    return elements


def object_array(elements: Sequence[bytes], shape: tuple[int, ...]) -> np.ndarray:
    array = np.empty(len(elements), dtype=object)
    array[:] = list(elements)
    return array.reshape(shape)


def from_raw(data: bytes, datatype: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    """Row-major little-endian bytes (length-prefixed elements for BYTES) -> an array."""
    dtype = numpy_dtype(datatype, where)
    count = math.prod(shape)
    if datatype == "BYTES":
        return object_array(decode_bytes_elements(data, count, where), shape)
    expected = count * dtype.itemsize
    if len(data) != expected:
        raise InvalidInput(
            f"{where}: raw contents are {len(data)} bytes but {datatype} {list(shape)} needs "
            f"{expected}",
            where,
        )
    if datatype == "BOOL" and data and np.frombuffer(data, np.uint8).max() > 1:
        raise InvalidInput(f"{where}: BOOL raw bytes must be 0 or 1", where)
    array = np.frombuffer(data, dtype=dtype.newbyteorder("<")).reshape(shape)
    return array.astype(dtype, copy=False)


def output_datatype(array: np.ndarray) -> str:
    datatype = NUMPY_TO_V2.get(array.dtype.name)
    if datatype is None:
        raise TypeError(f"model output of numpy dtype {array.dtype} has no V2 datatype")
    return datatype


def element_bytes(element: object) -> bytes:
    if isinstance(element, bytes):
        return element
    return str(element).encode("utf-8")


def encode_raw(array: np.ndarray) -> bytes:
    """An array as raw V2 bytes (the inverse of ``from_raw``)."""
    if array.dtype == object:
        parts = []
        for element in array.reshape(-1):
            data = element_bytes(element)
            parts.append(_LENGTH.pack(len(data)))
            parts.append(data)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()

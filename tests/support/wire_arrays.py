"""numpy arrays as JSON, between the test process and its client subprocesses.

``{"dtype", "shape", "data"}`` with base64 of the little-endian bytes, or for BYTES
(numpy ``object``) ``{"dtype": "object", "shape", "elements": [base64, ...]}``.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np


def to_array(data: dict[str, Any]) -> np.ndarray:
    shape = tuple(data["shape"])
    if data["dtype"] == "object":
        elements = [base64.b64decode(e) for e in data["elements"]]
        array = np.empty(len(elements), dtype=object)
        array[:] = elements
        return array.reshape(shape)
    raw = base64.b64decode(data["data"])
    return np.frombuffer(raw, dtype=np.dtype(data["dtype"]).newbyteorder("<")).reshape(shape)


def from_array(array: np.ndarray) -> dict[str, Any]:
    if array.dtype == object:
        elements = [e if isinstance(e, bytes) else str(e).encode() for e in array.reshape(-1)]
        return {
            "dtype": "object",
            "shape": list(array.shape),
            "elements": [base64.b64encode(e).decode() for e in elements],
        }
    little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return {
        "dtype": array.dtype.name,
        "shape": list(array.shape),
        "data": base64.b64encode(little.tobytes()).decode(),
    }

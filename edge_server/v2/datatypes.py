"""Tensor element type names of the Open Inference Protocol (KServe V2) and numpy's.

V2 names (FP32, INT64, BYTES...) are what V2 clients read in metadata and error
messages; numpy dtype names are what the engine and TensorSpec use. BYTES maps to
numpy ``object``: ONNX ``tensor(string)`` or, for an image model, encoded images.
"""

from __future__ import annotations

from edge_server.catalogue.tensor_specs import TensorSpec

V2_TO_NUMPY: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "object",
}
NUMPY_TO_V2: dict[str, str] = {numpy: v2 for v2, numpy in V2_TO_NUMPY.items()}
# ONNX types the engine can load but the gateway cannot feed from numpy.
_UNSERVED_ONNX = {"tensor(bfloat16)": "BF16"}


def v2_datatype(numpy_name: str) -> str:
    """V2 name of a numpy dtype name (or of an ONNX type the gateway does not serve)."""
    return NUMPY_TO_V2.get(numpy_name) or _UNSERVED_ONNX.get(numpy_name, numpy_name)


def describe_v2(spec: TensorSpec) -> str:
    """``input: FP32 [-1, 2, 4, 4]`` (-1 = any size), the way V2 metadata shows it."""
    dims = ", ".join(str(d) for d in spec.shape)
    return f"{spec.name}: {v2_datatype(spec.dtype)} [{dims}]"

"""Loading ONNX files with clear errors, and reading their input/output signature."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError

from model_tools.errors import ToolError, require_file

__all__ = ["TensorSpec", "fixed_batch_size", "graph_signature", "load_onnx", "numpy_dtype"]


@dataclass(frozen=True)
class TensorSpec:
    """Name, element type and shape of a graph input or output.

    ``shape`` holds an int for a fixed dimension and a string (symbolic name) or
    None for a dynamic one.
    """

    name: str
    dtype: str
    shape: tuple[int | str | None, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


def fixed_batch_size(spec: TensorSpec) -> int | None:
    """The batch size a tensor is fixed to (``--static-batch`` exports), None when dynamic."""
    first = spec.shape[0] if spec.shape else None
    return first if isinstance(first, int) else None


def load_onnx(path: Path, *, load_weights: bool = True) -> onnx.ModelProto:
    """Parse an ONNX file; a missing or non-ONNX file raises ToolError."""
    require_file(path, "ONNX model")
    try:
        model = onnx.load(str(path), load_external_data=load_weights)
    except (DecodeError, RuntimeError, ValueError, UnicodeDecodeError) as exc:
        raise ToolError(f"{path} is not a valid ONNX model ({type(exc).__name__}: {exc})") from None
    if not model.graph.node and not model.graph.output:
        raise ToolError(f"{path} is not a valid ONNX model (empty graph)")
    return model


def numpy_dtype(elem_type: int) -> str:
    """Numpy dtype name for an ONNX TensorProto element type ("unknown" if none)."""
    try:
        return str(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)))
    except (KeyError, TypeError, ValueError):
        return "unknown"


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor_type = value.type.tensor_type
    dims: list[int | str | None] = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            dims.append(str(dim.dim_param))
        else:
            dims.append(None)
    return TensorSpec(value.name, numpy_dtype(tensor_type.elem_type), tuple(dims))


def graph_signature(model: onnx.ModelProto) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The graph's real inputs (initializers excluded) and its outputs."""
    initializers = {init.name for init in model.graph.initializer}
    inputs = [_spec(v) for v in model.graph.input if v.name not in initializers]
    outputs = [_spec(v) for v in model.graph.output]
    return inputs, outputs

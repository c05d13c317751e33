"""ONNX models for the V2 tests: several inputs and outputs, and one model per datatype."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17

# V2 datatype -> (ONNX element type, numpy dtype name) for every type the gateway serves.
DATATYPES = {
    "BOOL": (TensorProto.BOOL, "bool"),
    "UINT8": (TensorProto.UINT8, "uint8"),
    "UINT16": (TensorProto.UINT16, "uint16"),
    "UINT32": (TensorProto.UINT32, "uint32"),
    "UINT64": (TensorProto.UINT64, "uint64"),
    "INT8": (TensorProto.INT8, "int8"),
    "INT16": (TensorProto.INT16, "int16"),
    "INT32": (TensorProto.INT32, "int32"),
    "INT64": (TensorProto.INT64, "int64"),
    "FP16": (TensorProto.FLOAT16, "float16"),
    "FP32": (TensorProto.FLOAT, "float32"),
    "FP64": (TensorProto.DOUBLE, "float64"),
    "BYTES": (TensorProto.STRING, "object"),
}


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def two_heads(path: Path) -> Path:
    """Inputs x FP32 [N, 3] and k INT64 [N]; outputs doubled = 2x, negated = -x, k_next = k + 1."""
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["doubled"]),
        helper.make_node("Neg", ["x"], ["negated"]),
        helper.make_node("Add", ["k", "one"], ["k_next"]),
    ]
    graph = helper.make_graph(
        nodes,
        "two_heads",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3]),
            helper.make_tensor_value_info("k", TensorProto.INT64, ["n"]),
        ],
        [
            helper.make_tensor_value_info("doubled", TensorProto.FLOAT, ["n", 3]),
            helper.make_tensor_value_info("negated", TensorProto.FLOAT, ["n", 3]),
            helper.make_tensor_value_info("k_next", TensorProto.INT64, ["n"]),
        ],
        [
            numpy_helper.from_array(np.array(2.0, np.float32), "two"),
            numpy_helper.from_array(np.array(1, np.int64), "one"),
        ],
    )
    return _save(graph, path)


def identity(path: Path, datatype: str) -> Path:
    """in [N, 2] -> out [N, 2] of one element type (Identity serves every type)."""
    element_type, _ = DATATYPES[datatype]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["in"], ["out"])],
        f"identity_{datatype.lower()}",
        [helper.make_tensor_value_info("in", element_type, ["n", 2])],
        [helper.make_tensor_value_info("out", element_type, ["n", 2])],
    )
    return _save(graph, path)


def to_half(path: Path) -> Path:
    """FP32 in [N, 2] -> FP16 out [N, 2] (a typed request whose answer must be raw)."""
    graph = helper.make_graph(
        [helper.make_node("Cast", ["in"], ["out"], to=TensorProto.FLOAT16)],
        "to_half",
        [helper.make_tensor_value_info("in", TensorProto.FLOAT, ["n", 2])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT16, ["n", 2])],
    )
    return _save(graph, path)


def identity_name(datatype: str) -> str:
    return f"id_{datatype.lower()}"


def build_datatype_root(root: Path) -> Path:
    for datatype in DATATYPES:
        identity(root / identity_name(datatype) / "1" / "model.onnx", datatype)
    to_half(root / "to_half" / "1" / "model.onnx")
    return root

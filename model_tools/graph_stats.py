"""Facts about an ONNX graph: op histogram, quantization, convolution share, weights."""

from __future__ import annotations

from collections import Counter, deque

import numpy as np
import onnx
from onnx import numpy_helper

__all__ = [
    "CONV_OPS",
    "QUANTIZED_OPS",
    "SLOW_INT8_OPS",
    "conv_share",
    "gemm_to_matmul",
    "is_quantized",
    "op_histogram",
    "parameter_count",
    "prune_opset_imports",
    "topological_sort",
]

CONV_OPS = frozenset({"Conv", "ConvTranspose"})
_DENSE_OPS = frozenset({"MatMul", "Gemm"})
QUANTIZED_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "ConvInteger",
        "MatMulInteger",
        "MatMulIntegerToFloat",
        "DynamicQuantizeMatMul",
        "QGemm",
        "QAttention",
    }
)
# Integer kernels that on common x86 CPUs run slower than the FP32 ones they replace.
SLOW_INT8_OPS = frozenset({"ConvInteger"})


def op_histogram(model: onnx.ModelProto) -> dict[str, int]:
    """Node count per op type (``domain::op`` for non-default domains), most used first."""
    counts: Counter[str] = Counter()
    for node in model.graph.node:
        domain = node.domain if node.domain not in ("", "ai.onnx") else ""
        counts[f"{domain}::{node.op_type}" if domain else node.op_type] += 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def is_quantized(model: onnx.ModelProto) -> bool:
    """True when the graph holds quantize/dequantize or integer kernels."""
    return any(node.op_type in QUANTIZED_OPS for node in model.graph.node)


def conv_share(model: onnx.ModelProto) -> float:
    """Convolutions as a share of the weight-bearing nodes (Conv, MatMul, Gemm)."""
    ops = [node.op_type for node in model.graph.node]
    conv = sum(op in CONV_OPS for op in ops)
    dense = sum(op in _DENSE_OPS for op in ops)
    return conv / (conv + dense) if conv + dense else 0.0


def parameter_count(model: onnx.ModelProto) -> int:
    """Elements in all initializers."""
    return sum(int(np.prod(init.dims, dtype=np.int64)) for init in model.graph.initializer)


def gemm_to_matmul(model: onnx.ModelProto) -> int:
    """Rewrite plain ``Gemm(A, B[, C])`` with a constant B as ``MatMul`` (+ ``Add``).

    ONNX Runtime's dynamic quantizer covers MatMul but not Gemm, which is what
    exporters emit for linear layers. Returns the number of nodes rewritten.
    """
    initializers = {init.name: init for init in model.graph.initializer}
    uses = Counter(name for node in model.graph.node for name in node.input)
    transposed: set[str] = set()
    rewritten = 0
    new_nodes: list[onnx.NodeProto] = []
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        plain = (
            node.op_type == "Gemm"
            and attrs.get("transA", 0) == 0
            and attrs.get("alpha", 1.0) == 1.0
            and attrs.get("beta", 1.0) == 1.0
            and len(node.input) >= 2
            and node.input[1] in initializers
            and uses[node.input[1]] == 1
        )
        if not plain:
            new_nodes.append(node)
            continue
        weight = initializers[node.input[1]]
        if attrs.get("transB", 0):
            array = numpy_helper.to_array(weight).T
            weight.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(array), weight.name))
            transposed.add(weight.name)
        has_bias = len(node.input) > 2 and node.input[2] != ""
        matmul_out = f"{node.output[0]}_matmul" if has_bias else node.output[0]
        new_nodes.append(
            onnx.helper.make_node(
                "MatMul", [node.input[0], node.input[1]], [matmul_out], name=f"{node.name}_MatMul"
            )
        )
        if has_bias:
            new_nodes.append(
                onnx.helper.make_node(
                    "Add", [matmul_out, node.input[2]], [node.output[0]], name=f"{node.name}_Add"
                )
            )
        rewritten += 1
    if rewritten:
        del model.graph.node[:]
        model.graph.node.extend(new_nodes)
        # The dynamo exporter records weight shapes in value_info; a transposed one is stale.
        kept = [v for v in model.graph.value_info if v.name not in transposed]
        del model.graph.value_info[:]
        model.graph.value_info.extend(kept)
    return rewritten


def prune_opset_imports(model: onnx.ModelProto) -> int:
    """Drop opset imports of domains no node uses (ORT's optimizer adds many); returns count."""
    used = {node.domain for node in model.graph.node} | {"", "ai.onnx"}
    used |= {node.domain for function in model.functions for node in function.node}
    used |= {function.domain for function in model.functions}
    keep = [imp for imp in model.opset_import if imp.domain in used]
    removed = len(model.opset_import) - len(keep)
    if removed:
        del model.opset_import[:]
        model.opset_import.extend(keep)
    return removed


def topological_sort(graph: onnx.GraphProto) -> bool:
    """Reorder nodes so each comes after its producers (some converters append Casts at the
    end); returns False, leaving the order alone, when the graph cannot be sorted."""
    nodes = list(graph.node)
    producer = {name: i for i, node in enumerate(nodes) for name in node.output if name}
    consumers: dict[int, list[int]] = {i: [] for i in range(len(nodes))}
    waiting = [0] * len(nodes)
    for i, node in enumerate(nodes):
        for source in {producer[name] for name in node.input if name in producer}:
            if source != i:
                consumers[source].append(i)
                waiting[i] += 1
    ready = deque(i for i, count in enumerate(waiting) if count == 0)
    order: list[int] = []
    while ready:
        i = ready.popleft()
        order.append(i)
        for j in consumers[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                ready.append(j)
    if len(order) != len(nodes):
        return False
    copies = [onnx.NodeProto() for _ in order]
    for copy, i in zip(copies, order, strict=True):
        copy.CopyFrom(nodes[i])
    del graph.node[:]
    graph.node.extend(copies)
    return True

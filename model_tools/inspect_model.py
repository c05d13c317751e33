"""What an ONNX file holds: signature, opsets, size, op histogram, quantization."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from model_tools.graph_stats import is_quantized, op_histogram, parameter_count
from model_tools.manifest_io import manifest_path_for
from model_tools.onnx_model import graph_signature, load_onnx

__all__ = ["format_inspection", "inspect_model"]


def _quantization_kind(histogram: dict[str, int]) -> str:
    if (
        "ConvInteger" in histogram
        or "MatMulInteger" in histogram
        or "DynamicQuantizeLinear" in histogram
    ):
        return "dynamic-int8"
    if "QuantizeLinear" in histogram or "DequantizeLinear" in histogram:
        return "static-int8-qdq"
    if "QLinearConv" in histogram or "QLinearMatMul" in histogram:
        return "static-int8-qoperator"
    return "none"


def inspect_model(path: Path) -> dict[str, Any]:
    """A JSON-ready description of the model at ``path``."""
    model = load_onnx(path)
    inputs, outputs = graph_signature(model)
    histogram = op_histogram(model)
    fp16 = any(init.data_type == 10 for init in model.graph.initializer)  # FLOAT16
    manifest = manifest_path_for(path)
    return {
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "ir_version": int(model.ir_version),
        "opsets": {imp.domain or "ai.onnx": int(imp.version) for imp in model.opset_import},
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "inputs": [s.to_dict() for s in inputs],
        "outputs": [s.to_dict() for s in outputs],
        "nodes": len(model.graph.node),
        "parameters": parameter_count(model),
        "op_histogram": histogram,
        "quantized": is_quantized(model),
        "quantization": _quantization_kind(histogram),
        "fp16_weights": fp16,
        "manifest": str(manifest) if manifest.is_file() else None,
    }


def _shape(shape: list[Any]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def format_inspection(info: dict[str, Any]) -> str:
    """The inspection as readable text."""
    opsets = ", ".join(f"{d} {v}" for d, v in info["opsets"].items())
    lines = [
        f"model:      {info['path']}",
        f"size:       {info['size_bytes'] / 1024:.1f} KiB, {info['parameters']:,} parameters, "
        f"{info['nodes']} nodes",
        f"opset:      {opsets} (IR {info['ir_version']}); producer: {info['producer'] or '-'}",
        f"quantized:  {'yes' if info['quantized'] else 'no'} ({info['quantization']})"
        + ("; FP16 weights" if info["fp16_weights"] else ""),
        f"manifest:   {info['manifest'] or 'none'}",
    ]
    for kind in ("inputs", "outputs"):
        for spec in info[kind]:
            lines.append(f"{kind[:-1]:<11} {spec['name']}: {spec['dtype']} {_shape(spec['shape'])}")
    lines.append("ops:")
    lines += [f"  {op:<28}{count:>5}" for op, count in info["op_histogram"].items()]
    return "\n".join(lines)

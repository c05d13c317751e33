"""PyTorch -> ONNX export with checks: checker, shape inference and numerics vs PyTorch.

The file is written only when every check passes (temp file + atomic rename), and
a serving manifest is written next to it. Imports torch (lazily imported by the CLI).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
import onnxruntime as ort
import torch

from edge_contracts.atomic_files import PUBLIC_FILE, write_bytes_atomic
from model_tools.errors import ToolError
from model_tools.exporters import error_summary, to_onnx
from model_tools.manifest_io import (
    build_manifest,
    manifest_path_for,
    producer_info,
    write_json_atomic,
)
from model_tools.onnx_model import graph_signature

__all__ = ["ExportConfig", "ExportResult", "ManifestOptions", "NumericCheck", "export_model"]

_log = logging.getLogger(__name__)
Exporter = Literal["auto", "dynamo", "legacy"]


@dataclass(frozen=True)
class ExportConfig:
    """How to export: ``input_shape`` includes the batch dimension first."""

    input_shape: tuple[int, ...]
    opset: int = 18
    input_name: str = "input"
    output_names: tuple[str, ...] = ("output",)
    dynamic_batch: bool = True
    tolerance: float = 1e-4
    exporter: Exporter = "auto"
    check_batch_sizes: tuple[int, ...] = (1, 3)
    seed: int = 0


@dataclass(frozen=True)
class ManifestOptions:
    """Serving-manifest fields the model file cannot tell."""

    name: str
    version: str = "1"
    labels: tuple[str, ...] = ()
    output_kind: str = "logits"
    preprocessing: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NumericCheck:
    """One comparison of ONNX Runtime against PyTorch."""

    source: str
    batch_size: int
    max_abs_diff: float


@dataclass(frozen=True)
class ExportResult:
    path: Path
    manifest_path: Path | None
    exporter: str
    opset: int
    size_bytes: int
    checks: tuple[NumericCheck, ...]

    @property
    def max_abs_diff(self) -> float:
        return max((c.max_abs_diff for c in self.checks), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "manifest": str(self.manifest_path) if self.manifest_path else None,
            "exporter": self.exporter,
            "opset": self.opset,
            "size_bytes": self.size_bytes,
            "max_abs_diff": self.max_abs_diff,
            "checks": [asdict(c) for c in self.checks],
        }


def check_onnx(model: onnx.ModelProto) -> onnx.ModelProto:
    """Run onnx.checker and strict shape inference; return the shape-inferred model."""
    try:
        onnx.checker.check_model(model, full_check=True)
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ToolError(f"exported model fails the ONNX checks: {error_summary(exc)}") from None


def _torch_outputs(model: torch.nn.Module, x: np.ndarray) -> list[np.ndarray]:
    with torch.inference_mode():
        result = model(torch.from_numpy(x))
    items = result if isinstance(result, list | tuple) else [result]
    return [t.detach().cpu().numpy() for t in items if isinstance(t, torch.Tensor)]


def compare_numerics(
    model: torch.nn.Module,
    session: ort.InferenceSession,
    input_name: str,
    batches: Sequence[tuple[str, np.ndarray]],
) -> list[NumericCheck]:
    """Max absolute output difference between PyTorch and ONNX Runtime per batch."""
    checks = []
    for source, x in batches:
        expected = _torch_outputs(model, x)
        try:
            actual = session.run(None, {input_name: x})
        except Exception as exc:
            raise ToolError(
                f"ONNX Runtime cannot run the exported model on {source} inputs of shape "
                f"{list(x.shape)}: {error_summary(exc)}"
            ) from None
        if len(actual) != len(expected):
            raise ToolError(f"ONNX model has {len(actual)} outputs, PyTorch {len(expected)}")
        diff = 0.0
        for ref, out in zip(expected, actual, strict=True):
            if tuple(ref.shape) != tuple(np.shape(out)):
                raise ToolError(
                    f"output shape differs on {source} inputs: PyTorch {list(ref.shape)}, "
                    f"ONNX {list(np.shape(out))} (is the batch axis really dynamic?)"
                )
            diff = max(diff, float(np.max(np.abs(ref.astype(np.float64) - out), initial=0.0)))
        checks.append(NumericCheck(source, int(x.shape[0]), diff))
    return checks


def _check_batches(config: ExportConfig, given: np.ndarray | None) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(config.seed)
    sample = tuple(config.input_shape[1:])
    sizes = config.check_batch_sizes if config.dynamic_batch else (config.input_shape[0],)
    batches = [
        (f"random[batch={n}]", rng.standard_normal((n, *sample)).astype(np.float32))
        for n in dict.fromkeys((config.input_shape[0], *sizes))
    ]
    if given is not None:
        if tuple(given.shape[1:]) != sample:
            raise ToolError(
                f"check inputs have shape {list(given.shape)}, the model takes "
                f"[N, {', '.join(map(str, sample))}]"
            )
        batches.append(("given", np.ascontiguousarray(given, dtype=np.float32)))
    return batches


# The dynamo exporter records each node's Python stack trace, with absolute paths of the
# checkout and virtualenv that built it: the same model from another folder had other
# bytes (and the file told where it was built). Graph names and weights stay.
_STACK_TRACE_KEY = "pkg.torch.onnx.stack_trace"


def _drop_stack_traces(model: onnx.ModelProto) -> None:
    nodes = [*model.graph.node, *(n for f in model.functions for n in f.node)]
    for node in nodes:
        kept = [p for p in node.metadata_props if p.key != _STACK_TRACE_KEY]
        if len(kept) != len(node.metadata_props):
            del node.metadata_props[:]
            node.metadata_props.extend(kept)


def export_model(
    model: torch.nn.Module,
    output: Path,
    config: ExportConfig,
    manifest: ManifestOptions | None = None,
    check_inputs: np.ndarray | None = None,
) -> ExportResult:
    """Export ``model`` to ``output``, verify it, and write its manifest."""
    if len(config.input_shape) < 1 or any(d < 1 for d in config.input_shape):
        raise ToolError(f"input shape must be positive integers, got {list(config.input_shape)}")
    model = model.eval()
    trace_batch = 2 if config.dynamic_batch else config.input_shape[0]
    example = torch.zeros((trace_batch, *config.input_shape[1:]), dtype=torch.float32)
    try:
        _torch_outputs(model, example.numpy())
    except Exception as exc:
        raise ToolError(
            f"the model does not run on inputs of shape {list(example.shape)}: {error_summary(exc)}"
        ) from None
    proto, exporter = to_onnx(model, example, config)
    proto = check_onnx(proto)
    _drop_stack_traces(proto)
    try:
        session = ort.InferenceSession(
            proto.SerializeToString(), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise ToolError(
            f"ONNX Runtime cannot load the exported model: {error_summary(exc)}"
        ) from None
    checks = compare_numerics(
        model, session, config.input_name, _check_batches(config, check_inputs)
    )
    worst = max(checks, key=lambda c: c.max_abs_diff)
    for check in checks:
        _log.info("%s: max |torch - onnx| = %.3g", check.source, check.max_abs_diff)
    if worst.max_abs_diff > config.tolerance:
        raise ToolError(
            f"ONNX output differs from PyTorch by {worst.max_abs_diff:.3g} on {worst.source} "
            f"inputs (tolerance {config.tolerance:g}); the model was not written"
        )
    write_bytes_atomic(output, proto.SerializeToString(), PUBLIC_FILE)
    manifest_path = None
    if manifest is not None:
        inputs, outputs = graph_signature(proto)
        document = build_manifest(
            name=manifest.name,
            version=manifest.version,
            inputs=inputs,
            outputs=outputs,
            preprocessing=manifest.preprocessing,
            labels=manifest.labels,
            output_kind=manifest.output_kind,
            producer=producer_info("model-tools export"),
            extra={
                "export": {
                    "exporter": exporter,
                    "opset": config.opset,
                    "max_abs_diff": worst.max_abs_diff,
                },
                **manifest.extra,
            },
        )
        manifest_path = manifest_path_for(output)
        write_json_atomic(manifest_path, document)
    return ExportResult(
        output, manifest_path, exporter, config.opset, output.stat().st_size, tuple(checks)
    )

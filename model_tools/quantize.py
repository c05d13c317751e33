"""INT8 (dynamic or static QDQ) and FP16 conversion, measured before and after.

Quantization runs ONNX Runtime's pre-processing (symbolic shape inference and
graph optimization) first. Dynamic INT8 turns convolutions into ConvInteger, which
ONNX Runtime runs far slower than FP32 Conv on x86; every run is therefore timed
and a slower result is reported as a warning, and ``auto`` picks static QDQ for
convolution-heavy models when calibration data is available.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
from onnxruntime.quantization.registry import IntegerOpsRegistry, QDQRegistry
from onnxruntime.quantization.shape_inference import quant_pre_process

from model_tools.bench import measure_latency, random_feed
from model_tools.calibration import METHODS, ArrayDataReader
from model_tools.errors import ToolError
from model_tools.graph_stats import (
    SLOW_INT8_OPS,
    conv_share,
    gemm_to_matmul,
    op_histogram,
    prune_opset_imports,
    topological_sort,
)
from model_tools.manifest_io import (
    find_manifest,
    manifest_path_for,
    producer_info,
    write_json_atomic,
)
from model_tools.onnx_model import fixed_batch_size, graph_signature, load_onnx
from model_tools.sessions import open_session

__all__ = [
    "QuantizeOptions",
    "QuantizeResult",
    "choose_mode",
    "quantize_model",
    "quantized_name",
]

_log = logging.getLogger(__name__)
Mode = Literal["auto", "dynamic", "static", "fp16"]
_TYPES = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
CONV_HEAVY_SHARE = 0.5
SLOWER_MARGIN = 1.05  # below 5 % the difference is timing noise


@dataclass(frozen=True)
class QuantizeOptions:
    mode: Mode = "auto"
    method: Literal["minmax", "entropy", "percentile"] = "minmax"
    per_channel: bool = True
    exclude_nodes: tuple[str, ...] = ()
    exclude_ops: tuple[str, ...] = ()
    activation_type: Literal["int8", "uint8"] = "uint8"
    weight_type: Literal["int8", "uint8"] = "int8"
    reduce_range: bool = False
    preprocess: bool = True
    calibration_batch_size: int = 16
    name: str | None = None  # default: quantized_name(<source name>, mode)
    version: str | None = None  # default: the source's version
    bench_runs: int = 50
    bench_threads: int = 1
    progress: bool = True


@dataclass(frozen=True)
class QuantizeResult:
    source: Path
    output: Path
    manifest_path: Path | None
    mode: str
    reason: str
    size_before: int
    size_after: int
    latency_before_ms: float
    latency_after_ms: float
    op_histogram: dict[str, int]
    warnings: tuple[str, ...] = field(default=())
    identity: tuple[str, str] | None = None  # (name, version) in the written manifest
    bench_batch: int = 1  # the batch size latencies were measured at

    @property
    def size_ratio(self) -> float:
        return self.size_after / self.size_before

    @property
    def speedup(self) -> float:
        return self.latency_before_ms / self.latency_after_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "output": str(self.output),
            "manifest": str(self.manifest_path) if self.manifest_path else None,
            "name": self.identity[0] if self.identity else None,
            "version": self.identity[1] if self.identity else None,
            "mode": self.mode,
            "reason": self.reason,
            "size_before": self.size_before,
            "size_after": self.size_after,
            "size_ratio": self.size_ratio,
            "latency_before_ms": self.latency_before_ms,
            "latency_after_ms": self.latency_after_ms,
            "bench_batch": self.bench_batch,
            "speedup": self.speedup,
            "op_histogram": self.op_histogram,
            "warnings": list(self.warnings),
        }


def choose_mode(model: onnx.ModelProto, mode: Mode, has_calibration: bool) -> tuple[str, str]:
    """The mode to run and why; ``auto`` prefers static QDQ for conv-heavy models."""
    if mode != "auto":
        return mode, f"--mode {mode}"
    share = conv_share(model)
    if share >= CONV_HEAVY_SHARE and has_calibration:
        return "static", f"conv-heavy ({share:.0%} of weight layers) and calibration data given"
    if share >= CONV_HEAVY_SHARE:
        return "dynamic-no-conv", (
            f"conv-heavy ({share:.0%}) but no calibration data: dynamic INT8 on MatMul/Gemm only, "
            "convolutions stay FP32 (pass calibration data for static INT8)"
        )
    return "dynamic", f"few convolutions ({share:.0%} of weight layers)"


def _preprocess(source: Path, target: Path) -> None:
    try:
        quant_pre_process(str(source), str(target), skip_symbolic_shape=False)
    except Exception as exc:
        _log.warning("symbolic shape inference failed (%s); retrying without it", exc)
        try:
            quant_pre_process(str(source), str(target), skip_symbolic_shape=True)
        except Exception as exc2:
            raise ToolError(f"quantization pre-processing failed: {exc2}") from None


def _run_static(
    source: Path, target: Path, options: QuantizeOptions, calibration: np.ndarray | None
) -> None:
    if calibration is None or len(calibration) == 0:
        raise ToolError("static quantization needs calibration data (--calibration)")
    model = load_onnx(source, load_weights=False)
    inputs, _ = graph_signature(model)
    batch = fixed_batch_size(inputs[0]) or options.calibration_batch_size
    reader = ArrayDataReader(inputs[0].name, calibration, batch, options.progress)
    ops = sorted(set(QDQRegistry) - set(options.exclude_ops))
    quantize_static(
        str(source),
        str(target),
        reader,
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=ops,
        per_channel=options.per_channel,
        reduce_range=options.reduce_range,
        activation_type=_TYPES[options.activation_type],
        weight_type=_TYPES[options.weight_type],
        nodes_to_exclude=list(options.exclude_nodes),
        calibrate_method=METHODS[options.method],
    )


def _run_dynamic(source: Path, target: Path, options: QuantizeOptions, skip_conv: bool) -> None:
    model = load_onnx(source)
    if gemm_to_matmul(model):
        rewritten = target.with_name("gemm_as_matmul.onnx")  # in the work folder, not the user's
        onnx.save(model, str(rewritten))
        source = rewritten
    excluded = set(options.exclude_ops) | ({"Conv"} if skip_conv else set())
    quantize_dynamic(
        str(source),
        str(target),
        op_types_to_quantize=sorted(set(IntegerOpsRegistry) - excluded),
        per_channel=options.per_channel,
        reduce_range=options.reduce_range,
        weight_type=_TYPES[options.weight_type],
        nodes_to_exclude=list(options.exclude_nodes),
    )


def _run_fp16(source: Path, target: Path) -> None:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(load_onnx(source), keep_io_types=True)
    topological_sort(model.graph)  # the converter appends its input Casts at the end
    onnx.save(model, str(target))


def _whole_batches(batch: int | None, calibration: np.ndarray | None) -> np.ndarray | None:
    """Calibration samples in whole batches of a fixed batch axis (the rest is dropped)."""
    if calibration is None or batch is None:
        return calibration
    usable = len(calibration) - len(calibration) % batch
    if usable == 0:
        raise ToolError(
            f"the model takes batches of exactly {batch}; give at least {batch} calibration samples"
        )
    return calibration[:usable]


def _latency(path: Path, options: QuantizeOptions, what: str, batch: int) -> float:
    session = open_session(path, threads=options.bench_threads)
    feed = random_feed(session, batch)
    runs = max(options.bench_runs, 1)
    times = measure_latency(
        session, feed, runs=runs, warmup=5, desc=f"bench {what}", progress=options.progress
    )
    return float(np.median(times))


def quantized_name(source_name: str, mode: str) -> str:
    """``digits`` -> ``digits-int8`` (every INT8 mode) or ``digits-fp16``.

    A quantized model is a different model from its source: with its own name the FP32
    and quantized bundles of one version never collide in a registry or on a gateway.
    """
    suffix = "-fp16" if mode == "fp16" else "-int8"
    if not source_name or source_name.endswith(suffix):
        return source_name
    return source_name + suffix


def _write_manifest(
    output: Path, manifest: dict[str, Any] | None, info: dict[str, Any], options: QuantizeOptions
) -> tuple[Path, tuple[str, str]] | tuple[None, None]:
    """The output's manifest (when the source has one) and its (name, version)."""
    if manifest is None:
        return None, None
    inputs, outputs = graph_signature(load_onnx(output, load_weights=False))
    document = dict(manifest)
    document["name"] = options.name or quantized_name(document.get("name", ""), info["mode"])
    document["version"] = options.version or document.get("version", "")
    document["inputs"] = [s.to_dict() for s in inputs]
    document["outputs"] = [s.to_dict() for s in outputs]
    document.pop("evaluation", None)  # measured on the source model, not this one
    document["producer"] = producer_info("model-tools quantize")
    document["quantization"] = info
    path = manifest_path_for(output)
    write_json_atomic(path, document)
    return path, (document["name"], document["version"])


def quantize_model(
    source: Path,
    output: Path,
    options: QuantizeOptions,
    calibration: np.ndarray | None = None,
    manifest_path: Path | None = None,
) -> QuantizeResult:
    """Quantize ``source`` into ``output`` and measure both; the manifest follows."""
    model = load_onnx(source)
    manifest = find_manifest(source, manifest_path)
    mode, reason = choose_mode(model, options.mode, calibration is not None)
    if output.resolve() == source.resolve():
        raise ToolError("the output must not overwrite the input model")
    fixed_batch = fixed_batch_size(graph_signature(model)[0][0])
    if mode == "static":
        calibration = _whole_batches(fixed_batch, calibration)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".quantize-", dir=output.parent) as tmp:
        work = Path(tmp)
        prepared = source
        if options.preprocess and mode != "fp16":
            prepared = work / "preprocessed.onnx"
            with contextlib.redirect_stdout(io.StringIO()):
                _preprocess(source, prepared)
        result_path = work / "quantized.onnx"
        chatter = io.StringIO()  # ORT's calibrators print progress; stdout is for results
        try:
            with contextlib.redirect_stdout(chatter):
                if mode == "static":
                    _run_static(prepared, result_path, options, calibration)
                elif mode in ("dynamic", "dynamic-no-conv"):
                    _run_dynamic(prepared, result_path, options, mode == "dynamic-no-conv")
                else:
                    _run_fp16(prepared, result_path)
            _log.debug("%s", chatter.getvalue())
            result = load_onnx(result_path)
            if prune_opset_imports(result):
                onnx.save(result, str(result_path))
            onnx.checker.check_model(str(result_path))
        except ToolError:
            raise
        except Exception as exc:
            raise ToolError(f"{mode} quantization failed: {type(exc).__name__}: {exc}") from None
        result_path.replace(output)
    histogram = op_histogram(load_onnx(output, load_weights=False))
    bench_batch = fixed_batch or 1
    before = _latency(source, options, "fp32", bench_batch)
    after = _latency(output, options, mode, bench_batch)
    warnings: list[str] = []
    if after > before * SLOWER_MARGIN:
        slow = sorted(op for op in histogram if op in SLOW_INT8_OPS)
        blame = f"; likely culprit: {', '.join(slow)} kernels" if slow else ""
        warnings.append(
            f"the {mode} model is SLOWER than the original: {after:.3f} ms vs {before:.3f} ms "
            f"p50 at batch {bench_batch} ({after / before:.2f}x){blame}"
            + ("; try --mode static with calibration data" if mode == "dynamic" else "")
        )
    for message in warnings:
        _log.warning("%s", message)
    info = {
        "mode": mode,
        "reason": reason,
        "method": options.method if mode == "static" else None,
        "per_channel": options.per_channel,
        "calibration_samples": len(calibration)
        if mode == "static" and calibration is not None
        else 0,
        "excluded_nodes": list(options.exclude_nodes),
        "excluded_ops": list(options.exclude_ops),
    }
    written, identity = _write_manifest(output, manifest, info, options)
    return QuantizeResult(
        source,
        output,
        written,
        mode,
        reason,
        source.stat().st_size,
        output.stat().st_size,
        before,
        after,
        histogram,
        tuple(warnings),
        identity,
        bench_batch,
    )

"""``model-tools`` subcommands on models: export, quantize, evaluate, bench, inspect."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from model_tools.cli import emit
from model_tools.cli_paths import output_file

__all__ = ["add_model_commands", "float_list", "int_list", "str_list"]


def int_list(text: str) -> tuple[int, ...]:
    """``"1,3,224,224"`` -> (1, 3, 224, 224); positive integers only."""
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def float_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def str_list(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _run_export(args: argparse.Namespace) -> int:
    from model_tools.datasets import as_model_input, load_array_file
    from model_tools.export import ExportConfig, ManifestOptions, export_model
    from model_tools.manifest_io import image_preprocessing, parse_labels
    from model_tools.torch_loading import load_torch_model

    check_inputs = None
    if args.check_inputs is not None:
        raw = load_array_file(args.check_inputs, "x")
        check_inputs = as_model_input(raw, None, (None, *args.input_shape[1:]), "check inputs")
    model = load_torch_model(args.model, args.checkpoint)
    config = ExportConfig(
        input_shape=args.input_shape,
        opset=args.opset,
        input_name=args.input_name,
        output_names=args.output_names,
        dynamic_batch=not args.static_batch,
        tolerance=args.tolerance,
        exporter=args.exporter,
        check_batch_sizes=args.check_batch_sizes,
    )
    manifest = None
    if not args.no_manifest:
        pre = None
        if not args.no_preprocessing:
            pre = image_preprocessing(
                args.input_shape,
                layout=args.layout,
                scale=args.scale,
                mean=args.mean,
                std=args.std,
                resize_filter=args.resize_filter,
                input_size=args.input_size[:2] if args.input_size else None,
            )
        serving_layout = args.output.name == "model.onnx"  # MODEL_ROOT/<name>/<version>/
        default_name = args.output.parent.parent.name if serving_layout else args.output.stem
        default_version = args.output.parent.name if serving_layout else "1"
        manifest = ManifestOptions(
            name=args.name or default_name or "model",
            version=args.model_version or default_version or "1",
            labels=tuple(parse_labels(args.labels)),
            output_kind=args.output_kind,
            preprocessing=pre,
        )
    result = export_model(model, args.output, config, manifest, check_inputs)
    lines = [
        f"wrote {result.path} ({result.size_bytes / 1024:.1f} KiB, opset {result.opset}, "
        f"{result.exporter} exporter)"
    ]
    lines += [f"  {c.source:<20} max |torch - onnx| = {c.max_abs_diff:.3g}" for c in result.checks]
    if result.manifest_path:
        lines.append(f"manifest: {result.manifest_path}")
    emit(args, result.to_dict(), "\n".join(lines))
    return 0


def _run_quantize(args: argparse.Namespace) -> int:
    from model_tools.calibration import calibration_for_model
    from model_tools.quantize import QuantizeOptions, quantize_model

    calibration = None
    if args.calibration is not None:
        calibration = calibration_for_model(
            args.model, args.calibration, args.manifest, args.calibration_limit
        )
    options = QuantizeOptions(
        mode=args.mode,
        method=args.method,
        per_channel=not args.per_tensor,
        exclude_nodes=args.exclude_nodes,
        exclude_ops=args.exclude_ops,
        activation_type=args.activation_type,
        weight_type=args.weight_type,
        reduce_range=args.reduce_range,
        preprocess=not args.no_preprocess,
        name=args.name,
        version=args.model_version,
        bench_runs=args.bench_runs,
        bench_threads=args.bench_threads,
        progress=not args.no_progress,
    )
    r = quantize_model(args.model, args.output, options, calibration, args.manifest)
    identity = f"{r.identity[0]} version {r.identity[1]}, " if r.identity else ""
    text = "\n".join(
        [
            f"wrote {r.output} ({identity}{r.mode}: {r.reason})",
            f"  size     {r.size_before / 1024:10.1f} KiB -> {r.size_after / 1024:10.1f} KiB "
            f"({r.size_ratio:.2f}x)",
            f"  latency  {r.latency_before_ms:10.3f} ms  -> {r.latency_after_ms:10.3f} ms  "
            f"(p50, batch {r.bench_batch}, {options.bench_threads} thread(s); "
            f"{r.speedup:.2f}x speed)",
        ]
    )
    emit(args, r.to_dict(), text)
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    from model_tools.evaluate import evaluate_models, record_evaluation

    models = [args.model] + ([args.candidate] if args.candidate else [])
    report = evaluate_models(
        models,
        args.data,
        manifest_path=args.manifest,
        batch_size=args.batch_size,
        max_drop=args.max_drop,
        limit=args.limit,
        progress=not args.no_progress,
    )
    if args.record:
        for index, path in enumerate(models):
            record_evaluation(path, report, index)
    lines = [f"{'model':<50} {'top-1':>8} {'top-5':>8}   ({report.samples} samples)"]
    lines += [f"{s.model:<50} {s.top1 * 100:7.2f}% {s.top5 * 100:7.2f}%" for s in report.scores]
    if report.delta_points is not None and report.agreement is not None:
        lines.append(
            f"top-1 delta {report.delta_points:+.2f} points, agreement "
            f"{report.agreement * 100:.2f}%"
        )
    emit(args, report.to_dict(), "\n".join(lines))
    if not report.passed:
        print(
            f"model-tools: error: top-1 accuracy dropped {report.drop_points:.2f} points, "
            f"more than --max-drop {args.max_drop}",
            file=sys.stderr,
        )
        return 1
    return 0


def _run_bench(args: argparse.Namespace) -> int:
    from model_tools.bench import bench_models, format_table

    stats = bench_models(
        args.models,
        batch_sizes=args.batch_sizes,
        threads=args.threads,
        runs=args.runs,
        warmup=args.warmup,
        progress=not args.no_progress,
    )
    emit(args, [s.to_dict() for s in stats], format_table(stats))
    return 0


def _run_inspect(args: argparse.Namespace) -> int:
    from model_tools.inspect_model import format_inspection, inspect_model

    info = inspect_model(args.model)
    emit(args, info, format_inspection(info))
    return 0


def _add_export(commands: Any) -> None:
    p = commands.add_parser(
        "export",
        help="PyTorch model -> checked ONNX + manifest",
        description="Export a PyTorch model to ONNX with a dynamic batch axis, "
        "check it and compare its outputs with PyTorch.",
    )
    p.add_argument("model", help="'package.module:factory' or a TorchScript file")
    p.add_argument("--input-shape", type=int_list, required=True, help="e.g. 1,3,224,224")
    p.add_argument("-o", "--output", type=output_file, required=True, help="ONNX file to write")
    p.add_argument("--checkpoint", type=Path, help="state_dict file to load into the model")
    p.add_argument("--opset", type=int, default=18)
    p.add_argument("--exporter", choices=("auto", "dynamo", "legacy"), default="auto")
    p.add_argument("--input-name", default="input")
    p.add_argument("--output-names", type=str_list, default=("output",), help="comma-separated")
    p.add_argument("--static-batch", action="store_true", help="keep the batch axis fixed")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max abs diff allowed")
    p.add_argument("--check-inputs", type=Path, help=".npy/.npz (array 'x') of inputs to compare")
    p.add_argument("--check-batch-sizes", type=int_list, default=(1, 3))
    m = p.add_argument_group("manifest")
    m.add_argument("--no-manifest", action="store_true")
    m.add_argument(
        "--name", help="model name (default: <name> of <name>/<version>/model.onnx, else the stem)"
    )
    m.add_argument("--model-version", help="version (default: <version> folder, else 1)")
    m.add_argument("--labels", help="labels file (one per line) or comma-separated list")
    m.add_argument("--output-kind", choices=("logits", "probabilities"), default="logits")
    m.add_argument("--no-preprocessing", action="store_true", help="tensor input only")
    m.add_argument("--layout", choices=("NCHW", "NHWC"), default="NCHW")
    m.add_argument("--scale", type=float, default=1.0 / 255.0)
    m.add_argument("--mean", type=float_list, default=(0.0,))
    m.add_argument("--std", type=float_list, default=(1.0,))
    m.add_argument(
        "--resize-filter",
        default="bilinear",
        choices=("nearest", "box", "bilinear", "hamming", "bicubic", "lanczos"),
    )
    m.add_argument("--input-size", type=int_list, help="H,W when spatial dims are dynamic")
    _common(p)
    p.set_defaults(handler=_run_export)


def _add_quantize(commands: Any) -> None:
    p = commands.add_parser(
        "quantize",
        help="INT8 (dynamic / static QDQ) or FP16, measured",
        description="Quantize an ONNX model and compare size and latency.",
    )
    p.add_argument("model", type=Path)
    p.add_argument("-o", "--output", type=output_file, required=True)
    p.add_argument("--mode", choices=("auto", "dynamic", "static", "fp16"), default="auto")
    p.add_argument("--calibration", type=Path, help="image folder or .npy/.npz for static INT8")
    p.add_argument("--calibration-limit", type=int, default=512, help="max samples used")
    p.add_argument("--method", choices=("minmax", "entropy", "percentile"), default="minmax")
    p.add_argument("--per-tensor", action="store_true", help="per-tensor instead of per-channel")
    p.add_argument("--exclude-nodes", type=str_list, default=(), help="node names to keep FP32")
    p.add_argument("--exclude-ops", type=str_list, default=(), help="op types to keep FP32")
    p.add_argument("--activation-type", choices=("uint8", "int8"), default="uint8")
    p.add_argument("--weight-type", choices=("int8", "uint8"), default="int8")
    p.add_argument("--reduce-range", action="store_true", help="7-bit weights (old CPUs)")
    p.add_argument("--no-preprocess", action="store_true", help="skip ORT pre-processing")
    p.add_argument("--manifest", type=Path, help="manifest of the input (default: beside it)")
    p.add_argument(
        "--name", help="model name (default: the input's name + '-int8', or '-fp16' for fp16)"
    )
    p.add_argument("--model-version", help="model version (default: the input's version)")
    p.add_argument("--bench-runs", type=int, default=50)
    p.add_argument("--bench-threads", type=int, default=1)
    _common(p)
    p.set_defaults(handler=_run_quantize)


def _add_evaluate(commands: Any) -> None:
    p = commands.add_parser(
        "evaluate",
        help="top-1/top-5 accuracy; FP32 vs INT8 gate",
        description="Accuracy on a labelled dataset: an image folder with one "
        "subfolder per class, or .npz with x and y.",
    )
    p.add_argument("model", type=Path, help="the model (the reference when comparing)")
    p.add_argument("candidate", type=Path, nargs="?", help="a second model to compare")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument(
        "--manifest", type=Path, help="manifest with the preprocessing (default: the first model's)"
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--limit", type=int, help="use at most this many samples")
    p.add_argument("--max-drop", type=float, help="fail when top-1 drops more (points)")
    p.add_argument("--record", action="store_true", help="store results in the manifests")
    _common(p)
    p.set_defaults(handler=_run_evaluate)


def add_model_commands(commands: Any) -> None:
    _add_export(commands)
    _add_quantize(commands)
    _add_evaluate(commands)
    p = commands.add_parser(
        "bench",
        help="latency p50/p90/p99 and throughput",
        description="Benchmark models side by side.",
    )
    p.add_argument("models", type=Path, nargs="+")
    p.add_argument("--batch-sizes", type=int_list, default=(1,))
    p.add_argument("--threads", type=int_list, default=(1,))
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    _common(p)
    p.set_defaults(handler=_run_bench)
    p = commands.add_parser("inspect", help="inputs, outputs, opset, size, ops, quantization")
    p.add_argument("model", type=Path)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=_run_inspect)

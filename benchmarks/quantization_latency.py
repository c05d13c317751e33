"""FP32 vs dynamic INT8 vs static INT8 (QDQ) on a MobileNetV2-sized model, batch 1.

Run by hand (not part of the tests)::

    .venv/bin/python -m benchmarks.quantization_latency [--out bench-results/quantization] [--json]

Exports the hand-written MobileNetV2 (random weights, 3.5M parameters, 224x224),
quantizes it dynamically and statically (calibrated on random images: enough for
speed, not for accuracy), then prints p50/p90 latency with the ratio to FP32 and,
per model, the time spent in each operator of the graph ONNX Runtime actually
runs. Dynamic INT8 turns every Conv into ConvInteger, which is where its time goes.
Latency is the best of several interleaved rounds, so load from other processes
skews the ratios less.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from model_tools.bench import LatencyStats, bench_models, format_table, profile_operators
from model_tools.errors import ToolError
from model_tools.graph_stats import op_histogram
from model_tools.onnx_model import load_onnx
from model_tools.quantize import QuantizeOptions, quantize_model


def _build(out: Path, progress: bool) -> dict[str, Path]:
    from model_tools.export import ExportConfig, export_model
    from model_tools.mobilenet import mobilenet_v2

    fp32 = out / "mobilenet_v2-fp32.onnx"
    export_model(
        mobilenet_v2(),
        fp32,
        ExportConfig(input_shape=(1, 3, 224, 224), tolerance=1e-3, check_batch_sizes=(1,)),
    )
    calibration = np.random.default_rng(0).standard_normal((32, 3, 224, 224)).astype(np.float32)
    models = {"fp32": fp32}
    variants: dict[str, tuple[QuantizeOptions, np.ndarray | None]] = {
        "dynamic-int8": (QuantizeOptions(mode="dynamic", progress=progress, bench_runs=5), None),
        "static-int8-u8s8": (
            QuantizeOptions(mode="static", progress=progress, bench_runs=5),
            calibration,
        ),
        "static-int8-s8s8": (
            QuantizeOptions(mode="static", activation_type="int8", progress=progress, bench_runs=5),
            calibration,
        ),
    }
    for name, (options, data) in variants.items():
        target = out / f"mobilenet_v2-{name}.onnx"
        quantize_model(fp32, target, options, data)
        models[name] = target
    return models


def _best_of_rounds(
    models: list[Path], threads: tuple[int, ...], runs: int, rounds: int, progress: bool
) -> list[LatencyStats]:
    """Measure every model in several interleaved rounds and keep each one's best round:
    load from other processes then hurts all models alike instead of whichever ran last."""
    best: dict[tuple[str, int], LatencyStats] = {}
    for _ in range(rounds):
        for s in bench_models(
            models, batch_sizes=(1,), threads=threads, runs=max(runs // rounds, 5),
            progress=progress,
        ):  # fmt: skip
            key = (s.model, s.threads)
            if key not in best or s.p50_ms < best[key].p50_ms:
                best[key] = s
    return sorted(best.values(), key=lambda s: (s.threads, list(map(str, models)).index(s.model)))


def run(
    out: Path, runs: int, threads: tuple[int, ...], progress: bool, rounds: int = 5
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    models = _build(out, progress)
    stats = _best_of_rounds(list(models.values()), threads, runs, rounds, progress)
    names = {str(path): name for name, path in models.items()}
    fp32 = {s.threads: s.p50_ms for s in stats if names[s.model] == "fp32"}
    return {
        "batch_size": 1,
        "rounds": rounds,
        "latency": [
            {
                **s.to_dict(),
                "variant": names[s.model],
                "speedup_vs_fp32": fp32[s.threads] / s.p50_ms,
            }
            for s in stats
        ],
        "table": format_table(stats),
        "size_bytes": {name: path.stat().st_size for name, path in models.items()},
        "op_histogram": {
            name: op_histogram(load_onnx(path, load_weights=False)) for name, path in models.items()
        },
        "ms_per_op_profiled": {
            name: {op: round(ms, 3) for op, ms in profile_operators(path, runs=10).items()}
            for name, path in models.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results/quantization"))
    parser.add_argument("--runs", type=int, default=200, help="runs per model, over all rounds")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; best is kept")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    threads = tuple(int(t) for t in args.threads.split(",") if t)
    try:
        result = run(args.out, args.runs, threads, progress=not args.json, rounds=args.rounds)
    except ToolError as exc:
        print(f"quantization_latency: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(result["table"])
    print(
        "\nsize (KiB): " + ", ".join(f"{k} {v / 1024:.0f}" for k, v in result["size_bytes"].items())
    )
    for name, ops in result["ms_per_op_profiled"].items():
        top = ", ".join(f"{op} {ms:.2f}" for op, ms in list(ops.items())[:5])
        print(f"{name:<18} ms/run by op (profiled, 1 thread): {top}")
    for name, histogram in result["op_histogram"].items():
        top = ", ".join(f"{op} x{n}" for op, n in list(histogram.items())[:6])
        print(f"{name:<18} ops in file: {top}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make bench`: gateway Predict latency/throughput next to raw ONNX Runtime, same run.

For each model (digits demo, MobileNetV2-sized FP32): raw `session.run` at batch 1
(2 intra-op threads), then the real `edge-server` process driven by the closed-loop
load generator at concurrency 1, 8 and 32 with image bytes and with a tensor.
Prints a Markdown table with ratios to raw ONNX Runtime; writes bench-results/*.json.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from benchmarks import models
from benchmarks.server import GatewayProcess
from edge.v1 import inference_pb2, types_pb2

RESULTS = models.REPO / "bench-results"


def raw_session_run(model_path: Path, batch: np.ndarray, seconds: float) -> dict[str, float]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for _ in range(20):
        session.run(None, {name: batch})
    times = []
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        started = time.perf_counter()
        session.run(None, {name: batch})
        times.append(time.perf_counter() - started)
    times.sort()
    per_call = float(np.median(times))
    return {
        "p50_ms": per_call * 1000,
        "p99_ms": times[int(0.99 * (len(times) - 1))] * 1000,
        "throughput_rps": batch.shape[0] / per_call,
    }


def sample_image(model: str) -> bytes:
    from PIL import Image

    if model == "digits":
        images = sorted((models.REPO / "examples" / "images").glob("*.png"))
        return images[0].read_bytes()
    from skimage import data  # scikit-image ships real photos

    buffer = io.BytesIO()
    Image.fromarray(data.chelsea()).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def requests_for(model: str, input_shape: tuple[int, ...]) -> dict[str, inference_pb2.PredictRequest]:
    tensor = np.random.default_rng(0).normal(size=(1, *input_shape[1:])).astype(np.float32)
    return {
        "image": inference_pb2.PredictRequest(model_name=model, image=sample_image(model)),
        "tensor": inference_pb2.PredictRequest(
            model_name=model,
            tensor=types_pb2.Tensor(
                dtype=types_pb2.DATA_TYPE_FLOAT32, shape=list(tensor.shape), data=tensor.tobytes()
            ),
        ),
    }


def drive(target: str, request: inference_pb2.PredictRequest, concurrency: int,
          duration: float, scratch: Path) -> dict[str, Any]:
    request_file = scratch / "request.bin"
    request_file.write_bytes(request.SerializeToString())
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.load", "--target", target, "--request",
         str(request_file), "-c", str(concurrency), "-d", str(duration)],
        check=True, capture_output=True, text=True, cwd=models.REPO,
    ).stdout
    result: dict[str, Any] = json.loads(output)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="gateway vs raw ONNX Runtime benchmark")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per cell")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--models", default="digits,mobilenet")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    RESULTS.mkdir(exist_ok=True)
    root = models.model_root()
    rows: list[dict[str, Any]] = []
    with GatewayProcess(root) as gateway:
        for model in args.models.split(","):
            path = root / model / "1" / "model.onnx"
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            shape = tuple(d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape)
            raw = raw_session_run(path, np.zeros(shape, np.float32), args.duration)
            rows.append({"model": model, "input": "raw session.run", "concurrency": 1, **raw})
            print(f"{model}: raw session.run p50 {raw['p50_ms']:.3f} ms", file=sys.stderr)
            for kind, request in requests_for(model, shape).items():
                for level in levels:
                    result = drive(gateway.target, request, level, args.duration, RESULTS)
                    result.update(model=model, input=kind,
                                  ratio_to_raw=result["throughput_rps"] / raw["throughput_rps"])
                    rows.append(result)
                    print(f"{model} {kind} c={level}: {result['throughput_rps']:.0f} req/s "
                          f"p50 {result['p50_ms']:.2f} ms errors {result['errors']}",
                          file=sys.stderr)
        footprint = gateway.peak_rss_mb()
    (RESULTS / "gateway.json").write_text(json.dumps({"rows": rows, "peak_rss_mb": footprint}, indent=2))
    print(markdown(rows))
    print(f"\ngateway peak RSS: {footprint:.0f} MB (both models loaded)")
    return 0


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | input | clients | req/s | p50 ms | p99 ms | errors | x raw ORT |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = f"{r['ratio_to_raw']:.2f}" if "ratio_to_raw" in r else "1.00"
        lines.append(
            f"| {r['model']} | {r['input']} | {r['concurrency']} | {r['throughput_rps']:.0f} | "
            f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r.get('errors', 0)} | {ratio} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

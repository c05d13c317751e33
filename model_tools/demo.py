"""The worked example: digits CNN -> ONNX -> static INT8 -> evaluate -> signed bundles.

Run as ``python -m model_tools.demo --out examples/models`` (``make demo-model``).
Everything else (images, data, keys, bundles, report) goes beside ``--out``.
Fixed seeds, thread counts and bundle timestamps make reruns produce the same bytes.

Version 2 of ``digits`` (the same CNN trained with another seed) ships only as a
signed bundle, ``digits-2.edgebundle``: it reaches a gateway by push, so the README's
push / activate / rollback walk-through has a real second version to work with.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edge_contracts.bundle.signing import load_public_key
from edge_contracts.bundle.verify import verify_bundle
from edge_contracts.manifest import Preprocessing, parse_manifest
from model_tools.bench import bench_models
from model_tools.calibration import calibration_for_model
from model_tools.datasets import preprocess_image
from model_tools.digits import MEAN, SCALE, STD, DigitsData, load_digits_data, normalize, upscale
from model_tools.errors import ToolError
from model_tools.evaluate import evaluate_models, record_evaluation
from model_tools.manifest_io import find_manifest, write_json_atomic
from model_tools.packaging import keygen, package_model
from model_tools.quantize import QuantizeOptions, quantize_model
from model_tools.sessions import open_session

__all__ = ["main", "run_demo"]

_log = logging.getLogger(__name__)
LABELS = tuple(str(i) for i in range(10))
PREPROCESSING = {
    "input_size": [28, 28],
    "color_mode": "L",
    "scale": SCALE,
    "mean": [MEAN],
    "std": [STD],
    "layout": "NCHW",
    "resize_filter": "bilinear",
    "input_dtype": "float32",
}
V2_SEED = 1  # digits version 2: the same CNN, data and recipe, another training seed
# Bundles record when they were made; a fixed moment keeps reruns byte-identical.
CREATED_AT = "2026-11-24T09:08:21Z"
# (size, colour) of the sample images written to examples/images.
SAMPLE_FORMATS = (
    (28, "L"),
    (28, "L"),
    (28, "L"),
    (64, "L"),
    (64, "L"),
    (64, "L"),
    (28, "L"),
    (48, "RGB"),
)


def _export_fp32(data: DigitsData, target: Path, progress: bool, version: str = "1") -> None:
    from model_tools.digits import train_digits_cnn
    from model_tools.export import ExportConfig, ManifestOptions, export_model

    seed = 0 if version == "1" else V2_SEED
    model = train_digits_cnn(data, seed=seed, progress=progress)
    config = ExportConfig(input_shape=(1, 1, 28, 28), output_names=("logits",))
    lineage = {} if version == "1" else {"lineage": {"parent_version": "1"}}
    options = ManifestOptions(
        name="digits",
        version=version,
        labels=LABELS,
        preprocessing=dict(PREPROCESSING),
        extra=lineage,
    )
    result = export_model(model, target, config, options, normalize(data.test_images[:64]))
    _log.info("exported %s (max |torch - onnx| %.2g)", target, result.max_abs_diff)


def _write_data(data: DigitsData, folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    test, calib = folder / "digits-test.npz", folder / "digits-calib.npz"
    np.savez_compressed(test, x=data.test_images, y=data.test_labels)
    np.savez_compressed(calib, x=data.train_images[:300], y=data.train_labels[:300])
    return test, calib


def _preprocessing(model: Path) -> Preprocessing:
    manifest = find_manifest(model)
    pre = parse_manifest(manifest).preprocessing if manifest else None
    if pre is None:
        raise ToolError(f"{model} has no manifest with preprocessing")
    return pre


def _sample_image(digit: np.ndarray, size: int, mode: str) -> Image.Image:
    image = Image.fromarray(upscale(digit, size), mode="L")
    if mode == "RGB":  # the same digit as a colour photo: warm white ink on black
        gray = np.asarray(image, dtype=np.float32)[:, :, None]
        tint = np.array([1.0, 0.97, 0.8], dtype=np.float32)
        image = Image.fromarray(np.clip(np.rint(gray * tint), 0, 255).astype(np.uint8), "RGB")
    return image


def _write_samples(data: DigitsData, folder: Path, models: list[Path]) -> list[dict[str, Any]]:
    from sklearn.datasets import load_digits

    raw = load_digits().images
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("digit_*.png"):
        stale.unlink()
    pre = _preprocessing(models[0])
    sessions = [open_session(m) for m in models]
    samples: list[dict[str, Any]] = []
    position = 0
    seen: set[int] = set()
    for size, mode in SAMPLE_FORMATS:
        while True:
            index, label = int(data.test_index[position]), int(data.test_labels[position])
            position += 1
            if label in seen:
                continue
            image = _sample_image(raw[index], size, mode)
            x = preprocess_image(image, pre, (28, 28))[None]
            predictions = [int(np.argmax(s.run(None, {"input": x})[0])) for s in sessions]
            if all(p == label for p in predictions):
                break
        seen.add(label)
        name = f"digit_{label}_{index}.png"
        image.save(folder / name, optimize=False)
        samples.append({"file": name, "label": str(label), "size": [size, size], "mode": mode})
    return samples


def _golden_inputs(folder: Path, samples: list[dict[str, Any]], model: Path) -> np.ndarray:
    pre = _preprocessing(model)
    images = [Image.open(folder / s["file"]) for s in samples[:4]]
    return np.stack([preprocess_image(i, pre, (28, 28)) for i in images])


def _package(
    examples: Path, samples: list[dict[str, Any]], models: dict[str, Path]
) -> list[dict[str, Any]]:
    """Sign one bundle per model (golden samples: the first 4 sample images)."""
    key, pub = examples / "keys" / "demo-signing.key", examples / "keys" / "demo-signing.pub"
    if not key.exists():
        keygen(key, pub)
    bundles = []
    for bundle_name, path in models.items():
        result = package_model(
            path,
            examples / "bundles" / f"{bundle_name}.edgebundle",
            signing_key=key,
            golden_inputs=_golden_inputs(examples / "images", samples, path),
            created_at=CREATED_AT,
        )
        verified = verify_bundle(result.path, [load_public_key(pub)])
        bundles.append(
            {
                "path": str(result.path),
                "name": result.name,
                "version": result.version,
                "size_bytes": result.path.stat().st_size,
                "signed_by": verified.key_id,
                "top1": verified.manifest.document["evaluation"]["top1"],
            }
        )
    return bundles


def _variants(models: dict[str, Path], scores: list[Any], latency: list[Any]) -> dict[str, Any]:
    variants = {}
    for (variant, path), score in zip(models.items(), scores, strict=True):
        variants[variant] = {
            "model": str(path),
            "size_bytes": path.stat().st_size,
            "top1": score.top1,
            "top5": score.top5,
            "latency_ms": {
                f"batch{s.batch_size}": {
                    "p50": s.p50_ms,
                    "p90": s.p90_ms,
                    "p99": s.p99_ms,
                    "items_per_s": s.throughput,
                }
                for s in latency
                if s.model == str(path)
            },
        }
    return variants


def run_demo(out: Path, examples: Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Build every demo artifact; returns the report also written to demo-report.json."""
    examples = examples or out.parent
    data = load_digits_data()
    fp32 = out / "digits" / "1" / "model.onnx"
    int8 = out / "digits-int8" / "1" / "model.onnx"
    _export_fp32(data, fp32, progress)
    test_npz, calib_npz = _write_data(data, examples / "data")
    calibration = calibration_for_model(fp32, calib_npz)
    quantized = quantize_model(  # named digits-int8, version 1 (quantize's naming rule)
        fp32, int8, QuantizeOptions(mode="static", progress=progress), calibration
    )
    report = evaluate_models([fp32, int8], test_npz, max_drop=1.0, progress=progress)
    record_evaluation(fp32, report, 0)
    record_evaluation(int8, report, 1)
    samples = _write_samples(data, examples / "images", [fp32, int8])
    with tempfile.TemporaryDirectory(prefix="demo-digits-2-") as tmp:
        v2 = Path(tmp) / "digits" / "2" / "model.onnx"  # not under --out: it arrives by push
        _export_fp32(data, v2, progress, version="2")
        against_v1 = evaluate_models([fp32, v2], test_npz, progress=progress)
        record_evaluation(v2, against_v1, 1)
        models = {"fp32": fp32, "int8_static_qdq": int8, "fp32_version_2": v2}
        latency = bench_models(
            list(models.values()),
            batch_sizes=(1, 32),
            threads=(1,),
            runs=300,
            warmup=20,
            progress=progress,
        )
        variants = _variants(models, [*report.scores, against_v1.scores[1]], latency)
        bundles = _package(
            examples, samples, {"digits-1": fp32, "digits-int8-1": int8, "digits-2": v2}
        )
    variants["fp32_version_2"]["model"] = bundles[2]["path"]  # its temporary folder is gone
    drop = report.drop_points or 0.0
    summary = {
        "dataset": {
            "name": "sklearn digits",
            "test_samples": report.samples,
            "train_samples": len(data.train_labels),
        },
        "variants": variants,
        "comparison": {
            "size_ratio": quantized.size_ratio,
            "top1_drop_points": drop,
            "agreement": report.agreement,
            "targets_met": {
                "size_ratio<=0.30": quantized.size_ratio <= 0.30,
                "top1_drop<=1.0": drop <= 1.0,
                "agreement>=0.98": (report.agreement or 0.0) >= 0.98,
            },
        },
        "version_2_vs_1": {
            "top1_delta_points": against_v1.delta_points,
            "agreement": against_v1.agreement,
        },
        "threads": 1,
        "images": samples,
        "bundles": bundles,
    }
    write_json_atomic(examples / "demo-report.json", summary)
    return summary


def _print_summary(summary: dict[str, Any]) -> None:
    print(
        f"{'variant':<18}{'top1':>8}{'top5':>8}{'size KB':>10}{'p50 b1 ms':>11}{'p50 b32 ms':>12}"
    )
    for name, v in summary["variants"].items():
        lat = v["latency_ms"]
        print(
            f"{name:<18}{v['top1'] * 100:>7.2f}%{v['top5'] * 100:>7.2f}%"
            f"{v['size_bytes'] / 1024:>10.1f}"
            f"{lat['batch1']['p50']:>11.3f}{lat['batch32']['p50']:>12.3f}"
        )
    print(json.dumps(summary["comparison"], indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_tools.demo", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("examples/models"), help="model root")
    parser.add_argument(
        "--examples",
        type=Path,
        help="folder for images, keys, bundles, report (default: the parent of --out)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("torch").setLevel(logging.ERROR)
    try:
        summary = run_demo(args.out, args.examples, progress=not args.no_progress)
    except (ToolError, OSError) as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 1
    _print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())

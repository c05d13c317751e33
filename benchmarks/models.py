"""Models the benchmarks run, built once and cached under ``.cache/bench/models``.

- ``digits``: the shipped demo CNN (examples/models/digits/1), overhead-bound.
- ``digits-int8``: the shipped static-INT8 demo (examples/models/digits-int8/1).
- ``mobilenet``: model_tools' MobileNetV2 (random weights, 224x224, FP32) exported
  with model_tools' exporter.
- ``mobilenet-int8``: the same network, static INT8 QDQ (per-channel, MinMax) made by
  model_tools' quantize API, calibrated on scikit-image's bundled photos.
"""

from __future__ import annotations

import io
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "bench"
EXAMPLES = REPO / "examples" / "models"

IMAGENET_PREPROCESSING = {
    "color_mode": "RGB",
    "scale": 1 / 255,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
    "layout": "NCHW",
    "resize_filter": "bilinear",
}
# Photos inside scikit-image's wheel (no download); chelsea is the benchmark JPEG.
PHOTOS = ("chelsea", "astronaut", "coffee", "rocket", "immunohistochemistry", "retina")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchModel:
    """One model the gateway serves during the benchmark."""

    name: str  # the gateway's model name (folder under the model root)
    kind: str  # "digits" or "mobilenet": which image and tensor it takes
    precision: str  # "fp32" or "int8"

    def path(self, root: Path) -> Path:
        return root / self.name / "1" / "model.onnx"


MODELS = {
    m.name: m
    for m in (
        BenchModel("digits", "digits", "fp32"),
        BenchModel("digits-int8", "digits", "int8"),
        BenchModel("mobilenet", "mobilenet", "fp32"),
        BenchModel("mobilenet-int8", "mobilenet", "int8"),
    )
}


def photo(name: str = "chelsea") -> np.ndarray:
    """An RGB uint8 photo from scikit-image's bundled data."""
    from skimage import data

    image: np.ndarray = getattr(data, name)()
    return image


def jpeg_photo(quality: int = 90) -> bytes:
    """chelsea.png (451x300 cat) re-encoded as a JPEG, as a phone app would send it."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(photo()).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _export_mobilenet(target: Path) -> None:
    from model_tools.export import ExportConfig, ManifestOptions, export_model
    from model_tools.mobilenet import mobilenet_v2

    export_model(
        mobilenet_v2(),
        target,
        ExportConfig(input_shape=(1, 3, 224, 224), output_names=("logits",), tolerance=1e-3),
        ManifestOptions(
            name="mobilenet",
            labels=tuple(f"class-{i}" for i in range(1000)),
            preprocessing=IMAGENET_PREPROCESSING,
        ),
    )


def calibration_images(count: int = 64, seed: int = 0) -> np.ndarray:
    """[count, 224, 224, 3] uint8: random crops and flips of the bundled photos."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = [photo(name) for name in PHOTOS]
    out = np.empty((count, 224, 224, 3), np.uint8)
    for i in range(count):
        image = images[i % len(images)]
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        h, w = image.shape[:2]
        side = int(min(h, w) * rng.uniform(0.6, 1.0))
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = image[top : top + side, left : left + side, :3]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out[i] = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((224, 224)))
    return out


def _quantize_mobilenet(source: Path, target: Path) -> None:
    from edge_contracts.manifest import parse_manifest
    from model_tools.datasets import as_model_input
    from model_tools.manifest_io import manifest_path_for, read_manifest
    from model_tools.quantize import QuantizeOptions, quantize_model

    pre = parse_manifest(read_manifest(manifest_path_for(source))).preprocessing
    calibration = as_model_input(calibration_images(), pre, [None, 3, 224, 224], "calibration")
    result = quantize_model(
        source,
        target,
        QuantizeOptions(mode="static", name="mobilenet-int8", progress=False, bench_runs=20),
        calibration=calibration,
    )
    logger.info(
        "mobilenet-int8: %s, %.2f ms -> %.2f ms at batch 1",
        result.reason,
        result.latency_before_ms,
        result.latency_after_ms,
    )


def model_root() -> Path:
    """MODEL_ROOT holding every benchmark model (built on first use, then cached)."""
    root = CACHE / "models"
    for name in ("digits", "digits-int8"):
        folder = root / name / "1"
        if not (folder / "model.onnx").exists():
            shutil.copytree(EXAMPLES / name / "1", folder, dirs_exist_ok=True)
    fp32 = MODELS["mobilenet"].path(root)
    if not fp32.exists():
        print("benchmarks: exporting MobileNetV2 (once, cached)...", flush=True)
        fp32.parent.mkdir(parents=True, exist_ok=True)
        _export_mobilenet(fp32)
    int8 = MODELS["mobilenet-int8"].path(root)
    if not int8.exists():
        print("benchmarks: static INT8 quantization of MobileNetV2 (once, cached)...", flush=True)
        int8.parent.mkdir(parents=True, exist_ok=True)
        _quantize_mobilenet(fp32, int8)
    return root
